/* _engine.c: the worker threads, table adoption, and the control API (see _engine.h). */
#define _GNU_SOURCE
#include "_api.h"

#include "_engine.h"

#include "_backend.h"
#include "_conn.h"
#include "_drain.h"
#include "_evloop.h"
#include "_l7.h"
#include "_list.h"
#include "_listener.h"
#include "_queue.h"
#include "_route.h"
#include "_splice.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bounded work per wakeup: events per epoll_wait, accepts per listener per wakeup. */
#define FLB_EVENTS 256
#define FLB_MAXACCEPT 16
/* While a listener is held back (maxconn, or out of fds), the loop looks again at least this often. */
#define FLB_PAUSE_RECHECK_MS 100

#define RELAXED memory_order_relaxed

static void wake(struct flb_worker *w)
{
    uint64_t one = 1;

    /* Fails only when the counter would overflow, and then the worker is awake anyway. */
    if (write(w->evfd, &one, sizeof(one)) == -1)
        return;
}

static void wake_all(struct flb_engine *e)
{
    for (uint32_t i = 0; i < e->opt.workers; i++)
        wake(&e->w[i]);
}

/* --- connection slots (maxconn) --------------------------------------------------------------- */

static uint32_t global_limit(const struct flb_engine *e, const struct flb_table *t)
{
    uint32_t lim = e->opt.maxconn;

    if (t->maxconn > 0 && (lim == 0 || t->maxconn < lim))
        lim = t->maxconn;
    return lim;
}

/* Slots are taken by incrementing first and backing out past the limit, so two workers racing for
 * the last slot cannot both win. */
static int service_add(const struct flb_service *s)
{
    if (atomic_fetch_add_explicit(&s->c->active, 1, RELAXED) >= (int64_t)s->maxconn && s->maxconn > 0) {
        atomic_fetch_sub_explicit(&s->c->active, 1, RELAXED);
        return FLB_AGAIN;
    }
    return FLB_OK;
}

int flb_engine_slot_take(struct flb_engine *e, const struct flb_table *t, const struct flb_route_listener *rl,
                         const struct flb_service *s)
{
    uint32_t glim = global_limit(e, t);

    if ((int64_t)atomic_fetch_add_explicit(&e->active, 1, RELAXED) >= (int64_t)glim && glim > 0)
        goto undo_global;
    if (atomic_fetch_add_explicit(&rl->l->active, 1, RELAXED) >= (int64_t)rl->maxconn && rl->maxconn > 0)
        goto undo_listener;
    /* s is NULL on a listener that routes per request (HTTP vhost, appid) */
    if (s != NULL && service_add(s) != FLB_OK)
        goto undo_listener;
    return FLB_OK;
undo_listener:
    atomic_fetch_sub_explicit(&rl->l->active, 1, RELAXED);
undo_global:
    atomic_fetch_sub_explicit(&e->active, 1, RELAXED);
    /* Backing out may have kept another worker from a slot that was free: let it look again. */
    if (atomic_load_explicit(&e->paused, RELAXED) > 0)
        wake_all(e);
    return FLB_AGAIN;
}

void flb_engine_slot_release(struct flb_engine *e, struct flb_listener *l, const struct flb_service *s)
{
    if (s != NULL)
        atomic_fetch_sub_explicit(&s->c->active, 1, RELAXED);
    atomic_fetch_sub_explicit(&l->active, 1, RELAXED);
    atomic_fetch_sub_explicit(&e->active, 1, RELAXED);
    if (atomic_load_explicit(&e->paused, RELAXED) > 0)
        wake_all(e);
}

int flb_engine_service_slot_take(struct flb_engine *e, const struct flb_service *s)
{
    if (service_add(s) == FLB_OK)
        return FLB_OK;
    if (atomic_load_explicit(&e->paused, RELAXED) > 0)
        wake_all(e);
    return FLB_AGAIN;
}

void flb_engine_service_slot_release(struct flb_engine *e, const struct flb_service *s)
{
    atomic_fetch_sub_explicit(&s->c->active, 1, RELAXED);
    if (atomic_load_explicit(&e->paused, RELAXED) > 0 || flb_queue_waiting(s))
        wake_all(e);
}

int flb_engine_trim(size_t min_free)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();

    if (mi.fordblks < min_free)
        return 0;
    return malloc_trim(0);
#else
    (void)min_free;
    return 0;
#endif
}

void flb_engine_wake(struct flb_engine *e, uint32_t id)
{
    wake(&e->w[id]);
}

