/* _h1policy.c: routing, checks, redirects and edits of HTTP requests and responses (see _h1policy.h). */
#define _GNU_SOURCE
#include "_api.h"

#include "_h1policy.h"

#include "_h1auth.h"
#include "_h1edit.h"
#include "_h1front.h"
#include "_l7.h"
#include "_route.h"
#include "_vhost.h"
#include "_xprt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define RELAXED memory_order_relaxed
#define COUNT(field, n) atomic_fetch_add_explicit(&(field), (n), RELAXED)

static const char STS[] = "Strict-Transport-Security: max-age=15768000\r\n";

/* Whether the connection's requests came over TLS (it decides the STS header of _h1front.h and
 * X-Forwarded-Proto). */
static int request_tls(const struct flb_h1conn *h)
{
    return h->cx.ops->secure;
}

/* Sets <v> to fastlb's answer <status> with header lines <extra> (whose text must outlive the call:
 * the request's head, the table, <v>'s own or the worker's scratch). Returns 1. */
static int answer(struct flb_h1verdict *v, int status, const struct iovec *extra, int nextra)
{
    v->status = status;
    v->nextra = nextra;
    for (int i = 0; i < nextra; i++)
        v->extra[i] = extra[i];
    return 1;
}

/* --- the request --------------------------------------------------------------------------------- */

/* The service index a request goes to, or -1. */
static int route(struct flb_h1conn *h, const struct flb_table *t, const struct flb_route_listener *rl,
                 const struct flb_l7_listener *ll, const struct flb_http1_request *req)
{
    switch (ll->kind) {
    case FLB_L7_SERVICE:
        return (int)rl->service;
    case FLB_L7_VHOST:
        return flb_vhost_lookup(&t->l7->vhost, req->host, req->host_len, req->target, req->target_len);
    case FLB_L7_APPID:
        return flb_vhost_lookup_app(&t->l7->vhost, req->app_id, req->app_id_len);
    default:
        return -1;
    }
}

static int redirect(struct flb_worker *w, struct flb_h1conn *h, const struct flb_http1_request *req,
                    struct flb_h1verdict *vd)
{
    const struct flb_h1front *f = h->hs->front;
    const char *host = req->host != NULL ? req->host : "";
    size_t hlen = req->host != NULL ? req->host_len : 0;
    const char *path;
    size_t plen;
    struct iovec loc[5];

    /* https://<host without its port>[:<https port>]<target as it came (origin-form), or its path and query> */
    for (size_t i = hlen; i > 0; i--) {
        if (host[i - 1] == ':') {
            hlen = i - 1;
            break;
        }
        if (host[i - 1] < '0' || host[i - 1] > '9')
            break;
    }
    flb_vhost_path(req->target, req->target_len, &path, &plen);
    plen = req->target_len - (size_t)(path - req->target); /* keep the query */
    /* the https listener's port, unless it is https' own */
    uint16_t port = h->rtable->l7->https_port;
    char *pt = vd->port;
    int ptlen = port != 0 && port != 443 ? snprintf(pt, sizeof(vd->port), ":%u", (unsigned)port) : 0;
    loc[0] = (struct iovec){(void *)"Location: https://", 18};
    loc[1] = (struct iovec){(void *)host, hlen};
    loc[2] = (struct iovec){pt, (size_t)ptlen};
    loc[3] = (struct iovec){(void *)(plen > 0 ? path : "/"), plen > 0 ? plen : 1};
    loc[4] = (struct iovec){(void *)"\r\n", 2};
    return answer(vd, f != NULL && f->https_code != 0 ? f->https_code : 301, loc, 5);
}

static int unauthorized(struct flb_worker *w, struct flb_h1conn *h, struct flb_h1verdict *vd)
{
    struct iovec v[3];

    v[0] = (struct iovec){(void *)"WWW-Authenticate: Basic realm=\"", 31};
    v[1] = (struct iovec){h->hs->realm, strlen(h->hs->realm)};
    v[2] = (struct iovec){(void *)"\"\r\n", 3};
    return answer(vd, 401, v, 3);
}

/* Whether host <name> (<len> bytes; a port and one trailing dot are not compared) is one of <hosts>
 * (lower case), without case. */
