/* _l7-t.h: what HTTP mode adds to a compiled table (per-service HTTP options, listener kinds, the
 * vhost/app-id routes), to the engine (the access log, the cookie key) and to each worker (its HTTP connections, idle backend connections, timers, caches). */
#ifndef FLB_L7_T_H
#define FLB_L7_T_H

#include "_evloop-t.h"
#include "_http1-t.h"
#include "_list-t.h"
#include "_vhost-t.h"

#include <pthread.h>
#include <sys/socket.h>

struct flb_service_counters;
struct flb_h1front;
struct flb_tls;

enum flb_l7_kind {
    FLB_L7_TCP = 0,     /* a "service" listener of a tcp service: not HTTP */
    FLB_L7_SERVICE = 1, /* a "service" listener of an http service: every request to that service */
    FLB_L7_VHOST = 2,   /* by Host and path */
    FLB_L7_APPID = 3,   /* by X-Marathon-App-Id */
};

/* Per-service HTTP counters, keyed by the service's name so that they survive table swaps. */

struct flb_l7_cidr {
    int family;                    /* AF_INET, AF_INET6 */
    uint32_t bits;
    uint8_t addr[16];
};

struct flb_l7_user {
    char *name;                    /* owned */
    char *hash;                    /* crypt(3) hash, or htpasswd's $apr1$ or {SHA}; owned */
};

/* An owned string and its length. */
struct flb_l7_str {
    char *s;
    uint32_t len;
};

/* Sticky cookie value of a backend: a keyed hash of its identity, in hex. */
#define FLB_L7_COOKIE_HEX 16

/* The HTTP side of table service i. */
struct flb_l7_service {
    uint8_t http;                  /* the service is in http mode */
    uint8_t sticky, hsts, redirect_https, forwarded;
    char *cookie;                  /* sticky cookie name, owned */
    uint32_t cookie_len;
    char (*cookie_val)[FLB_L7_COOKIE_HEX + 1]; /* [nbe] each backend's cookie value */
    char *realm;                   /* basic auth realm (owned); NULL: no auth */
    uint8_t auth_remove;           /* the Authorization fields stop at fastlb (Traefik's removeHeader) */
    uint32_t nusers;
    struct flb_l7_user *users;
    uint64_t auth_epoch;           /* unique per compiled service: keys the per-worker auth cache */
    uint32_t ncidrs;               /* 0: every client */
    uint8_t allow_xff;             /* an X-Forwarded-For address in the list admits too (Traefik's useXForwardedFor) */
    struct flb_l7_cidr *cidrs;
    uint32_t request_ms, keepalive_ms, server_ms, client_ms, tunnel_ms, connect_ms;
    struct flb_service_counters *c; /* the service's (its table holds the reference) */
    /* Rewrites (marathon-lb's HTTP_BACKEND_PROXYPASS_PATH, REVPROXY_PATH, REDIR). Each NULL when
     * off; the compile has checked that each is made of visible ASCII only (no space, no control). */
    struct flb_l7_str strip;       /* path prefix taken off the request target ("/api": no trailing '/') */
    struct flb_l7_str host_line;   /* "Host: <name>\r\n": the Host the backends get */
    struct flb_l7_str loc_prefix;  /* put before the path of a Location the backends answer with */
    struct flb_l7_str redir;       /* where a request for "/" is redirected */
    uint16_t redir_code;           /* 301, 302, 303, 307, 308 */
    uint32_t nhosts;               /* the names of Location URLs rewritten: the service's own host names */
    struct flb_l7_str *hosts;      /* (lower case, no port), then the set Host's; owned */
    uint32_t nvhosts;              /* hosts[0 .. nvhosts): the service's own, whose "/" is redirected */
    struct flb_h1front *front;     /* header fields set, STS, regex redirect (_h1front.h); owned, NULL: none */
};

/* The HTTP side of table listener i. */
struct flb_l7_listener {
    uint8_t kind;                  /* enum flb_l7_kind */
    uint16_t port;                 /* X-Forwarded-Port */
    uint32_t request_ms;           /* request head timeout (slowloris), 0: none */
    uint32_t keepalive_ms;         /* idle between requests */
    struct flb_tls *tls;           /* its connections are TLS, with these certificates (one reference); NULL: plain */
    uint32_t handshake_ms;         /* TLS: a handshake not over in this long is dropped */
    uint8_t sni;                   /* the ClientHello is read first: passthrough vhosts (_pass.h) */
};