void flb_engine_backend_release(struct flb_worker *w, const struct flb_service *s, uint32_t idx)
{
    atomic_fetch_sub_explicit(&s->be[idx]->active, 1, RELAXED);
    if (s->bemax != NULL && flb_queue_waiting(s))
        for (uint32_t i = 0; i < w->e->opt.workers; i++)
            if (i != w->id)
                wake(&w->e->w[i]);
}

/* Room for one more proxied connection's descriptors (the client's and the backend's) under fd_max.
 * The live counts are the process's (_api.h): one data plane per process. */
static int fds_free(const struct flb_engine *e)
{
    long used;

    if (e->opt.fd_max == 0)
        return 1;
    used = atomic_load_explicit(&flb_live.fds, RELAXED) + 2 * atomic_load_explicit(&flb_live.pipes, RELAXED);
    return used + 2 <= (long)e->opt.fd_max;
}

static int slot_free(const struct flb_engine *e, const struct flb_table *t, const struct flb_route_listener *rl,
                     const struct flb_service *s)
{
    uint32_t glim = global_limit(e, t);

    return fds_free(e) && (glim == 0 || atomic_load_explicit(&e->active, RELAXED) < (int64_t)glim) &&
           (rl->maxconn == 0 || atomic_load_explicit(&rl->l->active, RELAXED) < (int64_t)rl->maxconn) &&
           (s == NULL || s->maxconn == 0 || atomic_load_explicit(&s->c->active, RELAXED) < (int64_t)s->maxconn);
}

/* --- listeners as a worker polls them ---------------------------------------------------------- */

static void listener_poll(struct flb_worker *w, struct flb_listener_ws *ws)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ws->src};
    int fd = ws->l->fd[w->id];

    if (ws->polled || fd == -1)
        return;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        ws->polled = 1;
}

static void listener_unpoll(struct flb_worker *w, struct flb_listener_ws *ws)
{
    if (ws->polled) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, ws->l->fd[w->id], NULL);
        ws->polled = 0;
    }
}

/* Holds a listener out of epoll (its accept queue waits in the kernel) until a slot frees: never
 * accept-and-close. */
static void listener_pause(struct flb_worker *w, struct flb_listener_ws *ws, _Atomic uint64_t *why)
{
    listener_unpoll(w, ws);
    if (!ws->paused) {
        ws->paused = 1;
        w->npaused++;
        atomic_fetch_add_explicit(&w->e->paused, 1, RELAXED);
        atomic_fetch_add_explicit(why, 1, RELAXED);
    }
}

static void listener_unpause(struct flb_worker *w, struct flb_listener_ws *ws)
{
    if (ws->paused) {
        ws->paused = 0;
        w->npaused--;
        atomic_fetch_sub_explicit(&w->e->paused, 1, RELAXED);
    }
}

static void resume_paused(struct flb_worker *w)
{
    struct flb_table *t = w->table;

    if (t == NULL || w->now < w->resume_at)
        return;
    for (uint32_t i = 0; i < t->nlst && w->npaused > 0; i++) {
        struct flb_route_listener *rl = &t->lst[i];
        struct flb_listener_ws *ws = &rl->l->ws[w->id];
        if (ws->paused && slot_free(w->e, t, rl, flb_route_service(t, rl))) {
            listener_unpause(w, ws);
            listener_poll(w, ws);
        }
    }
}

static void worker_accept(struct flb_worker *w, struct flb_listener_ws *ws)
{
    struct flb_table *t = w->table;
    struct flb_route_listener *rl = &t->lst[ws->route];
    struct flb_service *s = flb_route_service(t, rl);
    int lfd = rl->l->fd[w->id];

    for (int i = 0; i < FLB_MAXACCEPT; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);

        /* Out of descriptors under fd_max: a connection accepted now could get no backend socket.
         * Nothing frees them but a connection closing, which wakes the paused listeners. */
        if (!fds_free(w->e)) {
            listener_pause(w, ws, &w->e->held_fds);
            w->resume_at = w->now + FLB_PAUSE_RECHECK_MS;
            return;
        }
        if (flb_engine_slot_take(w->e, t, rl, s) != FLB_OK) {
            listener_pause(w, ws, &w->e->held_maxconn);
            return;
        }
        int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            int err = errno;
            flb_engine_slot_release(w->e, rl->l, s);
            if (err == EINTR || err == ECONNABORTED)
                continue;
            if (err == EMFILE || err == ENFILE)
                atomic_fetch_add_explicit(&w->e->accept_emfile, 1, RELAXED);
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                /* Level-triggered epoll would report the queue again at once: look later. */
                listener_pause(w, ws, &w->e->held_fds);
                w->resume_at = w->now + FLB_PAUSE_RECHECK_MS;
            }
            return;
        }
        FLB_LIVE_INC(fds);
        if (flb_l7_listener(t, rl)) /* HTTP mode, or TLS */
            flb_l7_accept(w, rl, fd, (struct sockaddr *)&peer);
        else
            flb_conn_start(w, rl, fd, (struct sockaddr *)&peer);
    }
}

