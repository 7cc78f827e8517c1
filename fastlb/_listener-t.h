/* _listener-t.h: a listening address. Listeners outlive tables: a table swap that keeps an address
 * keeps its record and its sockets untouched. Each worker has its own SO_REUSEPORT socket, so the
 * kernel spreads new connections over the workers with no lock and no thundering herd. */
#ifndef FLB_LISTENER_T_H
#define FLB_LISTENER_T_H

#include "_evloop-t.h"
#include "_pass-t.h"
#include "_tls-t.h"

#include <sys/socket.h>

struct flb_listener;

/* A listener as one worker sees it. Written by that worker only. */
struct flb_listener_ws {
    struct flb_evsrc src;     /* FLB_EV_LISTENER */
    uint8_t polled;           /* its socket is in the worker's epoll */
    uint8_t paused;           /* held out of epoll by maxconn until a slot frees */
    uint32_t mark;            /* the worker's adoption round that last saw it in a table */
    uint32_t route;           /* its index in the worker's current table */
    struct flb_listener *l;
};

struct flb_listener {
    char *address;            /* as the table spells it; owned */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t nworkers;
    int *fd;                  /* [nworkers]; -1 when closed. Opened and closed by the control thread */
    struct flb_listener_ws *ws; /* [nworkers] */
    _Atomic int64_t active;   /* connections accepted here and open now (maxconn) */
    _Atomic uint64_t total;   /* connections accepted */
    _Atomic uint64_t refused; /* accepted, then closed unserved (no service, no backend) */
    struct flb_tls_counters tls; /* TLS handshakes, when a table makes it a TLS listener */
    struct flb_pass_counters pass; /* TLS passthrough, when a table gives it passthrough vhosts */
    _Atomic int refs;         /* tables holding it */
    uint32_t ctl_mark;        /* control thread's scratch while a swap compares two tables */
};

#endif