static int host_listed(const struct flb_l7_str *hosts, uint32_t n, const char *name, size_t len)
{
    char low[256];
    ssize_t k = flb_vhost_host(name, len, low, sizeof(low));

    for (uint32_t j = 0; k >= 0 && j < n; j++)
        if (hosts[j].len == (size_t)k && memcmp(hosts[j].s, low, (size_t)k) == 0)
            return 1;
    return 0;
}

/* marathon-lb's HTTP_BACKEND_REDIR: a request for "/" (the path alone: its query is not looked at) on
 * one of the service's vhosts, or on any host when it has none, is answered with a redirect. */
static int root_redirect(struct flb_worker *w, struct flb_h1conn *h, const struct flb_http1_request *req,
                         struct flb_h1verdict *vd)
{
    const struct flb_l7_service *hs = h->hs;
    const char *path;
    size_t plen;
    struct iovec loc[3];

    flb_vhost_path(req->target, req->target_len, &path, &plen);
    if (plen != 1 || path[0] != '/')
        return 0;
    if (hs->nvhosts > 0 && (req->host == NULL || !host_listed(hs->hosts, hs->nvhosts, req->host, req->host_len)))
        return 0;
    loc[0] = (struct iovec){(void *)"Location: ", 10};
    loc[1] = (struct iovec){hs->redir.s, hs->redir.len};
    loc[2] = (struct iovec){(void *)"\r\n", 2};
    return answer(vd, hs->redir_code, loc, 3);
}

/* Traefik's redirect.regex: the request's URL, "http://<Host><path and query>", rewritten by the
 * service's regex; a URL that changed is answered with a redirect there. Returns 0 (serve the
 * request), or 1 (answered). */
static int regex_redirect(struct flb_worker *w, struct flb_h1conn *h, const struct flb_http1_request *req,
                          struct flb_h1verdict *vd)
{
    const struct flb_h1front *f = h->hs->front;
    char url[FLB_H1_BUF + 8], *out = flb_l7_worker(w)->redirect;
    const char *path;
    size_t plen, n = 7;
    ssize_t k;
    struct iovec loc[3];

    flb_vhost_path(req->target, req->target_len, &path, &plen);
    plen = req->target_len - (size_t)(path - req->target); /* with its query */
    memcpy(url, "http://", 7);
    if (req->host != NULL) {
        memcpy(url + n, req->host, req->host_len);
        n += req->host_len;
    }
    memcpy(url + n, path, plen);
    n += plen;
    url[n] = '\0';
    if (memchr(url, '\0', n) != NULL)
        return 0; /* the parser lets no NUL through: never happens */
    k = flb_h1front_redirect(f, url, n, out, sizeof(flb_l7_worker(w)->redirect));
    if (k == 0)
        return 0;
    if (k < 0)
        return answer(vd, 400, NULL, 0);
    loc[0] = (struct iovec){(void *)"Location: ", 10};
    loc[1] = (struct iovec){out, (size_t)k};
    loc[2] = (struct iovec){(void *)"\r\n", 2};
    return answer(vd, f->re_code, loc, 3);
}

/* marathon-lb's HTTP_BACKEND_PROXYPASS_PATH: the path prefix taken off the target, and the Host set
 * (replaced, or added to a request that had none). Only the target's bytes and the Host value
 * change: the request's framing is untouched. FLB_OK, or FLB_ERR when the head carries too many edits. */
static int request_rewrites(struct flb_h1conn *h, const struct flb_http1_request *req, struct flb_h1edits *ed)
{
    const struct flb_l7_service *hs = h->hs;
    const struct flb_l7_str *hl = &hs->host_line;

    if (hs->strip.s != NULL &&
        flb_h1edit_strip_prefix(ed, h->ibuf, req->target, req->target_len, hs->strip.s, hs->strip.len) == FLB_ERR)
        return FLB_ERR;
    if (hl->s == NULL)
        return FLB_OK;
    if (req->host != NULL) /* "Host: " <name> "\r\n" */
        return flb_h1edit_add(ed, (uint32_t)(req->host - h->ibuf), req->host_len, hl->s + 6, hl->len - 8);
    return flb_h1edit_add(ed, req->head_len - 2, 0, hl->s, hl->len);
}

