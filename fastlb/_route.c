/* _route.c: table lifetime and the service-counter store (see _route.h). */
#include "_api.h"

#include "_route.h"

#include "_backend.h"
#include "_balance.h"
#include "_l7.h"
#include "_listener.h"
#include "_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct flb_table *flb_table_new(uint32_t nsvc, uint32_t nlst)
{
    struct flb_table *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->svc = calloc(nsvc ? nsvc : 1, sizeof(*t->svc));
    t->lst = calloc(nlst ? nlst : 1, sizeof(*t->lst));
    if (t->svc == NULL || t->lst == NULL) {
        free(t->svc);
        free(t->lst);
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    t->nsvc = nsvc;
    t->nlst = nlst;
    atomic_store_explicit(&t->refs, 1, memory_order_relaxed);
    FLB_LIVE_INC(tables);
    return t;
}

int flb_service_alloc(struct flb_service *s, uint32_t nbe)
{
    size_t n = nbe ? nbe : 1;

    s->be = calloc(n, sizeof(*s->be));
    s->addr = calloc(n, sizeof(*s->addr));
    s->addrlen = calloc(n, sizeof(*s->addrlen));
    s->fall = calloc(n, sizeof(*s->fall));
    s->share = calloc(1, sizeof(*s->share));
    if (s->be == NULL || s->addr == NULL || s->addrlen == NULL || s->fall == NULL || s->share == NULL) {
        free(s->be);
        free(s->addr);
        free(s->addrlen);
        free(s->fall);
        free(s->share);
        s->be = NULL;
        s->addr = NULL;
        s->addrlen = NULL;
        s->fall = NULL;
        s->share = NULL;
        errno = ENOMEM;
        return FLB_ERR;
    }
    atomic_store_explicit(&s->share->refs, 1, memory_order_relaxed);
    s->nbe = nbe;
    return FLB_OK;
}

void flb_table_reuse(struct flb_table *t, uint32_t i, const struct flb_table *old, uint32_t from)
{
    t->svc[i] = old->svc[from];
    if (t->l7 != NULL && old->l7 != NULL)
        flb_l7_service_copy(t->l7, i, old->l7, from);
    if (t->svc[i].share != NULL)
        atomic_fetch_add_explicit(&t->svc[i].share->refs, 1, memory_order_relaxed);
}

static _Atomic uint64_t services_freed;

uint64_t flb_route_freed(void)
{
    return atomic_load_explicit(&services_freed, memory_order_acquire);
}

static void service_free(struct flb_service *s)
{
    if (s->bal_built)
        flb_balance_free(&s->bal);
    for (uint32_t i = 0; i < s->nbe; i++)
        if (s->be != NULL && s->be[i] != NULL)
            flb_backend_put(s->be[i]);
    if (s->c != NULL)
        atomic_fetch_sub_explicit(&s->c->refs, 1, memory_order_release);
    free(s->be);
    free(s->addr);
    free(s->addrlen);
    free(s->fall);
    free(s->bemax);
    free(s->allow);
    free(s->name);
    /* after the puts above: a sweep that reads the new count sees them */
    atomic_fetch_add_explicit(&services_freed, 1, memory_order_release);
}

void flb_table_put(struct flb_table *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < t->nsvc; i++) {
        struct flb_service *s = &t->svc[i];
        /* a service also held by another table is that table's to free */
        if (s->share != NULL && atomic_fetch_sub_explicit(&s->share->refs, 1, memory_order_acq_rel) != 1)
            continue;
        free(s->share);
        service_free(s);
        if (t->l7 != NULL)
            flb_l7_service_free(t->l7, i);
    }
    flb_l7_table_free(t->l7);
    for (uint32_t i = 0; i < t->nlst; i++)
        if (t->lst[i].l != NULL)
            flb_listener_put(t->lst[i].l);
    free(t->svc);
    free(t->lst);
    free(t);
    FLB_LIVE_DEC(tables);
}

/* The service-counter store: a hash map name -> record, chained through the records' <next>. Found
 * once per service per publish, so a table of many services publishes in time linear in its size. */
#define COUNTERS_BUCKETS_MIN 64

struct flb_counters_store {
    pthread_mutex_t lock;
    struct flb_service_counters **bucket;
    uint32_t nbuckets; /* power of two */
    uint32_t count;
};

static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a: short keys, control path only */

    for (; *name; name++)
        h = (h ^ (uint8_t)*name) * 16777619u;
    return h;
}

struct flb_counters_store *flb_counters_store_new(void)
{
    struct flb_counters_store *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->bucket = calloc(COUNTERS_BUCKETS_MIN, sizeof(*s->bucket));
    if (s->bucket == NULL) {
        free(s);
        return NULL;
    }
    s->nbuckets = COUNTERS_BUCKETS_MIN;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void flb_counters_store_free(struct flb_counters_store *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        struct flb_service_counters *c, *next;
        for (c = s->bucket[i]; c != NULL; c = next) {
            next = c->next;
            flb_queue_free(c);
            free(c->name);
            free(c);
        }
    }
    pthread_mutex_destroy(&s->lock);
    free(s->bucket);
    free(s);
}

/* Doubles the buckets once the chains average more than one record; a failed grow keeps the old. */
static void counters_grow(struct flb_counters_store *s)
{
    uint32_t n = s->nbuckets * 2;
    struct flb_service_counters **nb = calloc(n, sizeof(*nb));

    if (nb == NULL)
        return;
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        struct flb_service_counters *c, *next;
        for (c = s->bucket[i]; c != NULL; c = next) {
            next = c->next;
            uint32_t h = name_hash(c->name) & (n - 1);
            c->next = nb[h];
            nb[h] = c;
        }
    }
    free(s->bucket);
    s->bucket = nb;
    s->nbuckets = n;
}

struct flb_service_counters *flb_counters_get(struct flb_counters_store *s, const char *name)
{
    struct flb_service_counters *c;

    pthread_mutex_lock(&s->lock);
    for (c = s->bucket[name_hash(name) & (s->nbuckets - 1)]; c != NULL && strcmp(c->name, name) != 0; c = c->next)
        ;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL || (c->name = strdup(name)) == NULL) {
            free(c);
            pthread_mutex_unlock(&s->lock);
            errno = ENOMEM;
            return NULL;
        }
        if (s->count >= s->nbuckets)
            counters_grow(s);
        uint32_t h = name_hash(name) & (s->nbuckets - 1);
        c->next = s->bucket[h];
        s->bucket[h] = c;
        s->count++;
    }
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    return c;
}

void flb_counters_store_sweep(struct flb_counters_store *s)
{
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        struct flb_service_counters **pp = &s->bucket[i];
        while (*pp != NULL) {
            struct flb_service_counters *c = *pp;
            /* Only this thread raises a count from zero, under this lock: zero stays zero. */
            if (atomic_load_explicit(&c->refs, memory_order_acquire) == 0) {
                *pp = c->next;
                s->count--;
                flb_queue_free(c);
                free(c->name);
                free(c);
            } else {
                pp = &c->next;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
}