/* --- control requests, as a worker carries them out -------------------------------------------- */

/* Brings the worker's epoll set in line with <t> (the table it now routes with) and <old>. */
static void sync_listeners(struct flb_worker *w, struct flb_table *old, struct flb_table *t, int listening)
{
    uint32_t round = ++w->adopt_round;

    if (t != NULL) {
        for (uint32_t i = 0; i < t->nlst; i++) {
            struct flb_listener_ws *ws = &t->lst[i].l->ws[w->id];
            ws->mark = round;
            ws->route = i;
            if (!listening) {
                listener_unpoll(w, ws);
                listener_unpause(w, ws);
            } else if (!ws->paused) {
                listener_poll(w, ws);
            }
        }
    }
    if (old != NULL && old != t) {
        for (uint32_t i = 0; i < old->nlst; i++) {
            struct flb_listener_ws *ws = &old->lst[i].l->ws[w->id];
            if (ws->mark != round) {
                listener_unpoll(w, ws);
                listener_unpause(w, ws);
            }
        }
    }
}

static void close_conns(struct flb_worker *w)
{
    struct flb_conn *c;

    while ((c = flb_list_first(&w->conns, struct flb_conn, link)) != NULL)
        flb_conn_close(w, c);
    flb_conn_reap(w);
    flb_l7_close_all(w);
}

static void worker_control(struct flb_worker *w)
{
    struct flb_engine *e = w->e;
    struct flb_table *old = w->table, *t;
    uint64_t req, close_req;

    if (atomic_load_explicit(&e->request, memory_order_acquire) == w->seen)
        return;
    pthread_mutex_lock(&e->lock);
    req = atomic_load_explicit(&e->request, RELAXED);
    t = atomic_load_explicit(&e->current, memory_order_acquire);
    if (t != old)
        w->table = t != NULL ? flb_table_get(t) : NULL;
    if (w->drains != e->drains) {
        w->drains = e->drains;
        w->drain_next = 0;
    }
    pthread_mutex_unlock(&e->lock);

    sync_listeners(w, old, w->table, atomic_load_explicit(&e->accepting, RELAXED) && w->table != NULL);
    flb_drain_adopted(w, old);
    if (old != NULL && old != w->table)
        flb_table_put(old);
    close_req = atomic_load_explicit(&e->close_req, RELAXED);
    if (close_req != w->close_seen) {
        close_conns(w);
        w->close_seen = close_req;
    }

    pthread_mutex_lock(&e->lock);
    w->seen = req;
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->lock);
}

static void fire(void *ctx, struct flb_timer *t)
{
    flb_conn_timeout(ctx, container_of(t, struct flb_conn, timer));
}

static void dispatch(struct flb_worker *w, struct epoll_event *ev)
{
    struct flb_evsrc *src = ev->data.ptr;
    uint64_t count;

    switch (src->kind) {
    case FLB_EV_WAKE:
        /* the request itself is read at the top of the loop */
        if (read(w->evfd, &count, sizeof(count)) == -1)
            return;
        break;
    case FLB_EV_LISTENER: {
        struct flb_listener_ws *ws = container_of(src, struct flb_listener_ws, src);
        if (ws->polled)
            worker_accept(w, ws);
        break;
    }
    case FLB_EV_CLIENT:
        flb_conn_event(w, container_of(src, struct flb_conn, csrc), 0, ev->events);
        break;
    case FLB_EV_SERVER:
        flb_conn_event(w, container_of(src, struct flb_conn, ssrc), 1, ev->events);
        break;
    default: /* HTTP mode */
        flb_l7_event(w, src, ev->events);
        break;
    }
}

