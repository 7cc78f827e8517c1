/* _h1pool.c: backend connections and the idle pool (see _h1pool.h). */
#include "_api.h"

#include "_h1pool.h"

#include "_evloop.h"
#include "_l7.h"
#include "_route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static uint32_t bucket(const struct flb_backend *be)
{
    uint64_t p = (uint64_t)(uintptr_t)be;

    return (uint32_t)((p >> 4) ^ (p >> 12)) & (FLB_L7_POOL_BUCKETS - 1);
}

static int same_addr(const struct flb_h1srv *s, const struct sockaddr_storage *addr, socklen_t len)
{
    return s->addrlen == len && memcmp(&s->addr, addr, len) == 0;
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
    s->next = lw->srv_dead;
    lw->srv_dead = s;
}

void flb_h1srv_close(struct flb_worker *w, struct flb_h1srv *s)
{
    retire(flb_l7_worker(w), s);
}

static void unlink_idle(struct flb_l7_worker *lw, struct flb_h1srv *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        lw->pool[bucket(s->be)] = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    lw->npool--;
    flb_timer_stop(&lw->wheel, &s->timer.t);
}

void flb_h1pool_reap(struct flb_l7_worker *lw)
{
    struct flb_h1srv *s;

    while ((s = lw->srv_dead) != NULL) {
        lw->srv_dead = s->next;
        free(s);
    }
}

struct flb_h1srv *flb_h1pool_take(struct flb_worker *w, struct flb_h1conn *owner, const struct flb_backend *be,
                                  const struct sockaddr_storage *addr, socklen_t len)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_h1srv *s;

    for (s = lw->pool[bucket(be)]; s != NULL; s = s->next)
        if (s->be == be && same_addr(s, addr, len))
            break;
    if (s == NULL)
        return NULL;
    unlink_idle(lw, s);
    flb_table_put(s->table);
    s->table = NULL;
    s->be = NULL;
    s->owner = owner;
    return s;
}

void flb_h1pool_put(struct flb_worker *w, struct flb_table *t, struct flb_backend *be,
                    const struct sockaddr_storage *addr, socklen_t len, struct flb_h1srv *s)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    uint32_t b = bucket(be), same = 0;

    s->owner = NULL;
    for (struct flb_h1srv *i = lw->pool[b]; i != NULL; i = i->next)
        same += i->be == be;
    if (lw->npool >= FLB_L7_POOL_MAX || same >= FLB_L7_POOL_PER_BACKEND ||
        flb_evloop_want(w->epfd, s->fd, &s->src, &s->want, FLB_H1SRV_READ) != FLB_OK) {
        retire(lw, s);
        return;
    }
    s->be = be;
    memcpy(&s->addr, addr, len);
    s->addrlen = len;
    s->table = flb_table_get(t);
    /* most recently used first: the connection least likely to have been closed by the backend */
    s->prev = NULL;
    s->next = lw->pool[b];
    if (s->next != NULL)
        s->next->prev = s;
    lw->pool[b] = s;
    lw->npool++;
    flb_timer_arm(&lw->wheel, &s->timer.t, w->now + FLB_L7_POOL_IDLE_MS);
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
    for (uint32_t b = 0; b < FLB_L7_POOL_BUCKETS; b++) {
        struct flb_h1srv *s;
        while ((s = lw->pool[b]) != NULL) {
            unlink_idle(lw, s);
            retire(lw, s);
        }
    }
    flb_h1pool_reap(lw);
}
