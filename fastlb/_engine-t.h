/* _engine-t.h: the workers and the state the control thread shares with them. */
#ifndef FLB_ENGINE_T_H
#define FLB_ENGINE_T_H

#include "_conn-t.h"
#include "_evloop-t.h"
#include "_list-t.h"
#include "_route-t.h"
#include "_splice-t.h"

#include <pthread.h>

struct flb_backend_store;
struct flb_counters_store;
struct flb_drains;
struct flb_l7;
struct flb_queue;

struct flb_engine_options {
    uint32_t workers;
    uint32_t maxconn;          /* all listeners together */
    long pipe_max;             /* splice pipes alive at most; 0: no splice */
    int pipe_size;
    uint32_t buffer_size;
    uint64_t splice_threshold;
    uint32_t pool_max;         /* HTTP mode: idle backend connections kept, all workers together */
    uint32_t pool_idle_ms;     /* HTTP mode: an idle backend connection unused this long is closed */
    uint32_t fd_max;           /* descriptors the data plane may hold (sockets, 2 per pipe); 0: no cap */
};

struct flb_engine;

struct flb_worker {
    struct flb_engine *e;
    uint32_t id;
    pthread_t thread;
    uint8_t started;
    int epfd;
    int evfd;                  /* eventfd: the control thread's (and other workers') wake-up */
    struct flb_evsrc evsrc;    /* FLB_EV_WAKE */
    uint64_t now;              /* ms, read once per loop turn */
    struct flb_wheel wheel;
    struct flb_table *table;   /* one reference: the table this worker routes with */
    uint32_t adopt_round;
    uint32_t npaused;          /* listeners held out of epoll by maxconn, fd_max or out of fds */
    uint64_t resume_at;        /* ms: held listeners are not looked at again before this */
    uint64_t seen;             /* the last control request it has carried out */
    uint64_t close_seen;       /* the last close_all it has carried out */
    struct flb_list conns;     /* open connections (struct flb_conn.link) */
    struct flb_list dead;      /* closed in this batch of events, freed after it */
    struct flb_pool pool;
    const struct flb_drains *drains; /* drain deadlines adopted from the engine (see _drain.h) */
    uint32_t drain_next;       /* drains before this one have been carried out */
    uint8_t drain_all;         /* it has seen stop_accepting: its connections drain (_drain.h) */
    struct flb_list queues;    /* its queues that hold items (struct flb_queue.wlink, _queue.h) */
};

struct flb_engine {
    struct flb_engine_options opt;
    struct flb_worker *w;      /* [opt.workers] */
    _Atomic(struct flb_table *) current; /* the published table; the engine holds one reference */
    pthread_mutex_t lock;      /* adoption and control requests, never on the per-connection path */
    pthread_cond_t done;       /* a worker has carried out a control request */
    _Atomic uint64_t request;  /* bumped by every control request (publish, stop_accepting, ...) */
    _Atomic uint64_t close_req; /* bumped by close_all */
    _Atomic int accepting;     /* cleared by stop_accepting, for good */
    _Atomic int stopping;
    _Atomic int paused;        /* listeners held out of epoll (see npaused), all workers together */
    _Atomic uint64_t generation;
    _Atomic uint64_t swaps;
    _Atomic int64_t active;    /* connections open now */
    _Atomic uint64_t total;    /* connections accepted */
    /* Times a worker held a listener out of epoll, its clients left in the backlog: */
    _Atomic uint64_t held_maxconn;   /* at a maxconn (global, listener or service) */
    _Atomic uint64_t held_fds;       /* at fd_max, or after accept failed EMFILE/ENFILE */
    _Atomic uint64_t accept_emfile;  /* accepts that failed EMFILE/ENFILE: the process or the system is out of fds */
    _Atomic long pipes;        /* splice pipes alive */
    uint8_t running;           /* workers started and not yet joined */
    struct flb_backend_store *backends;
    struct flb_counters_store *counters;
    uint64_t swept;            /* flb_route_freed() at the last sweep: none is needed until it moves */
    struct flb_drains *drains; /* owned; replaced under <lock> by flb_engine_set_drains */
    struct flb_l7 *l7;         /* HTTP mode's engine and worker state (_l7.h) */
};

#endif
