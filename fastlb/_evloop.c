/* _evloop.c: clock, epoll interest and the timer wheel (see _evloop.h). */
#include "_api.h"

#include "_evloop.h"
#include "_list.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

uint64_t flb_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int flb_evloop_want(int epfd, int fd, struct flb_evsrc *src, uint32_t *cur, uint32_t want)
{
    struct epoll_event ev;
    int op;

    if (want == *cur)
        return FLB_OK;
    if (want == 0)
        op = EPOLL_CTL_DEL;
    else if (*cur == 0)
        op = EPOLL_CTL_ADD;
    else
        op = EPOLL_CTL_MOD;
    memset(&ev, 0, sizeof(ev));
    ev.events = want;
    ev.data.ptr = src;
    if (epoll_ctl(epfd, op, fd, &ev) == -1)
        return FLB_ERR;
    *cur = want;
    return FLB_OK;
}

void flb_wheel_init(struct flb_wheel *w, uint64_t now)
{
    memset(w, 0, sizeof(*w));
    for (size_t i = 0; i < FLB_WHEEL_SLOTS; i++)
        flb_list_init(&w->slot[i]);
    w->tick = now / FLB_TICK_MS;
}

static void file_timer(struct flb_wheel *w, struct flb_timer *t)
{
    uint64_t tick = (t->deadline + FLB_TICK_MS - 1) / FLB_TICK_MS;

    /* Never file in the past (the slot would wait a whole revolution) nor beyond one revolution
     * (the slot would come round early: harmless, the timer is simply re-filed then). */
    if (tick <= w->tick)
        tick = w->tick + 1;
    if (tick > w->tick + FLB_WHEEL_SLOTS - 1)
        tick = w->tick + FLB_WHEEL_SLOTS - 1;
    t->at = tick;
    flb_list_add_head(&w->slot[tick % FLB_WHEEL_SLOTS], &t->link);
    w->count++;
}

static void unfile_timer(struct flb_wheel *w, struct flb_timer *t)
{
    flb_list_del(&t->link);
    w->count--;
}

void flb_timer_arm(struct flb_wheel *w, struct flb_timer *t, uint64_t deadline)
{
    if (flb_list_linked(&t->link)) {
        if (deadline >= t->deadline) {
            t->deadline = deadline;
            return;
        }
        unfile_timer(w, t);
    }
    t->deadline = deadline;
    file_timer(w, t);
}

void flb_timer_stop(struct flb_wheel *w, struct flb_timer *t)
{
    if (flb_list_linked(&t->link))
        unfile_timer(w, t);
}

void flb_wheel_run(struct flb_wheel *w, uint64_t now, void (*fire)(void *ctx, struct flb_timer *t), void *ctx)
{
    uint64_t target = now / FLB_TICK_MS;
    uint64_t steps = target > w->tick ? target - w->tick : 0;

    if (steps > FLB_WHEEL_SLOTS)
        steps = FLB_WHEEL_SLOTS; /* a long stall: one pass over every slot covers everything */
    for (uint64_t i = 1; i <= steps; i++) {
        struct flb_list list;
        struct flb_timer *t;

        /* Detach the slot first: re-filed timers and timers armed by <fire> go to fresh lists. A
         * timer stopped meanwhile (by <fire> for another) leaves <list> like any list. */
        flb_list_take_all(&list, &w->slot[(w->tick + i) % FLB_WHEEL_SLOTS]);
        while ((t = flb_list_first(&list, struct flb_timer, link)) != NULL) {
            unfile_timer(w, t);
            if (t->deadline <= now) {
                fire(ctx, t);
            } else {
                /* file relative to the tick being run, so it lands in a later slot */
                uint64_t saved = w->tick;
                w->tick = saved + i;
                file_timer(w, t);
                w->tick = saved;
            }
        }
    }
    if (target > w->tick)
        w->tick = target;
}

int flb_wheel_timeout(const struct flb_wheel *w, uint64_t now)
{
    if (w->count == 0)
        return -1;
    for (uint64_t i = 1; i <= FLB_WHEEL_SLOTS; i++) {
        if (!flb_list_empty(&w->slot[(w->tick + i) % FLB_WHEEL_SLOTS])) {
            uint64_t when = (w->tick + i) * FLB_TICK_MS;
            return when <= now ? 0 : (int)(when - now);
        }
    }
    return FLB_TICK_MS;
}
