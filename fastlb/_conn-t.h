/* _conn-t.h: one proxied connection, owned by the worker that accepted it for its whole life. */
#ifndef FLB_CONN_T_H
#define FLB_CONN_T_H

#include "_evloop-t.h"
#include "_list-t.h"
#include "_queue-t.h"
#include "_route-t.h"
#include "_splice-t.h"
#include "_xprt-t.h"

/* Backends a connection may try (the first and its retries); further retries reuse the list. */
#define FLB_CONN_TRIED 16

enum flb_conn_state {
    FLB_CONN_CONNECTING = 0, /* waiting for the backend's connect; the client is not polled yet */
    FLB_CONN_ESTABLISHED = 1,
    FLB_CONN_DEAD = 2,       /* closed; freed after the current batch of events */
    FLB_CONN_QUEUED = 3,     /* every backend is at its maxconn: waiting for a slot, the client unread */
    FLB_CONN_HANDSHAKE = 4,  /* a TLS client's handshake is under way; no backend is picked yet */
};

struct flb_conn {
    struct flb_evsrc csrc, ssrc;   /* FLB_EV_CLIENT, FLB_EV_SERVER */
    int cfd, sfd;                  /* client and server sockets; -1 when closed */
    uint32_t cwant, swant;         /* epoll interest now registered (0: not in epoll) */
    uint8_t state;                 /* enum flb_conn_state */
    uint8_t ntried;
    uint32_t attempts;             /* connects made */
    struct flb_table *table;       /* one reference: the table it was routed with */
    struct flb_service *svc;       /* in <table> */
    struct flb_listener *lst;      /* in <table> */
    int32_t be;                    /* backend index in svc, -1: none */
    uint32_t tried[FLB_CONN_TRIED];
    uint64_t key;                  /* flow key: hash of the client address */
    struct flb_xprt cx;            /* the client's transport: plain, or TLS terminated here */
    struct flb_pump up;            /* client -> server */
    struct flb_pump down;          /* server -> client */
    struct flb_timer timer;        /* handshake, queue or connect timeout, then idle timeout */
    struct flb_qitem qi;           /* while QUEUED */
    struct flb_list link;          /* in the worker's connections, once closed in its dead ones */
};

#endif
