/* _queue-t.h: connections and requests waiting for a backend slot (a backend's or a service's
 * maxconn), in first-come order, up to the service's queue timeout. */
#ifndef FLB_QUEUE_T_H
#define FLB_QUEUE_T_H

#include "_list-t.h"

#include <stdint.h>

struct flb_service_counters;
struct flb_worker;
struct flb_queue;
struct flb_qitem;

/* What a waiting item's ready function says when a slot may be free. */
enum flb_qready {
    FLB_Q_WAIT = 0, /* it waits on: every slot it could take is taken, and so for those behind it */
    FLB_Q_LEFT = 1, /* it left the queue: it went on, or was closed */
    FLB_Q_SKIP = 2, /* it waits for one backend of its own (sticky): those behind may go first */
};

typedef int (*flb_qitem_ready_fn)(struct flb_worker *w, struct flb_qitem *q);

/* Embedded in what waits: struct flb_conn (tcp mode, its client not read meanwhile) or struct
 * flb_h1conn (http mode, a parsed request). */
struct flb_qitem {
    struct flb_list link;          /* in <q>'s items */
    struct flb_queue *q;           /* NULL while not waiting */
    flb_qitem_ready_fn ready;
    uint64_t since;                /* ms, when it began to wait */
    uint64_t ticket;               /* its place in the service's order, across workers */
    uint8_t own;                   /* it waits for one backend of its own (FLB_Q_SKIP) */
};

/* One worker's queue of one service. A service has one per worker (struct
 * flb_service_counters.queues, keyed by the service's name so that it outlives table swaps), each on
 * a cache line of its own: only its worker touches it. */
struct flb_queue {
    _Alignas(64) struct flb_list items; /* struct flb_qitem.link, oldest first */
    /* The ticket of its oldest item that waits for any slot (UINT64_MAX: none), read by the other
     * workers: a slot goes to the oldest waiting item of the service, whichever worker holds it. */
    _Atomic uint64_t first;
    struct flb_service_counters *c;  /* whose */
    struct flb_list wlink;           /* in the worker's list of queues that hold items, or in none */
};

#endif
