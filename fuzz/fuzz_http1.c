/* fuzz_http1.c: libFuzzer target for the HTTP/1.1 parsers (fastlb/_http1.c).
 *
 * Every input goes through all three parsers, and besides "no crash, no sanitizer report" the target
 * checks the promises the proxy builds on; a broken promise aborts:
 *   - results stay inside the input, and a complete head is still complete (and the same) when the input
 *     is cut right after it, and incomplete when cut one byte earlier;
 *   - <prev_len> changes nothing but the timing of an error: parsing a prefix that was incomplete and
 *     then the whole with prev_len set gives the result of a parse from scratch, or FLB_AGAIN where that
 *     result was an error;
 *   - the chunked decoder finds the same end (or error) whether the body comes whole or in two pieces;
 *   - the head edits of fastlb's rewrites (fastlb/_h1edit.c) keep a request what it was: a parsed request
 *     with "/api" taken off its target still parses, to the same framing and fields, with its target cut
 *     at a segment boundary and never empty; a Location value splits inside itself, its path a '/'.
 * Each prefix is copied to a buffer of its own exact size, so ASan sees a read past its end.
 *
 * Linked with replay.c instead of libFuzzer it is a plain program that replays files (fuzz/README.md).
 */
#include "_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_h1edit.h"
#include "_http1.h"
#include "_vhost.h"

