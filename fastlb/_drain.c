/* _drain.c: drain deadlines (see _drain.h). */
#include "_api.h"

#include "_drain.h"

#include "_conn.h"
#include "_h1conn.h"
#include "_h1pool.h"
#include "_l7.h"
#include "_list.h"
#include "_listener-t.h"
#include "_route-t.h"

#include <errno.h>
#include <stdlib.h>

struct flb_drains *flb_drains_new(uint32_t n)
{
    struct flb_drains *d = calloc(1, sizeof(*d) + (size_t)n * sizeof(d->d[0]));

    if (d == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    d->n = n;
    return d;
}

static int by_deadline(const void *a, const void *b)
{
    uint64_t x = ((const struct flb_drain *)a)->deadline_ms, y = ((const struct flb_drain *)b)->deadline_ms;

    return (x > y) - (x < y);
}

void flb_drains_sort(struct flb_drains *d)
{
    qsort(d->d, d->n, sizeof(d->d[0]), by_deadline);
}

void flb_drains_free(struct flb_drains *d)
{
    free(d);
}

int flb_drain_timeout(const struct flb_worker *w)
{
    const struct flb_drains *d = w->drains;
    uint64_t at;

    if (d == NULL || w->drain_next >= d->n)
        return -1;
    at = d->d[w->drain_next].deadline_ms;
    if (at <= w->now)
        return 0;
    return at - w->now > 3600000 ? 3600000 : (int)(at - w->now);
}

static int expired(const struct flb_drains *d, uint32_t upto, const struct flb_backend *b)
{
    for (uint32_t i = 0; i < upto; i++)
        if (d->d[i].b == b)
            return 1;
    return 0;
}

void flb_drain_expire(struct flb_worker *w)
{
    const struct flb_drains *d = w->drains;
    struct flb_conn *c;
    uint32_t upto;

    if (d == NULL || w->drain_next >= d->n || d->d[w->drain_next].deadline_ms > w->now)
        return;
    for (upto = w->drain_next; upto < d->n && d->d[upto].deadline_ms <= w->now; upto++)
        ;
    flb_list_for_each_safe (c, &w->conns, link) { /* closing moves <c> to the dead list */
        if (c->be < 0)
            continue;
        const struct flb_backend *b = c->svc->be[c->be];
        /* A backend set back to ready (or to maint) meanwhile keeps its connections. */
        if (atomic_load_explicit(&b->admin, memory_order_relaxed) == FLB_ADMIN_DRAIN && expired(d, upto, b))
            flb_conn_shut(w, c);
    }
    w->drain_next = upto;
}

int flb_drain_listener(const struct flb_worker *w, const struct flb_listener *l)
{
    const struct flb_table *t = w->table;
    uint32_t i = l->ws[w->id].route; /* its index in <t> while <t> holds it (sync_listeners) */

    if (!atomic_load_explicit(&w->e->accepting, memory_order_relaxed) || t == NULL)
        return 1;
    return i >= t->nlst || t->lst[i].l != l;
}

void flb_drain_adopted(struct flb_worker *w, const struct flb_table *old)
{
    int all = !atomic_load_explicit(&w->e->accepting, memory_order_relaxed);
    uint32_t i;

    if (all) {
        if (w->drain_all)
            return;
        w->drain_all = 1;
        flb_h1pool_clear(flb_l7_worker(w));
    } else {
        if (old == NULL || old == w->table)
            return;
        for (i = 0; i < old->nlst && !flb_drain_listener(w, old->lst[i].l); i++)
            ;
        if (i == old->nlst)
            return; /* every listener of <old> is still served */
    }
    flb_h1conn_drain(w);
}
