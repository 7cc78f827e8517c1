/* test_http1.c: the HTTP/1.1 parsers, standalone, under ASan and UBSan.
 *
 * Every input is copied so that its last byte sits right before a PROT_NONE page: a read one byte too
 * far faults at once instead of reading stale memory. Every input is also cut at every byte, each cut
 * placed against the guard page in turn. Output is TAP; the exit status is the number of failures.
 * Build and run: make -C tests/c test
 */
#include "_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "_http1.h"
#include "check.h"

#define ARENA_PAGES 32

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

static ssize_t req_parse(struct flb_http1_request *req, struct flb_http1_header *h, const char *data, size_t len,
                         size_t prev_len)
{
    memset(req, 0, sizeof(*req));
    req->headers = h;
    req->max_headers = FLB_HTTP1_MAX_HEADERS;
    return flb_http1_request_parse(req, guard_place(data, len), len, prev_len);
}

/* --- requests ------------------------------------------------------------------------------------ */

static const char *valid_requests[] = {
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "GET /index.html?q=1&r=%20 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: Mozilla/5.0 (X11)\r\n"
    "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n"
    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\nConnection: keep-alive\r\n\r\n",
    "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    "POST /api HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\nX-Tab: a\tb\r\nX-Empty:\r\n\r\n",
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "GET /0123456789abcdef0123456789abcdef0123456789 HTTP/1.1\r\nHost: [::1]:80\r\n"
    "X-Marathon-App-Id: /group/app\r\nX-Long-Value: 0123456789abcdef0123456789abcdef\xe9\r\n\r\n",
};

static void test_request_fields(void)
{
    struct flb_http1_request req;
    struct flb_http1_header h[FLB_HTTP1_MAX_HEADERS];
    const char *d = "POST /p?x HTTP/1.1\r\nhost:  h.example \r\nContent-Length: 12\r\nCookie: a=1\r\n"
                    "Connection: close\r\nExpect: 100-continue\r\nX-Marathon-App-Id: /app\r\n\r\nhello world!";
    size_t len = strlen(d);
    ssize_t rc = req_parse(&req, h, d, len, 0);
    const char *buf = guard_at(len);
    CHECK(rc == (ssize_t)(len - 12), "rc %zd", rc);
    CHECK(req.method_len == 4 && memcmp(req.method, "POST", 4) == 0, "method");
    CHECK(req.target == buf + 5 && req.target_len == 4, "target");
    CHECK(req.minor == 1, "minor");
    CHECK(req.host_len == 9 && memcmp(req.host, "h.example", 9) == 0 && inside(req.host, 9, buf, len), "host");
    CHECK(req.framing == FLB_HTTP1_BODY_LENGTH && req.content_length == 12, "framing");
    CHECK(req.ncookies == 1 && req.cookie_first == 2 && h[2].kind == FLB_HTTP1_H_COOKIE, "cookies");
    CHECK(req.flags == (FLB_HTTP1_F_CONN_CLOSE | FLB_HTTP1_F_EXPECT_CONTINUE), "flags %x", req.flags);
    CHECK(req.app_id_len == 4 && memcmp(req.app_id, "/app", 4) == 0, "app id");
    CHECK(!flb_http1_request_keep_alive(&req), "keep-alive");
    CHECK(req.nheaders == 6, "nheaders %u", req.nheaders);
    for (uint32_t i = 0; i < req.nheaders; i++)
        CHECK(inside(h[i].name, h[i].name_len, buf, len) && inside(h[i].value, h[i].value_len, buf, len), "hdr %u", i);
}

static void test_request_cuts(void)
{
    struct flb_http1_request req, full;
    struct flb_http1_header h[FLB_HTTP1_MAX_HEADERS], hf[FLB_HTTP1_MAX_HEADERS];
    for (size_t k = 0; k < sizeof(valid_requests) / sizeof(valid_requests[0]); k++) {
        const char *d = valid_requests[k];
        size_t len = strlen(d);
        ssize_t rc = req_parse(&full, hf, d, len, 0);
        CHECK(rc > 0, "valid request %zu: rc %zd error %s", k, rc, flb_http1_error_name(full.error));
        if (rc <= 0)
            continue;
        for (size_t i = 0; i < (size_t)rc; i++) {
            ssize_t r = req_parse(&req, h, d, i, 0);
            CHECK(r == FLB_AGAIN, "request %zu cut at %zu: %zd", k, i, r);
            if (i > 0) {
                r = req_parse(&req, h, d, i, i - 1);
                CHECK(r == FLB_AGAIN, "request %zu cut at %zu with prev_len: %zd", k, i, r);
            }
        }
        ssize_t r = req_parse(&req, h, d, (size_t)rc, (size_t)rc - 1);
        CHECK(r == rc && req.nheaders == full.nheaders && req.framing == full.framing &&
                  req.content_length == full.content_length && req.flags == full.flags,
              "request %zu complete with prev_len: %zd", k, r);
    }
}

