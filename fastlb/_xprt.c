/* _xprt.c: the plain transport, the socket's own recv and sendmsg, and the choice of a side's transport
 * at accept (see _xprt.h). */
#define _GNU_SOURCE
#include "_api.h"

#include "_xprt.h"

#include "_tls.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

static ssize_t plain_recv(struct flb_xprt *x, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(x->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? FLB_AGAIN : FLB_ERR;
    }
}

static ssize_t plain_sendv(struct flb_xprt *x, const struct iovec *iov, int iovcnt, int more)
{
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};

    if (m.msg_iovlen > IOV_MAX)
        m.msg_iovlen = IOV_MAX;
    for (;;) {
        ssize_t n = sendmsg(x->fd, &m, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? FLB_AGAIN : FLB_ERR;
    }
}

static void plain_shutw(struct flb_xprt *x)
{
    shutdown(x->fd, SHUT_WR);
}

static void plain_close(struct flb_xprt *x)
{
    (void)x;
}

static int plain_authority(const struct flb_xprt *x, const char *name, size_t len)
{
    (void)x;
    (void)name;
    (void)len;
    return 1;
}

static void plain_timeout(struct flb_xprt *x)
{
    (void)x;
}

static int plain_handshake(struct flb_xprt *x)
{
    (void)x;
    return FLB_OK;
}

static int plain_buffered(const struct flb_xprt *x)
{
    (void)x;
    return 0;
}

const struct flb_xprt_ops flb_xprt_plain_ops = {
    .recv = plain_recv,
    .sendv = plain_sendv,
    .shutw = plain_shutw,
    .close = plain_close,
    .authority = plain_authority,
    .timeout = plain_timeout,
    .handshake = plain_handshake,
    .buffered = plain_buffered,
    .splice = 1,
    .secure = 0,
};

int flb_xprt_accept(struct flb_xprt *x, int fd, void *tls, uint32_t worker, void *counters)
{
    flb_xprt_plain(x, fd);
    if (tls == NULL)
        return FLB_OK;
    return flb_tls_accept(x, tls, worker, counters);
}
