/* _xprt.h: the transport of one side of a connection (see _xprt-t.h), and the plain one. */
#ifndef FLB_XPRT_H
#define FLB_XPRT_H

#include "_api.h"
#include "_xprt-t.h"

#include <sys/epoll.h>

extern const struct flb_xprt_ops flb_xprt_plain_ops;

/* <fd> as a plain socket: ready at once. */
static inline void flb_xprt_plain(struct flb_xprt *x, int fd)
{
    x->ops = &flb_xprt_plain_ops;
    x->fd = fd;
    x->ready = 1;
    x->wait_out = x->wait_in = 0;
    x->ctx = NULL;
    x->counters = NULL;
}

/* An accepted client socket on a listener whose connections are TLS when <tls> (struct flb_tls, see
 * _tls.h) is set, plain otherwise. <worker>: the accepting worker (its own TLS contexts); <counters>:
 * the listener's TLS counters. FLB_OK, or FLB_ERR (ENOMEM): the owner closes <fd>. */
int flb_xprt_accept(struct flb_xprt *x, int fd, void *tls, uint32_t worker, void *counters);

static inline ssize_t flb_xprt_recv(struct flb_xprt *x, void *buf, size_t len)
{
    return x->ops->recv(x, buf, len);
}

static inline ssize_t flb_xprt_sendv(struct flb_xprt *x, const struct iovec *iov, int iovcnt, int more)
{
    return x->ops->sendv(x, iov, iovcnt, more);
}

/* See flb_xprt_ops.handshake: FLB_OK at once for a side that is ready. */
static inline int flb_xprt_handshake(struct flb_xprt *x)
{
    return x->ready ? FLB_OK : x->ops->handshake(x);
}

static inline int flb_xprt_buffered(const struct flb_xprt *x)
{
    return x->ops->buffered(x);
}

static inline void flb_xprt_shutw(struct flb_xprt *x)
{
    x->ops->shutw(x);
}

static inline void flb_xprt_close(struct flb_xprt *x)
{
    x->ops->close(x);
}

/* The epoll interest the side needs for what its owner <want>s (EPOLLIN, EPOLLOUT): a TLS read
 * that waits to write needs EPOLLOUT, a TLS write that waits to read needs EPOLLIN. */
static inline uint32_t flb_xprt_interest(const struct flb_xprt *x, uint32_t want)
{
    if (x->wait_out && (want & EPOLLIN))
        want |= EPOLLOUT;
    if (x->wait_in && (want & EPOLLOUT))
        want |= EPOLLIN;
    return want;
}

/* Whether epoll's <events> may let a read of this side go on. */
static inline int flb_xprt_readable(const struct flb_xprt *x, uint32_t events)
{
    return (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || (x->wait_out && (events & EPOLLOUT));
}

/* Whether epoll's <events> may let a write to this side go on. */
static inline int flb_xprt_writable(const struct flb_xprt *x, uint32_t events)
{
    return (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) || (x->wait_in && (events & EPOLLIN));
}

#endif