struct bad {
    const char *data;
    enum flb_http1_error error;
    int status;
};

static const struct bad bad_requests[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", FLB_HTTP1_E_CL_AND_TE, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", FLB_HTTP1_E_CL_AND_TE, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", FLB_HTTP1_E_CONTENT_LENGTH, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", FLB_HTTP1_E_CONTENT_LENGTH, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", FLB_HTTP1_E_CONTENT_LENGTH, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551617\r\n\r\n", FLB_HTTP1_E_CONTENT_LENGTH, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", FLB_HTTP1_E_TE_NOT_CHUNKED, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", FLB_HTTP1_E_TE_NOT_CHUNKED, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", FLB_HTTP1_E_TE_UNSUPPORTED, 501},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", FLB_HTTP1_E_TE_HTTP10, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", FLB_HTTP1_E_OBS_FOLD, 400},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", FLB_HTTP1_E_OBS_FOLD, 400},
    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", FLB_HTTP1_E_HEADER_NAME, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", FLB_HTTP1_E_HEADER_NAME, 400},
    {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", FLB_HTTP1_E_LINE_ENDING, 400},
    {"GET / HTTP/1.1\nHost: a\n\n", FLB_HTTP1_E_LINE_ENDING, 400},
    {"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", FLB_HTTP1_E_HEADER_VALUE, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n", FLB_HTTP1_E_HEADER_VALUE, 400},
    {"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", FLB_HTTP1_E_TARGET, 400},
    {"GET / HTTP/1.1\r\n\r\n", FLB_HTTP1_E_HOST, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", FLB_HTTP1_E_HOST, 400},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", FLB_HTTP1_E_HOST, 400},
    {"GET / HTTP/3.0\r\nHost: a\r\n\r\n", FLB_HTTP1_E_VERSION_UNSUPPORTED, 505},
    {"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", FLB_HTTP1_E_VERSION, 400},
};

static void test_request_refusals(void)
{
    struct flb_http1_request req;
    struct flb_http1_header h[FLB_HTTP1_MAX_HEADERS];
    for (size_t k = 0; k < sizeof(bad_requests) / sizeof(bad_requests[0]); k++) {
        const struct bad *b = &bad_requests[k];
        size_t len = strlen(b->data);
        ssize_t rc = req_parse(&req, h, b->data, len, 0);
        CHECK(rc == FLB_ERR && req.error == b->error && flb_http1_error_status(req.error) == b->status,
              "bad request %zu: rc %zd error %s", k, rc, flb_http1_error_name(req.error));
        for (size_t i = 0; i < len; i++) {
            rc = req_parse(&req, h, b->data, i, 0);
            CHECK(rc == FLB_AGAIN || (rc == FLB_ERR && req.error == b->error), "bad request %zu cut at %zu: %zd", k, i,
                  rc);
        }
    }
}

static void test_request_limits(void)
{
    struct flb_http1_request req;
    struct flb_http1_header h[FLB_HTTP1_MAX_HEADERS];
    static char big[FLB_HTTP1_HEAD_MAX * 2];
    size_t n = (size_t)sprintf(big, "GET /");
    memset(big + n, 'a', FLB_HTTP1_TARGET_MAX);
    n += FLB_HTTP1_TARGET_MAX;
    n += (size_t)sprintf(big + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(req_parse(&req, h, big, n, 0) == FLB_ERR && req.error == FLB_HTTP1_E_TARGET_TOO_LONG, "414");
    /* a head that never ends: 431 once past head_max, AGAIN before */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(big + n, 'v', sizeof(big) - n);
    CHECK(req_parse(&req, h, big, FLB_HTTP1_HEAD_MAX, 0) == FLB_AGAIN, "at head_max");
    CHECK(req_parse(&req, h, big, FLB_HTTP1_HEAD_MAX + 1, 0) == FLB_ERR && req.error == FLB_HTTP1_E_HEAD_TOO_LARGE,
          "431");
    CHECK(req_parse(&req, h, big, sizeof(big), sizeof(big) - 1) == FLB_ERR && req.error == FLB_HTTP1_E_HEAD_TOO_LARGE,
          "431 with prev_len");
    /* too many fields for the array */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < FLB_HTTP1_MAX_HEADERS; i++)
        n += (size_t)sprintf(big + n, "X-%d: v\r\n", i);
    n += (size_t)sprintf(big + n, "\r\n");
    CHECK(req_parse(&req, h, big, n, 0) == FLB_ERR && req.error == FLB_HTTP1_E_TOO_MANY_HEADERS, "too many");
}

/* --- responses ----------------------------------------------------------------------------------- */

static ssize_t resp_parse(struct flb_http1_response *resp, struct flb_http1_header *h, const char *data, size_t len,
                          size_t prev_len, unsigned req_flags)
{
    memset(resp, 0, sizeof(*resp));
    resp->headers = h;
    resp->max_headers = FLB_HTTP1_MAX_HEADERS;
    return flb_http1_response_parse(resp, guard_place(data, len), len, prev_len, req_flags);
}

static void test_responses(void)
{
    static const struct {
        const char *data;
        unsigned req_flags;
        enum flb_http1_framing framing;
        int status;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, FLB_HTTP1_BODY_LENGTH, 200},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, FLB_HTTP1_BODY_CHUNKED, 200},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, FLB_HTTP1_BODY_CLOSE, 200},
        {"HTTP/1.0 200 OK\r\n\r\n", 0, FLB_HTTP1_BODY_CLOSE, 200},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", FLB_HTTP1_REQ_HEAD, FLB_HTTP1_BODY_NONE, 200},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", 0, FLB_HTTP1_BODY_NONE, 304},
        {"HTTP/1.1 204\r\n\r\n", 0, FLB_HTTP1_BODY_NONE, 204},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0, FLB_HTTP1_BODY_NONE, 101},
        {"HTTP/1.1 200 OK\r\n\r\n", FLB_HTTP1_REQ_CONNECT, FLB_HTTP1_BODY_NONE, 200},
    };
    struct flb_http1_response resp;
    struct flb_http1_header h[FLB_HTTP1_MAX_HEADERS];
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len = strlen(cases[k].data);
        ssize_t rc = resp_parse(&resp, h, cases[k].data, len, 0, cases[k].req_flags);
        CHECK(rc > 0 && resp.framing == cases[k].framing && resp.status == cases[k].status, "response %zu: %zd %s", k,
              rc, flb_http1_error_name(resp.error));
        for (size_t i = 0; rc > 0 && i < (size_t)rc; i++)
            CHECK(resp_parse(&resp, h, cases[k].data, i, 0, cases[k].req_flags) == FLB_AGAIN, "response %zu cut %zu",
                  k, i);
    }
    const char *bad = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK(resp_parse(&resp, h, bad, strlen(bad), 0, 0) == FLB_ERR && resp.error == FLB_HTTP1_E_CL_AND_TE, "CL+TE");
    bad = "HTTP/1.1 20 OK\r\n\r\n";
    CHECK(resp_parse(&resp, h, bad, strlen(bad), 0, 0) == FLB_ERR && resp.error == FLB_HTTP1_E_STATUS, "status");
}

