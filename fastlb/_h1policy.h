/* _h1policy.h: what fastlb does with a request in HTTP mode, as the connection (_h1conn.c) asks it.
 *
 * The connection reads, parses, connects and forwards; this unit decides. For a parsed request head
 * it routes (Host and path, app id, or the listener's service), checks (the TLS connection's names:
 * 421; CONNECT: 501; the allow-list: 403; basic auth: 401), redirects (to https, Traefik's regex,
 * marathon-lb's root redirect) and edits (X-Forwarded-*, the service's own fields, the sticky cookie
 * cut, the path prefix and Host rewrites); for a final response head it adds the service's edits
 * (Location prefix, Strict-Transport-Security, its own fields, the sticky Set-Cookie). What it says
 * comes back as a verdict: answer with a status and these header lines, or forward with the edits it
 * added. It never answers, connects or closes itself, and it keeps no state of its own: it reads the
 * table and the connection's record, and writes only the edits, their text in the request's record
 * (struct flb_h1req's edit_req, edit_resp), the connection's sticky_be and, for a regex redirect, the
 * new URL in the worker's scratch (struct flb_l7_worker's redirect).
 *
 * Every function runs on the worker that owns the connection. */
#ifndef FLB_H1POLICY_H
#define FLB_H1POLICY_H

#include "_engine-t.h"
#include "_h1conn-t.h"
#include "_h1edit.h"
#include "_http1-t.h"

#include <sys/uio.h>

/* Header lines one answer of the policy carries at most. */
#define FLB_H1POLICY_EXTRA 5

/* fastlb's own answer, when the policy gives one (status 0: none, the request goes on). */
struct flb_h1verdict {
    int status;
    int nextra;
    struct iovec extra[FLB_H1POLICY_EXTRA]; /* the answer's header lines, for flb_h1reply */
    char port[8];                           /* the redirect to https: ":<port>" in its Location */
};

/* Routes request <req> of connection <h>, which came on listener <rl> (<ll> its L7 side) of table
 * <t> (the worker's newest that holds the listener). Returns the service's index in <t>, or -1 with
 * <v> set to the answer (421: the TLS connection's certificate does not name the Host; 503: no route;
 * both counted as refused on the listener). */
int flb_h1policy_route(struct flb_h1conn *h, const struct flb_table *t, const struct flb_route_listener *rl,
                       const struct flb_l7_listener *ll, const struct flb_http1_request *req,
                       struct flb_h1verdict *v);

/* Checks and edits request <req> of <h>, routed to h->svc and h->hs in h->rtable over listener <ll>:
 * returns 0 when the request goes on, with its edits added to <ed> (and h->sticky_be set), or 1
 * with <v> set to the answer (501, 403, 401, 400 when the head would need more edits than fastlb
 * makes or the regex redirect would not fit, a redirect). */
int flb_h1policy_request(struct flb_worker *w, struct flb_h1conn *h, const struct flb_l7_listener *ll,
                         const struct flb_http1_request *req, struct flb_h1edits *ed, struct flb_h1verdict *v);

/* The service's edits of final response <resp> of <h> (head in h->obuf, <head_len> bytes): cuts and
 * edits go in <ed>; the text to insert before the head's final CRLF is written at h->rq->edit_resp
 * (<*k>, 0 on entry, its length on return), for the caller to add once with its own after it. FLB_OK,
 * or FLB_ERR when the head would carry too many edits (the caller answers 502). */
int flb_h1policy_response(struct flb_h1conn *h, const struct flb_http1_response *resp, uint32_t head_len,
                          struct flb_h1edits *ed, size_t *k);

#endif
