/* _pass.c: the https listener's first read (see _pass.h).
 *
 * The ClientHello is peeked, never consumed: each time more arrives, everything received so far is
 * peeked again (at most FLB_HELLO_WIRE_MAX bytes) and read from the start, so a connection holds no
 * buffer while it waits. Edge-triggered epoll wakes it once per arrival, where level-triggered would
 * report the bytes it leaves in the socket again and again. The decision is made with the worker's
 * current table, so a swap while a hello trickles in routes it by the newest routes.
 */
#define _GNU_SOURCE
#include "_api.h"

#include "_pass.h"

#include "_conn.h"
#include "_engine.h"
#include "_evloop.h"
#include "_h1conn.h"
#include "_hello.h"
#include "_l7.h"
#include "_list.h"
#include "_route.h"
#include "_vhost.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAXED memory_order_relaxed
#define COUNT(field, n) atomic_fetch_add_explicit(&(field), (n), RELAXED)

/* Where a connection goes once its hello is read. */
enum verdict {
    WAIT,        /* more bytes to come */
    PASS,        /* to a passthrough service */
    TERMINATE,   /* to TLS termination */
    DROP,        /* closed, counted */
};

static void unlink_free(struct flb_worker *w, struct flb_pass *p)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    flb_timer_stop(&lw->wheel, &p->timer.t);
    flb_list_del(&p->link);
    flb_table_put(p->table);
    free(p);
    FLB_LIVE_DEC(conns);
}

/* Closes <p> unserved; <fail>: the TLS failure it counts as (FLB_TLS_F_N: none). */
static void drop(struct flb_worker *w, struct flb_pass *p, enum flb_tls_fail fail)
{
    struct flb_listener *l = p->rl->l;

    COUNT(l->total, 1);
    COUNT(w->e->total, 1);
    if (fail < FLB_TLS_F_N)
        COUNT(l->tls.failed[fail], 1);
    close(p->fd); /* closing also takes it out of epoll */
    FLB_LIVE_DEC(fds);
    flb_engine_slot_release(w->e, l, NULL);
    unlink_free(w, p);
}

/* The listener of <l> in the worker's current table, or NULL when it has none. */
static struct flb_route_listener *current(struct flb_worker *w, const struct flb_listener *l)
{
    struct flb_table *t = w->table;

    for (uint32_t i = 0; t != NULL && i < t->nlst; i++)
        if (t->lst[i].l == l)
            return &t->lst[i];
    return NULL;
}

/* Hands the socket over: out of epoll and off the timer, the record freed. */
static int hand_over(struct flb_worker *w, struct flb_pass *p, struct sockaddr_storage *peer)
{
    int fd = p->fd;

    memcpy(peer, &p->peer, sizeof(*peer));
    if (flb_evloop_want(w->epfd, fd, &p->src, &p->want, 0) != FLB_OK)
        return FLB_ERR;
    unlink_free(w, p);
    return fd;
}

/* The service the passthrough vhosts route <name> to on listener <rl> of the current table, or -1. */
static int route(struct flb_worker *w, struct flb_route_listener *rl, const struct flb_hello *h)
{
    const struct flb_l7_table *lt = w->table->l7;

    if (lt == NULL || !lt->lst[rl - w->table->lst].sni)
        return -1;
    return flb_vhost_lookup(&lt->sni, h->name, h->name_len, "/", 1);
}

/* Reads what the client has sent so far: the verdict, the service of PASS in <svc>, the failure
 * of DROP in <fail>. */
static enum verdict decide(struct flb_worker *w, struct flb_pass *p, uint32_t events, int *svc,
                           enum flb_tls_fail *fail)
{
    static _Thread_local uint8_t buf[FLB_HELLO_WIRE_MAX];
    struct flb_route_listener *rl;
    struct flb_hello h;
    ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    int kind;

