/* _h1pool.c: backend connections and the idle pool (see _h1pool.h). */
#include "_api.h"

#include "_h1pool.h"

#include "_evloop.h"
#include "_l7.h"
#include "_list.h"
#include "_route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int same_addr(const struct flb_h1srv *s, const struct sockaddr_storage *addr, socklen_t len)
{
    return s->addrlen == len && memcmp(&s->addr, addr, len) == 0;
}

/* This worker's idle list of <be>; NULL when no worker has pooled a connection to it yet. */
static struct flb_h1idle *idle_list(struct flb_l7_worker *lw, const struct flb_backend *be)
{
    struct flb_h1idle *lists = atomic_load_explicit(&((struct flb_backend *)be)->idle, memory_order_acquire);

    return lists != NULL ? &lists[lw->id] : NULL;
}

/* The same, allocating every worker's lists on first use; NULL without memory. Workers race for
 * the allocation: one wins, the others free theirs. */
static struct flb_h1idle *idle_list_make(struct flb_l7_worker *lw, struct flb_backend *be)
{
    struct flb_h1idle *lists = atomic_load_explicit(&be->idle, memory_order_acquire), *expected = NULL;
    uint32_t n = lw->l7->nworkers;

    if (lists != NULL)
        return &lists[lw->id];
    if (posix_memalign((void **)&lists, 64, (size_t)n * sizeof(*lists)) != 0)
        return NULL;
    memset(lists, 0, (size_t)n * sizeof(*lists));
    for (uint32_t i = 0; i < n; i++)
        flb_list_init(&lists[i].head);
    if (!atomic_compare_exchange_strong_explicit(&be->idle, &expected, lists, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(lists);
        lists = expected;
    }
    return &lists[lw->id];
}

struct flb_h1srv *flb_h1srv_new(struct flb_h1conn *owner, int fd)
{
    struct flb_h1srv *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->src.kind = FLB_EV_H1_SERVER;
    s->fd = fd;
    s->owner = owner;
    s->timer.kind = FLB_L7_T_IDLE;
    return s;
}

/* Retires a record that is in no list. Its memory goes in flb_h1pool_reap: an event of the
 * current batch may still point at it. */
static void retire(struct flb_l7_worker *lw, struct flb_h1srv *s)
{
    if (s->fd != -1) {
        close(s->fd); /* closing also takes it out of epoll */
        FLB_LIVE_DEC(fds);
    }
    s->fd = -1;
    s->owner = NULL;
    if (s->table != NULL)
        flb_table_put(s->table);
    s->table = NULL;
    flb_list_add_head(&lw->srv_dead, &s->link);
}

void flb_h1srv_close(struct flb_worker *w, struct flb_h1srv *s)
{
    retire(flb_l7_worker(w), s);
}

static void unlink_idle(struct flb_l7_worker *lw, struct flb_h1srv *s)
{
    flb_list_del(&s->link);
    flb_list_del(&s->lru);
    lw->npool--;
    atomic_fetch_sub_explicit(&s->be->c.idle, 1, memory_order_relaxed);
    flb_timer_stop(&lw->wheel, &s->timer.t);
}

void flb_h1pool_reap(struct flb_l7_worker *lw)
{
    struct flb_h1srv *s;

    while ((s = flb_list_first(&lw->srv_dead, struct flb_h1srv, link)) != NULL) {
        flb_list_del(&s->link);
        free(s);
    }
}

struct flb_h1srv *flb_h1pool_take(struct flb_worker *w, struct flb_h1conn *owner, const struct flb_backend *be,
                                  const struct sockaddr_storage *addr, socklen_t len)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_h1idle *list = idle_list(lw, be);
    struct flb_h1srv *s;

    if (list == NULL)
        return NULL;
    /* Every connection of the list is to <be>; its address differs only if the backend moved. */
    flb_list_for_each (s, &list->head, link) {
        if (same_addr(s, addr, len)) {
            unlink_idle(lw, s);
            flb_table_put(s->table);
            s->table = NULL;
            s->be = NULL;
            s->owner = owner;
            return s;
        }
    }
    return NULL;
}

void flb_h1pool_put(struct flb_worker *w, struct flb_table *t, struct flb_backend *be,
                    const struct sockaddr_storage *addr, socklen_t len, struct flb_h1srv *s)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    uint32_t max = lw->l7->pool_max;
    struct flb_h1idle *list;

    s->owner = NULL;
    /* once fastlb stops accepting, no request will want it (_drain.h) */
    if (max == 0 || !atomic_load_explicit(&w->e->accepting, memory_order_relaxed) ||
        (list = idle_list_make(lw, be)) == NULL ||
        flb_evloop_want(w->epfd, s->fd, &s->src, &s->want, FLB_H1SRV_READ) != FLB_OK) {
        retire(lw, s);
        return;
    }
    /* Full: the connection pooled longest ago makes room (the one least likely to be wanted). */
    if (lw->npool >= max) {
        struct flb_h1srv *old = flb_list_first(&lw->pool, struct flb_h1srv, lru);
        unlink_idle(lw, old);
        retire(lw, old);
    }
    s->be = be;
    memcpy(&s->addr, addr, len);
    s->addrlen = len;
    s->table = flb_table_get(t);
    /* Most recently pooled first: the next request takes the connection least likely to have been
     * closed by the backend, and the surplus left at the tail goes unused until its timer closes it,
     * so the pool follows demand down as well as up. */
    flb_list_add_head(&list->head, &s->link);
    flb_list_add_tail(&lw->pool, &s->lru);
    lw->npool++;
    atomic_fetch_add_explicit(&be->c.idle, 1, memory_order_relaxed);
    flb_timer_arm(&lw->wheel, &s->timer.t, w->now + lw->l7->pool_idle_ms);
}

void flb_h1pool_event(struct flb_worker *w, struct flb_h1srv *s, uint32_t events)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    char c;

    (void)events;
    /* The event may have been reported while the connection was still in use and its bytes read
     * since: only what is there now (its FIN, an error, bytes nobody asked for) retires it. */
    if (recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    unlink_idle(lw, s);
    retire(lw, s);
}

void flb_h1pool_expire(struct flb_worker *w, struct flb_h1srv *s)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    unlink_idle(lw, s);
    retire(lw, s);
}

void flb_h1pool_clear(struct flb_l7_worker *lw)
{
    struct flb_h1srv *s;

    while ((s = flb_list_first(&lw->pool, struct flb_h1srv, lru)) != NULL) {
        unlink_idle(lw, s);
        retire(lw, s);
    }
    flb_h1pool_reap(lw);
}
