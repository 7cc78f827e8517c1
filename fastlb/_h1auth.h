/* _h1auth.h: who may send a request to an HTTP service: the source allow-list (403 otherwise) and
 * HTTP basic auth (401 otherwise), marathon-lb's HAPROXY_{n}_BACKEND_NETWORK_ALLOWED_ACL and
 * HAPROXY_{n}_AUTH. */
#ifndef FLB_H1AUTH_H
#define FLB_H1AUTH_H

#include "_http1-t.h"
#include "_l7-t.h"

#include <stddef.h>
#include <sys/socket.h>

/* Whether <hs>'s allow-list admits request <req> of client <sa> (an empty list admits everyone). An
 * IPv4-mapped IPv6 address is matched as the IPv4 address it is. With allow_xff, a client outside the
 * list is admitted when an address of the request's X-Forwarded-For fields is in it, as Traefik 1.7's
 * useXForwardedFor (anyone who reaches fastlb can write one: see docs/internals/marathon.md). */
int flb_h1auth_allowed(const struct flb_l7_service *hs, const struct sockaddr *sa,
                       const struct flb_http1_request *req);

/* Whether the Authorization value <value> (NULL: none) carries Basic credentials of one of <hs>'s
 * users. The password is checked against the user's hash: htpasswd's Apache MD5 ("$apr1$") and
 * "{SHA}" here (with libcrypto's MD5 and SHA-1), any other with crypt(3); the result is compared in
 * constant time. A value that passed is remembered in the worker's cache <lw> (keyed by a keyed hash
 * of the whole value and the service's epoch), so a client that sends it on every request costs one
 * hash per worker, not one per request. */
int flb_h1auth_check(const struct flb_l7 *l, struct flb_l7_worker *lw, const struct flb_l7_service *hs,
                     const char *value, size_t len);

/* Parses "ip/bits" or "ip" into <c>. FLB_OK or FLB_ERR (EINVAL). Control thread. */
int flb_h1auth_cidr_parse(const char *text, struct flb_l7_cidr *c);

#endif