/* --- chunked ------------------------------------------------------------------------------------- */

/* Feeds <data> in two pieces cut at <cut>, each placed against the guard page. Returns the bytes taken
 * as body in all, or a negative result. */
static ssize_t chunked_two(const char *data, size_t len, size_t cut, struct flb_http1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    ssize_t r = flb_http1_chunked_feed(c, guard_place(data, cut), cut);
    if (r != FLB_AGAIN)
        return r;
    r = flb_http1_chunked_feed(c, guard_place(data + cut, len - cut), len - cut);
    return r >= 0 ? (ssize_t)cut + r : r;
}

static void test_chunked(void)
{
    static const struct {
        const char *data;
        ssize_t end; /* bytes of body, or FLB_ERR */
        uint64_t payload;
        enum flb_http1_error error;
    } cases[] = {
        {"5\r\nhello\r\n0\r\n\r\nNEXT", 15, 5, FLB_HTTP1_E_NONE},
        {"5;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nX: y\r\n\r\nNEXT", 40, 15, FLB_HTTP1_E_NONE},
        {"10000000000000000\r\n", FLB_ERR, 0, FLB_HTTP1_E_CHUNK_SIZE},
        {"5\r\nhello0\r\n\r\n", FLB_ERR, 5, FLB_HTTP1_E_CHUNK_DATA},
        {"5\nhello\r\n", FLB_ERR, 0, FLB_HTTP1_E_CHUNK_SIZE},
        {"0\r\nContent-Length: 1\r\n\r\n", FLB_ERR, 0, FLB_HTTP1_E_TRAILER},
        {"0\r\nX: a\r\n b\r\n\r\n", FLB_ERR, 0, FLB_HTTP1_E_TRAILER},
    };
    struct flb_http1_chunked c;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len = strlen(cases[k].data);
        for (size_t cut = 0; cut <= len; cut++) {
            ssize_t r = chunked_two(cases[k].data, len, cut, &c);
            CHECK(r == cases[k].end, "chunked %zu cut %zu: %zd", k, cut, r);
            if (r >= 0)
                CHECK(c.data_bytes == cases[k].payload, "chunked %zu payload %llu", k, (unsigned long long)c.data_bytes);
            else
                CHECK(c.error == cases[k].error, "chunked %zu error %s", k, flb_http1_error_name(c.error));
        }
    }
}

