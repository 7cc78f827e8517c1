/* _h1conn-t.h: one client connection in HTTP mode, owned by the worker that accepted it. */
#ifndef FLB_H1CONN_T_H
#define FLB_H1CONN_T_H

#include "_conn-t.h"
#include "_http1-t.h"
#include "_l7-t.h"
#include "_queue-t.h"
#include "_splice-t.h"
#include "_xprt-t.h"

#include <sys/uio.h>

/* Each direction's buffer: a whole head must fit (a longer request head is 431, response head 502). */
#define FLB_H1_BUF FLB_HTTP1_HEAD_MAX
/* Pieces one direction may have queued for one writev: a head cut around its edits, and body. */
#define FLB_H1_IOV 32
/* Room for the text fastlb inserts into one head (X-Forwarded-*, Set-Cookie, HSTS). */
#define FLB_H1_EDIT 320
/* Bytes of the target kept for the access log. */
#define FLB_H1_LOG_PATH 256
/* How long a refused client is read (and its bytes discarded) after fastlb's answer, so that
 * closing with unread bytes does not reset the connection before the client has read the answer. */
#define FLB_H1_LINGER_MS 1000

enum flb_h1_phase {
    FLB_H1_HEAD = 0,    /* reading a request head: the first, or the next on a kept-alive connection */
    FLB_H1_CONNECT = 1, /* routed; waiting for a slot (qi), or connecting to a backend */
    FLB_H1_FORWARD = 2, /* the request goes up and its response comes down */
    FLB_H1_REPLY = 3,   /* sending fastlb's own answer; the connection closes after it */
    FLB_H1_LINGER = 4,  /* answered and shut: discarding what the client still sends */
    FLB_H1_TUNNEL = 5,  /* after a 101: bytes both ways, unparsed */
    FLB_H1_DEAD = 6,
};

enum flb_h1_resp {
    FLB_H1_RESP_HEAD = 0,
    FLB_H1_RESP_BODY = 1,
    FLB_H1_RESP_DONE = 2,
};

/* Bytes queued for one socket: iovecs into a buffer and the edit text, sent with writev. */
struct flb_h1out {
    struct iovec iov[FLB_H1_IOV];
    uint32_t i, n;      /* iov[i .. n) are still to be sent (iov[i] may be partly sent) */
};

/* What a connection needs only while a request is under way: taken from the worker's cache when a
 * request head has been read (or fastlb answers itself), given back when the connection goes idle,
 * so that an idle keep-alive connection costs little more than its socket. */
struct flb_h1req {
    struct flb_h1out up, down;
    struct iovec head[FLB_H1_IOV]; /* the request head as first queued: replayed once on a fresh
                                      connection when a reused one turns out dead */
    uint32_t nhead;
    char edit_req[FLB_H1_EDIT], edit_resp[FLB_H1_EDIT];
    struct flb_pump tup, tdown;    /* TUNNEL */
    /* access log */
    char method[16];
    char path[FLB_H1_LOG_PATH];
    uint32_t path_len;
};