    *fail = FLB_TLS_F_N;
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        n = 0;
    else if (n <= 0) {
        *fail = FLB_TLS_F_EOF; /* closed or reset before the hello was whole */
        return DROP;
    }
    kind = flb_hello_read(buf, (size_t)n, &h);
    if (kind == FLB_AGAIN) {
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            *fail = FLB_TLS_F_EOF; /* its FIN is in: no more is coming */
            return DROP;
        }
        return WAIT;
    }
    if (kind == FLB_HELLO_BAD) {
        *fail = FLB_TLS_F_PROTOCOL; /* broken, or larger than any hello fastlb reads */
        return DROP;
    }
    rl = current(w, p->rl->l);
    if (rl == NULL)
        return DROP; /* the listener left the table meanwhile */
    if (kind == FLB_HELLO_SNI && (*svc = route(w, rl, &h)) >= 0)
        return PASS;
    if (w->table->l7 != NULL && w->table->l7->lst[rl - w->table->lst].tls != NULL)
        return TERMINATE;
    if (kind == FLB_HELLO_NOT_TLS)
        *fail = FLB_TLS_F_PROTOCOL;
    else
        COUNT(p->rl->l->pass.unknown_sni, 1);
    COUNT(p->rl->l->refused, 1);
    return DROP;
}

static void attempt(struct flb_worker *w, struct flb_pass *p, uint32_t events)
{
    struct sockaddr_storage peer;
    struct flb_route_listener *rl;
    enum flb_tls_fail fail;
    struct flb_service *s;
    int svc = -1, fd;

    switch (decide(w, p, events, &svc, &fail)) {
    case WAIT:
        if (flb_evloop_want(w->epfd, p->fd, &p->src, &p->want, EPOLLIN | EPOLLRDHUP | EPOLLET) != FLB_OK)
            drop(w, p, FLB_TLS_F_N);
        return;
    case DROP:
        drop(w, p, fail);
        return;
    case PASS:
        rl = current(w, p->rl->l);
        s = &w->table->svc[svc];
        if (flb_engine_service_slot_take(w->e, s) != FLB_OK) {
            COUNT(s->c->no_backend, 1); /* at its maxconn: a tcp client is not kept waiting unread here */
            COUNT(p->rl->l->refused, 1);
            drop(w, p, FLB_TLS_F_N);
            return;
        }
        if ((fd = hand_over(w, p, &peer)) < 0) {
            flb_engine_service_slot_release(w->e, s);
            drop(w, p, FLB_TLS_F_N);
            return;
        }
        COUNT(rl->l->pass.passthrough, 1);
        flb_conn_start_to(w, rl, s, fd, (struct sockaddr *)&peer);
        return;
    case TERMINATE:
        rl = current(w, p->rl->l);
        if ((fd = hand_over(w, p, &peer)) < 0) {
            drop(w, p, FLB_TLS_F_N);
            return;
        }
        flb_h1conn_start(w, rl, fd, (struct sockaddr *)&peer);
        return;
    }
}

void flb_pass_start(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_l7_listener *ll = &w->table->l7->lst[rl - w->table->lst];
    struct flb_pass *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        COUNT(rl->l->total, 1);
        COUNT(w->e->total, 1);
        COUNT(rl->l->refused, 1);
        close(fd);
        FLB_LIVE_DEC(fds);
        flb_engine_slot_release(w->e, rl->l, NULL);
        return;
    }
    FLB_LIVE_INC(conns);
    p->src.kind = FLB_EV_PASS;
    p->fd = fd;
    p->timer.kind = FLB_L7_T_PASS;
    p->table = flb_table_get(w->table);
    p->rl = rl;
    memcpy(&p->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    flb_list_add_head(&lw->pass, &p->link);
    flb_timer_arm(&lw->wheel, &p->timer.t, w->now + (ll->handshake_ms ? ll->handshake_ms : 10000));
    attempt(w, p, 0); /* the hello often comes with the handshake's last ACK */
}

void flb_pass_event(struct flb_worker *w, struct flb_pass *p, uint32_t events)
{
    attempt(w, p, events);
}

void flb_pass_timeout(struct flb_worker *w, struct flb_pass *p)
{
    drop(w, p, FLB_TLS_F_TIMEOUT);
}

void flb_pass_close_all(struct flb_worker *w)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    struct flb_pass *p;

    while ((p = flb_list_first(&lw->pass, struct flb_pass, link)) != NULL)
        drop(w, p, FLB_TLS_F_N);
}