/* <pre> <n bytes of v> <post> into <buf>: no printf, since <v> may hold NUL. */
static size_t build(char *buf, const char *pre, const char *v, size_t n, const char *post)
{
    size_t a = strlen(pre), b = strlen(post);
    memcpy(buf, pre, a);
    memcpy(buf + a, v, n);
    memcpy(buf + a + n, post, b);
    return a + n + b;
}

/* The SSE2 scan works 16 bytes at a time and the scalar loop finishes the tail: a bad byte must be
 * found at every offset of values and targets of every length around those boundaries. */
static void test_scan_boundaries(void)
{
    static const char bad_value[] = {'\0', '\x01', '\x1f', '\x7f', '\n'};
    static const char bad_target[] = {'\0', '\t', '\x7f', '\x80', '\xff'};
    struct flb_http1_request req;
    struct flb_http1_header h[FLB_HTTP1_MAX_HEADERS];
    char buf[256];
    for (size_t n = 1; n <= 50; n++) {
        for (size_t at = 0; at < n; at++) {
            char v[64];
            memset(v, 'v', n);
            for (size_t k = 0; k < sizeof(bad_value); k++) {
                v[at] = bad_value[k];
                size_t len = build(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ", v, n, "\r\n\r\n");
                ssize_t rc = req_parse(&req, h, buf, len, 0);
                CHECK(rc == FLB_ERR, "value of %zu bytes, byte %02x at %zu: %zd", n, (unsigned char)bad_value[k], at,
                      rc);
                /* the same, as a request target */
                v[at] = bad_target[k];
                len = build(buf, "GET /", v, n, " HTTP/1.1\r\nHost: a\r\n\r\n");
                rc = req_parse(&req, h, buf, len, 0);
                CHECK(rc == FLB_ERR && req.error == FLB_HTTP1_E_TARGET, "target of %zu bytes, byte %02x at %zu: %zd",
                      n, (unsigned char)bad_target[k], at, rc);
            }
            /* HT and obs-text are value bytes wherever they are */
            v[at] = at % 2 ? '\t' : '\xe9';
            v[0] = v[n - 1] = 'v';
            size_t len = build(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ", v, n, "\r\n\r\n");
            ssize_t rc = req_parse(&req, h, buf, len, 0);
            CHECK(rc == (ssize_t)len && req.nheaders == 2 && h[1].value_len == n, "value of %zu bytes, HT/obs-text at %zu", n, at);
        }
    }
}

int main(void)
{
    guard_init(ARENA_PAGES);
    test_request_fields();
    test_request_cuts();
    test_request_refusals();
    test_request_limits();
    test_responses();
    test_chunked();
    test_scan_boundaries();
    return check_done("http1");
}
