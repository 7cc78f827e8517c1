/* _route.c: table lifetime and the service-counter store (see _route.h). */
#include "_api.h"

#include "_route.h"

#include "_backend.h"
#include "_balance.h"
#include "_l7.h"
#include "_listener.h"

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
    if (s->be == NULL || s->addr == NULL || s->addrlen == NULL) {
        free(s->be);
        free(s->addr);
        free(s->addrlen);
        s->be = NULL;
        s->addr = NULL;
        s->addrlen = NULL;
        errno = ENOMEM;
        return FLB_ERR;
    }
    s->nbe = nbe;
    return FLB_OK;
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
    free(s->name);
}

void flb_table_put(struct flb_table *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    flb_l7_table_free(t->l7);
    for (uint32_t i = 0; i < t->nsvc; i++)
        service_free(&t->svc[i]);
    for (uint32_t i = 0; i < t->nlst; i++)
        if (t->lst[i].l != NULL)
            flb_listener_put(t->lst[i].l);
    free(t->svc);
    free(t->lst);
    free(t);
    FLB_LIVE_DEC(tables);
}

/* The service-counter store: few records, found on the control path only, so a list will do. */
struct flb_counters_store {
    pthread_mutex_t lock;
    struct flb_service_counters *head;
};

struct flb_counters_store *flb_counters_store_new(void)
{
    struct flb_counters_store *s = calloc(1, sizeof(*s));

    if (s != NULL)
        pthread_mutex_init(&s->lock, NULL);
    return s;
}

void flb_counters_store_free(struct flb_counters_store *s)
{
    struct flb_service_counters *c, *next;

    if (s == NULL)
        return;
    for (c = s->head; c != NULL; c = next) {
        next = c->next;
        free(c->name);
        free(c);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

struct flb_service_counters *flb_counters_get(struct flb_counters_store *s, const char *name)
{
    struct flb_service_counters *c;

    pthread_mutex_lock(&s->lock);
    for (c = s->head; c != NULL && strcmp(c->name, name) != 0; c = c->next)
        ;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL || (c->name = strdup(name)) == NULL) {
            free(c);
            pthread_mutex_unlock(&s->lock);
            errno = ENOMEM;
            return NULL;
        }
        c->next = s->head;
        s->head = c;
    }
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    return c;
}

void flb_counters_store_sweep(struct flb_counters_store *s)
{
    struct flb_service_counters **pp;

    pthread_mutex_lock(&s->lock);
    for (pp = &s->head; *pp != NULL;) {
        struct flb_service_counters *c = *pp;
        if (atomic_load_explicit(&c->refs, memory_order_acquire) == 0) {
            *pp = c->next;
            free(c->name);
            free(c);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
}
