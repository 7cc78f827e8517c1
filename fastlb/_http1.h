/* _http1.h: fastlb's HTTP/1.1 parsers. No allocation, no copy, no global state; safe on any thread.
 *
 * Return rule of the three parsers (that of _api.h):
 *   >= 0       success: the bytes of <buf> that belong to the head (or, for the chunked decoder, to the
 *              body that just ended); what follows belongs to the next message
 *   FLB_ERR    the message is refused; <error> says why, flb_http1_error_status() what to answer;
 *              the connection must be closed after answering, and nothing of it forwarded
 *   FLB_AGAIN  the input is incomplete: call again with more bytes (the chunked decoder has then
 *              taken all <len> bytes as body)
 * errno is never set: a parse error is a property of the input, not of the system.
 */
#ifndef FLB_HTTP1_H
#define FLB_HTTP1_H

#include <sys/types.h>

#include "_http1-t.h"

/* Parses the request head at the start of <buf> (<len> bytes). <prev_len> is the length of <buf> at the
 * previous call on the same head, which returned FLB_AGAIN (0 the first time): the head cannot have
 * ended inside those bytes, so the parser looks only at what is new until a line ending shows up, and a
 * sender that trickles a byte at a time costs O(n), not O(n^2). <buf> must hold the same bytes as before
 * up to <prev_len>. The result does not depend on <prev_len>, except that an error may be reported
 * later: once the head ends (CRLF CRLF), a bare LF arrives, or more than head_max bytes are at hand.
 *
 * A head longer than <req>->head_max is 431 (FLB_HTTP1_E_HEAD_TOO_LARGE) as soon as more than head_max
 * bytes are at hand without an end. */
ssize_t flb_http1_request_parse(struct flb_http1_request *req, const char *buf, size_t len, size_t prev_len);

/* Parses a response head; <req_flags> (FLB_HTTP1_REQ_*) say what the request was. Interim responses
 * (1xx other than 101) are returned like any other (framing NONE): the final one follows. */
ssize_t flb_http1_response_parse(struct flb_http1_response *resp, const char *buf, size_t len, size_t prev_len,
                                 unsigned req_flags);

/* Feeds <len> bytes of a chunked body to <c>. Returns the bytes of <buf> that belong to the body when
 * the body ends inside <buf> (last chunk, trailers and the final CRLF included), FLB_AGAIN when all <len>
 * bytes belong to it and more is to come, FLB_ERR on a framing error. Chunk data is skipped, never read,
 * so a proxy can forward the stream as it came. After a return >= 0, <c> must be zeroed again for the
 * next body. */
ssize_t flb_http1_chunked_feed(struct flb_http1_chunked *c, const char *buf, size_t len);

/* The status a proxy answers a client with for a refused request: 400, 414, 431, 501 or 505. */
int flb_http1_error_status(enum flb_http1_error err);

/* A short, stable name for <err> ("content_length", "cl_and_te", ...), for logs and tests. */
const char *flb_http1_error_name(enum flb_http1_error err);

/* The next element of a comma-separated list such as a Connection value (RFC 9110 section 5.6.1), looked
 * for from *<at> in <p>[0, <len>): returns its offset and sets *<tok_len> (0 once the list is done), and
 * moves *<at> past it. Elements are what lies between commas and white space. */
static inline size_t flb_http1_list_next(const char *p, size_t len, size_t *at, size_t *tok_len)
{
    size_t i = *at, tok;

    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
        i++;
    tok = i;
    while (i < len && p[i] != ',' && p[i] != ' ' && p[i] != '\t')
        i++;
    *tok_len = i - tok;
    *at = i;
    return tok;
}

/* Whether the connection may carry another request after this one (and its body): HTTP/1.1 unless
 * Connection: close, HTTP/1.0 only with Connection: keep-alive. */
static inline int flb_http1_request_keep_alive(const struct flb_http1_request *req)
{
    if (req->flags & FLB_HTTP1_F_CONN_CLOSE)
        return 0;
    return req->minor == 1 || (req->flags & FLB_HTTP1_F_CONN_KEEP_ALIVE);
}

static inline int flb_http1_response_keep_alive(const struct flb_http1_response *resp)
{
    if (resp->flags & FLB_HTTP1_F_CONN_CLOSE || resp->framing == FLB_HTTP1_BODY_CLOSE)
        return 0;
    return resp->minor == 1 || (resp->flags & FLB_HTTP1_F_CONN_KEEP_ALIVE);
}

#endif