struct flb_l7_table {
    uint32_t nsvc, nlst;
    struct flb_l7_service *svc;    /* [nsvc]: each shared as its table service is (flb_table_reuse) */
    struct flb_l7_listener *lst;   /* [nlst] */
    uint16_t https_port;           /* the https listener's port (where redirect_to_https sends), 0: none */
    struct flb_vhost vhost;
    struct flb_vhost sni;          /* passthrough vhosts: server name to tcp service (no paths) */
    struct flb_share *rshare;      /* the tables holding lst, vhost and sni (flb_l7_table_reuse_routes) */
};

/* A timer of the L7 wheel, tagged with what owns it. */
enum flb_l7_timer_kind {
    FLB_L7_T_CONN = 1,             /* struct flb_h1conn */
    FLB_L7_T_IDLE = 2,             /* struct flb_h1srv, pooled */
    FLB_L7_T_PASS = 3,             /* struct flb_pass: its ClientHello is late */
};

struct flb_l7_timer {
    struct flb_timer t;
    uint8_t kind;
};

struct flb_h1conn;
struct flb_h1req;
struct flb_h1srv;
struct flb_pass;

/* The per-worker cache of verified Authorization values (so crypt(3) runs once per credential). */
#define FLB_L7_AUTH_CACHE 256

/* Backend connections kept idle for the next request, in all (every worker's together), and how long
 * one stays unused before it is closed: the defaults of [engine] pool_max and pool_idle. */
#define FLB_L7_POOL_MAX 10000
#define FLB_L7_POOL_IDLE_MS 5000

/* Connection buffers (FLB_H1_BUF) a worker keeps for reuse: a connection holds its buffers only
 * while a request is under way, so an idle keep-alive connection costs little. */
#define FLB_L7_BUF_CACHE 64
/* Per-request records (struct flb_h1req) a worker keeps for reuse, for the same reason. */
#define FLB_L7_REQ_CACHE 64

/* Access-log buffer of each worker; a line that does not fit once the buffer is flushed is dropped. */
#define FLB_L7_LOG_BUF 65536

struct flb_l7;

struct flb_l7_worker {
    struct flb_l7 *l7;
    uint32_t id;                   /* the worker's index */
    struct flb_wheel wheel;
    struct flb_list conns, dead;   /* struct flb_h1conn.link */
    struct flb_list pass;          /* https connections whose ClientHello is being read (struct flb_pass.link) */
    struct flb_list ready;         /* stopped by the round limit with work in hand: run after the batch */
    struct flb_list pool;          /* every pooled connection (struct flb_h1srv.lru), least recently pooled first */
    uint32_t npool;
    struct flb_list srv_dead;      /* backend connections closed in this batch of events, freed after it */
    struct flb_http1_header hdr[FLB_HTTP1_MAX_HEADERS]; /* scratch: the head being parsed */
    char redirect[FLB_HTTP1_HEAD_MAX]; /* scratch: a regex redirect's new URL, until it is answered */
    struct {
        uint64_t key, epoch;
    } auth[FLB_L7_AUTH_CACHE];
    void *crypt;                   /* struct crypt_data, allocated on first use */
    char *bufs[FLB_L7_BUF_CACHE];  /* free connection buffers */
    uint32_t nbufs;
    struct flb_h1req *reqs[FLB_L7_REQ_CACHE]; /* free per-request records */
    uint32_t nreqs;
    char *log;                     /* FLB_L7_LOG_BUF, allocated when the log is on */
    uint32_t loglen;
};

struct flb_l7 {
    uint32_t nworkers;
    uint32_t pool_max;             /* idle backend connections per worker, at most */
    uint32_t pool_idle_ms;         /* an idle backend connection unused this long is closed */
    struct flb_l7_worker *w;       /* [nworkers] */
    int log_fd;                    /* -1: no access log */
    _Atomic uint64_t log_lines, log_drops;
    uint64_t cookie_key;           /* keys the sticky cookie values */
    uint64_t auth_key;             /* keys the auth cache */
    _Atomic uint64_t epochs;
};

#endif
