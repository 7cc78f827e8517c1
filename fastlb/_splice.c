/* _splice.c: copy and splice pumps, and the pool of pipes and buffers (see _splice.h).
 *
 * Pipes are taken only while bytes are in flight and given back as soon as they are empty, so an
 * idle connection holds none: the kernel's per-user pipe accounting (fs.pipe-user-pages-soft)
 * silently shrinks new pipes once too many pages are held, and a proxy that kept two pipes per
 * connection would hit it at a few thousand connections. The engine caps the pipes alive; when
 * none is free a bulk flow simply keeps copying.
 */
#define _GNU_SOURCE
#include "_api.h"

#include "_splice.h"

#include "_xprt.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* splice(2) moves at most this much per call; a pipe usually holds far less. */
#define SPLICE_CHUNK (1u << 30)

int flb_pool_init(struct flb_pool *p, _Atomic long *alive, long max, uint32_t nworkers, int pipe_size,
                  uint32_t buf_size, uint64_t splice_threshold)
{
    /* Each worker keeps at most its share of the cap, so that the workers together cannot hoard
     * every pipe while another worker has none. */
    long share = nworkers ? max / (long)nworkers : max;

    p->cap = share < 1 ? 1 : (share > 64 ? 64 : (uint32_t)share);
    p->bufcap = 64;
    p->pipes = malloc(2 * p->cap * sizeof(*p->pipes));
    p->bufs = malloc(p->bufcap * sizeof(*p->bufs));
    if (p->pipes == NULL || p->bufs == NULL) {
        free(p->pipes);
        free(p->bufs);
        errno = ENOMEM;
        return FLB_ERR;
    }
    p->npipes = 0;
    p->nbufs = 0;
    p->alive = alive;
    p->max = max;
    p->pipe_size = pipe_size;
    p->buf_size = buf_size;
    p->splice_threshold = splice_threshold;
    return FLB_OK;
}

static void pipe_close(struct flb_pool *p, int fd[2])
{
    close(fd[0]);
    close(fd[1]);
    fd[0] = fd[1] = -1;
    atomic_fetch_sub_explicit(p->alive, 1, memory_order_relaxed);
    FLB_LIVE_DEC(pipes);
}

void flb_pool_destroy(struct flb_pool *p)
{
    while (p->npipes > 0) {
        p->npipes--;
        pipe_close(p, &p->pipes[2 * p->npipes]);
    }
    while (p->nbufs > 0)
        free(p->bufs[--p->nbufs]);
    free(p->pipes);
    free(p->bufs);
    p->pipes = NULL;
    p->bufs = NULL;
}

/* A pipe from the pool, or a new one within the cap. FLB_ERR when none may be had. */
static int pipe_take(struct flb_pool *p, int fd[2])
{
    if (p->npipes > 0) {
        p->npipes--;
        fd[0] = p->pipes[2 * p->npipes];
        fd[1] = p->pipes[2 * p->npipes + 1];
        return FLB_OK;
    }
    if (atomic_fetch_add_explicit(p->alive, 1, memory_order_relaxed) >= p->max) {
        atomic_fetch_sub_explicit(p->alive, 1, memory_order_relaxed);
        return FLB_ERR;
    }
    if (pipe2(fd, O_NONBLOCK | O_CLOEXEC) == -1) {
        atomic_fetch_sub_explicit(p->alive, 1, memory_order_relaxed);
        fd[0] = fd[1] = -1;
        return FLB_ERR;
    }
    /* Refused above fs.pipe-max-size or past the per-user soft limit: the default size still works. */
    if (p->pipe_size > 0)
        fcntl(fd[0], F_SETPIPE_SZ, p->pipe_size);
    FLB_LIVE_INC(pipes);
    return FLB_OK;
}

