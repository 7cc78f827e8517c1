/* _h1conn.c: the HTTP connection state machine (see _h1conn.h).
 *
 * Phases and what the connection's one timer means in each:
 *   HEAD     request head: http_request_ms from its first byte (and from accept for the first
 *            request); http_keepalive_ms while no byte of the next one has come. Expiry: 408 when
 *            bytes of a head are waiting, else a silent close.
 *   CONNECT  connect_ms; expiry retries elsewhere.
 *   FORWARD  server_ms until the response head (expiry: 504), then the idle limit of the body
 *            (expiry: close).
 *   REPLY, LINGER  a short grace to send fastlb's answer and let the client read it.
 *   TUNNEL   tunnel_ms idle.
 *
 * Polling follows the engine's rule (_conn.c): try the syscall first, subscribe on EAGAIN, and
 * derive the epoll interest from the state after each round of work.
 */
#define _GNU_SOURCE
#include "_api.h"

#include "_h1conn.h"

#include "_addr.h"
#include "_alog.h"
#include "_balance.h"
#include "_drain.h"
#include "_engine.h"
#include "_evloop.h"
#include "_h1edit.h"
#include "_h1policy.h"
#include "_h1pool.h"
#include "_h1reply.h"
#include "_http1.h"
#include "_l7.h"
#include "_list.h"
#include "_queue.h"
#include "_route.h"
#include "_splice.h"
#include "_xprt.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RELAXED memory_order_relaxed
#define COUNT(field, n) atomic_fetch_add_explicit(&(field), (n), RELAXED)

/* Rounds of work one event may do on a connection before it lets others run; a connection stopped
 * there goes on the worker's ready list and carries on after the batch of events. */
#define ROUNDS 64
/* Pump reads per tunnel wakeup (as _conn.c). */
#define PUMP_ROUNDS 8
/* How long fastlb's own answer may take to go out. */
#define REPLY_MS 5000

/* The backend side's transport: a plain socket (fastlb does not speak TLS to backends yet). */
static struct flb_xprt *server_side(struct flb_h1conn *h)
{
    flb_xprt_plain(&h->sx, h->sfd);
    return &h->sx;
}

static struct flb_backend *backend(const struct flb_h1conn *h)
{
    return h->svc != NULL && h->be >= 0 ? h->svc->be[h->be] : NULL;
}

static void arm(struct flb_worker *w, struct flb_h1conn *h, uint32_t ms)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    if (ms == 0)
        flb_timer_stop(&lw->wheel, &h->timer.t);
    else
        flb_timer_arm(&lw->wheel, &h->timer.t, w->now + ms);
}

/* Activity pushes the FORWARD timer (response wait, then body idle) further. */
static void touch(struct flb_worker *w, struct flb_h1conn *h)
{
    if (h->touch_ms > 0)
        flb_timer_touch(&h->timer.t, w->now + h->touch_ms);
}

static char *buf_take(struct flb_worker *w)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    if (lw->nbufs > 0)
        return lw->bufs[--lw->nbufs];
    return malloc(FLB_H1_BUF);
}

static void buf_give(struct flb_worker *w, char **buf)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    if (*buf == NULL)
        return;
    if (lw->nbufs < FLB_L7_BUF_CACHE)
        lw->bufs[lw->nbufs++] = *buf;
    else
        free(*buf);
    *buf = NULL;
}

/* A per-request record, ready for a request: see struct flb_h1req. NULL without memory. */
static struct flb_h1req *rq_take(struct flb_worker *w)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_h1req *rq = lw->nreqs > 0 ? lw->reqs[--lw->nreqs] : malloc(sizeof(*rq));

    if (rq == NULL)
        return NULL;
    rq->up.i = rq->up.n = 0;
    rq->down.i = rq->down.n = 0;
    rq->nhead = 0;
    rq->method[0] = '\0';
    rq->path_len = 0;
    /* a pump starts from zero (flb_pump_init sets only what is not) */
    memset(&rq->tup, 0, sizeof(rq->tup));
    memset(&rq->tdown, 0, sizeof(rq->tdown));
    flb_pump_init(&rq->tup);
    flb_pump_init(&rq->tdown);
    return rq;
}

/* Gives <h>'s per-request record back (its tunnel pumps' buffers and pipes first). */
static void rq_give(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_h1req *rq = h->rq;

    if (rq == NULL)
        return;
    flb_pump_release(&rq->tup, &w->pool);
    flb_pump_release(&rq->tdown, &w->pool);
    if (lw->nreqs < FLB_L7_REQ_CACHE)
        lw->reqs[lw->nreqs++] = rq;
    else
        free(rq);
    h->rq = NULL;
}

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static size_t pending(const struct flb_h1out *o)
{
    return o->i < o->n;
}

static int queue(struct flb_h1out *o, const void *p, size_t len)
{
    if (len == 0)
        return FLB_OK;
    if (o->n == FLB_H1_IOV)
        return FLB_ERR;
    o->iov[o->n].iov_base = (void *)p;
    o->iov[o->n].iov_len = len;
    o->n++;
    return FLB_OK;
}

/* Sends what <o> holds; <last>: the connection ends right after it (a plain socket holds the last
 * segment back for the FIN that follows, one segment instead of two). FLB_OK once empty, FLB_AGAIN
 * when <x> is full, FLB_ERR with errno. */
static int out_send(struct flb_xprt *x, struct flb_h1out *o, size_t *moved, int last)
{
    while (o->i < o->n) {
        ssize_t n = flb_xprt_sendv(x, o->iov + o->i, (int)(o->n - o->i), last);
        if (n < 0)
            return (int)n;
        *moved += (size_t)n;
        while (n > 0) {
            struct iovec *v = &o->iov[o->i];
            if ((size_t)n >= v->iov_len) {
                n -= (ssize_t)v->iov_len;
                o->i++;
            } else {
                v->iov_base = (char *)v->iov_base + n;
                v->iov_len -= (size_t)n;
                n = 0;
            }
        }
        while (o->i < o->n && o->iov[o->i].iov_len == 0)
            o->i++;
    }
    o->i = o->n = 0;
    return FLB_OK;
}

/* --- interest ------------------------------------------------------------------------------------ */

static int want_client_input(const struct flb_h1conn *h)
{
    if (h->cl_eof)
        return 0;
    switch (h->phase) {
    case FLB_H1_HEAD:
        return h->ilen < FLB_H1_BUF;
    case FLB_H1_CONNECT:
    case FLB_H1_FORWARD:
        /* body bytes are read once what came before is sent (the buffer is then compacted); past the
         * request's end, bytes of the next one are read ahead while there is room */
        return h->ilen < FLB_H1_BUF && (h->req_done || !pending(&h->rq->up));
    case FLB_H1_LINGER:
        return 1;
    default:
        return 0;
    }
}

