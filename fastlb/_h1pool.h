/* _h1pool.h: backend connections in HTTP mode (struct flb_h1srv, in _h1conn-t.h) and each worker's
 * pool of idle ones, kept for the next request to the same backend.
 *
 * A backend connection is registered in epoll once, with itself as the event source; its owner
 * (the client connection using it, or none while pooled) says where an event goes. Pooling and
 * taking it back therefore cost no syscall.
 *
 * A connection is pooled only after a complete response that leaves it reusable (both sides keep
 * alive, nothing unread). It waits in its backend record's list for this worker (struct
 * flb_h1idle), so that finding one costs the same with one backend or thousands: a pooled connection
 * holds a reference on the table it was used with, which keeps its backend record alive. While idle
 * it is polled for input: anything the backend sends (its FIN, or bytes it has no request for)
 * closes it.
 *
 * The pool follows demand: there is no cap per backend, so every client a backend serves at once can
 * keep its backend connection; the most recently pooled connection is taken first, so connections
 * beyond what the load needs go unused and close after the engine's pool_idle. A worker keeps at most
 * pool_max / workers; past it the connection pooled longest ago is closed to make room. */
#ifndef FLB_H1POOL_H
#define FLB_H1POOL_H

#include "_engine-t.h"
#include "_h1conn-t.h"

#include <sys/epoll.h>

/* What a pooled connection is polled for; an owner reading a response asks for the same, so that
 * handing a connection over changes nothing in epoll. */
#define FLB_H1SRV_READ (EPOLLIN | EPOLLRDHUP)

/* The record of a new backend socket <fd>, owned by <owner>, not yet in epoll; NULL without memory
 * (the caller still owns <fd>). */
struct flb_h1srv *flb_h1srv_new(struct flb_h1conn *owner, int fd);

/* Closes the connection (which takes it out of epoll); the record is freed after the batch. */
void flb_h1srv_close(struct flb_worker *w, struct flb_h1srv *s);

/* An idle connection to <be> at <addr>, taken out of the pool and owned by <owner>; NULL when none. */
struct flb_h1srv *flb_h1pool_take(struct flb_worker *w, struct flb_h1conn *owner, const struct flb_backend *be,
                                  const struct sockaddr_storage *addr, socklen_t len);

/* Pools <s>, connected to <be> at <addr> (or closes it without memory, with pool_max 0, or once
 * fastlb stops accepting). Takes a reference on <t>. */
void flb_h1pool_put(struct flb_worker *w, struct flb_table *t, struct flb_backend *be,
                    const struct sockaddr_storage *addr, socklen_t len, struct flb_h1srv *s);

/* An event on a pooled connection. */
void flb_h1pool_event(struct flb_worker *w, struct flb_h1srv *s, uint32_t events);

void flb_h1pool_expire(struct flb_worker *w, struct flb_h1srv *s);

/* Frees the records retired since the last call (after each batch of events). */
void flb_h1pool_reap(struct flb_l7_worker *lw);

/* Closes every pooled connection of a worker (the worker's thread, or once it is stopped). */
void flb_h1pool_clear(struct flb_l7_worker *lw);

#endif