/* Whether the client's "Connection: close" stays on its own hop (RFC 9110 section 7.6.1: Connection
 * is hop-by-hop): an HTTP/1.1 request whose Connection fields say close and nothing else reaches the
 * backend without them, so the backend connection outlives the client's and serves the next client
 * from the pool (HAProxy's keep-alive on the server side; its response then says close to the client,
 * _h1conn.c). An upgrade, or fields named hop-by-hop, keep their Connection as it came. */
static int backend_keeps(const struct flb_http1_request *req)
{
    uint32_t conn = FLB_HTTP1_F_CONN_CLOSE | FLB_HTTP1_F_CONN_KEEP_ALIVE | FLB_HTTP1_F_CONN_UPGRADE |
                    FLB_HTTP1_F_CONN_OTHER;

    return req->minor == 1 && (req->flags & conn) == FLB_HTTP1_F_CONN_CLOSE;
}

/* Adds the request's edits: X-Forwarded-*, the sticky cookie's cut, a lone "Connection: close" cut
 * (backend_keeps); finds Authorization and the sticky backend. FLB_OK, or FLB_ERR when the head needs
 * more edits than fastlb makes. */
static int request_edits(struct flb_worker *w, struct flb_h1conn *h, const struct flb_http1_request *req,
                         struct flb_h1edits *ed, const char **auth, uint32_t *auth_len)
{
    struct flb_l7_service *hs = h->hs;
    const struct flb_h1front *front = hs->front;
    const struct flb_http1_header *xff = NULL;
    const char *buf = h->ibuf;
    char ip[INET6_ADDRSTRLEN] = "";
    size_t n = 0;
    int cookie_found = 0;

    *auth = NULL;
    *auth_len = 0;
    h->sticky_be = -1;
    for (uint32_t i = 0; i < req->nheaders; i++) {
        const struct flb_http1_header *hd = &req->headers[i];
        uint32_t s, e;
        if (front != NULL && flb_h1front_named(&front->req, hd)) {
            /* set or removed by the service: the client's line goes, its Authorization still checked */
            if (hd->kind == FLB_HTTP1_H_OTHER && flb_h1edit_name_is(hd, "authorization", 13)) {
                *auth = hd->value;
                *auth_len = hd->value_len;
            }
            if (flb_h1edit_cut_line(ed, buf, hd) != FLB_OK)
                return FLB_ERR;
        } else if (hd->kind == FLB_HTTP1_H_COOKIE) {
            const char *v;
            uint32_t vlen, at, cut;
            if (!hs->sticky || !flb_h1edit_cookie(buf, hd, hs->cookie, hs->cookie_len, &v, &vlen, &at, &cut))
                continue;
            /* indirect: the backend never sees fastlb's cookie */
            if (flb_h1edit_add(ed, at, cut, NULL, 0) != FLB_OK)
                return FLB_ERR;
            if (cookie_found++ || vlen != FLB_L7_COOKIE_HEX)
                continue;
            for (uint32_t j = 0; j < h->svc->nbe; j++) {
                if (memcmp(hs->cookie_val[j], v, FLB_L7_COOKIE_HEX) == 0) {
                    if (flb_backend_available(h->svc->be[j]))
                        h->sticky_be = (int32_t)j;
                    break;
                }
            }
        } else if (hd->kind == FLB_HTTP1_H_CONNECTION && backend_keeps(req)) {
            if (flb_h1edit_cut_line(ed, buf, hd) != FLB_OK)
                return FLB_ERR;
        } else if (hd->kind != FLB_HTTP1_H_OTHER) {
            continue;
        } else if (flb_h1edit_name_is(hd, "authorization", 13)) {
            *auth = hd->value;
            *auth_len = hd->value_len;
            if (hs->auth_remove) {
                /* cut: the credentials stop here (a request without valid ones goes nowhere at all) */
                flb_h1edit_line(buf, hd, &s, &e);
                if (flb_h1edit_add(ed, s, e - s, NULL, 0) != FLB_OK)
                    return FLB_ERR;
            }
        } else if (!hs->forwarded) {
            continue;
        } else if (flb_h1edit_name_is(hd, "x-forwarded-for", 15)) {
            xff = hd;
        } else if (flb_h1edit_name_is(hd, "x-forwarded-proto", 17) || flb_h1edit_name_is(hd, "x-forwarded-port", 16)) {
            /* set, not added: a client's own value would be taken for fastlb's */
            flb_h1edit_line(buf, hd, &s, &e);
            if (flb_h1edit_add(ed, s, e - s, NULL, 0) != FLB_OK)
                return FLB_ERR;
        }
    }
    /* the lines it names are cut above (n = 0: nothing more to cut); its own lines go in */
    if (front != NULL && flb_h1front_apply(&front->req, ed, buf, NULL, 0, (uint32_t)req->head_len) != FLB_OK)
        return FLB_ERR;
    if (!hs->forwarded)
        return FLB_OK;
    if (h->peer.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&h->peer)->sin_addr, ip, sizeof(ip));
    else if (h->peer.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&h->peer)->sin6_addr, ip, sizeof(ip));
    if (xff != NULL) {
        /* appended to the last X-Forwarded-For, in place: ", <client>" after its value */
        int k = snprintf(h->rq->edit_req, sizeof(h->rq->edit_req), ", %s", ip);
        if (flb_h1edit_add(ed, (uint32_t)(xff->value + xff->value_len - buf), 0, h->rq->edit_req, (uint32_t)k) != FLB_OK)
            return FLB_ERR;
        n = (size_t)k;
    }
    /* an X-Forwarded-Proto or -Port the service sets itself replaces fastlb's */
    char port[32] = "";
    if (front == NULL || !front->req.xfport)
        snprintf(port, sizeof(port), "X-Forwarded-Port: %u\r\n", (unsigned)h->ll->port);
    int k = snprintf(h->rq->edit_req + n, sizeof(h->rq->edit_req) - n, "%s%s%s%s%s",
                     xff == NULL ? "X-Forwarded-For: " : "", xff == NULL ? ip : "", xff == NULL ? "\r\n" : "",
                     front != NULL && front->req.xfp ? ""
                     : request_tls(h)                ? "X-Forwarded-Proto: https\r\n"
                                                     : "X-Forwarded-Proto: http\r\n",
                     port);
    /* before the head's final CRLF */
    return flb_h1edit_add(ed, req->head_len - 2, 0, h->rq->edit_req + n, (uint32_t)k);
}

