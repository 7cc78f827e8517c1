/* _l7.c: the L7 side of tables, engine and workers, and the engine's hooks (see _l7.h). */
#define _GNU_SOURCE
#include "_api.h"

#include "_l7.h"
#include "_tls.h"

#include "_alog.h"
#include "_balance.h"
#include "_conn.h"
#include "_evloop.h"
#include "_h1conn.h"
#include "_h1front.h"
#include "_h1pool.h"
#include "_list.h"
#include "_pass.h"
#include "_route.h"
#include "_vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


struct flb_l7 *flb_l7_new(uint32_t nworkers, uint32_t pool_max, uint32_t pool_idle_ms)
{
    struct flb_l7 *l = calloc(1, sizeof(*l));
    uint64_t now = flb_now_ms();

    if (l == NULL)
        return NULL;
    l->w = calloc(nworkers ? nworkers : 1, sizeof(*l->w));
    if (l->w == NULL) {
        free(l);
        errno = ENOMEM;
        return NULL;
    }
    l->nworkers = nworkers;
    /* each worker's share, rounded up: a pool_max below the worker count still pools */
    l->pool_max = nworkers ? (uint32_t)(((uint64_t)pool_max + nworkers - 1) / nworkers) : 0;
    l->pool_idle_ms = pool_idle_ms;
    l->log_fd = -1;
    for (uint32_t i = 0; i < nworkers; i++) {
        l->w[i].l7 = l;
        l->w[i].id = i;
        flb_wheel_init(&l->w[i].wheel, now);
        flb_list_init(&l->w[i].conns);
        flb_list_init(&l->w[i].pass);
        flb_list_init(&l->w[i].dead);
        flb_list_init(&l->w[i].ready);
        flb_list_init(&l->w[i].pool);
        flb_list_init(&l->w[i].srv_dead);
    }
    /* The auth cache key only needs to be unguessable by clients; no fleet shares it. */
    l->auth_key = flb_hash64(&l, sizeof(l), now ^ (uint64_t)getpid());
    return l;
}

void flb_l7_stop(struct flb_l7 *l)
{
    for (uint32_t i = 0; l != NULL && i < l->nworkers; i++)
        flb_h1pool_clear(&l->w[i]);
}

void flb_l7_free(struct flb_l7 *l)
{
    if (l == NULL)
        return;
    flb_l7_stop(l);
    for (uint32_t i = 0; i < l->nworkers; i++) {
        free(l->w[i].crypt);
        free(l->w[i].log);
        while (l->w[i].nbufs > 0)
            free(l->w[i].bufs[--l->w[i].nbufs]);
        while (l->w[i].nreqs > 0)
            free(l->w[i].reqs[--l->w[i].nreqs]);
    }
    free(l->w);
    free(l);
}

int flb_l7_set_access_log(struct flb_l7 *l, int fd)
{
    if (fd >= 0) {
        int flags = fcntl(fd, F_GETFL);
        if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
            return FLB_ERR;
        for (uint32_t i = 0; i < l->nworkers; i++) {
            if (l->w[i].log == NULL && (l->w[i].log = malloc(FLB_L7_LOG_BUF)) == NULL) {
                errno = ENOMEM;
                return FLB_ERR;
            }
        }
    }
    l->log_fd = fd;
    return FLB_OK;
}

void flb_l7_set_cookie_key(struct flb_l7 *l, uint64_t key)
{
    l->cookie_key = key;
}

uint64_t flb_l7_epoch(struct flb_l7 *l)
{
    return atomic_fetch_add_explicit(&l->epochs, 1, memory_order_relaxed) + 1;
}

