/* _l7.h: HTTP mode as the engine sees it (types in _l7-t.h): the L7 side of a table, the engine's
 * and each worker's L7 state, and the few hooks the engine calls. The HTTP connection itself is in
 * _h1conn.h, what it does with a request in _h1policy.h, routing in _vhost.h.
 *
 * Hooks (each one call in _engine.c / _route.c):
 *   worker_accept: flb_l7_listener() says whether a listener is the L7 side's (HTTP, or TLS terminated
 *                  before tcp mode's bytes); flb_l7_accept() takes it;
 *   dispatch:      flb_l7_event() for the FLB_EV_H1_* event kinds;
 *   the loop:      flb_l7_timeout() bounds epoll_wait, flb_l7_turn() after each batch of events;
 *   close_all:     flb_l7_close_all();
 *   engine life:   flb_l7_new() / flb_l7_stop() / flb_l7_free();
 *   table life:    flb_l7_table_free() from flb_table_put().
 */
#ifndef FLB_L7_H
#define FLB_L7_H

#include "_engine-t.h"
#include "_l7-t.h"

/* --- engine and control thread ------------------------------------------------------------------ */

/* L7 state for an engine of <nworkers>, keeping at most <pool_max> idle backend connections in all,
 * each for at most <pool_idle_ms> unused. NULL with errno. */
struct flb_l7 *flb_l7_new(uint32_t nworkers, uint32_t pool_max, uint32_t pool_idle_ms);

/* Closes what the workers left behind (idle backend connections); the workers must be stopped. */
void flb_l7_stop(struct flb_l7 *l);

void flb_l7_free(struct flb_l7 *l);

/* Writes the access log to <fd> (made non-blocking; -1: no log). Before the engine starts. */
int flb_l7_set_access_log(struct flb_l7 *l, int fd);

/* Keys the sticky cookie values (the same key in every fastlb of a fleet keeps them valid). */
void flb_l7_set_cookie_key(struct flb_l7 *l, uint64_t key);

/* A zeroed L7 table for <nsvc> services and <nlst> listeners. NULL with errno. */
struct flb_l7_table *flb_l7_table_new(uint32_t nsvc, uint32_t nlst);

/* Frees an L7 table (NULL is fine): its listener side and routes when no other table holds them;
 * its services are flb_l7_service_free's, called by flb_table_put for each one it frees. */
void flb_l7_table_free(struct flb_l7_table *lt);

/* Frees the HTTP side of service <i>. */
void flb_l7_service_free(struct flb_l7_table *lt, uint32_t i);

/* Service <i> of <lt> becomes service <from> of <old> (the owned parts shared: see flb_table_reuse). */
void flb_l7_service_copy(struct flb_l7_table *lt, uint32_t i, const struct flb_l7_table *old, uint32_t from);

/* <lt> (new, same listeners, routes and service indices as <old>) shares <old>'s listener side and
 * routes instead of building its own. */
void flb_l7_table_reuse_routes(struct flb_l7_table *lt, const struct flb_l7_table *old);

/* A new epoch for a service's auth cache entries. */
uint64_t flb_l7_epoch(struct flb_l7 *l);

/* Fills <out> with the sticky cookie value of backend identity <id>. */
void flb_l7_cookie_value(const struct flb_l7 *l, const char *id, char out[FLB_L7_COOKIE_HEX + 1]);

/* --- worker hooks ------------------------------------------------------------------------------- */

static inline struct flb_l7_worker *flb_l7_worker(struct flb_worker *w)
{
    return &w->e->l7->w[w->id];
}

/* Whether listener <rl> of <t> is taken by flb_l7_accept: it speaks HTTP (an http service's port, a
 * vhost or an appid listener) or terminates TLS (a tcp service's own TLS port, then _conn.h's). */
int flb_l7_listener(const struct flb_table *t, const struct flb_route_listener *rl);

/* Takes over client <fd>, accepted on <rl> (the caller holds its slot). */
void flb_l7_accept(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer);

/* An epoll event for an FLB_EV_H1_* source. */
void flb_l7_event(struct flb_worker *w, struct flb_evsrc *src, uint32_t events);

/* <timeout> (ms, -1: none) shortened to the next L7 timer. */
int flb_l7_timeout(struct flb_worker *w, int timeout);

/* After a batch of events: runs the L7 timers, frees closed connections, flushes the access log. */
void flb_l7_turn(struct flb_worker *w);

/* Closes every HTTP connection and idle backend connection of the worker. */
void flb_l7_close_all(struct flb_worker *w);

#endif