static void *worker_main(void *arg)
{
    struct flb_worker *w = arg;
    struct flb_engine *e = w->e;
    struct epoll_event ev[FLB_EVENTS];

    w->now = flb_now_ms();
    flb_wheel_init(&w->wheel, w->now);
    while (!atomic_load_explicit(&e->stopping, memory_order_acquire)) {
        worker_control(w);
        if (w->npaused > 0)
            resume_paused(w);
        int timeout = flb_wheel_timeout(&w->wheel, w->now);
        if (w->npaused > 0 && (timeout < 0 || timeout > FLB_PAUSE_RECHECK_MS))
            timeout = FLB_PAUSE_RECHECK_MS;
        int drain = flb_drain_timeout(w);
        if (drain >= 0 && (timeout < 0 || drain < timeout))
            timeout = drain;
        timeout = flb_l7_timeout(w, timeout);
        int n = epoll_wait(w->epfd, ev, FLB_EVENTS, timeout);
        w->now = flb_now_ms();
        for (int i = 0; i < n; i++)
            dispatch(w, &ev[i]);
        flb_conn_reap(w);
        flb_wheel_run(&w->wheel, w->now, fire, w);
        flb_drain_expire(w);
        if (!flb_list_empty(&w->queues))
            flb_queue_run(w);
        flb_conn_reap(w);
        flb_l7_turn(w);
    }
    close_conns(w);
    sync_listeners(w, w->table, NULL, 0);
    if (w->table != NULL)
        flb_table_put(w->table);
    w->table = NULL;
    return NULL;
}

/* --- the control API --------------------------------------------------------------------------- */

static void close_fd(int *fd)
{
    if (*fd != -1) {
        close(*fd);
        FLB_LIVE_DEC(fds);
        *fd = -1;
    }
}

struct flb_engine *flb_engine_new(const struct flb_engine_options *o)
{
    struct flb_engine *e;

    if (o->workers == 0 || o->buffer_size == 0) {
        errno = EINVAL;
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->opt = *o;
    atomic_store_explicit(&e->accepting, 1, RELAXED);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->done, NULL);
    e->w = calloc(o->workers, sizeof(*e->w));
    e->backends = flb_backend_store_new();
    e->counters = flb_counters_store_new();
    e->l7 = flb_l7_new(o->workers, o->pool_max, o->pool_idle_ms);
    if (e->w == NULL || e->backends == NULL || e->counters == NULL || e->l7 == NULL)
        goto fail;
    for (uint32_t i = 0; i < o->workers; i++) {
        struct flb_worker *w = &e->w[i];
        w->e = e;
        w->id = i;
        flb_list_init(&w->conns);
        flb_list_init(&w->dead);
        flb_list_init(&w->queues);
        w->epfd = w->evfd = -1;
    }
    for (uint32_t i = 0; i < o->workers; i++) {
        struct flb_worker *w = &e->w[i];
        struct epoll_event ev = {.events = EPOLLIN};

        w->evsrc.kind = FLB_EV_WAKE;
        ev.data.ptr = &w->evsrc;
        if (flb_pool_init(&w->pool, &e->pipes, o->pipe_max, o->workers, o->pipe_size, o->buffer_size,
                          o->splice_threshold) != FLB_OK)
            goto fail;
        if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
            goto fail;
        FLB_LIVE_INC(fds);
        if ((w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
            goto fail;
        FLB_LIVE_INC(fds);
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) == -1)
            goto fail;
    }
    return e;
fail: {
    int saved = errno;
    flb_engine_free(e);
    errno = saved;
    return NULL;
}
}