static int want_server_input(const struct flb_h1conn *h)
{
    /* more is read only once what the buffer holds has been looked at (a head parsed as far as it
     * goes, body bytes framed and sent), so that an EOF read then means that nothing more is coming */
    return h->phase == FLB_H1_FORWARD && !h->connecting && h->resp != FLB_H1_RESP_DONE && !pending(&h->rq->down) &&
           h->olen < FLB_H1_BUF && (h->resp == FLB_H1_RESP_HEAD ? h->olen == h->oprev : h->olen == h->ofwd);
}

static int update_interest(struct flb_worker *w, struct flb_h1conn *h)
{
    uint32_t cw = 0, sw = 0;

    if (h->phase == FLB_H1_TUNNEL) {
        if (!pending(&h->rq->up) && !h->rq->tup.eof && flb_pump_pending(&h->rq->tup) == 0)
            cw |= EPOLLIN;
        if (pending(&h->rq->down) || flb_pump_pending(&h->rq->tdown) > 0)
            cw |= EPOLLOUT;
        if (!pending(&h->rq->down) && !h->rq->tdown.eof && flb_pump_pending(&h->rq->tdown) == 0)
            sw |= EPOLLIN;
        if (pending(&h->rq->up) || flb_pump_pending(&h->rq->tup) > 0)
            sw |= EPOLLOUT;
    } else {
        if (want_client_input(h))
            cw |= EPOLLIN;
        if (h->rq != NULL && pending(&h->rq->down))
            cw |= EPOLLOUT;
        if (h->connecting) {
            sw = EPOLLOUT;
        } else {
            if (h->rq != NULL && pending(&h->rq->up))
                sw |= EPOLLOUT;
            if (want_server_input(h))
                sw |= EPOLLIN;
        }
    }
    /* as a pooled connection is polled: handing it over then changes nothing */
    if (sw & EPOLLIN)
        sw |= FLB_H1SRV_READ;
    cw = flb_xprt_interest(&h->cx, cw);
    if (flb_evloop_want(w->epfd, h->cfd, &h->csrc, &h->cwant, cw) != FLB_OK)
        return FLB_ERR;
    if (h->srv != NULL && flb_evloop_want(w->epfd, h->sfd, &h->srv->src, &h->srv->want, sw) != FLB_OK)
        return FLB_ERR;
    return FLB_OK;
}

/* --- the backend side ---------------------------------------------------------------------------- */

static void close_server(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_backend *b = backend(h);

    if (h->srv == NULL)
        return;
    flb_h1srv_close(w, h->srv);
    h->srv = NULL;
    h->sfd = -1;
    h->connecting = 0;
    if (b != NULL)
        flb_engine_backend_release(w, h->svc, (uint32_t)h->be);
}

/* Gives the backend connection back to the pool, or closes it. */
static void release_server(struct flb_worker *w, struct flb_h1conn *h, int reuse)
{
    struct flb_backend *b = backend(h);

    if (h->srv == NULL)
        return;
    if (!reuse || b == NULL) {
        close_server(w, h);
        return;
    }
    flb_engine_backend_release(w, h->svc, (uint32_t)h->be);
    flb_h1pool_put(w, h->rtable, b, &h->svc->addr[h->be], h->svc->addrlen[h->be], h->srv);
    h->srv = NULL;
    h->sfd = -1;
}

/* A failed connect: one connect error (refused, reset or timed out), never also a timeout. */
static void connect_failed(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_backend *b = backend(h);

    COUNT(b->c.connect_errors, 1);
    COUNT(b->fails, 1);
    COUNT(h->svc->c->connect_errors, 1);
    close_server(w, h);
}

/* The request can go: the backend connection is there. */
static void forward_start(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_backend *b = backend(h);

    h->phase = FLB_H1_FORWARD;
    if (!h->counted) {
        COUNT(b->c.requests, 1);
        h->counted = 1;
    }
    h->touch_ms = h->hs->server_ms;
    arm(w, h, h->touch_ms);
}

static void established(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_backend *b = backend(h);

    h->connecting = 0;
    COUNT(b->c.conn_total, 1);
    atomic_store_explicit(&b->fails, 0, RELAXED);
    forward_start(w, h);
}

/* Gets a connection to backend <idx>, whose slot the caller took: an idle one, or a new connect.
 * FLB_OK when it is there or in progress, FLB_AGAIN when the connect failed at once (counted; the
 * slot given back), FLB_ERR when the client must go. */
static int attempt(struct flb_worker *w, struct flb_h1conn *h, int idx)
{
    struct flb_service *s = h->svc;
    struct flb_backend *b = s->be[idx];
    struct flb_h1srv *srv;
    int one = 1, fd;

    h->be = idx;
    h->srd = 0; /* nothing is asked of it yet: it is read once epoll says so */
    if (h->ntried < FLB_CONN_TRIED)
        h->tried[h->ntried++] = (uint32_t)idx;
    if (!h->no_pool && (srv = flb_h1pool_take(w, h, b, &s->addr[idx], s->addrlen[idx])) != NULL) {
        h->srv = srv;
        h->sfd = srv->fd;
        h->reused = 1;
        COUNT(b->c.reused, 1);
        forward_start(w, h);
        return FLB_OK;
    }
    h->reused = 0;
    h->attempts++;
    fd = socket(s->addr[idx].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        flb_engine_backend_release(w, s, (uint32_t)idx);
        return FLB_ERR;
    }
    FLB_LIVE_INC(fds);
    if ((srv = flb_h1srv_new(h, fd)) == NULL) {
        close(fd);
        FLB_LIVE_DEC(fds);
        flb_engine_backend_release(w, s, (uint32_t)idx);
        return FLB_ERR;
    }
    h->srv = srv;
    h->sfd = fd;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&s->addr[idx], s->addrlen[idx]) == 0) {
        established(w, h);
        return FLB_OK;
    }
    if (errno == EINPROGRESS) {
        h->connecting = 1;
        h->phase = FLB_H1_CONNECT;
        arm(w, h, h->hs->connect_ms);
        return FLB_OK;
    }
    connect_failed(w, h);
    return FLB_AGAIN;
}

static int reply(struct flb_worker *w, struct flb_h1conn *h, int status, const struct iovec *extra, int nextra);

/* The request's sticky backend is at its maxconn: it waits for that one. */
#define FULL_STICKY (-3)

