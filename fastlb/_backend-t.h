/* _backend-t.h: a backend's state that outlives any one routing table.
 *
 * A backend is known by its identity (an address "ip:port", or a Marathon task id). Every table
 * that names the same identity shares the same struct flb_backend, so active-connection counts,
 * health, administrative state, weight and counters survive a table swap. Health, state and weight
 * are atomics written by the control plane (or by a worker for passive health) and read by the
 * workers' balancing: changing them needs no table rebuild.
 */
#ifndef FLB_BACKEND_T_H
#define FLB_BACKEND_T_H

#include "_api.h"

#include <sys/socket.h>

/* Administrative state, set by the provider or by hand. */
enum flb_admin {
    FLB_ADMIN_READY = 0, /* takes new connections (if healthy) */
    FLB_ADMIN_DRAIN = 1, /* no new connections; open ones carry on */
    FLB_ADMIN_MAINT = 2, /* no new connections; open ones carry on (HAProxy's MAINT) */
};

/* Health, set by active checks (control plane) and passive checks (workers). */
enum flb_health {
    FLB_HEALTH_UP = 0,
    FLB_HEALTH_DOWN = 1,
};

struct flb_backend_counters {
    _Atomic uint64_t conn_total;     /* connections established to this backend */
    _Atomic uint64_t bytes_in;       /* bytes received from the backend */
    _Atomic uint64_t bytes_out;      /* bytes sent to the backend */
    _Atomic uint64_t connect_errors; /* connects refused, reset or timed out */
    _Atomic uint64_t retries;        /* connects that failed here and were retried elsewhere */
    _Atomic uint64_t timeouts;       /* client, server or idle timeouts (a connect timeout is a connect error) */
    _Atomic uint64_t requests;       /* HTTP requests forwarded (http mode) */
    _Atomic uint64_t reused;         /* HTTP requests sent on a pooled connection (no connect) */
    _Atomic uint64_t status[6];      /* HTTP responses to requests it took, by class: [1] 1xx .. [5] 5xx,
                                        [0] other (the service's struct flb_service_counters.status) */
    _Atomic int64_t idle;            /* HTTP mode: connections pooled now, every worker's */
};

struct flb_h1idle; /* _h1conn-t.h */

struct flb_backend {
    char *id;                   /* identity; owned */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    _Atomic uint32_t admin;     /* enum flb_admin */
    _Atomic uint32_t health;    /* enum flb_health */
    _Atomic uint32_t weight;    /* 0..256; 0 takes no new connection */
    _Atomic uint32_t fails;     /* consecutive connect failures (passive health) */
    _Atomic int64_t active;     /* connections open now, shared by every worker (leastconn) */
    /* Counters change on every transfer; on a cache line of their own, they do not slow the picks
     * that read the state above. */
    _Alignas(64) struct flb_backend_counters c;
    /* HTTP mode's pooled connections to this backend, one list per worker, allocated by the first
     * worker that pools one (_h1pool.c) and freed with the record: a pooled connection holds a
     * table, and so the record, alive. */
    _Atomic(struct flb_h1idle *) idle;
    _Atomic int refs;           /* tables and connections holding it */
    struct flb_backend *next;   /* store hash chain; owned by the store, under its lock */
};

/* True when a backend may take a new connection. */
static inline int flb_backend_available(const struct flb_backend *b)
{
    return atomic_load_explicit(&b->admin, memory_order_relaxed) == FLB_ADMIN_READY &&
           atomic_load_explicit(&b->health, memory_order_relaxed) == FLB_HEALTH_UP &&
           atomic_load_explicit(&b->weight, memory_order_relaxed) > 0;
}

#endif
