/* _route-t.h: the compiled routing table. Built whole by the control thread, immutable once
 * published, reference-counted: the publisher's "current" reference, one per worker that adopted
 * it, one per connection routed with it. The last put frees it. */
#ifndef FLB_ROUTE_T_H
#define FLB_ROUTE_T_H

#include "_balance-t.h"
#include "_cidr.h"
#include "_listener-t.h"

struct flb_l7_table;

enum flb_mode {
    FLB_MODE_TCP = 0,
    FLB_MODE_HTTP = 1, /* forwarded at L4 until the HTTP engine is wired in */
};

/* A service's counters, keyed by the service's name so that they survive table swaps. Tables hold
 * references; records are found, created and swept by the control thread (like backends). */
struct flb_queue;

struct flb_service_counters {
    char *name; /* owned */
    _Atomic int64_t active;
    _Atomic uint64_t total;
    _Atomic uint64_t bytes_in;  /* from the backends (same orientation as a backend's counters) */
    _Atomic uint64_t bytes_out; /* to the backends */
    _Atomic uint64_t connect_errors;
    _Atomic uint64_t retries;
    _Atomic uint64_t timeouts;
    _Atomic uint64_t no_backend; /* clients closed unserved: no backend available, or retries spent */
    _Atomic uint64_t denied;     /* clients closed at accept: not in the service's allow-list */
    /* HTTP mode */
    _Atomic uint64_t requests;   /* requests routed to the service */
    _Atomic uint64_t status[6];  /* responses sent to clients by class: [1] 1xx .. [5] 5xx, [0] other */
    _Atomic uint64_t own;        /* of those, answered by fastlb itself (401, 403, 301, 502, 503, 504) */
    /* waiting for a slot (_queue.h) */
    _Atomic int64_t queued;          /* connections or requests waiting now, every worker's */
    _Atomic int64_t queued_max;      /* the most that waited at once */
    _Atomic uint64_t queue_total;    /* those that waited (and then went on, timed out or left) */
    _Atomic uint64_t queue_timeouts; /* of those, the ones that waited the whole queue timeout */
    _Atomic uint64_t queue_wait_ms;  /* their waits, added up */
    _Atomic uint64_t queue_seq;      /* tickets handed out: the order of waiting, across workers */
    _Atomic(struct flb_queue *) queues; /* [workers], allocated by the first worker that queues */
    _Atomic int refs;
    struct flb_service_counters *next;
};

/* How many tables hold a compiled piece: a publish copies the services (and the HTTP routing) that
 * did not change from the table it replaces instead of compiling them again, so successive tables
 * share their arrays, and the last table that holds them frees them. */
struct flb_share {
    _Atomic int refs;
};

struct flb_service {
    char *name;                      /* owned (with everything below: see share) */
    struct flb_share *share;         /* the tables holding this compiled service; NULL: this one alone */
    enum flb_mode mode;
    struct flb_service_counters *c;  /* one reference */
    uint32_t nbe;
    struct flb_backend **be;         /* sorted by identity; one reference each */
    struct sockaddr_storage *addr;   /* [nbe] the address each backend had when compiled: workers
                                        connect to this immutable copy, never to be->addr */
    socklen_t *addrlen;              /* [nbe] */
    uint32_t *fall;                  /* [nbe] passive health: consecutive connect failures that mark
                                        the backend down (its active check's fall); 0: never, as
                                        nothing but an active check would bring it back */
    struct flb_balancer bal;
    uint8_t bal_built;
    uint32_t connect_ms;             /* 0: no limit */
    uint32_t idle_ms;                /* established idle limit (tunnel, else client/server); 0: none */
    uint32_t retries;                /* connect attempts on other backends after a failure */
    uint32_t maxconn;                /* 0: unlimited */
    uint32_t *bemax;                 /* [nbe] each backend's maxconn (0: none); NULL when none has one */
    uint32_t queue_ms;               /* longest wait for a slot (backend or service maxconn) */
    uint32_t drain_ms;               /* a draining backend's connections end after this; 0: never */
    uint32_t nallow;                 /* tcp mode: clients must come from one of these (_cidr.h); */
    struct flb_cidr *allow;          /* [nallow], owned; 0: everyone */
};

/* The service of a listener that routes each HTTP request on its own (vhost, appid). */
#define FLB_ROUTE_NO_SERVICE UINT32_MAX

/* A listener of the table: where its connections go. */
struct flb_route_listener {
    struct flb_listener *l; /* one reference */
    uint32_t service;       /* index into the table's services, or FLB_ROUTE_NO_SERVICE */
    uint32_t maxconn;       /* 0: unlimited */
};

struct flb_table {
    _Atomic int refs;
    uint64_t generation;
    uint32_t maxconn;       /* all listeners together; 0: unlimited */
    uint32_t nsvc;
    struct flb_service *svc;
    uint32_t nlst;
    struct flb_route_listener *lst;
    struct flb_l7_table *l7; /* HTTP mode: options, listener kinds, vhost routes (_l7-t.h); owned, may be NULL */
};

#endif
