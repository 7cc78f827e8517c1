/* _vhost.h: Host/path and app-id routing (types in _vhost-t.h).
 *
 * Semantics (marathon-lb's, with HAProxy's ACL order):
 * - Routes are tried in table order and the first that matches wins. spec.HttpRoute lists arrive
 *   sorted by the route builder: BACKEND_WEIGHT descending, then the longest path prefix first, so
 *   weight decides between routes first, and among equal weights the longest matching prefix wins.
 *   An exact host and a wildcard that both match compete by that same order.
 * - A Host matches case-insensitively with its port and one trailing dot removed. "*.example.com"
 *   matches any name ending in ".example.com" (one or more labels), never "example.com" itself.
 * - A route with paths matches when one prefix begins the request path (the target up to '?';
 *   for an absolute-form target, the path after the authority). No paths: every path.
 * - App ids match case-insensitively and exactly (HAProxy's hdr(x-marathon-app-id) -i); the first
 *   service in table order with that id wins.
 * Lookups run on workers: no allocation, no lock.
 */
#ifndef FLB_VHOST_H
#define FLB_VHOST_H

#include "_vhost-t.h"

#include <stddef.h>
#include <sys/types.h>

/* Longest Host (port stripped) and app id looked up; longer ones match nothing. */
#define FLB_VHOST_NAME_MAX 255
#define FLB_VHOST_APP_MAX 512

/* Control thread: allocates room for <nroutes> routes and <napps> app ids. FLB_OK or FLB_ERR. */
int flb_vhost_init(struct flb_vhost *v, uint32_t nroutes, uint32_t napps);

/* Sets route <i>: <host> (an exact name, or "*." and a domain) to <service>. FLB_OK or FLB_ERR. */
int flb_vhost_set_route(struct flb_vhost *v, uint32_t i, const char *host, uint32_t service);

/* Adds a path prefix to route <i>. FLB_OK or FLB_ERR (ENOMEM). */
int flb_vhost_add_path(struct flb_vhost *v, uint32_t i, const char *path);

/* Adds app id <id> for <service> (a later duplicate of an id is ignored; at most <napps> ids). */
int flb_vhost_add_app(struct flb_vhost *v, const char *id, uint32_t service);

/* Builds the lookup structures once every route and app is set. FLB_OK or FLB_ERR (ENOMEM). */
int flb_vhost_build(struct flb_vhost *v);

void flb_vhost_free(struct flb_vhost *v);

/* Host <host> (<len> bytes) as routes and certificates are matched: without ":port" (an IPv6 literal keeps
 * its brackets) and one trailing dot, lower case, into <out>. Its length, or -1 when that is over <cap>. */
ssize_t flb_vhost_host(const char *host, size_t len, char *out, size_t cap);

/* The service index for Host <host> and request target <target>, or FLB_ERR when nothing matches. */
int flb_vhost_lookup(const struct flb_vhost *v, const char *host, size_t host_len, const char *target,
                     size_t target_len);

/* The service index for app id <id>, or FLB_ERR. */
int flb_vhost_lookup_app(const struct flb_vhost *v, const char *id, size_t len);

/* The path of a request target: origin-form as is, absolute-form after its authority, up to '?'. */
void flb_vhost_path(const char *target, size_t len, const char **path, size_t *path_len);

#endif
