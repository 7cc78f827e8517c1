/* _xprt-t.h: one side of a connection as the code above it sees it: a transport (plain socket or
 * TLS) behind a small table of operations, so that the tcp pump and the HTTP state machine read
 * and write the same way whatever carries the bytes. */
#ifndef FLB_XPRT_T_H
#define FLB_XPRT_T_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct flb_xprt;

/* Every operation follows _api.h: bytes (>= 0; recv's 0 is the end of the stream), FLB_AGAIN when
 * it would block (the side's <wait_in>/<wait_out> then say which readiness it waits for besides the
 * obvious one), FLB_ERR with errno. */
struct flb_xprt_ops {
    ssize_t (*recv)(struct flb_xprt *x, void *buf, size_t len);
    /* <more>: more bytes follow at once (a plain socket holds back a partial segment) */
    ssize_t (*sendv)(struct flb_xprt *x, const struct iovec *iov, int iovcnt, int more);
    void (*shutw)(struct flb_xprt *x);   /* no more bytes this way (TLS: close_notify, then the FIN) */
    void (*close)(struct flb_xprt *x);   /* frees the transport's state; the socket is the owner's */
    /* Whether a request for host <name> (<len> bytes, a port allowed) may come over this side:
     * the name its TLS certificate covers (HTTP's 421 otherwise). */
    int (*authority)(const struct flb_xprt *x, const char *name, size_t len);
    void (*timeout)(struct flb_xprt *x); /* the owner gives up on it before it was ready (counted) */
    /* Drives the side to ready (a TLS handshake) without reading application bytes: FLB_OK once
     * ready, FLB_AGAIN (with the wait flags) while under way, FLB_ERR (counted) when it failed. */
    int (*handshake)(struct flb_xprt *x);
    /* Whether bytes already taken off the socket wait inside the transport (a TLS record read in
     * part): epoll will not report them, so a reader that stops early must come back on its own. */
    int (*buffered)(const struct flb_xprt *x);
    uint8_t splice;                      /* bytes may go around it with splice(2) */
    uint8_t secure;                      /* the bytes are encrypted on the wire */
};

struct flb_xprt {
    const struct flb_xprt_ops *ops;
    int fd;
    uint8_t ready;       /* carries application bytes (a TLS handshake is over) */
    uint8_t wait_out;    /* the last call needs the socket writable to go on (a read blocked on a write) */
    uint8_t wait_in;     /* the last call needs the socket readable to go on (a write blocked on a read) */
    void *ctx;           /* the transport's own state (TLS: its SSL), NULL for a plain socket */
    void *counters;      /* the transport's counters (TLS: its listener's), may be NULL */
};

#endif
