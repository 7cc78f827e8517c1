/* _conn.c: the life of a proxied connection (see _conn.h).
 *
 * Polling is level-triggered with speculative I/O: a pump first tries its recv/send and subscribes
 * only when the kernel answers EAGAIN, and the epoll interest of a socket is a pure function of the
 * two pumps' state, written to the kernel only when it changes (flb_evloop_want):
 *   source of a pump: EPOLLIN while the pump holds nothing and has not seen EOF;
 *   destination:      EPOLLOUT while the pump holds bytes (its last write met a full socket).
 * A pump that holds bytes does not read: backpressure comes for free, and bytes stay in order.
 * EPOLLRDHUP rides along with EPOLLIN (it never wakes the loop by itself): it tells the pump that
 * the peer's FIN is in, so the read that empties the socket is known to end the stream.
 *
 * A FIN is passed on with shutdown(SHUT_WR) while the other direction still flows; the last one is
 * passed on by the close() that ends the connection (both sockets have been read to their end by
 * then, so close() sends a FIN, not a reset).
 */
#define _GNU_SOURCE
#include "_api.h"

#include "_conn.h"

#include "_addr.h"
#include "_balance.h"
#include "_cidr.h"
#include "_engine.h"
#include "_evloop.h"
#include "_list.h"
#include "_queue.h"
#include "_route.h"
#include "_splice.h"
#include "_xprt.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads one pump may make per wakeup before it lets other connections run; level-triggered epoll
 * brings it back for the rest. */
#define PUMP_ROUNDS 8

#define RELAXED memory_order_relaxed
#define COUNT(field, n) atomic_fetch_add_explicit(&(field), (n), RELAXED)

static struct flb_backend *conn_backend(const struct flb_conn *c)
{
    return c->be >= 0 ? c->svc->be[c->be] : NULL;
}

static void arm(struct flb_worker *w, struct flb_conn *c, uint32_t ms)
{
    if (ms == 0)
        flb_timer_stop(&w->wheel, &c->timer);
    else
        flb_timer_arm(&w->wheel, &c->timer, w->now + ms);
}

/* Writes the interest the pumps call for (see the head of this file). */
static int update_interest(struct flb_worker *w, struct flb_conn *c)
{
    uint32_t cw = 0, sw = 0;

    if (c->state == FLB_CONN_QUEUED) {
        /* nothing is polled: what the client sends waits in its socket */
    } else if (c->state == FLB_CONN_HANDSHAKE) {
        cw = flb_xprt_interest(&c->cx, EPOLLIN | EPOLLRDHUP);
    } else if (c->state == FLB_CONN_CONNECTING) {
        sw = EPOLLOUT; /* the client is not polled yet: what it sends waits in its socket */
    } else {
        if (!c->up.eof && flb_pump_pending(&c->up) == 0)
            cw |= EPOLLIN | EPOLLRDHUP;
        if (flb_pump_pending(&c->up) > 0)
            sw |= EPOLLOUT;
        if (!c->down.eof && flb_pump_pending(&c->down) == 0)
            sw |= EPOLLIN | EPOLLRDHUP;
        if (flb_pump_pending(&c->down) > 0)
            cw |= EPOLLOUT;
        cw = flb_xprt_interest(&c->cx, cw); /* a TLS client's reads may wait to write, and its writes to read */
    }
    if (flb_evloop_want(w->epfd, c->cfd, &c->csrc, &c->cwant, cw) != FLB_OK)
        return FLB_ERR;
    if (c->sfd != -1 && flb_evloop_want(w->epfd, c->sfd, &c->ssrc, &c->swant, sw) != FLB_OK)
        return FLB_ERR;
    return FLB_OK;
}

static void close_server(struct flb_worker *w, struct flb_conn *c)
{
    struct flb_backend *b = conn_backend(c);

    if (c->sfd != -1) {
        close(c->sfd); /* closing also takes it out of epoll */
        FLB_LIVE_DEC(fds);
        c->sfd = -1;
        c->swant = 0;
    }
    if (b != NULL)
        flb_engine_backend_release(w, c->svc, (uint32_t)c->be);
    c->be = -1;
}

void flb_conn_close(struct flb_worker *w, struct flb_conn *c)
{
    if (c->state == FLB_CONN_DEAD)
        return;
    flb_timer_stop(&w->wheel, &c->timer);
    flb_queue_remove(w, c->svc, &c->qi);
    flb_pump_release(&c->up, &w->pool);
    flb_pump_release(&c->down, &w->pool);
    close_server(w, c);
    flb_xprt_close(&c->cx);
    close(c->cfd);
    FLB_LIVE_DEC(fds);
    c->cfd = -1;
    flb_list_del(&c->link);
    c->state = FLB_CONN_DEAD;
    flb_list_add_head(&w->dead, &c->link);
    flb_engine_slot_release(w->e, c->lst, c->svc);
}

