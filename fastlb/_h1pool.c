/* _h1pool.c: idle backend connections (see _h1pool.h). */
#include "_api.h"

#include "_h1pool.h"

#include "_evloop.h"
#include "_l7.h"
#include "_route.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static uint32_t bucket(const struct flb_backend *be)
{
    uint64_t p = (uint64_t)(uintptr_t)be;

    return (uint32_t)((p >> 4) ^ (p >> 12)) & (FLB_L7_POOL_BUCKETS - 1);
}

static int same_addr(const struct flb_h1idle *i, const struct sockaddr_storage *addr, socklen_t len)
{
    return i->addrlen == len && memcmp(&i->addr, addr, len) == 0;
}

static void unlink_idle(struct flb_l7_worker *lw, struct flb_h1idle *i)
{
    if (i->prev != NULL)
        i->prev->next = i->next;
    else
        lw->pool[bucket(i->be)] = i->next;
    if (i->next != NULL)
        i->next->prev = i->prev;
    lw->npool--;
    flb_timer_stop(&lw->wheel, &i->timer.t);
}

/* Retires an entry already unlinked, closing its fd when <fd_too>. Its memory goes in
 * flb_h1pool_reap: an event of the current batch may still point at it. */
static void free_idle(struct flb_l7_worker *lw, struct flb_h1idle *i, int fd_too)
{
    if (fd_too) {
        close(i->fd); /* closing also takes it out of epoll */
        FLB_LIVE_DEC(fds);
    }
    i->fd = -1;
    flb_table_put(i->table);
    i->table = NULL;
    i->next = lw->idle_dead;
    lw->idle_dead = i;
}

void flb_h1pool_reap(struct flb_l7_worker *lw)
{
    struct flb_h1idle *i;

    while ((i = lw->idle_dead) != NULL) {
        lw->idle_dead = i->next;
        free(i);
    }
}

int flb_h1pool_take(struct flb_worker *w, const struct flb_backend *be, const struct sockaddr_storage *addr,
                    socklen_t len)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    struct flb_h1idle *i;
    int fd;

    for (i = lw->pool[bucket(be)]; i != NULL; i = i->next)
        if (i->be == be && same_addr(i, addr, len))
            break;
    if (i == NULL)
        return -1;
    unlink_idle(lw, i);
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, i->fd, NULL);
    fd = i->fd;
    free_idle(lw, i, 0);
    return fd;
}

void flb_h1pool_put(struct flb_worker *w, struct flb_table *t, struct flb_backend *be,
                    const struct sockaddr_storage *addr, socklen_t len, int fd)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);
    uint32_t b = bucket(be), same = 0;
    struct flb_h1idle *i;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};

    for (i = lw->pool[b]; i != NULL; i = i->next)
        same += i->be == be;
    if (lw->npool >= FLB_L7_POOL_MAX || same >= FLB_L7_POOL_PER_BACKEND || (i = calloc(1, sizeof(*i))) == NULL)
        goto close;
    i->src.kind = FLB_EV_H1_IDLE;
    ev.data.ptr = &i->src;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        free(i);
        goto close;
    }
    i->fd = fd;
    i->be = be;
    memcpy(&i->addr, addr, len);
    i->addrlen = len;
    i->table = flb_table_get(t);
    i->timer.kind = FLB_L7_T_IDLE;
    /* most recently used first: the connection least likely to have been closed by the backend */
    i->next = lw->pool[b];
    if (i->next != NULL)
        i->next->prev = i;
    lw->pool[b] = i;
    lw->npool++;
    flb_timer_arm(&lw->wheel, &i->timer.t, w->now + FLB_L7_POOL_IDLE_MS);
    return;
close:
    close(fd);
    FLB_LIVE_DEC(fds);
}

void flb_h1pool_event(struct flb_worker *w, struct flb_h1idle *i, uint32_t events)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    if (i->fd == -1)
        return; /* taken or closed earlier in this batch */
    unlink_idle(lw, i);
    free_idle(lw, i, 1);
}

void flb_h1pool_expire(struct flb_worker *w, struct flb_h1idle *i)
{
    struct flb_l7_worker *lw = flb_l7_worker(w);

    unlink_idle(lw, i);
    free_idle(lw, i, 1);
}

void flb_h1pool_clear(struct flb_l7_worker *lw)
{
    for (uint32_t b = 0; b < FLB_L7_POOL_BUCKETS; b++) {
        struct flb_h1idle *i;
        while ((i = lw->pool[b]) != NULL) {
            unlink_idle(lw, i);
            free_idle(lw, i, 1);
        }
    }
    flb_h1pool_reap(lw);
}