/* Picks a backend (the sticky one first) and takes a slot on it: its index, FULL_STICKY, FLB_AGAIN
 * (every one it could take is full: wait) or FLB_ERR when none is available. */
static int pick(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_service *s = h->svc;

    if (h->sticky_be >= 0 && h->ntried == 0 && flb_backend_available(s->be[h->sticky_be]))
        return flb_queue_backend_take(s, (uint32_t)h->sticky_be) == FLB_OK ? h->sticky_be : FULL_STICKY;
    return flb_queue_pick(s, h->key, w->id, h->tried, h->ntried);
}

static int dequeue(struct flb_worker *w, struct flb_qitem *q);
static void advance(struct flb_worker *w, struct flb_h1conn *h);

/* Waits in the service's queue for a slot, at most its queue timeout; the request stays parsed and
 * its client is read as in CONNECT (a client that leaves is noticed). Returns 1, or -1 once closed. */
static int wait_for_slot(struct flb_worker *w, struct flb_h1conn *h)
{
    if (flb_queue_add(w, h->svc, &h->qi, dequeue) != FLB_OK) {
        flb_h1conn_close(w, h);
        return -1;
    }
    arm(w, h, h->svc->queue_ms);
    return 1;
}

static int no_backend(struct flb_worker *w, struct flb_h1conn *h)
{
    COUNT(h->svc->c->no_backend, 1);
    h->be = -1;
    return reply(w, h, 503, NULL, 0);
}

/* Connects to backend <idx> (its slot taken), then on failure retries elsewhere up to the service's
 * retries, or waits for a slot. Returns 1, or -1 once closed. */
static int connect_from(struct flb_worker *w, struct flb_h1conn *h, int idx)
{
    struct flb_service *s = h->svc;

    for (;;) {
        int r = attempt(w, h, idx);
        if (r == FLB_OK)
            return 1;
        if (r == FLB_ERR) {
            flb_h1conn_close(w, h);
            return -1;
        }
        int failed = idx;
        if (h->attempts > s->retries)
            break;
        idx = pick(w, h);
        if (idx == FLB_AGAIN || idx == FULL_STICKY)
            return wait_for_slot(w, h);
        if (idx < 0)
            break;
        COUNT(s->be[failed]->c.retries, 1);
        COUNT(s->c->retries, 1);
    }
    return no_backend(w, h);
}

/* After the connect to <failed> failed (-1: none yet): picks a backend and connects, or waits for a
 * slot, or answers 503. Returns 1, or -1 once closed. */
static int connect_next(struct flb_worker *w, struct flb_h1conn *h, int failed)
{
    struct flb_service *s = h->svc;

    if (failed >= 0 && h->attempts > s->retries)
        return no_backend(w, h);
    int idx = pick(w, h);
    if (idx == FLB_AGAIN || idx == FULL_STICKY)
        return wait_for_slot(w, h);
    if (idx < 0)
        return no_backend(w, h);
    if (failed >= 0) {
        COUNT(s->be[failed]->c.retries, 1);
        COUNT(s->c->retries, 1);
    }
    return connect_from(w, h, idx);
}

/* The routed request goes on: with the service's own slot first behind a vhost or app-id listener
 * (a per-service listener counted the client connection at accept), then a backend's. */
static int request_go(struct flb_worker *w, struct flb_h1conn *h)
{
    h->phase = FLB_H1_CONNECT;
    if (h->lsvc == NULL && !h->svc_slot) {
        /* behind a vhost or app-id listener a service's active count (and its maxconn) is of requests
         * under way */
        if (flb_engine_service_slot_take(w->e, h->svc) != FLB_OK)
            return wait_for_slot(w, h);
        h->svc_slot = 1;
    }
    return connect_next(w, h, -1);
}

/* The queue offers a slot: see flb_qitem_ready_fn. */
static int dequeue(struct flb_worker *w, struct flb_qitem *q)
{
    struct flb_h1conn *h = container_of(q, struct flb_h1conn, qi);
    int idx;

    if (h->lsvc == NULL && !h->svc_slot) {
        if (flb_engine_service_slot_take(w->e, h->svc) != FLB_OK)
            return FLB_Q_WAIT;
        h->svc_slot = 1;
    }
    idx = pick(w, h);
    if (idx == FLB_AGAIN)
        return FLB_Q_WAIT;
    if (idx == FULL_STICKY)
        return FLB_Q_SKIP;
    flb_queue_remove(w, h->svc, &h->qi);
    flb_timer_stop(&flb_l7_worker(w)->wheel, &h->timer.t);
    if ((idx < 0 ? no_backend(w, h) : connect_from(w, h, idx)) >= 0)
        advance(w, h);
    return FLB_Q_LEFT;
}

/* The backend connection broke before the response head. A pooled connection the backend had
 * closed meanwhile is no fault of the request: one without a body is sent again on a fresh
 * connection. Otherwise the client gets 502, or is closed when its response has begun. */
static int server_failed(struct flb_worker *w, struct flb_h1conn *h)
{
    if (h->reused && h->resp == FLB_H1_RESP_HEAD && h->olen == 0 && h->req_framing == FLB_HTTP1_BODY_NONE) {
        close_server(w, h);
        h->reused = 0;
        h->no_pool = 1;
        h->rq->up.i = 0;
        h->rq->up.n = h->rq->nhead;
        memcpy(h->rq->up.iov, h->rq->head, h->rq->nhead * sizeof(h->rq->head[0]));
        h->ntried = 0;
        h->phase = FLB_H1_CONNECT;
        int idx = h->be;
        if (flb_queue_backend_take(h->svc, (uint32_t)idx) != FLB_OK)
            return connect_next(w, h, -1); /* its slot went to another request meanwhile */
        return connect_from(w, h, idx);
    }
    if (h->resp == FLB_H1_RESP_HEAD && !h->answered) {
        close_server(w, h);
        return reply(w, h, 502, NULL, 0);
    }
    flb_h1conn_close(w, h);
    return -1;
}

/* --- fastlb's own answers ------------------------------------------------------------------------ */

static void count_status(struct flb_h1conn *h, int status, int own)
{
    if (h->hs == NULL)
        return;
    int cls = status / 100;
    COUNT(h->hs->c->status[cls >= 1 && cls <= 5 ? cls : 0], 1);
    if (backend(h) != NULL) /* the request's backend: its answer, or fastlb's for it (502, 504) */
        COUNT(backend(h)->c.status[cls >= 1 && cls <= 5 ? cls : 0], 1);
    if (own)
        COUNT(h->hs->c->own, 1);
}

