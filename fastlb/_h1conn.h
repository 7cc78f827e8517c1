/* _h1conn.h: a client connection in HTTP mode (types in _h1conn-t.h).
 *
 * One request at a time: a request head is read and parsed whole, routed on its own (Host and path,
 * app id, or the listener's service), checked (allow-list, auth, redirect), edited (X-Forwarded-*,
 * the sticky cookie cut) and sent to a backend connection taken from the worker's idle pool or
 * opened (retrying elsewhere); its body follows as framed by the parser. The response head is parsed
 * and edited (HSTS, Set-Cookie) the same way and its body framed back. Only once the response is
 * complete, and the request too, is the next head looked at, so pipelined requests are answered in
 * order and never parsed before the previous message's end is known. A 101 answer to an Upgrade
 * turns the connection into a tunnel forwarded by the splice pumps.
 *
 * What is done with a request and its response (the routing, checks, redirects and edits above) is
 * decided in _h1policy.h: this unit asks, and carries out the verdict.
 *
 * Bodies are never copied beyond the one buffer each direction reads into; heads are sent as writev
 * pieces around the edits. A request the parser refuses is answered with the parser's status and
 * the connection closed: none of its bytes reach a backend.
 *
 * Every function runs on the worker that owns the connection. */
#ifndef FLB_H1CONN_H
#define FLB_H1CONN_H

#include "_engine-t.h"
#include "_h1conn-t.h"

#include <sys/socket.h>

/* Takes over <fd>, accepted on HTTP listener <rl> of the worker's table (the caller took its slot). */
void flb_h1conn_start(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer);

/* Handles epoll <events> on the client (server == 0) or backend side of <h>. */
void flb_h1conn_event(struct flb_worker *w, struct flb_h1conn *h, int server, uint32_t events);

/* The connection's timer fired: what it means depends on the phase (see _h1conn.c). */
void flb_h1conn_timeout(struct flb_worker *w, struct flb_h1conn *h);

/* Closes both sides now and gives back the slot; the memory goes in flb_h1conn_reap. */
void flb_h1conn_close(struct flb_worker *w, struct flb_h1conn *h);

/* Runs the connections that stopped at the round limit with work in hand (bytes already read into
 * their buffers wake no epoll). Called after each batch of events. */
void flb_h1conn_run_ready(struct flb_worker *w);

/* A drain has begun (_drain.h): closes the worker's idle connections on draining listeners. */
void flb_h1conn_drain(struct flb_worker *w);

/* Frees the connections closed since the last call. */
void flb_h1conn_reap(struct flb_worker *w);

#endif
