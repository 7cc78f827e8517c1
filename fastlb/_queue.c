/* _queue.c: waiting for a backend slot (see _queue.h). */
#include "_api.h"

#include "_queue.h"

#include "_balance.h"
#include "_conn-t.h"
#include "_engine.h"
#include "_list.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RELAXED memory_order_relaxed

/* <w>'s queue of the service counted by <c>, allocating every worker's on first use; NULL without
 * memory. Workers race for the allocation: one wins, the others free theirs. */
static struct flb_queue *queue_of(struct flb_worker *w, struct flb_service_counters *c)
{
    struct flb_queue *qs = atomic_load_explicit(&c->queues, memory_order_acquire), *expected = NULL;
    uint32_t n = w->e->opt.workers;

    if (qs != NULL)
        return &qs[w->id];
    if (posix_memalign((void **)&qs, 64, (size_t)n * sizeof(*qs)) != 0)
        return NULL;
    memset(qs, 0, (size_t)n * sizeof(*qs));
    for (uint32_t i = 0; i < n; i++) {
        atomic_init(&qs[i].first, UINT64_MAX);
        qs[i].c = c;
        flb_list_init(&qs[i].items);
    }
    if (!atomic_compare_exchange_strong_explicit(&c->queues, &expected, qs, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(qs);
        qs = expected;
    }
    return &qs[w->id];
}

/* Publishes the ticket of <q>'s oldest item that waits for any slot. */
static void publish_first(struct flb_queue *q)
{
    struct flb_qitem *i;

    flb_list_for_each (i, &q->items, link) {
        if (!i->own) {
            atomic_store_explicit(&q->first, i->ticket, RELAXED);
            return;
        }
    }
    atomic_store_explicit(&q->first, UINT64_MAX, RELAXED);
}

/* The worker (other than <w>) whose queue of the same service holds the oldest item waiting for any
 * slot, and that item's ticket (UINT64_MAX: none). */
static uint64_t oldest_elsewhere(struct flb_worker *w, const struct flb_queue *q, uint32_t *who)
{
    const struct flb_queue *qs = q - w->id;
    uint64_t best = UINT64_MAX;

    for (uint32_t i = 0; i < w->e->opt.workers; i++) {
        uint64_t t = i == w->id ? UINT64_MAX : atomic_load_explicit(&qs[i].first, RELAXED);
        if (t < best) {
            best = t;
            *who = i;
        }
    }
    return best;
}

static void list_queue(struct flb_worker *w, struct flb_queue *q)
{
    if (!flb_list_linked(&q->wlink))
        flb_list_add_head(&w->queues, &q->wlink);
}

static void unlist_queue(struct flb_queue *q)
{
    if (flb_list_linked(&q->wlink))
        flb_list_del(&q->wlink);
}

int flb_queue_add(struct flb_worker *w, const struct flb_service *s, struct flb_qitem *item, flb_qitem_ready_fn ready)
{
    struct flb_queue *q = queue_of(w, s->c);
    int64_t now;

    if (q == NULL) {
        errno = ENOMEM;
        return FLB_ERR;
    }
    item->q = q;
    item->ready = ready;
    item->since = w->now;
    item->ticket = atomic_fetch_add_explicit(&s->c->queue_seq, 1, RELAXED) + 1;
    item->own = 0;
    flb_list_add_tail(&q->items, &item->link);
    if (atomic_load_explicit(&q->first, RELAXED) == UINT64_MAX)
        atomic_store_explicit(&q->first, item->ticket, RELAXED);
    list_queue(w, q);
    now = atomic_fetch_add_explicit(&s->c->queued, 1, RELAXED) + 1;
    for (int64_t max = atomic_load_explicit(&s->c->queued_max, RELAXED); now > max;)
        if (atomic_compare_exchange_weak_explicit(&s->c->queued_max, &max, now, RELAXED, RELAXED))
            break;
    return FLB_OK;
}

void flb_queue_remove(struct flb_worker *w, const struct flb_service *s, struct flb_qitem *item)
{
    struct flb_queue *q = item->q;

    if (q == NULL)
        return;
    flb_list_del(&item->link);
    item->q = NULL;
    if (atomic_load_explicit(&q->first, RELAXED) == item->ticket)
        publish_first(q);
    if (flb_list_empty(&q->items))
        unlist_queue(q);
    atomic_fetch_sub_explicit(&s->c->queued, 1, RELAXED);
    atomic_fetch_add_explicit(&s->c->queue_total, 1, RELAXED);
    atomic_fetch_add_explicit(&s->c->queue_wait_ms, w->now - item->since, RELAXED);
}

void flb_queue_run(struct flb_worker *w)
{
    struct flb_queue *q;

    /* <ready> may close its item, which may empty and unlist this queue: the walk steps on first. */
    flb_list_for_each_safe (q, &w->queues, wlink) {
        struct flb_qitem *item;
        uint32_t who = 0;
        uint64_t elsewhere = oldest_elsewhere(w, q, &who);
        /* First come, first served, across workers: an item that finds every slot taken stops the
         * walk, as all behind it would; so does one younger than an item waiting on another worker,
         * which is woken to take the slot instead. One that waits for its own backend lets those
         * behind it try. */
        flb_list_for_each_safe (item, &q->items, link) {
            if (!item->own && item->ticket > elsewhere) {
                flb_engine_wake(w->e, who);
                break;
            }
            int r = item->ready(w, item);
            if (r == FLB_Q_WAIT)
                break;
            if (r == FLB_Q_SKIP && !item->own) {
                item->own = 1;
                publish_first(q);
            }
        }
    }
}

int flb_queue_pick(struct flb_service *s, uint64_t key, uint32_t worker, const uint32_t *tried,
                   uint32_t ntried)
{
    uint32_t ex[FLB_CONN_TRIED * 2], nex = ntried;

    if (s->nbe == 0)
        return FLB_ERR;
    memcpy(ex, tried, ntried * sizeof(ex[0]));
    for (;;) {
        int idx = flb_balance_pick(&s->bal, key, worker, ex, nex);
        if (idx < 0)
            return s->bemax != NULL && flb_balance_full(&s->bal, tried, ntried) ? FLB_AGAIN : FLB_ERR;
        if (flb_queue_backend_take(s, (uint32_t)idx) == FLB_OK)
            return idx;
        if (nex == sizeof(ex) / sizeof(ex[0]))
            return FLB_AGAIN;
        ex[nex++] = (uint32_t)idx;
    }
}

void flb_queue_free(struct flb_service_counters *c)
{
    free(atomic_load_explicit(&c->queues, RELAXED));
    atomic_store_explicit(&c->queues, NULL, RELAXED);
}