#define PROMISE(cond)                                                                                                \
    do {                                                                                                             \
        if (!(cond)) {                                                                                               \
            fprintf(stderr, "broken promise at %s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            abort();                                                                                                 \
        }                                                                                                            \
    } while (0)

static struct flb_http1_header headers[3][32];

static char *copy(const uint8_t *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    PROMISE(p != NULL);
    memcpy(p, data, n);
    return p;
}

static ssize_t request(int slot, struct flb_http1_request *req, const uint8_t *data, size_t n, size_t prev_len,
                       uint32_t head_max)
{
    char *buf = copy(data, n);
    memset(req, 0, sizeof(*req));
    req->headers = headers[slot];
    req->max_headers = 32;
    req->head_max = head_max;
    req->target_max = head_max / 2;
    ssize_t rc = flb_http1_request_parse(req, buf, n, prev_len);
    if (rc >= 0) {
        PROMISE((size_t)rc <= n && req->head_len == (size_t)rc && req->nheaders <= 32);
        PROMISE(req->method >= buf && req->method + req->method_len <= buf + rc);
        PROMISE(req->target > req->method && req->target + req->target_len <= buf + rc);
        PROMISE(req->minor == 0 || req->minor == 1);
        PROMISE(req->minor == 0 || req->host != NULL);
        for (uint32_t i = 0; i < req->nheaders; i++) {
            const struct flb_http1_header *h = &req->headers[i];
            PROMISE(h->name_len > 0 && h->name >= buf && h->name + h->name_len <= buf + rc);
            PROMISE(h->value >= buf && h->value + h->value_len <= buf + rc);
        }
    } else {
        PROMISE(rc == FLB_AGAIN || (rc == FLB_ERR && req->error != FLB_HTTP1_E_NONE));
    }
    free(buf);
    return rc;
}

/* PROXYPASS_PATH's edit on request <req>, parsed from <buf>: see the promises above. */
static void fuzz_strip(const char *buf, const struct flb_http1_request *req, uint32_t head_max)
{
    static const char prefix[] = "/api";
    const uint32_t plen = sizeof(prefix) - 1;
    struct flb_h1edits ed = {.n = 0};
    struct iovec iov[2 * FLB_H1EDIT_MAX + 1];
    struct flb_http1_request e;
    const char *path;
    size_t path_len;

    int edited = flb_h1edit_strip_prefix(&ed, buf, req->target, req->target_len, prefix, plen);
    PROMISE(edited == 0 || edited == 1);
    int n = flb_h1edit_iov(&ed, buf, req->head_len, iov, 2 * FLB_H1EDIT_MAX + 1);
    PROMISE(n > 0);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    char *out = malloc(len);
    PROMISE(out != NULL);
    for (size_t i = 0, at = 0; i < (size_t)n; at += iov[i].iov_len, i++)
        memcpy(out + at, iov[i].iov_base, iov[i].iov_len);
    memset(&e, 0, sizeof(e));
    e.headers = headers[2];
    e.max_headers = 32;
    e.head_max = head_max;
    e.target_max = head_max / 2;
    PROMISE(flb_http1_request_parse(&e, out, len, 0) == (ssize_t)len);
    PROMISE(e.framing == req->framing && e.content_length == req->content_length && e.flags == req->flags &&
            e.nheaders == req->nheaders && e.minor == req->minor && e.method_len == req->method_len);
    PROMISE(e.host_len == req->host_len && (e.host == NULL) == (req->host == NULL));
    PROMISE(e.target_len > 0);
    flb_vhost_path(req->target, req->target_len, &path, &path_len);
    size_t before = (size_t)(path - req->target); /* absolute-form: scheme and authority, kept */
    if (!edited) {
        PROMISE(e.target_len == req->target_len && memcmp(e.target, req->target, req->target_len) == 0);
    } else {
        /* the prefix was there, at a boundary; what followed it stays, behind a '/' */
        const char *rest = path + plen;
        size_t rest_len = req->target_len - before - plen;
        PROMISE(path_len >= plen && memcmp(path, prefix, plen) == 0 && (path_len == plen || path[plen] == '/'));
        PROMISE(memcmp(e.target, req->target, before) == 0 && e.target[before] == '/');
        if (rest_len > 0 && rest[0] == '/')
            PROMISE(e.target_len == before + rest_len && memcmp(e.target + before, rest, rest_len) == 0);
        else
            PROMISE(e.target_len == before + 1 + rest_len && memcmp(e.target + before + 1, rest, rest_len) == 0);
    }
    free(out);
}

static void fuzz_request(const uint8_t *data, size_t size)
{
    struct flb_http1_request a, b;
    uint32_t head_max = size && (data[0] & 1) ? 64 : 0; /* small limits too, so they are reached */
    ssize_t rc = request(0, &a, data, size, 0, head_max);
    if (rc >= 0) {
        char *buf = copy(data, (size_t)rc); /* a head of its own: request() frees its copy */
        memset(&b, 0, sizeof(b));
        b.headers = headers[1];
        b.max_headers = 32;
        b.head_max = head_max;
        b.target_max = head_max / 2;
        PROMISE(flb_http1_request_parse(&b, buf, (size_t)rc, 0) == rc);
        fuzz_strip(buf, &b, head_max);
        free(buf);
        PROMISE(request(1, &b, data, (size_t)rc, 0, head_max) == rc);
        PROMISE(b.framing == a.framing && b.content_length == a.content_length && b.flags == a.flags &&
                b.nheaders == a.nheaders && b.minor == a.minor);
        PROMISE(rc == 0 || request(1, &b, data, (size_t)rc - 1, 0, head_max) == FLB_AGAIN);
    }
    size_t cut = size ? (data[size - 1] * 131u + size / 3) % size : 0;
    if (request(1, &b, data, cut, 0, head_max) == FLB_AGAIN) {
        ssize_t hinted = request(1, &b, data, size, cut, head_max);
        PROMISE(hinted == rc || (rc == FLB_ERR && hinted == FLB_AGAIN));
        if (hinted == FLB_ERR)
            PROMISE(b.error == a.error);
    }
}

static ssize_t response(int slot, struct flb_http1_response *resp, const uint8_t *data, size_t n, size_t prev_len,
                        unsigned req_flags)
{
    char *buf = copy(data, n);
    memset(resp, 0, sizeof(*resp));
    resp->headers = headers[slot];
    resp->max_headers = 32;
    ssize_t rc = flb_http1_response_parse(resp, buf, n, prev_len, req_flags);
    if (rc >= 0) {
        PROMISE((size_t)rc <= n && resp->status >= 100 && resp->status <= 999);
        PROMISE(resp->reason >= buf && resp->reason + resp->reason_len <= buf + rc);
        for (uint32_t i = 0; i < resp->nheaders; i++) {
            const struct flb_http1_header *h = &resp->headers[i];
            const char *host;
            uint32_t host_len;
            PROMISE(h->value + h->value_len <= buf + rc);
            /* REVPROXY_PATH's split of a Location value (every value, whatever the field's name) */
            int at = flb_h1edit_location(h->value, h->value_len, &host, &host_len);
            if (at >= 0) {
                PROMISE((uint32_t)at < h->value_len && h->value[at] == '/');
                PROMISE(at == 0 ? host_len == 0 : host_len > 0 && host > h->value && host + host_len <= h->value + at);
            }
        }
    }
    free(buf);
    return rc;
}

static void fuzz_response(const uint8_t *data, size_t size)
{
    struct flb_http1_response a, b;
    unsigned req_flags = size ? data[size - 1] & 3 : 0;
    ssize_t rc = response(0, &a, data, size, 0, req_flags);
    if (rc >= 0) {
        PROMISE(response(1, &b, data, (size_t)rc, 0, req_flags) == rc && b.framing == a.framing);
        PROMISE(rc == 0 || response(1, &b, data, (size_t)rc - 1, 0, req_flags) == FLB_AGAIN);
    }
    size_t cut = size / 2;
    if (response(1, &b, data, cut, 0, req_flags) == FLB_AGAIN) {
        ssize_t hinted = response(1, &b, data, size, cut, req_flags);
        PROMISE(hinted == rc || (rc == FLB_ERR && hinted == FLB_AGAIN));
    }
}

static ssize_t chunked(struct flb_http1_chunked *c, const uint8_t *data, size_t size, size_t cut)
{
    memset(c, 0, sizeof(*c));
    char *first = copy(data, cut), *second = copy(data + cut, size - cut);
    ssize_t rc = flb_http1_chunked_feed(c, first, cut);
    if (rc == FLB_AGAIN) {
        rc = flb_http1_chunked_feed(c, second, size - cut);
        if (rc >= 0)
            rc += (ssize_t)cut;
    }
    free(first);
    free(second);
    return rc;
}

static void fuzz_chunked(const uint8_t *data, size_t size)
{
    struct flb_http1_chunked a, b;
    ssize_t whole = chunked(&a, data, size, size);
    PROMISE(whole == FLB_AGAIN || whole == FLB_ERR || (whole > 0 && (size_t)whole <= size));
    for (size_t cut = 0; cut < size && cut < 64; cut += 1 + cut / 8) {
        ssize_t rc = chunked(&b, data, size, cut);
        PROMISE(rc == whole && b.data_bytes == a.data_bytes);
        if (rc == FLB_ERR)
            PROMISE(b.error == a.error);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_request(data, size);
    fuzz_response(data, size);
    fuzz_chunked(data, size);
    return 0;
}
