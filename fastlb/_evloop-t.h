/* _evloop-t.h: what a worker's epoll loop is made of: event sources and the coarse timer wheel. */
#ifndef FLB_EVLOOP_T_H
#define FLB_EVLOOP_T_H

#include "_api.h"
#include "_list-t.h"

/* Every epoll registration points at one of these (epoll_event.data.ptr), embedded in its owner. */
enum flb_evkind {
    FLB_EV_WAKE = 1,     /* the worker's eventfd */
    FLB_EV_LISTENER = 2, /* struct flb_listener_ws */
    FLB_EV_CLIENT = 3,   /* struct flb_conn, client side */
    FLB_EV_SERVER = 4,   /* struct flb_conn, server side */
    /* HTTP mode (_l7.h) */
    FLB_EV_H1_CLIENT = 5, /* struct flb_h1conn, client side */
    FLB_EV_H1_SERVER = 6, /* struct flb_h1srv: a backend connection, in use or pooled */
    FLB_EV_PASS = 7,      /* struct flb_pass: an https connection whose ClientHello is being read (_pass.h) */
};

struct flb_evsrc {
    uint8_t kind; /* enum flb_evkind */
};

/* Wheel geometry: 10 ms ticks, 1024 slots (a ~10 s revolution). Timeouts are coarse by design. */
#define FLB_TICK_MS 10
#define FLB_WHEEL_SLOTS 1024

/* A timer with lazy re-arming: <deadline> may be pushed later by a plain store (activity costs no
 * timer operation); the timer stays in the slot of <at>, and when that slot comes round a timer
 * whose deadline has moved is re-inserted rather than fired. */
struct flb_timer {
    struct flb_list link;     /* in its wheel slot; in no list: not scheduled */
    uint64_t at;              /* ms: the tick it is filed under */
    uint64_t deadline;        /* ms (monotonic); fires once now >= deadline */
};

struct flb_wheel {
    struct flb_list slot[FLB_WHEEL_SLOTS];
    uint64_t tick;  /* ticks up to and including this one have been run */
    long count;     /* timers scheduled */
};

#endif
