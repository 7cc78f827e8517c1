/* _conn.h: one proxied connection (types in _conn-t.h): accept -> (TLS handshake) -> pick -> connect
 * (retrying on other backends) -> pump both directions -> half-close -> close. Every function runs on the
 * worker that owns the connection. */
#ifndef FLB_CONN_H
#define FLB_CONN_H

#include "_conn-t.h"
#include "_engine-t.h"

#include <stdint.h>
#include <sys/socket.h>

struct flb_tls;

/* Takes over <fd>, just accepted on listener <rl> of the worker's table, whose slot (maxconn) the
 * caller has already taken: routes it, picks a backend and starts connecting. On any failure the
 * client is closed and the slot given back. */
void flb_conn_start(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer);

/* As flb_conn_start, to service <s> of the worker's table, whose slot the caller has also taken: a
 * connection the https listener passes through by its server name (_pass.h). */
void flb_conn_start_to(struct flb_worker *w, struct flb_route_listener *rl, struct flb_service *s, int fd,
                       const struct sockaddr *peer);

/* As flb_conn_start, for a listener that terminates TLS with certificate set <tls> (_tls.h): the
 * client's handshake comes first, at most <handshake_ms> long, and a backend is picked once it is
 * over; the bytes between client and backend are the TLS stream's plaintext. */
void flb_conn_start_tls(struct flb_worker *w, struct flb_route_listener *rl, int fd, const struct sockaddr *peer,
                        struct flb_tls *tls, uint32_t handshake_ms);

/* Handles epoll <events> on the client (server == 0) or server side of <c>. */
void flb_conn_event(struct flb_worker *w, struct flb_conn *c, int server, uint32_t events);

/* The connection's timer fired: a connect timeout (retry elsewhere) or an idle timeout (close). */
void flb_conn_timeout(struct flb_worker *w, struct flb_conn *c);

/* Closes both sides now (no RST is forced) and gives back its slot; the memory and its table
 * reference go in flb_conn_reap, once no event of the current batch can still point at it. */
void flb_conn_close(struct flb_worker *w, struct flb_conn *c);

/* Ends <c> on purpose (a drain deadline): shuts both sockets down both ways, so each peer reads a
 * FIN rather than a reset where nothing is left unread, then closes it as flb_conn_close. */
void flb_conn_shut(struct flb_worker *w, struct flb_conn *c);

/* Frees the connections closed since the last call. */
void flb_conn_reap(struct flb_worker *w);

#endif