/* Answers the client with <status> and closes afterwards. Returns 1 (the answer goes out in the
 * REPLY phase). */
static int reply(struct flb_worker *w, struct flb_h1conn *h, int status, const struct iovec *extra, int nextra)
{
    ssize_t n;

    close_server(w, h);
    if ((h->rq == NULL && (h->rq = rq_take(w)) == NULL) || (h->obuf == NULL && (h->obuf = buf_take(w)) == NULL)) {
        flb_h1conn_close(w, h);
        return -1;
    }
    h->rq->up.i = h->rq->up.n = 0;
    h->rq->down.i = h->rq->down.n = 0;
    n = flb_h1reply(h->obuf, FLB_H1_BUF, status, extra, nextra);
    if (n < 0)
        n = flb_h1reply(h->obuf, FLB_H1_BUF, status, NULL, 0);
    h->olen = (uint32_t)n;
    h->ofwd = h->olen;
    queue(&h->rq->down, h->obuf, (size_t)n);
    h->status = status;
    h->ckeep = 0;
    h->phase = FLB_H1_REPLY;
    count_status(h, status, 1);
    if (w->e->l7->log_fd >= 0) {
        if (h->started_us == 0) {
            /* refused before its head was read whole: logged with no method or path */
            h->rq->method[0] = '\0';
            h->rq->path_len = 0;
            h->req_bytes = h->ilen;
            h->started_us = now_us();
        }
        h->resp_bytes = (uint64_t)n; /* logged as queued: the connection closes once it is sent */
        flb_alog_request(w, h);
        h->resp_bytes = 0;
    }
    h->started_us = 0;
    arm(w, h, REPLY_MS);
    return 1;
}

/* --- the request --------------------------------------------------------------------------------- */

/* Queues the request body bytes the buffer holds, as framed. Returns 1 when some were queued. */
static int consume_req(struct flb_worker *w, struct flb_h1conn *h)
{
    uint32_t avail = h->ilen - h->ifwd, take = avail;
    const char *p = h->ibuf + h->ifwd;

    if (h->req_done || avail == 0 || h->rq->up.n == FLB_H1_IOV)
        return 0;
    if (h->req_framing == FLB_HTTP1_BODY_LENGTH) {
        if (take > h->req_left)
            take = (uint32_t)h->req_left;
        h->req_left -= take;
        h->req_done = h->req_left == 0;
    } else {
        ssize_t r = flb_http1_chunked_feed(&h->req_ck, p, avail);
        if (r == FLB_ERR) {
            if (!h->answered)
                return reply(w, h, 400, NULL, 0);
            flb_h1conn_close(w, h);
            return -1;
        }
        if (r >= 0) {
            take = (uint32_t)r;
            h->req_done = 1;
        }
    }
    queue(&h->rq->up, p, take);
    h->ifwd += take;
    h->req_bytes += take;
    return 1;
}

/* A request head has been parsed: route it, check it, edit it and send it on its way. Returns 1, or
 * -1 once the connection is closed. */
static int request_begin(struct flb_worker *w, struct flb_h1conn *h, const struct flb_http1_request *req)
{
    struct flb_l7 *l = w->e->l7;
    struct flb_table *t = h->table;
    const struct flb_route_listener *rl = h->rl;
    struct flb_l7_listener *ll;
    struct flb_h1edits ed = {.n = 0};
    struct flb_h1verdict v;
    int si, n;

    /* Each request is routed with the worker's newest table, while it still holds this listener. */
    if (w->table != NULL && w->table != t && w->table->l7 != NULL) {
        uint32_t i = h->rl->l->ws[w->id].route;
        if (i < w->table->nlst && w->table->lst[i].l == h->rl->l) {
            t = w->table;
            rl = &t->lst[i];
        }
    }
    ll = &t->l7->lst[rl - t->lst];
    if ((h->rq == NULL && (h->rq = rq_take(w)) == NULL) || (h->obuf == NULL && (h->obuf = buf_take(w)) == NULL)) {
        flb_h1conn_close(w, h);
        return -1;
    }
    if (l->log_fd >= 0) {
        size_t m = req->method_len < sizeof(h->rq->method) - 1 ? req->method_len : sizeof(h->rq->method) - 1;
        memcpy(h->rq->method, req->method, m);
        h->rq->method[m] = '\0';
        h->rq->path_len = req->target_len < FLB_H1_LOG_PATH ? req->target_len : FLB_H1_LOG_PATH;
        memcpy(h->rq->path, req->target, h->rq->path_len);
        h->started_us = now_us();
    }
    h->ifwd = (uint32_t)req->head_len;
    h->req_bytes = req->head_len;
    h->resp = FLB_H1_RESP_HEAD;
    si = flb_h1policy_route(h, t, rl, ll, req, &v);
    if (si < 0)
        return reply(w, h, v.status, NULL, 0);
    /* the connection's own reference covers its accept table: no shared atomic per request */
    h->rtable_ref = t != h->table;
    h->rtable = h->rtable_ref ? flb_table_get(t) : t;
    h->svc = &t->svc[si];
    h->hs = &t->l7->svc[si];
    COUNT(h->hs->c->requests, 1);
    /* the answer is written into obuf, which the request head does not use */
    if (flb_h1policy_request(w, h, ll, req, &ed, &v) != 0)
        return reply(w, h, v.status, v.extra, v.nextra);
    n = flb_h1edit_iov(&ed, h->ibuf, (uint32_t)req->head_len, h->rq->head, FLB_H1_IOV - 2);
    if (n < 0)
        return reply(w, h, 400, NULL, 0);
    h->rq->nhead = (uint32_t)n;
    memcpy(h->rq->up.iov, h->rq->head, (size_t)n * sizeof(h->rq->head[0]));
    h->rq->up.i = 0;
    h->rq->up.n = (uint32_t)n;
    h->req_framing = (uint8_t)req->framing;
    h->req_left = req->content_length;
    memset(&h->req_ck, 0, sizeof(h->req_ck));
    h->req_done = req->framing == FLB_HTTP1_BODY_NONE ||
                  (req->framing == FLB_HTTP1_BODY_LENGTH && req->content_length == 0);
    h->req_flags = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0 ? FLB_HTTP1_REQ_HEAD : 0;
    h->upgrade = (req->flags & FLB_HTTP1_F_UPGRADE) && (req->flags & FLB_HTTP1_F_CONN_UPGRADE);
    h->ckeep = (uint8_t)flb_http1_request_keep_alive(req);
    h->req_minor = (uint8_t)req->minor;
    return request_go(w, h);
}