/* Back to the pool if it is empty and there is room; closed otherwise. */
static void pipe_give(struct flb_pool *p, int fd[2], uint32_t inpipe)
{
    if (inpipe == 0 && p->npipes < p->cap) {
        p->pipes[2 * p->npipes] = fd[0];
        p->pipes[2 * p->npipes + 1] = fd[1];
        p->npipes++;
        fd[0] = fd[1] = -1;
        return;
    }
    pipe_close(p, fd);
}

static char *buf_take(struct flb_pool *p)
{
    if (p->nbufs > 0)
        return p->bufs[--p->nbufs];
    return malloc(p->buf_size);
}

static void buf_give(struct flb_pool *p, char *buf)
{
    if (p->nbufs < p->bufcap)
        p->bufs[p->nbufs++] = buf;
    else
        free(buf);
}

static ssize_t fill_copy(struct flb_pump *u, struct flb_pool *p, struct flb_xprt *src)
{
    ssize_t n;

    if (u->buf == NULL && (u->buf = buf_take(p)) == NULL)
        return FLB_ERR;
    n = flb_xprt_recv(src, u->buf, p->buf_size);
    if (n > 0) {
        u->off = 0;
        u->len = (uint32_t)n;
        u->drained = (size_t)n < p->buf_size;
        return n;
    }
    /* Nothing was read: the buffer goes straight back, an idle connection holds none. */
    buf_give(p, u->buf);
    u->buf = NULL;
    return n;
}

/* Reads into an empty pipe. Why only into an empty one: splice(2) answers EAGAIN both when the
 * socket has nothing to give and when the pipe has no room left, and it cannot say which. A reader
 * that tops up a pipe already holding bytes must guess; the usual guess is "the pipe is full" (stop
 * reading, write, and read again afterwards), which is right under load and costs one useless trip
 * through the poller when it was wrong. By reading only once <inpipe> has dropped to zero, every
 * EAGAIN here has one meaning: the socket is empty. The price is one fill per pipeful, which with a
 * pipe of a few hundred KiB is no price at all. */
static ssize_t fill_splice(struct flb_pump *u, struct flb_pool *p, struct flb_xprt *src)
{
    ssize_t n;

    if (u->pipe[0] == -1 && pipe_take(p, u->pipe) != FLB_OK)
        return fill_copy(u, p, src);
    n = splice(src->fd, NULL, u->pipe[1], NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
        /* A short splice proves nothing (the pipe's slots run out before its bytes do), so a
         * spliced flow reads on until EAGAIN. */
        u->drained = 0;
        u->inpipe = (uint32_t)n;
        /* a read that stopped at what the pipe holds has likely left more behind it */
        u->more = (uint64_t)n >= (uint64_t)(p->pipe_size > 0 ? p->pipe_size : 65536);
        return n;
    }
    pipe_give(p, u->pipe, 0);
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return FLB_AGAIN;
    if (errno == EINVAL || errno == ENOSYS || errno == EBADF) {
        u->nosplice = 1; /* sockets that cannot splice: copy from now on */
        return fill_copy(u, p, src);
    }
    return FLB_ERR;
}

ssize_t flb_pump_fill(struct flb_pump *u, struct flb_pool *p, struct flb_xprt *src, int splice_ok)
{
    ssize_t n;

    if (u->bulk && !u->nosplice && p->max > 0 && splice_ok)
        n = fill_splice(u, p, src);
    else
        n = fill_copy(u, p, src);
    if (n > 0) {
        u->streak += (uint64_t)n;
        if (u->streak >= p->splice_threshold)
            u->bulk = 1;
        if (u->drained) {
            u->streak = 0; /* the source ran dry: the next bytes start a new streak */
            /* Its FIN had come before this read, and TCP queues every byte ahead of the FIN it
             * follows: a read that emptied the queue has reached the end of the stream (of a
             * plain socket: a TLS side's short read may leave records in the socket). */
            if (u->peer_fin && src->ops->splice)
                u->eof = 1;
        }
    } else if (n == FLB_AGAIN) {
        u->streak = 0;
    } else if (n == 0) {
        u->eof = 1;
    }
    return n;
}

