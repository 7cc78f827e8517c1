/* _queue.h: waiting for a backend slot (types in _queue-t.h).
 *
 * A connection (tcp mode) or request (http mode) that finds every backend of its service at its
 * maxconn, or its service at its own, waits in its worker's queue of that service instead of being
 * refused. After each batch of events a worker offers the freed slots to its queues, oldest item
 * first; a slot freed on another worker wakes the workers while any item waits (counted per service
 * in flb_service_counters.queued). Each item's own timer bounds its wait (the service's queue_ms):
 * then it is answered 503 (http) or closed (tcp). */
#ifndef FLB_QUEUE_H
#define FLB_QUEUE_H

#include "_engine-t.h"
#include "_queue-t.h"
#include "_route-t.h"

/* Puts <q> at the tail of <w>'s queue of service <s>; <ready> is called when a slot may be free.
 * FLB_ERR without memory (the caller refuses the item). */
int flb_queue_add(struct flb_worker *w, const struct flb_service *s, struct flb_qitem *q, flb_qitem_ready_fn ready);

/* Takes <q> out of its queue (it got a slot, timed out, or is closing); nothing if it is not queued.
 * Counts its wait on <s>. */
void flb_queue_remove(struct flb_worker *w, const struct flb_service *s, struct flb_qitem *q);

static inline int flb_queued(const struct flb_qitem *q)
{
    return q->q != NULL;
}

/* Offers the slots freed since the last call to the worker's queues (after each batch of events). */
void flb_queue_run(struct flb_worker *w);

/* Whether <s> may have items waiting on some worker (a slot freed now should wake them). */
static inline int flb_queue_waiting(const struct flb_service *s)
{
    return atomic_load_explicit(&s->c->queued, memory_order_relaxed) > 0;
}

/* Frees every worker's queues of a service counter record (none may hold an item). */
void flb_queue_free(struct flb_service_counters *c);

/* Picks a backend of <s> for flow <key> (flb_balance_pick, never one of <tried>) and takes a slot on
 * it: its index; FLB_AGAIN when none has a slot but one at its maxconn would have been picked (the
 * caller may wait for one); FLB_ERR when none is available. A backend another worker filled since
 * the pick is passed over like one already tried. */
int flb_queue_pick(struct flb_service *s, uint64_t key, uint32_t worker, const uint32_t *tried,
                   uint32_t ntried);

/* Takes a slot on backend <idx> of <s>: FLB_OK, or FLB_AGAIN when it is at its maxconn (two workers
 * racing for the last slot cannot both win: the loser backs out). */
static inline int flb_queue_backend_take(const struct flb_service *s, uint32_t idx)
{
    struct flb_backend *b = s->be[idx];
    uint32_t max = s->bemax != NULL ? s->bemax[idx] : 0;

    if (atomic_fetch_add_explicit(&b->active, 1, memory_order_relaxed) >= (int64_t)max && max > 0) {
        atomic_fetch_sub_explicit(&b->active, 1, memory_order_relaxed);
        return FLB_AGAIN;
    }
    return FLB_OK;
}

#endif
