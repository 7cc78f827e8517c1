/* _backend.c: the backend store (see _backend.h). */
#include "_api.h"

#include "_backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STORE_BUCKETS_MIN 64

struct flb_backend_store {
    pthread_mutex_t lock;
    struct flb_backend **bucket;
    uint32_t nbuckets; /* power of two */
    uint32_t count;
};

static uint32_t id_hash(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a: short keys, control path only */

    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 16777619u;
    return h;
}

struct flb_backend_store *flb_backend_store_new(void)
{
    struct flb_backend_store *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->bucket = calloc(STORE_BUCKETS_MIN, sizeof(*s->bucket));
    if (s->bucket == NULL) {
        free(s);
        return NULL;
    }
    s->nbuckets = STORE_BUCKETS_MIN;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

static void backend_free(struct flb_backend *b)
{
    free(atomic_load_explicit(&b->idle, memory_order_relaxed));
    free(b->id);
    free(b);
    FLB_LIVE_DEC(backends);
}

void flb_backend_store_free(struct flb_backend_store *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        struct flb_backend *b = s->bucket[i], *next;
        for (; b != NULL; b = next) {
            next = b->next;
            backend_free(b);
        }
    }
    pthread_mutex_destroy(&s->lock);
    free(s->bucket);
    free(s);
}

static struct flb_backend *lookup(struct flb_backend_store *s, const char *id)
{
    struct flb_backend *b = s->bucket[id_hash(id) & (s->nbuckets - 1)];

    while (b != NULL && strcmp(b->id, id) != 0)
        b = b->next;
    return b;
}

/* Doubles the buckets once the chains average more than one record; a failed grow keeps the old. */
static void grow(struct flb_backend_store *s)
{
    uint32_t n = s->nbuckets * 2;
    struct flb_backend **nb = calloc(n, sizeof(*nb));

    if (nb == NULL)
        return;
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        struct flb_backend *b = s->bucket[i], *next;
        for (; b != NULL; b = next) {
            next = b->next;
            uint32_t h = id_hash(b->id) & (n - 1);
            b->next = nb[h];
            nb[h] = b;
        }
    }
    free(s->bucket);
    s->bucket = nb;
    s->nbuckets = n;
}

struct flb_backend *flb_backend_get(struct flb_backend_store *s, const char *id)
{
    struct flb_backend *b;

    pthread_mutex_lock(&s->lock);
    b = lookup(s, id);
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b == NULL || (b->id = strdup(id)) == NULL) {
            free(b);
            pthread_mutex_unlock(&s->lock);
            errno = ENOMEM;
            return NULL;
        }
        FLB_LIVE_INC(backends);
        atomic_store_explicit(&b->weight, 1, memory_order_relaxed);
        if (s->count >= s->nbuckets)
            grow(s);
        uint32_t h = id_hash(id) & (s->nbuckets - 1);
        b->next = s->bucket[h];
        s->bucket[h] = b;
        s->count++;
    }
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    return b;
}

struct flb_backend *flb_backend_find(struct flb_backend_store *s, const char *id)
{
    struct flb_backend *b;

    pthread_mutex_lock(&s->lock);
    b = lookup(s, id);
    pthread_mutex_unlock(&s->lock);
    return b;
}

void flb_backend_store_sweep(struct flb_backend_store *s)
{
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        struct flb_backend **pp = &s->bucket[i];
        while (*pp != NULL) {
            struct flb_backend *b = *pp;
            /* Only this thread raises a count from zero, under this lock: zero stays zero. */
            if (atomic_load_explicit(&b->refs, memory_order_acquire) == 0) {
                *pp = b->next;
                s->count--;
                backend_free(b);
            } else {
                pp = &b->next;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
}
