/* _evloop.h: the pieces of a worker's loop that know nothing of connections: the monotonic clock,
 * epoll interest changes, and the timer wheel. One wheel per worker, touched by its worker only. */
#ifndef FLB_EVLOOP_H
#define FLB_EVLOOP_H

#include "_evloop-t.h"

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC (vDSO: no syscall). Not the _COARSE clock: it lags by up to a
 * jiffy, and a loop that slept until a tick would wake to find the tick not yet due. */
uint64_t flb_now_ms(void);

/* Changes the epoll interest of <fd> from *<cur> to <want> (EPOLLIN/EPOLLOUT bits), with no
 * syscall when they are equal. An fd with no interest is removed from epoll rather than kept with
 * an empty mask: level-triggered epoll reports EPOLLHUP/EPOLLERR even for an empty mask, which
 * would spin on a connection that waits for the other side. Returns FLB_OK or FLB_ERR. */
int flb_evloop_want(int epfd, int fd, struct flb_evsrc *src, uint32_t *cur, uint32_t want);

void flb_wheel_init(struct flb_wheel *w, uint64_t now);

/* Schedules <t> to fire at <deadline>. A timer already scheduled no later than that only has its
 * deadline stored; an earlier deadline re-files it. */
void flb_timer_arm(struct flb_wheel *w, struct flb_timer *t, uint64_t deadline);

/* Pushes the deadline of a scheduled timer later: one store (see struct flb_timer). */
static inline void flb_timer_touch(struct flb_timer *t, uint64_t deadline)
{
    t->deadline = deadline;
}

void flb_timer_stop(struct flb_wheel *w, struct flb_timer *t);

/* Runs the ticks up to <now>: calls <fire>(ctx, t) for each timer whose deadline has passed (the
 * timer is unscheduled first, so <fire> may free it or re-arm it) and re-files the others. */
void flb_wheel_run(struct flb_wheel *w, uint64_t now, void (*fire)(void *ctx, struct flb_timer *t), void *ctx);

/* Milliseconds until the next non-empty slot (0 if due), or -1 when no timer is scheduled. */
int flb_wheel_timeout(const struct flb_wheel *w, uint64_t now);

#endif
