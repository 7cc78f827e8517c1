/* _h1pool.h: each worker's idle backend connections, kept for the next request to the same backend
 * (types in _h1conn-t.h: struct flb_h1idle).
 *
 * A connection is pooled only after a complete response that leaves it reusable (both sides keep
 * alive, nothing unread). It is found again by backend record and address: a pooled connection holds
 * a reference on the table it was used with, which keeps its backend record alive, so a pointer
 * match can never be a recycled record. While idle it is polled for input: anything the backend
 * sends (its FIN, or bytes it has no request for) closes it. At most FLB_L7_POOL_MAX connections per
 * worker, FLB_L7_POOL_PER_BACKEND per backend, each closed after FLB_L7_POOL_IDLE_MS unused. */
#ifndef FLB_H1POOL_H
#define FLB_H1POOL_H

#include "_engine-t.h"
#include "_h1conn-t.h"

/* An idle connection to <be> at <addr>, taken out of the pool and out of epoll; -1 when none. */
int flb_h1pool_take(struct flb_worker *w, const struct flb_backend *be, const struct sockaddr_storage *addr,
                    socklen_t len);

/* Pools <fd> (out of epoll), connected to <be> at <addr>, or closes it when the pool is full. Takes a
 * reference on <t>. */
void flb_h1pool_put(struct flb_worker *w, struct flb_table *t, struct flb_backend *be,
                    const struct sockaddr_storage *addr, socklen_t len, int fd);

void flb_h1pool_event(struct flb_worker *w, struct flb_h1idle *i, uint32_t events);

void flb_h1pool_expire(struct flb_worker *w, struct flb_h1idle *i);

/* Frees the entries retired since the last call (after each batch of events). */
void flb_h1pool_reap(struct flb_l7_worker *lw);

/* Closes every pooled connection of a worker (the worker's thread, or once it is stopped). */
void flb_h1pool_clear(struct flb_l7_worker *lw);

#endif