void flb_conn_shut(struct flb_worker *w, struct flb_conn *c)
{
    if (c->state == FLB_CONN_DEAD)
        return;
    shutdown(c->cfd, SHUT_RDWR);
    if (c->sfd != -1)
        shutdown(c->sfd, SHUT_RDWR);
    flb_conn_close(w, c);
}

void flb_conn_reap(struct flb_worker *w)
{
    struct flb_conn *c;

    while ((c = flb_list_first(&w->dead, struct flb_conn, link)) != NULL) {
        flb_list_del(&c->link);
        flb_table_put(c->table);
        free(c);
        FLB_LIVE_DEC(conns);
    }
}

/* The client cannot be served: no backend is available or every attempt failed. */
static void give_up(struct flb_worker *w, struct flb_conn *c)
{
    COUNT(c->svc->c->no_backend, 1);
    COUNT(c->lst->refused, 1);
    flb_conn_close(w, c);
}

/* Counts a failed connect (refused, reset or timed out: one connect error, never also a timeout, as
 * HAProxy's econ) on the current backend and lets it go. Passive health: <fall>
 * consecutive failures (the backend's active check's fall) mark it down at once, for every worker;
 * only a passing active check brings it back. */
static void connect_failed(struct flb_worker *w, struct flb_conn *c)
{
    struct flb_backend *b = conn_backend(c);
    uint32_t fall = c->svc->fall[c->be];

    COUNT(b->c.connect_errors, 1);
    if (atomic_fetch_add_explicit(&b->fails, 1, RELAXED) + 1 >= fall && fall > 0)
        atomic_store_explicit(&b->health, FLB_HEALTH_DOWN, RELAXED);
    COUNT(c->svc->c->connect_errors, 1);
    close_server(w, c);
}

static int pump(struct flb_worker *w, struct flb_conn *c, struct flb_pump *u, int to_server)
{
    size_t moved = 0;
    struct flb_xprt sx; /* the server side is a plain socket */
    int rc;

    flb_xprt_plain(&sx, c->sfd);
    if (to_server)
        rc = flb_pump_run(u, &w->pool, &c->cx, &sx, PUMP_ROUNDS, &moved);
    else
        rc = flb_pump_run(u, &w->pool, &sx, &c->cx, PUMP_ROUNDS, &moved);

    if (moved > 0) {
        struct flb_backend *b = conn_backend(c);
        if (to_server) {
            COUNT(b->c.bytes_out, moved);
            COUNT(c->svc->c->bytes_out, moved);
        } else {
            COUNT(b->c.bytes_in, moved);
            COUNT(c->svc->c->bytes_in, moved);
        }
        if (c->svc->idle_ms > 0)
            flb_timer_touch(&c->timer, w->now + c->svc->idle_ms);
    }
    return rc;
}

