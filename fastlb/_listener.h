/* _listener.h: listening addresses (types in _listener-t.h). */
#ifndef FLB_LISTENER_H
#define FLB_LISTENER_H

#include "_listener-t.h"

/* Listen backlog of each worker's socket. */
#define FLB_LISTEN_BACKLOG 4096

/* A new record for <address> (parsed into <sa>), with one reference and no socket open yet.
 * NULL with errno on failure. */
struct flb_listener *flb_listener_new(const char *address, const struct sockaddr *sa, socklen_t len,
                                      uint32_t nworkers);

/* Opens one non-blocking, close-on-exec SO_REUSEPORT socket per worker, bound and listening.
 * All or nothing: on failure none stays open, and FLB_ERR is returned with errno. Control thread. */
int flb_listener_open(struct flb_listener *l);

/* Closes every socket still open (idempotent). Control thread, once no worker polls them. */
void flb_listener_close(struct flb_listener *l);

static inline struct flb_listener *flb_listener_get(struct flb_listener *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

/* Drops a reference (any thread); the last one frees the record, whose sockets must be closed. */
void flb_listener_put(struct flb_listener *l);

#endif