int flb_pump_flush(struct flb_pump *u, struct flb_pool *p, struct flb_xprt *dst, size_t *moved)
{
    /* With the source's FIN in, the FIN follows these bytes at once (shutdown or close): flagged
     * "more", they wait for it and leave in one segment with it instead of two. */
    while (u->inpipe > 0) {
        unsigned int flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (u->more || u->eof ? SPLICE_F_MORE : 0);
        ssize_t n = splice(u->pipe[0], NULL, dst->fd, NULL, u->inpipe, flags);
        if (n == -1)
            return errno == EAGAIN || errno == EWOULDBLOCK ? FLB_AGAIN : FLB_ERR;
        if (n == 0) {
            errno = EIO; /* the pipe holds less than we counted: never loop on it */
            return FLB_ERR;
        }
        u->inpipe -= (uint32_t)n;
        *moved += (size_t)n;
        u->corked = u->more; /* a write without the flag pushes out what earlier ones corked */
    }
    if (u->pipe[0] != -1)
        pipe_give(p, u->pipe, 0);
    while (u->off < u->len) {
        struct iovec v = {u->buf + u->off, u->len - u->off};
        ssize_t n = flb_xprt_sendv(dst, &v, 1, u->eof);
        if (n < 0)
            return (int)n;
        u->off += (uint32_t)n;
        *moved += (size_t)n;
    }
    if (u->buf != NULL) {
        buf_give(p, u->buf);
        u->buf = NULL;
        u->off = u->len = 0;
    }
    return FLB_OK;
}

void flb_pump_uncork(struct flb_pump *u, struct flb_xprt *dst)
{
    int one = 1;

    if (u->corked) {
        /* Setting TCP_NODELAY (even when it is set) pushes the pending partial segment. */
        setsockopt(dst->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        u->corked = 0;
    }
}

void flb_pump_release(struct flb_pump *u, struct flb_pool *p)
{
    if (u->pipe[0] != -1)
        pipe_give(p, u->pipe, u->inpipe);
    u->inpipe = 0;
    if (u->buf != NULL)
        buf_give(p, u->buf);
    u->buf = NULL;
    u->off = u->len = 0;
}

int flb_pump_run(struct flb_pump *u, struct flb_pool *p, struct flb_xprt *src, struct flb_xprt *dst, int rounds,
                 size_t *moved)
{
    int drained = 0; /* a short read in this call: write it, then wait for epoll */
    int splice_ok = src->ops->splice && dst->ops->splice; /* a TLS side copies through the buffer */

    for (;;) {
        if (flb_pump_pending(u) > 0) {
            int r = flb_pump_flush(u, p, dst, moved);
            if (r == FLB_AGAIN)
                return FLB_OK;
            if (r == FLB_ERR)
                return FLB_ERR;
        }
        if (u->eof) {
            if (!u->shut) {
                /* Everything read has been written: pass the FIN on. The other direction carries
                 * on until its own EOF. A peer already gone shows up there as an error. A secure
                 * side says so first (TLS: close_notify), even right before its close. */
                if (!u->fin_by_close || dst->ops->secure)
                    flb_xprt_shutw(dst);
                u->shut = 1;
            }
            return FLB_OK;
        }
        /* Bytes a transport holds past what it gave (a TLS record read in part) are not in the
         * socket, and epoll would never bring them back: those are read on. */
        if ((rounds-- <= 0 || drained) && !flb_xprt_buffered(src))
            return FLB_OK;
        ssize_t n = flb_pump_fill(u, p, src, splice_ok);
        if (n == FLB_AGAIN) {
            flb_pump_uncork(u, dst);
            return FLB_OK;
        }
        if (n == FLB_ERR)
            return FLB_ERR;
        drained = n > 0 && u->drained;
    }
}