void flb_l7_cookie_value(const struct flb_l7 *l, const char *id, char out[FLB_L7_COOKIE_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h = flb_hash64(id, strlen(id), l->cookie_key);

    for (int i = FLB_L7_COOKIE_HEX - 1; i >= 0; i--, h >>= 4)
        out[i] = hex[h & 15];
    out[FLB_L7_COOKIE_HEX] = '\0';
}

/* --- tables ------------------------------------------------------------------------------------- */

struct flb_l7_table *flb_l7_table_new(uint32_t nsvc, uint32_t nlst)
{
    struct flb_l7_table *lt = calloc(1, sizeof(*lt));

    if (lt == NULL)
        return NULL;
    lt->svc = calloc(nsvc ? nsvc : 1, sizeof(*lt->svc));
    lt->lst = calloc(nlst ? nlst : 1, sizeof(*lt->lst));
    lt->rshare = calloc(1, sizeof(*lt->rshare));
    if (lt->svc == NULL || lt->lst == NULL || lt->rshare == NULL) {
        free(lt->svc);
        free(lt->lst);
        free(lt->rshare);
        free(lt);
        errno = ENOMEM;
        return NULL;
    }
    atomic_store_explicit(&lt->rshare->refs, 1, memory_order_relaxed);
    lt->nsvc = nsvc;
    lt->nlst = nlst;
    return lt;
}

void flb_l7_service_free(struct flb_l7_table *lt, uint32_t i)
{
    struct flb_l7_service *s = &lt->svc[i];

    free(s->cookie);
    free(s->cookie_val);
    free(s->realm);
    for (uint32_t j = 0; j < s->nusers; j++) {
        free(s->users[j].name);
        free(s->users[j].hash);
    }
    free(s->users);
    free(s->cidrs);
    free(s->strip.s);
    free(s->host_line.s);
    free(s->loc_prefix.s);
    free(s->redir.s);
    for (uint32_t j = 0; j < s->nhosts; j++)
        free(s->hosts[j].s);
    free(s->hosts);
    flb_h1front_free(s->front);
    memset(s, 0, sizeof(*s));
}

void flb_l7_service_copy(struct flb_l7_table *lt, uint32_t i, const struct flb_l7_table *old, uint32_t from)
{
    lt->svc[i] = old->svc[from];
}

static void routes_put(struct flb_l7_table *lt)
{
    if (lt->rshare != NULL && atomic_fetch_sub_explicit(&lt->rshare->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < lt->nlst; i++)
        flb_tls_put(lt->lst[i].tls);
    flb_vhost_free(&lt->vhost);
    flb_vhost_free(&lt->sni);
    free(lt->lst);
    free(lt->rshare);
}

void flb_l7_table_reuse_routes(struct flb_l7_table *lt, const struct flb_l7_table *old)
{
    routes_put(lt);
    lt->lst = old->lst;
    lt->vhost = old->vhost;
    lt->sni = old->sni;
    lt->rshare = old->rshare;
    atomic_fetch_add_explicit(&lt->rshare->refs, 1, memory_order_relaxed);
}

void flb_l7_table_free(struct flb_l7_table *lt)
{
    if (lt == NULL)
        return;
    routes_put(lt);
    free(lt->svc);
    free(lt);
}

/* --- worker hooks ------------------------------------------------------------------------------- */

int flb_l7_listener(const struct flb_table *t, const struct flb_route_listener *rl)
{
    if (t->l7 == NULL)
        return 0;
    const struct flb_l7_listener *ll = &t->l7->lst[rl - t->lst];

    return ll->kind != FLB_L7_TCP || ll->tls != NULL;
}

void flb_l7_accept(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer)
{
    struct flb_l7_listener *ll = &w->table->l7->lst[rl - w->table->lst];

    if (ll->kind == FLB_L7_TCP) /* a tcp-mode service's own TLS listener: bytes, once decrypted */
        flb_conn_start_tls(w, rl, fd, peer, ll->tls, ll->handshake_ms);
    else if (ll->sni)
        flb_pass_start(w, rl, fd, peer); /* its ClientHello first: passthrough or termination */
    else
        flb_h1conn_start(w, rl, fd, peer);
}

void flb_l7_event(struct flb_worker *w, struct flb_evsrc *src, uint32_t events)
{
    switch (src->kind) {
    case FLB_EV_H1_CLIENT:
        flb_h1conn_event(w, container_of(src, struct flb_h1conn, csrc), 0, events);
        break;
    case FLB_EV_PASS:
        flb_pass_event(w, container_of(src, struct flb_pass, src), events);
        break;
    case FLB_EV_H1_SERVER: {
        struct flb_h1srv *s = container_of(src, struct flb_h1srv, src);
        if (s->fd == -1)
            break; /* closed earlier in this batch */
        if (s->owner != NULL)
            flb_h1conn_event(w, s->owner, 1, events);
        else
            flb_h1pool_event(w, s, events);
        break;
    }
    }
}

int flb_l7_timeout(struct flb_worker *w, int timeout)
{
    int mine = flb_wheel_timeout(&flb_l7_worker(w)->wheel, w->now);

    if (!flb_list_empty(&flb_l7_worker(w)->ready))
        return 0;

    if (mine >= 0 && (timeout < 0 || mine < timeout))
        return mine;
    return timeout;
}

static void fire(void *ctx, struct flb_timer *t)
{
    struct flb_l7_timer *lt = container_of(t, struct flb_l7_timer, t);

    if (lt->kind == FLB_L7_T_CONN)
        flb_h1conn_timeout(ctx, container_of(lt, struct flb_h1conn, timer));
    else if (lt->kind == FLB_L7_T_PASS)
        flb_pass_timeout(ctx, container_of(lt, struct flb_pass, timer));
    else
        flb_h1pool_expire(ctx, container_of(lt, struct flb_h1srv, timer));
}

void flb_l7_turn(struct flb_worker *w)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    flb_wheel_run(&lw->wheel, w->now, fire, w);
    flb_h1conn_run_ready(w);
    flb_h1conn_reap(w);
    flb_h1pool_reap(lw);
    flb_alog_flush(w);
}

void flb_l7_close_all(struct flb_worker *w)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_h1conn *h;

    flb_pass_close_all(w);
    while ((h = flb_list_first(&lw->conns, struct flb_h1conn, link)) != NULL)
        flb_h1conn_close(w, h);
    flb_h1conn_reap(w);
    flb_h1pool_clear(lw);
    flb_alog_flush(w);
}