int flb_h1policy_route(struct flb_h1conn *h, const struct flb_table *t, const struct flb_route_listener *rl,
                       const struct flb_l7_listener *ll, const struct flb_http1_request *req,
                       struct flb_h1verdict *v)
{
    int si;

    /* a TLS connection carries requests for the names of the certificate it was set up with */
    if (req->host != NULL && !h->cx.ops->authority(&h->cx, req->host, req->host_len)) {
        COUNT(h->rl->l->refused, 1);
        answer(v, 421, NULL, 0);
        return -1;
    }
    si = route(h, t, rl, ll, req);
    if (si < 0 || (uint32_t)si >= t->nsvc) {
        COUNT(h->rl->l->refused, 1);
        answer(v, 503, NULL, 0);
        return -1;
    }
    return si;
}

int flb_h1policy_request(struct flb_worker *w, struct flb_h1conn *h, const struct flb_l7_listener *ll,
                         const struct flb_http1_request *req, struct flb_h1edits *ed, struct flb_h1verdict *v)
{
    struct flb_l7 *l = w->e->l7;
    const char *auth;
    uint32_t auth_len;

    v->status = 0;
    if (req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0)
        return answer(v, 501, NULL, 0);
    if (!flb_h1auth_allowed(h->hs, (struct sockaddr *)&h->peer, req))
        return answer(v, 403, NULL, 0);
    if (h->hs->redirect_https && ll->kind == FLB_L7_VHOST && !request_tls(h))
        return redirect(w, h, req, v);
    if (h->hs->front != NULL && h->hs->front->has_re && regex_redirect(w, h, req, v) != 0)
        return 1;
    if (request_edits(w, h, req, ed, &auth, &auth_len) != FLB_OK ||
        ((req->flags & FLB_HTTP1_F_CONN_OTHER) &&
         flb_h1edit_connection_named(ed, h->ibuf, req->headers, req->nheaders) != FLB_OK))
        return answer(v, 400, NULL, 0);
    if (h->hs->realm != NULL && !flb_h1auth_check(l, flb_l7_worker(w), h->hs, auth, auth_len))
        return unauthorized(w, h, v);
    if (h->hs->redir.s != NULL && root_redirect(w, h, req, v) != 0)
        return 1;
    if (request_rewrites(h, req, ed) != FLB_OK)
        return answer(v, 400, NULL, 0);
    return 0;
}