struct flb_h1conn {
    struct flb_evsrc csrc;         /* FLB_EV_H1_CLIENT */
    int cfd, sfd;                  /* -1 when closed; sfd is srv's */
    struct flb_h1srv *srv;         /* the backend connection, NULL when none */
    struct flb_xprt cx;            /* the client side's transport (plain or TLS) */
    struct flb_xprt sx;            /* the backend side's: a plain socket, set from sfd as used */
    uint32_t cwant;                /* epoll interest registered for cfd */
    /* Readiness as epoll last reported it: set by an event, cleared by a read that came back short
     * or empty. A socket is read only when it may hold bytes, so a round of work costs no recv that
     * is bound to fail (epoll is level-triggered: bytes that come later are reported again). */
    uint8_t crd, srd;
    uint8_t phase;                 /* enum flb_h1_phase */
    uint8_t resp;                  /* enum flb_h1_resp */
    uint8_t connecting;            /* sfd's connect is in progress */
    uint8_t reused;                /* sfd came from the idle pool and this request has had no byte back */
    uint8_t ckeep;                 /* the client connection may carry another request */
    uint8_t skeep;                 /* the backend connection may carry another request */
    uint8_t req_done;              /* the whole request (head and body) is queued up */
    uint8_t cl_eof;                /* the client has sent its FIN */
    uint8_t set_cookie;            /* the response carries the sticky cookie */
    uint8_t upgrade;               /* the request asks for a protocol upgrade */
    uint8_t answered;              /* a final response head has been queued to the client for this request */
    uint8_t counted;               /* the request is counted on its backend */
    uint8_t no_pool;               /* a pooled connection failed this request: open fresh ones */
    uint8_t head_started;          /* bytes of the next head have arrived (its timeout is running) */
    uint8_t handshaking;           /* the client side's TLS handshake is under way (its timeout is running) */
    uint8_t req_minor;             /* HTTP/1.<minor> of the request */
    uint8_t ntried;
    uint8_t req_framing, resp_framing; /* enum flb_http1_framing */
    uint32_t attempts;
    uint32_t touch_ms;             /* FORWARD: how far each movement pushes the timer */
    uint32_t req_flags;            /* FLB_HTTP1_REQ_* for the response parser */
    struct flb_table *table;       /* one reference: the table it was accepted with */
    struct flb_route_listener *rl; /* in <table> */
    struct flb_l7_listener *ll;    /* in <table>'s L7 side */
    struct flb_service *lsvc;      /* the listener's service (its slot), or NULL */
    struct flb_table *rtable;      /* while a request is routed: the table it was routed with; a reference
                                      of its own only when it is not <table> (rtable_ref) */
    uint8_t rtable_ref;
    uint8_t svc_slot;              /* the request counts in svc's active (listeners routing per request) */
    struct flb_service *svc;       /* the request's service, in <rtable>, or NULL */
    struct flb_l7_service *hs;     /* its HTTP side */
    int32_t be;                    /* backend index in svc, -1: none */
    int32_t sticky_be;             /* backend the request's cookie names (available), -1: none */
    uint32_t tried[FLB_CONN_TRIED];
    uint64_t key;                  /* flow key: hash of the client address */
    struct sockaddr_storage peer;
    /* client -> server: ibuf[0 .. ifwd) is the current request's, queued; [ifwd .. ilen) not yet looked at */
    char *ibuf;
    uint32_t ilen, iprev, ifwd;
    uint64_t req_left;             /* LENGTH: body bytes still to come */
    struct flb_http1_chunked req_ck;
    /* server -> client, the same way */
    char *obuf;
    uint32_t olen, oprev, ofwd;
    uint64_t resp_left;
    struct flb_http1_chunked resp_ck;
    int status;                    /* of the final response, 0 before */
    struct flb_h1req *rq;          /* while a request (or fastlb's own answer) is under way, else NULL */
    /* access log */
    uint64_t started_us;
    uint64_t resp_bytes;
    uint64_t req_bytes;            /* the request's bytes from the client: its head and body */
    uint64_t resp_at_us;           /* when its response head came from the backend, 0: none came */
    struct flb_l7_timer timer;
    struct flb_qitem qi;           /* CONNECT: waiting for a slot (the service's or a backend's maxconn) */
    struct flb_list link;          /* in the worker's connections, once closed in its dead ones */
    struct flb_list ready;         /* in the worker's ready list, or in none */
};

/* A backend connection: owned by the client connection whose request uses it, or idle in its
 * worker's pool. It is registered in epoll with itself as the event source, so that handing it from
 * the pool to a request and back costs no epoll_ctl: its owner pointer says where an event goes. */
struct flb_h1srv {
    struct flb_evsrc src;          /* FLB_EV_H1_SERVER */
    int fd;                        /* -1 once closed (the record lives until the batch ends) */
    uint32_t want;                 /* epoll interest registered */
    struct flb_h1conn *owner;      /* NULL while idle */
    /* while idle in the pool */
    struct flb_backend *be;        /* kept alive by <table> */
    struct sockaddr_storage addr;  /* where it is connected */
    socklen_t addrlen;
    struct flb_table *table;       /* one reference */
    struct flb_l7_timer timer;
    struct flb_list link;          /* its backend's idle list (this worker's), or the retired list */
    struct flb_list lru;           /* the worker's pool, least recently pooled first */
};

/* One worker's idle connections to one backend, most recently pooled first. A backend has one per
 * worker (struct flb_backend.idle), each on a cache line of its own: only its worker touches it. */
struct flb_h1idle {
    _Alignas(64) struct flb_list head; /* struct flb_h1srv.link */
};

#endif