/* Runs the pumps that <events> concern, then closes the connection if it is over. */
static void run(struct flb_worker *w, struct flb_conn *c, int server, uint32_t events)
{
    int up = server ? (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0 : flb_xprt_readable(&c->cx, events);
    int down = server ? (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0 : flb_xprt_writable(&c->cx, events);

    if (events & EPOLLRDHUP) {
        if (server)
            c->down.peer_fin = 1;
        else
            c->up.peer_fin = 1;
    }
    /* Once one direction has passed its FIN on, the other one's FIN ends the connection. */
    c->up.fin_by_close = c->down.shut;
    if (up && !c->up.shut && pump(w, c, &c->up, 1) != FLB_OK)
        goto close;
    c->down.fin_by_close = c->up.shut;
    if (down && !c->down.shut && pump(w, c, &c->down, 0) != FLB_OK)
        goto close;
    if (c->up.shut && c->down.shut)
        goto close; /* both directions have passed their FIN on */
    if (update_interest(w, c) != FLB_OK)
        goto close;
    return;
close:
    flb_conn_close(w, c);
}

static void established(struct flb_worker *w, struct flb_conn *c)
{
    struct flb_backend *b = conn_backend(c);

    c->state = FLB_CONN_ESTABLISHED;
    COUNT(b->c.conn_total, 1);
    atomic_store_explicit(&b->fails, 0, RELAXED);
    arm(w, c, c->svc->idle_ms);
    /* The client was not polled while we connected: what it sent meanwhile (a request, its FIN)
     * waits in its socket, so read it now, on spec. The server side is only subscribed to: a
     * server that speaks first has not spoken yet. */
    run(w, c, 0, EPOLLIN);
}

/* Starts a connect to backend <idx>, whose slot the caller took. Returns FLB_OK when connected or in progress, FLB_AGAIN when
 * it failed at once (counted; try another), FLB_ERR when the connection must be dropped. */
static int attempt(struct flb_worker *w, struct flb_conn *c, int idx)
{
    struct flb_service *s = c->svc;
    int one = 1;

    c->be = idx;
    if (c->ntried < FLB_CONN_TRIED)
        c->tried[c->ntried++] = (uint32_t)idx;
    c->attempts++;
    c->sfd = socket(s->addr[idx].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->sfd == -1)
        return FLB_ERR; /* out of fds or memory: another backend would fare no better */
    FLB_LIVE_INC(fds);
    setsockopt(c->sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->sfd, (struct sockaddr *)&s->addr[idx], s->addrlen[idx]) == 0) {
        established(w, c);
        return FLB_OK;
    }
    if (errno == EINPROGRESS) {
        arm(w, c, s->connect_ms);
        if (update_interest(w, c) != FLB_OK)
            return FLB_ERR;
        return FLB_OK;
    }
    connect_failed(w, c);
    return FLB_AGAIN;
}

/* A backend with a slot taken for <c>, FLB_AGAIN (every one it could take is full: wait) or FLB_ERR. */
static int pick(struct flb_worker *w, struct flb_conn *c)
{
    return flb_queue_pick(c->svc, c->key, w->id, c->tried, c->ntried);
}

static int dequeue(struct flb_worker *w, struct flb_qitem *q);

/* Waits in the service's queue for a slot, the client unread, at most the queue timeout. */
static int wait_for_slot(struct flb_worker *w, struct flb_conn *c)
{
    if (flb_queue_add(w, c->svc, &c->qi, dequeue) != FLB_OK)
        return FLB_ERR;
    c->state = FLB_CONN_QUEUED;
    arm(w, c, c->svc->queue_ms);
    return FLB_OK;
}

/* Connects to backend <idx> (its slot taken), then on failure retries elsewhere up to the service's
 * retries. */
static void connect_from(struct flb_worker *w, struct flb_conn *c, int idx)
{
    struct flb_service *s = c->svc;

    for (;;) {
        int r = attempt(w, c, idx);
        if (r == FLB_OK)
            return;
        if (r == FLB_ERR) {
            COUNT(c->lst->refused, 1);
            flb_conn_close(w, c);
            return;
        }
        int failed = idx;
        if (c->attempts > s->retries)
            break;
        idx = pick(w, c);
        if (idx == FLB_AGAIN && wait_for_slot(w, c) == FLB_OK)
            return;
        if (idx < 0)
            break;
        COUNT(s->be[failed]->c.retries, 1);
        COUNT(s->c->retries, 1);
    }
    give_up(w, c);
}

/* After the connect to <failed> failed (-1: none yet): picks a backend and connects, or waits for a
 * slot, or gives up. */
static void connect_next(struct flb_worker *w, struct flb_conn *c, int failed)
{
    struct flb_service *s = c->svc;

    if (failed >= 0 && c->attempts > s->retries) {
        give_up(w, c);
        return;
    }
    int idx = pick(w, c);
    if (idx == FLB_AGAIN && wait_for_slot(w, c) == FLB_OK)
        return;
    if (idx < 0) {
        give_up(w, c);
        return;
    }
    if (failed >= 0) {
        COUNT(s->be[failed]->c.retries, 1);
        COUNT(s->c->retries, 1);
    }
    connect_from(w, c, idx);
}

/* The queue offers a slot: see flb_qitem_ready_fn. */
static int dequeue(struct flb_worker *w, struct flb_qitem *q)
{
    struct flb_conn *c = container_of(q, struct flb_conn, qi);
    int idx = pick(w, c);

    if (idx == FLB_AGAIN)
        return FLB_Q_WAIT;
    flb_queue_remove(w, c->svc, &c->qi);
    c->state = FLB_CONN_CONNECTING;
    if (idx < 0)
        give_up(w, c); /* the backends it waited for are gone or down */
    else
        connect_from(w, c, idx);
    return FLB_Q_LEFT;
}

/* A connection for client <fd> of <rl>, to service <s>, on the worker's list; NULL when it was refused
 * (the allow-list, no memory): then <fd> is closed and the slot given back. */
static struct flb_conn *conn_new(struct flb_worker *w, struct flb_route_listener *rl, struct flb_service *s, int fd,
                                 const struct sockaddr *peer)
{
    struct flb_table *t = w->table;
    struct flb_conn *c = calloc(1, sizeof(*c));
    const void *ip;
    size_t iplen;

    COUNT(rl->l->total, 1);
    COUNT(s->c->total, 1);
    COUNT(w->e->total, 1);
    if (s->nallow > 0 && s->mode == FLB_MODE_TCP && !flb_cidr_match(s->allow, s->nallow, peer)) {
        /* Counted before the close: whoever sees the close may read the counters at once. */
        COUNT(s->c->denied, 1);
        COUNT(rl->l->refused, 1);
        free(c);
        close(fd);
        FLB_LIVE_DEC(fds);
        flb_engine_slot_release(w->e, rl->l, s);
        return NULL;
    }
    if (c == NULL) {
        close(fd);
        FLB_LIVE_DEC(fds);
        COUNT(rl->l->refused, 1);
        flb_engine_slot_release(w->e, rl->l, s);
        return NULL;
    }
    FLB_LIVE_INC(conns);
    c->csrc.kind = FLB_EV_CLIENT;
    c->ssrc.kind = FLB_EV_SERVER;
    c->cfd = fd;
    c->sfd = -1;
    c->be = -1;
    flb_xprt_plain(&c->cx, fd);
    c->table = flb_table_get(t);
    c->svc = s;
    c->lst = rl->l;
    flb_pump_init(&c->up);
    flb_pump_init(&c->down);
    iplen = flb_addr_bytes(peer, &ip);
    c->key = flb_hash64(ip, iplen, 0);
    flb_list_add_head(&w->conns, &c->link);
    return c;
}

void flb_conn_start(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer)
{
    flb_conn_start_to(w, rl, &w->table->svc[rl->service], fd, peer);
}

void flb_conn_start_to(struct flb_worker *w, struct flb_route_listener *rl, struct flb_service *s, int fd,
                       const struct sockaddr *peer)
{
    struct flb_conn *c = conn_new(w, rl, s, fd, peer);

    if (c != NULL)
        connect_next(w, c, -1);
}

/* Drives a TLS client's handshake on; once it is over, the connection goes on as a plain one would
 * from its accept (a backend is picked only for a client that got this far). */
static void handshake(struct flb_worker *w, struct flb_conn *c)
{
    int r = flb_xprt_handshake(&c->cx);

    if (r == FLB_OK) {
        c->state = FLB_CONN_CONNECTING;
        flb_timer_stop(&w->wheel, &c->timer);
        connect_next(w, c, -1); /* what the client sent with its Finished waits in the transport */
        return;
    }
    if (r == FLB_ERR || update_interest(w, c) != FLB_OK)
        flb_conn_close(w, c); /* a failed handshake is counted by its transport */
}

void flb_conn_start_tls(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer,
                        struct flb_tls *tls, uint32_t handshake_ms)
{
    struct flb_conn *c = conn_new(w, rl, &w->table->svc[rl->service], fd, peer);

    if (c == NULL)
        return;
    if (flb_xprt_accept(&c->cx, fd, tls, w->id, &rl->l->tls) != FLB_OK) {
        COUNT(rl->l->refused, 1);
        flb_conn_close(w, c);
        return;
    }
    c->state = FLB_CONN_HANDSHAKE;
    arm(w, c, handshake_ms);
    handshake(w, c); /* the ClientHello often comes with the connection's last ACK */
}

void flb_conn_event(struct flb_worker *w, struct flb_conn *c, int server, uint32_t events)
{
    if (c->state == FLB_CONN_DEAD)
        return; /* closed earlier in this batch */
    if (c->state == FLB_CONN_ESTABLISHED) {
        run(w, c, server, events);
        return;
    }
    if (c->state == FLB_CONN_HANDSHAKE) {
        if (!server)
            handshake(w, c);
        return;
    }
    if (!server || c->state == FLB_CONN_QUEUED)
        return; /* the client is not polled while connecting or waiting; nothing to do */
    /* A non-blocking connect reports success as writable alone; refused, reset or unreachable add
     * EPOLLERR/EPOLLHUP (SO_ERROR would only say which). */
    if ((events & EPOLLOUT) && !(events & (EPOLLERR | EPOLLHUP))) {
        established(w, c);
        return;
    }
    int failed = c->be;
    connect_failed(w, c);
    connect_next(w, c, failed);
}

void flb_conn_timeout(struct flb_worker *w, struct flb_conn *c)
{
    if (c->state == FLB_CONN_HANDSHAKE) {
        c->cx.ops->timeout(&c->cx); /* counted as a failed handshake */
        flb_conn_close(w, c);
        return;
    }
    if (c->state == FLB_CONN_QUEUED) {
        COUNT(c->svc->c->queue_timeouts, 1);
        give_up(w, c);
        return;
    }
    if (c->state == FLB_CONN_CONNECTING) {
        int failed = c->be;
        connect_failed(w, c);
        connect_next(w, c, failed);
        return;
    }
    struct flb_backend *b = conn_backend(c);
    COUNT(b->c.timeouts, 1);
    COUNT(c->svc->c->timeouts, 1);
    flb_conn_close(w, c);
}