/* --- the response -------------------------------------------------------------------------------- */

/* marathon-lb's HTTP_BACKEND_REVPROXY_PATH: the service's path prefix put before the path of each
 * Location the backend answers with, when it names this service: an absolute path ("/login" becomes
 * "/api/login"), or an http(s) URL of one of its vhosts or its set Host. Any other Location (another
 * host, a relative reference) goes as it came. FLB_OK, or FLB_ERR when the head carries too many edits. */
static int location_rewrites(struct flb_h1conn *h, const struct flb_http1_response *resp, struct flb_h1edits *ed)
{
    const struct flb_l7_service *hs = h->hs;

    for (uint32_t i = 0; i < resp->nheaders; i++) {
        const struct flb_http1_header *hd = &resp->headers[i];
        const char *host;
        uint32_t host_len;
        int at;

        if (hd->kind != FLB_HTTP1_H_OTHER || !flb_h1edit_name_is(hd, "location", 8))
            continue;
        at = flb_h1edit_location(hd->value, hd->value_len, &host, &host_len);
        if (at < 0 || (host_len > 0 && !host_listed(hs->hosts, hs->nhosts, host, host_len)))
            continue;
        if (flb_h1edit_add(ed, (uint32_t)(hd->value - h->obuf) + (uint32_t)at, 0, hs->loc_prefix.s,
                           hs->loc_prefix.len) != FLB_OK)
            return FLB_ERR;
    }
    return FLB_OK;
}

/* The service's own response fields (Traefik's customResponseHeaders) and its Strict-Transport-Security
 * (STSSeconds: on requests that came over TLS, or every one with forceSTSHeader; the backend's own goes).
 * FLB_OK, or FLB_ERR when the head carries too many edits. */
static int front_response(struct flb_h1conn *h, const struct flb_http1_response *resp, struct flb_h1edits *ed,
                          uint32_t head_len)
{
    const struct flb_h1front *f = h->hs->front;

    if (flb_h1front_apply(&f->resp, ed, h->obuf, resp->headers, resp->nheaders, head_len) != FLB_OK)
        return FLB_ERR;
    if (f->sts.s == NULL || !(f->sts_plain || request_tls(h)))
        return FLB_OK;
    for (uint32_t i = 0; i < resp->nheaders; i++) {
        if (flb_h1edit_name_is(&resp->headers[i], "strict-transport-security", 25) &&
            flb_h1edit_cut_line(ed, h->obuf, &resp->headers[i]) != FLB_OK)
            return FLB_ERR;
    }
    return flb_h1edit_add(ed, head_len - 2, 0, f->sts.s, f->sts.len);
}

int flb_h1policy_response(struct flb_h1conn *h, const struct flb_http1_response *resp, uint32_t head_len,
                          struct flb_h1edits *ed, size_t *k)
{
    if (h->hs->loc_prefix.s != NULL && location_rewrites(h, resp, ed) != FLB_OK)
        return FLB_ERR;
    if (h->hs->hsts) {
        for (uint32_t i = 0; i < resp->nheaders; i++) {
            uint32_t s, e;
            if (flb_h1edit_name_is(&resp->headers[i], "strict-transport-security", 25)) {
                flb_h1edit_line(h->obuf, &resp->headers[i], &s, &e);
                if (flb_h1edit_add(ed, s, e - s, NULL, 0) != FLB_OK)
                    return FLB_ERR;
            }
        }
        memcpy(h->rq->edit_resp, STS, sizeof(STS) - 1);
        *k = sizeof(STS) - 1;
    }
    if (h->hs->front != NULL && front_response(h, resp, ed, head_len) != FLB_OK)
        return FLB_ERR;
    if (h->hs->sticky && h->be >= 0 && h->be != h->sticky_be) {
        /* insert indirect nocache: the client had no valid cookie (or its backend went away) */
        int m = snprintf(h->rq->edit_resp + *k, sizeof(h->rq->edit_resp) - *k,
                         "Set-Cookie: %s=%s; path=/\r\nCache-Control: private\r\n", h->hs->cookie,
                         h->hs->cookie_val[h->be]);
        if (m < 0 || (size_t)m >= sizeof(h->rq->edit_resp) - *k)
            return FLB_ERR; /* the compile bounds the cookie name: never happens */
        *k += (size_t)m;
    }
    return FLB_OK;
}
