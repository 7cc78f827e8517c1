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

/* Whether <l>'s address is free to listen on for this process alone: binds a probe socket there
 * without SO_REUSEPORT, which fails with EADDRINUSE while any socket listens on the address (or on
 * the wildcard address of its port), SO_REUSEPORT ones of other processes included; the listeners'
 * own SO_REUSEPORT would bind beside those and share the connections with them unseen. The probe is
 * closed at once. FLB_OK, or FLB_ERR with errno. Not meaningful while this process itself listens
 * on an address that overlaps (flb_listener_overlap): its own sockets fail the probe too. */
int flb_listener_probe(const struct flb_listener *l);

/* Whether a listener on <a> and one on <b> would take each other's connections: same family and
 * port, and the same address or either one the wildcard. */
int flb_listener_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Opens one non-blocking, close-on-exec SO_REUSEPORT socket per worker, bound and listening.
 * All or nothing: on failure none stays open, and FLB_ERR is returned with errno. Control thread. */
int flb_listener_open(struct flb_listener *l);

/* Like flb_listener_open, but worker i < <n> takes a duplicate of <fds>[i], a listening socket
 * handed over by another process (hot upgrade: the socket and its accept queue are shared, never
 * rebound), made non-blocking and close-on-exec; workers beyond <n> bind a new SO_REUSEPORT socket
 * beside them. <fds> stay the caller's. All or nothing, FLB_ERR with errno (ENOTSOCK, EINVAL for a
 * socket that is not listening). Control thread. */
int flb_listener_adopt(struct flb_listener *l, const int *fds, uint32_t n);

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