static int parse_request(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_http1_request req = {.headers = lw->hdr, .max_headers = FLB_HTTP1_MAX_HEADERS};
    ssize_t r = flb_http1_request_parse(&req, h->ibuf, h->ilen, h->iprev);

    if (r == FLB_AGAIN) {
        if (!h->head_started) {
            h->head_started = 1;
            arm(w, h, h->ll->request_ms);
        }
        h->iprev = h->ilen;
        if (h->ilen >= FLB_H1_BUF)
            return reply(w, h, 431, NULL, 0);
        return 0;
    }
    if (r == FLB_ERR)
        return reply(w, h, flb_http1_error_status(req.error), NULL, 0);
    return request_begin(w, h, &req);
}

/* --- the response -------------------------------------------------------------------------------- */

/* Draining (_drain.h): whether the connection's current request (or, between requests, the last
 * one) is its last: no byte of a next request is in its buffer or its socket. */
static int drain_last(struct flb_worker *w, const struct flb_h1conn *h)
{
    char c;

    if (!flb_drain_listener(w, h->rl->l))
        return 0;
    if (h->phase != FLB_H1_HEAD && !h->req_done)
        return 1; /* what the client sends now is the body of this one */
    return h->ilen == h->ifwd && recv(h->cfd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

/* The response to the connection's last request says so (draining, _drain.h; or the client asked to
 * close while the backend keeps its connection): its own Connection fields cut and "Connection:
 * close" added to the text inserted at the head's end (<k> bytes so far; the longest HSTS and
 * Set-Cookie text leaves room for it). */
static int say_close(struct flb_h1conn *h, const struct flb_http1_response *resp, struct flb_h1edits *ed, size_t *k)
{
    static const char CLOSE[] = "Connection: close\r\n";

    h->ckeep = 0;
    for (uint32_t i = 0; i < resp->nheaders; i++) {
        if (resp->headers[i].kind == FLB_HTTP1_H_CONNECTION &&
            flb_h1edit_cut_line(ed, h->obuf, &resp->headers[i]) != FLB_OK)
            return FLB_ERR;
    }
    if (*k + sizeof(CLOSE) - 1 > sizeof(h->rq->edit_resp))
        return FLB_ERR;
    memcpy(h->rq->edit_resp + *k, CLOSE, sizeof(CLOSE) - 1);
    *k += sizeof(CLOSE) - 1;
    return FLB_OK;
}

static int response_head(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_http1_response resp = {.headers = lw->hdr, .max_headers = FLB_HTTP1_MAX_HEADERS};
    struct flb_h1edits ed = {.n = 0};
    ssize_t r = flb_http1_response_parse(&resp, h->obuf, h->olen, h->oprev, h->req_flags);
    size_t k = 0;
    int n;

    if (r == FLB_AGAIN) {
        h->oprev = h->olen;
        if (h->olen < FLB_H1_BUF)
            return 0;
        close_server(w, h);
        return reply(w, h, 502, NULL, 0);
    }
    if (r == FLB_ERR) {
        close_server(w, h);
        return reply(w, h, 502, NULL, 0);
    }
    h->reused = 0;
    if (h->started_us != 0 && h->resp_at_us == 0)
        h->resp_at_us = now_us(); /* the first head, interim or final: the backend's time to answer */
    if (resp.status < 200 && resp.status != 101) {
        /* interim (100 Continue, 103): forwarded as it came, except to an HTTP/1.0 client, which
         * knows no 1xx (RFC 9110 section 15.2); the final response follows */
        if (h->req_minor == 0) {
            memmove(h->obuf, h->obuf + r, h->olen - (uint32_t)r);
            h->olen -= (uint32_t)r;
            h->oprev = 0;
            return 1;
        }
        queue(&h->rq->down, h->obuf, (size_t)r);
        h->ofwd = (uint32_t)r;
        h->oprev = 0;
        return 1;
    }
    if (resp.status == 101) {
        if (!h->upgrade) {
            close_server(w, h);
            return reply(w, h, 502, NULL, 0);
        }
        /* the tunnel: the 101 as it came, then whatever either side sent after its head */
        queue(&h->rq->down, h->obuf, (size_t)h->olen);
        h->ofwd = h->olen;
        queue(&h->rq->up, h->ibuf + h->ifwd, h->ilen - h->ifwd);
        h->ifwd = h->ilen;
        h->status = 101;
        h->answered = 1;
        count_status(h, 101, 0);
        if (h->started_us != 0)
            flb_alog_request(w, h);
        h->started_us = 0;
        h->phase = FLB_H1_TUNNEL;
        flb_pump_init(&h->rq->tup);
        flb_pump_init(&h->rq->tdown);
        arm(w, h, h->hs->tunnel_ms);
        return 1;
    }
    h->status = resp.status;
    h->answered = 1;
    count_status(h, resp.status, 0);
    h->skeep = (uint8_t)flb_http1_response_keep_alive(&resp);
    if (!h->skeep)
        h->ckeep = 0; /* the client read the same head: it will not send another request */
    /* before the cuts of what Connection names: a line fastlb edits is not cut */
    if (flb_h1policy_response(h, &resp, (uint32_t)r, &ed, &k) != FLB_OK)
        goto bad;
    if ((drain_last(w, h) || (!h->ckeep && h->skeep)) && say_close(h, &resp, &ed, &k) != FLB_OK)
        goto bad;
    if (k > 0 && flb_h1edit_add(&ed, (uint32_t)r - 2, 0, h->rq->edit_resp, (uint32_t)k) != FLB_OK)
        goto bad;
    if ((resp.flags & FLB_HTTP1_F_CONN_OTHER) &&
        flb_h1edit_connection_named(&ed, h->obuf, resp.headers, resp.nheaders) != FLB_OK)
        goto bad;
    n = flb_h1edit_iov(&ed, h->obuf, (uint32_t)r, h->rq->down.iov, FLB_H1_IOV - 1);
    if (n < 0)
        goto bad;
    h->rq->down.i = 0;
    h->rq->down.n = (uint32_t)n;
    h->ofwd = (uint32_t)r;
    h->oprev = 0;
    h->resp_framing = (uint8_t)resp.framing;
    h->resp_left = resp.content_length;
    memset(&h->resp_ck, 0, sizeof(h->resp_ck));
    if (resp.framing == FLB_HTTP1_BODY_NONE ||
        (resp.framing == FLB_HTTP1_BODY_LENGTH && resp.content_length == 0))
        h->resp = FLB_H1_RESP_DONE;
    else
        h->resp = FLB_H1_RESP_BODY;
    if (resp.framing == FLB_HTTP1_BODY_CLOSE)
        h->ckeep = 0;
    h->touch_ms = h->hs->client_ms;
    if (h->hs->server_ms > 0 && (h->touch_ms == 0 || h->hs->server_ms < h->touch_ms))
        h->touch_ms = h->hs->server_ms;
    arm(w, h, h->touch_ms);
    return 1;
bad:
    close_server(w, h);
    return reply(w, h, 502, NULL, 0);
}

/* Queues the response body bytes the buffer holds, as framed. */
static int consume_resp(struct flb_worker *w, struct flb_h1conn *h)
{
    uint32_t avail = h->olen - h->ofwd, take = avail;
    const char *p = h->obuf + h->ofwd;

    if (avail == 0 || h->rq->down.n == FLB_H1_IOV)
        return 0;
    if (h->resp_framing == FLB_HTTP1_BODY_LENGTH) {
        if (take > h->resp_left)
            take = (uint32_t)h->resp_left;
        h->resp_left -= take;
        if (h->resp_left == 0)
            h->resp = FLB_H1_RESP_DONE;
    } else if (h->resp_framing == FLB_HTTP1_BODY_CHUNKED) {
        ssize_t r = flb_http1_chunked_feed(&h->resp_ck, p, avail);
        if (r == FLB_ERR) {
            flb_h1conn_close(w, h); /* the head is gone: closing is all that says "broken" */
            return -1;
        }
        if (r >= 0) {
            take = (uint32_t)r;
            h->resp = FLB_H1_RESP_DONE;
        }
    }
    queue(&h->rq->down, p, take);
    h->ofwd += take;
    if (h->resp == FLB_H1_RESP_DONE && h->ofwd < h->olen)
        h->skeep = 0; /* bytes past the response's end: the connection cannot be trusted */
    return 1;
}

static int server_read(struct flb_worker *w, struct flb_h1conn *h)
{
    size_t room = FLB_H1_BUF - h->olen;
    ssize_t n;

    if (!h->srd || !want_server_input(h) || h->sfd == -1)
        return 0;
    n = flb_xprt_recv(server_side(h), h->obuf + h->olen, room);
    if (n > 0) {
        h->olen += (uint32_t)n;
        h->srd = (size_t)n == room;
        touch(w, h);
        COUNT(backend(h)->c.bytes_in, (uint64_t)n);
        COUNT(h->svc->c->bytes_in, (uint64_t)n);
        return 1;
    }
    if (n == FLB_AGAIN) {
        h->srd = 0;
        return 0;
    }
    if (h->resp == FLB_H1_RESP_HEAD)
        return server_failed(w, h);
    if (n == 0 && h->resp_framing == FLB_HTTP1_BODY_CLOSE) {
        h->resp = FLB_H1_RESP_DONE;
        h->skeep = 0;
        h->ckeep = 0;
        close_server(w, h);
        return 1;
    }
    /* cut short inside a framed body: the client can only be told by a close */
    flb_h1conn_close(w, h);
    return -1;
}

static int up_send(struct flb_worker *w, struct flb_h1conn *h)
{
    size_t moved = 0;
    int r;

    if (h->sfd == -1 || h->connecting || !pending(&h->rq->up))
        return 0;
    r = out_send(server_side(h), &h->rq->up, &moved, 0);
    if (moved > 0) {
        touch(w, h);
        COUNT(backend(h)->c.bytes_out, moved);
        COUNT(h->svc->c->bytes_out, moved);
    }
    if (r == FLB_ERR)
        return server_failed(w, h);
    if (r == FLB_OK && !h->req_done && h->ifwd > 0) {
        /* everything queued is sent: the body bytes go, the buffer reads on from its start */
        memmove(h->ibuf, h->ibuf + h->ifwd, h->ilen - h->ifwd);
        h->ilen -= h->ifwd;
        h->ifwd = 0;
    }
    return moved > 0;
}

static int down_send(struct flb_worker *w, struct flb_h1conn *h)
{
    size_t moved = 0;
    int r;

    if (!pending(&h->rq->down))
        return 0;
    /* the response's last bytes to a client closed after it, or fastlb's own answer */
    r = out_send(&h->cx, &h->rq->down, &moved,
                 h->phase == FLB_H1_REPLY || (h->resp == FLB_H1_RESP_DONE && !h->ckeep && h->req_done));
    if (moved > 0) {
        h->resp_bytes += moved;
        if (h->phase == FLB_H1_FORWARD)
            touch(w, h);
    }
    if (r == FLB_ERR) {
        flb_h1conn_close(w, h);
        return -1;
    }
    if (r == FLB_AGAIN)
        return moved > 0;
    if (h->phase == FLB_H1_REPLY) {
        /* answered: stop sending, read what the client still has in flight, then close */
        flb_xprt_shutw(&h->cx);
        h->phase = FLB_H1_LINGER;
        h->ilen = 0;
        arm(w, h, FLB_H1_LINGER_MS);
        return 1;
    }
    if (h->ofwd > 0) {
        memmove(h->obuf, h->obuf + h->ofwd, h->olen - h->ofwd);
        h->olen -= h->ofwd;
        h->ofwd = 0;
    }
    return 1;
}

static void slot_release(struct flb_worker *w, struct flb_h1conn *h)
{
    if (h->svc_slot)
        flb_engine_service_slot_release(w->e, h->svc);
    h->svc_slot = 0;
}

/* The request and its response are both through: log, pool the backend connection, and go on to
 * the next request or close. */
static int finish(struct flb_worker *w, struct flb_h1conn *h)
{
    int whole;

    if (h->resp != FLB_H1_RESP_DONE || pending(&h->rq->down))
        return 0;
    whole = h->req_done && !pending(&h->rq->up);
    if (h->started_us != 0)
        flb_alog_request(w, h);
    h->started_us = 0;
    release_server(w, h, whole && h->skeep && h->olen == h->ofwd);
    slot_release(w, h);
    if (h->rtable_ref)
        flb_table_put(h->rtable);
    h->rtable = NULL;
    h->rtable_ref = 0;
    h->svc = NULL;
    h->hs = NULL;
    /* a client that sent its FIN after pipelined requests still gets every answer */
    if (!whole || !h->ckeep || (h->cl_eof && h->ilen == h->ifwd) || drain_last(w, h)) {
        flb_h1conn_close(w, h);
        return -1;
    }
    memmove(h->ibuf, h->ibuf + h->ifwd, h->ilen - h->ifwd);
    h->ilen -= h->ifwd;
    h->ifwd = h->iprev = 0;
    h->olen = h->ofwd = h->oprev = 0;
    buf_give(w, &h->obuf);
    if (h->ilen == 0)
        buf_give(w, &h->ibuf);
    rq_give(w, h);
    h->be = h->sticky_be = -1;
    h->ntried = 0;
    h->attempts = 0;
    h->reused = h->answered = h->counted = h->no_pool = h->upgrade = h->req_done = 0;
    h->status = 0;
    h->resp_bytes = 0;
    h->req_bytes = 0;
    h->resp_at_us = 0;
    h->touch_ms = 0;
    h->phase = FLB_H1_HEAD;
    h->head_started = h->ilen > 0;
    arm(w, h, h->ilen > 0 ? h->ll->request_ms : h->ll->keepalive_ms);
    return 1;
}

/* --- the tunnel ---------------------------------------------------------------------------------- */

/* One direction: first what was queued before the tunnel began, then the pump. */
static int tunnel_dir(struct flb_worker *w, struct flb_h1conn *h, struct flb_h1out *q, struct flb_pump *u,
                      struct flb_xprt *src, struct flb_xprt *dst, int to_server)
{
    size_t moved = 0;
    int rc = FLB_OK;

    if (pending(q)) {
        rc = out_send(dst, q, &moved, 0);
        if (rc != FLB_OK)
            goto out;
    }
    rc = flb_pump_run(u, &w->pool, src, dst, PUMP_ROUNDS, &moved);
out:
    if (moved > 0) {
        if (to_server) {
            COUNT(backend(h)->c.bytes_out, moved);
            COUNT(h->svc->c->bytes_out, moved);
        } else {
            COUNT(backend(h)->c.bytes_in, moved);
            COUNT(h->svc->c->bytes_in, moved);
            h->resp_bytes += moved;
        }
        if (h->hs->tunnel_ms > 0)
            flb_timer_touch(&h->timer.t, w->now + h->hs->tunnel_ms);
    }
    return rc == FLB_ERR ? FLB_ERR : FLB_OK;
}

static int tunnel_run(struct flb_worker *w, struct flb_h1conn *h)
{
    /* once one direction has passed its FIN on, the other one's FIN goes with the close */
    h->rq->tup.fin_by_close = h->rq->tdown.shut;
    if (!h->rq->tup.shut && tunnel_dir(w, h, &h->rq->up, &h->rq->tup, &h->cx, server_side(h), 1) != FLB_OK)
        goto close;
    h->rq->tdown.fin_by_close = h->rq->tup.shut;
    if (!h->rq->tdown.shut && tunnel_dir(w, h, &h->rq->down, &h->rq->tdown, server_side(h), &h->cx, 0) != FLB_OK)
        goto close;
    if (h->rq->tup.shut && h->rq->tdown.shut)
        goto close;
    return 0;
close:
    flb_h1conn_close(w, h);
    return -1;
}

/* --- driving it ---------------------------------------------------------------------------------- */

static int client_read(struct flb_worker *w, struct flb_h1conn *h)
{
    ssize_t n;
    size_t room;

    if (!h->crd || !want_client_input(h))
        return 0;
    if (h->ibuf == NULL && (h->ibuf = buf_take(w)) == NULL) {
        flb_h1conn_close(w, h);
        return -1;
    }
    room = FLB_H1_BUF - h->ilen;
    n = flb_xprt_recv(&h->cx, h->ibuf + h->ilen, room);
    if (h->handshaking && h->cx.ready) {
        /* the first request's head timeout runs from the handshake's end */
        h->handshaking = 0;
        arm(w, h, h->ll->request_ms);
    }
    if (n > 0) {
        if (h->phase != FLB_H1_LINGER)
            h->ilen += (uint32_t)n;
        h->crd = (size_t)n == room || flb_xprt_buffered(&h->cx);
        return 1;
    }
    if (n == FLB_AGAIN) {
        h->crd = 0;
        /* a connection that has sent nothing holds no buffer (it is read on spec at accept) */
        if (h->ilen == 0)
            buf_give(w, &h->ibuf);
        return 0;
    }
    if (n == FLB_ERR && h->phase != FLB_H1_LINGER) {
        flb_h1conn_close(w, h); /* reset: nobody is left to answer */
        return -1;
    }
    h->cl_eof = 1;
    return 1;
}

#define RUN(call)                                                                                                     \
    do {                                                                                                              \
        int r_ = (call);                                                                                              \
        if (r_ < 0)                                                                                                   \
            return -1;                                                                                                \
        progress |= r_;                                                                                               \
    } while (0)

/* One round of everything the connection can do now. Returns 1 when something moved, 0 when it
 * must wait for an event, -1 once it is closed. */
static int step(struct flb_worker *w, struct flb_h1conn *h)
{
    int progress = 0;

    switch (h->phase) {
    case FLB_H1_HEAD:
        RUN(client_read(w, h));
        if (h->ilen > 0 && h->ilen != h->iprev)
            return parse_request(w, h) < 0 ? -1 : 1;
        if (h->cl_eof) {
            flb_h1conn_close(w, h); /* gone between requests, or in the middle of a head */
            return -1;
        }
        return progress;
    case FLB_H1_CONNECT:
    case FLB_H1_FORWARD:
        RUN(client_read(w, h));
        RUN(consume_req(w, h));
        if (h->cl_eof && !h->req_done && h->ifwd == h->ilen) {
            flb_h1conn_close(w, h); /* the request will never be whole */
            return -1;
        }
        if (h->phase != FLB_H1_FORWARD)
            return progress;
        RUN(up_send(w, h));
        if (h->phase != FLB_H1_FORWARD)
            return 1;
        RUN(server_read(w, h));
        if (h->phase != FLB_H1_FORWARD)
            return 1;
        if (h->resp == FLB_H1_RESP_HEAD && !pending(&h->rq->down) && h->ofwd == 0 && h->olen > 0 && h->olen != h->oprev)
            RUN(response_head(w, h));
        /* the body bytes that came with the head go in the same writev */
        if (h->resp == FLB_H1_RESP_BODY && h->phase == FLB_H1_FORWARD)
            RUN(consume_resp(w, h));
        if (h->phase == FLB_H1_TUNNEL)
            return 1;
        RUN(down_send(w, h));
        if (h->phase != FLB_H1_FORWARD)
            return 1;
        RUN(finish(w, h));
        return progress;
    case FLB_H1_REPLY:
        RUN(down_send(w, h));
        return progress;
    case FLB_H1_LINGER:
        RUN(client_read(w, h));
        if (h->cl_eof) {
            flb_h1conn_close(w, h);
            return -1;
        }
        return progress;
    case FLB_H1_TUNNEL:
        return tunnel_run(w, h);
    default:
        return -1;
    }
}

static void advance(struct flb_worker *w, struct flb_h1conn *h)
{
    int i;

    for (i = 0; i < ROUNDS; i++) {
        int r = step(w, h);
        if (r < 0)
            return;
        if (r == 0)
            break;
    }
    if (i == ROUNDS && !flb_list_linked(&h->ready))
        flb_list_add_head(&flb_l7_worker(w)->ready, &h->ready);
    if (update_interest(w, h) != FLB_OK)
        flb_h1conn_close(w, h);
}

void flb_h1conn_run_ready(struct flb_worker *w)
{
    struct flb_list list;
    struct flb_h1conn *h;

    /* Detached first: a connection stopped again by the round limit waits for the next batch. */
    flb_list_take_all(&list, &flb_l7_worker(w)->ready);
    while ((h = flb_list_first(&list, struct flb_h1conn, ready)) != NULL) {
        flb_list_del(&h->ready);
        advance(w, h);
    }
}

void flb_h1conn_start(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer)
{
    struct flb_table *t = w->table;
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_service *ls = flb_route_service(t, rl);
    struct flb_h1conn *h = calloc(1, sizeof(*h));
    const void *ip;
    size_t iplen;

    COUNT(rl->l->total, 1);
    if (ls != NULL)
        COUNT(ls->c->total, 1);
    COUNT(w->e->total, 1);
    if (h == NULL) {
        close(fd);
        FLB_LIVE_DEC(fds);
        COUNT(rl->l->refused, 1);
        flb_engine_slot_release(w->e, rl->l, ls);
        return;
    }
    FLB_LIVE_INC(conns);
    h->csrc.kind = FLB_EV_H1_CLIENT;
    h->crd = 1; /* the request may have come with the handshake's last ACK */
    h->timer.kind = FLB_L7_T_CONN;
    h->cfd = fd;
    h->sfd = -1;
    h->be = h->sticky_be = -1;
    flb_xprt_plain(&h->cx, fd);
    h->table = flb_table_get(t);
    h->rl = rl;
    h->ll = &t->l7->lst[rl - t->lst];
    h->lsvc = ls;
    memcpy(&h->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    iplen = flb_addr_bytes(peer, &ip);
    h->key = flb_hash64(ip, iplen, 0);
    flb_list_add_head(&lw->conns, &h->link);
    h->phase = FLB_H1_HEAD;
    h->head_started = 1; /* the first request's head timeout runs from accept */
    if (flb_xprt_accept(&h->cx, fd, h->ll->tls, w->id, &rl->l->tls) != FLB_OK) {
        COUNT(rl->l->refused, 1);
        flb_h1conn_close(w, h);
        return;
    }
    h->handshaking = !h->cx.ready;
    arm(w, h, h->handshaking ? h->ll->handshake_ms : h->ll->request_ms);
    advance(w, h);
}

void flb_h1conn_event(struct flb_worker *w, struct flb_h1conn *h, int server, uint32_t events)
{
    if (h->phase == FLB_H1_DEAD)
        return; /* closed earlier in this batch */
    if (server && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        h->srd = 1;
    if (!server && flb_xprt_readable(&h->cx, events))
        h->crd = 1;
    if (server && h->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(h->sfd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            err = errno;
        if (err == 0 && !(events & (EPOLLERR | EPOLLHUP))) {
            established(w, h);
        } else {
            int failed = h->be;
            connect_failed(w, h);
            if (connect_next(w, h, failed) < 0)
                return;
        }
    }
    advance(w, h);
}

void flb_h1conn_timeout(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_backend *b = backend(h);

    switch (h->phase) {
    case FLB_H1_HEAD:
        if (h->handshaking)
            h->cx.ops->timeout(&h->cx); /* counted as a failed handshake */
        if (h->ilen == 0) {
            flb_h1conn_close(w, h); /* idle between requests, or never spoke */
            return;
        }
        reply(w, h, 408, NULL, 0);
        break;
    case FLB_H1_CONNECT: {
        if (flb_queued(&h->qi)) {
            flb_queue_remove(w, h->svc, &h->qi);
            COUNT(h->svc->c->queue_timeouts, 1);
            reply(w, h, 503, NULL, 0);
            break;
        }
        int failed = h->be;
        connect_failed(w, h);
        if (connect_next(w, h, failed) < 0)
            return;
        break;
    }
    case FLB_H1_FORWARD:
        if (b != NULL) {
            COUNT(b->c.timeouts, 1);
            COUNT(h->svc->c->timeouts, 1);
        }
        if (h->resp == FLB_H1_RESP_HEAD && !h->answered && !pending(&h->rq->down)) {
            close_server(w, h);
            reply(w, h, 504, NULL, 0);
            break;
        }
        flb_h1conn_close(w, h);
        return;
    default:
        flb_h1conn_close(w, h);
        return;
    }
    advance(w, h);
}

void flb_h1conn_close(struct flb_worker *w, struct flb_h1conn *h)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    if (h->phase == FLB_H1_DEAD)
        return;
    if (flb_list_linked(&h->ready))
        flb_list_del(&h->ready);
    flb_timer_stop(&lw->wheel, &h->timer.t);
    rq_give(w, h);
    if (h->svc != NULL)
        flb_queue_remove(w, h->svc, &h->qi);
    close_server(w, h);
    slot_release(w, h);
    flb_xprt_close(&h->cx);
    close(h->cfd);
    FLB_LIVE_DEC(fds);
    h->cfd = -1;
    flb_list_del(&h->link);
    h->phase = FLB_H1_DEAD;
    flb_list_add_head(&lw->dead, &h->link);
    flb_engine_slot_release(w->e, h->rl->l, h->lsvc);
}

void flb_h1conn_drain(struct flb_worker *w)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_h1conn *h;

    flb_list_for_each_safe (h, &lw->conns, link) { /* closing moves <h> to the dead list */
        if (h->phase == FLB_H1_HEAD && h->ilen == 0 && drain_last(w, h))
            flb_h1conn_close(w, h);
    }
}

void flb_h1conn_reap(struct flb_worker *w)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_h1conn *h;

    while ((h = flb_list_first(&lw->dead, struct flb_h1conn, link)) != NULL) {
        flb_list_del(&h->link);
        if (h->rtable_ref)
            flb_table_put(h->rtable);
        flb_table_put(h->table);
        buf_give(w, &h->ibuf);
        buf_give(w, &h->obuf);
        free(h);
        FLB_LIVE_DEC(conns);
    }
}