int flb_engine_start(struct flb_engine *e)
{
    sigset_t all, saved;

    if (e->running || atomic_load_explicit(&e->stopping, RELAXED)) {
        errno = EALREADY;
        return FLB_ERR;
    }
    /* Workers inherit a mask blocking every signal: signals belong to the control thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    for (uint32_t i = 0; i < e->opt.workers; i++) {
        int err = pthread_create(&e->w[i].thread, NULL, worker_main, &e->w[i]);
        if (err != 0) {
            pthread_sigmask(SIG_SETMASK, &saved, NULL);
            e->running = 1;
            flb_engine_stop(e);
            errno = err;
            return FLB_ERR;
        }
        e->w[i].started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    e->running = 1;
    return FLB_OK;
}

/* Bumps the request counter, wakes every worker and waits until each running one has carried out
 * everything requested so far. */
static void request(struct flb_engine *e)
{
    uint64_t target;

    pthread_mutex_lock(&e->lock);
    target = atomic_fetch_add_explicit(&e->request, 1, memory_order_release) + 1;
    pthread_mutex_unlock(&e->lock);
    if (!e->running)
        return;
    wake_all(e);
    pthread_mutex_lock(&e->lock);
    for (;;) {
        uint32_t behind = 0;
        for (uint32_t i = 0; i < e->opt.workers; i++)
            if (e->w[i].started && e->w[i].seen < target)
                behind++;
        if (behind == 0)
            break;
        pthread_cond_wait(&e->done, &e->lock);
    }
    pthread_mutex_unlock(&e->lock);
}

uint64_t flb_engine_publish(struct flb_engine *e, struct flb_table *t)
{
    struct flb_table *old;
    uint64_t gen;

    pthread_mutex_lock(&e->lock);
    gen = atomic_load_explicit(&e->generation, RELAXED) + 1;
    t->generation = gen;
    old = atomic_exchange_explicit(&e->current, t, memory_order_acq_rel);
    atomic_store_explicit(&e->generation, gen, RELAXED);
    if (old != NULL)
        atomic_fetch_add_explicit(&e->swaps, 1, RELAXED);
    pthread_mutex_unlock(&e->lock);
    request(e);
    if (old != NULL) {
        /* No worker polls what <t> dropped any more: close it. Connections accepted there carry on. */
        uint32_t mark = (uint32_t)gen;
        for (uint32_t i = 0; i < t->nlst; i++)
            t->lst[i].l->ctl_mark = mark;
        for (uint32_t i = 0; i < old->nlst; i++)
            if (old->lst[i].l->ctl_mark != mark)
                flb_listener_close(old->lst[i].l);
        flb_table_put(old);
    }
    flb_engine_sweep(e);
    return gen;
}

struct flb_table *flb_engine_table(struct flb_engine *e)
{
    struct flb_table *t;

    pthread_mutex_lock(&e->lock);
    t = atomic_load_explicit(&e->current, memory_order_acquire);
    if (t != NULL)
        flb_table_get(t);
    pthread_mutex_unlock(&e->lock);
    return t;
}

struct flb_listener *flb_engine_listener(struct flb_engine *e, const char *address)
{
    struct flb_table *t = atomic_load_explicit(&e->current, memory_order_acquire);

    for (uint32_t i = 0; t != NULL && i < t->nlst; i++)
        if (strcmp(t->lst[i].l->address, address) == 0)
            return t->lst[i].l;
    return NULL;
}

int flb_engine_accepting(struct flb_engine *e)
{
    return atomic_load_explicit(&e->accepting, RELAXED);
}

void flb_engine_stop_accepting(struct flb_engine *e)
{
    struct flb_table *t;

    atomic_store_explicit(&e->accepting, 0, RELAXED);
    request(e);
    t = atomic_load_explicit(&e->current, memory_order_acquire);
    for (uint32_t i = 0; t != NULL && i < t->nlst; i++)
        flb_listener_close(t->lst[i].l);
}

void flb_engine_close_all(struct flb_engine *e)
{
    atomic_fetch_add_explicit(&e->close_req, 1, RELAXED);
    request(e);
}

void flb_engine_set_drains(struct flb_engine *e, struct flb_drains *d)
{
    struct flb_drains *old;

    pthread_mutex_lock(&e->lock);
    old = e->drains;
    e->drains = d;
    pthread_mutex_unlock(&e->lock);
    request(e);
    flb_drains_free(old);
}

void flb_engine_sweep(struct flb_engine *e)
{
    /* Records lose their last reference only when a compiled service is freed: a publish that
     * frees none (its table shares every service of the one before) has nothing to sweep. */
    uint64_t freed = flb_route_freed();

    if (freed == e->swept)
        return;
    e->swept = freed;
    flb_backend_store_sweep(e->backends);
    flb_counters_store_sweep(e->counters);
}

void flb_engine_stop(struct flb_engine *e)
{
    struct flb_table *t;

    atomic_store_explicit(&e->stopping, 1, memory_order_release);
    atomic_store_explicit(&e->accepting, 0, RELAXED);
    if (e->running) {
        wake_all(e);
        for (uint32_t i = 0; i < e->opt.workers; i++) {
            if (e->w[i].started)
                pthread_join(e->w[i].thread, NULL);
            e->w[i].started = 0;
        }
        e->running = 0;
    }
    t = atomic_exchange_explicit(&e->current, NULL, memory_order_acq_rel);
    if (t != NULL) {
        for (uint32_t i = 0; i < t->nlst; i++)
            flb_listener_close(t->lst[i].l);
        flb_table_put(t);
    }
    for (uint32_t i = 0; e->w != NULL && i < e->opt.workers; i++) {
        struct flb_worker *w = &e->w[i];
        if (w->pool.pipes != NULL)
            flb_pool_destroy(&w->pool);
        close_fd(&w->epfd);
        close_fd(&w->evfd);
    }
    flb_l7_stop(e->l7);
    if (e->backends != NULL)
        flb_engine_sweep(e);
}

void flb_engine_free(struct flb_engine *e)
{
    if (e == NULL)
        return;
    flb_engine_stop(e);
    flb_backend_store_free(e->backends);
    flb_counters_store_free(e->counters);
    flb_drains_free(e->drains);
    flb_l7_free(e->l7);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->done);
    free(e->w);
    free(e);
}
