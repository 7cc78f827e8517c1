/* _pass.h: the https listener's first read (types in _pass-t.h). Before anything is terminated, the
 * ClientHello is peeked and its server name (_hello.h) looked up among the passthrough vhosts: a
 * match is handed to the tcp pump (_conn.h) for that service, bytes untouched, the hello included;
 * anything else to TLS termination (_h1conn.h), or closed when the listener has no certificate.
 * Every function runs on the worker that accepted the connection.
 */
#ifndef FLB_PASS_H
#define FLB_PASS_H

#include "_engine-t.h"
#include "_pass-t.h"

/* Takes over client <fd>, accepted on <rl> (the caller holds its listener slot). */
void flb_pass_start(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer);

/* An epoll event on a connection being read. */
void flb_pass_event(struct flb_worker *w, struct flb_pass *p, uint32_t events);

/* The handshake timeout passed before the ClientHello was whole: closed, counted. */
void flb_pass_timeout(struct flb_worker *w, struct flb_pass *p);

/* Closes every connection the worker is still reading. */
void flb_pass_close_all(struct flb_worker *w);

#endif
