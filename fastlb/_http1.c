/* _http1.c: HTTP/1.1 request and response heads, chunked bodies (see _http1.h for the contract).
 *
 * One pass over the head does everything: it splits the start line and the fields, checks every byte
 * against RFC 9110/9112 grammar, and works out the framing and the other facts the proxy needs, so the
 * caller never scans the head a second time. The parsers hold no state between calls (the chunked
 * decoder apart, whose state the caller owns): an incomplete head is parsed again from its start once
 * more bytes have come, and <prev_len> keeps that cheap.
 *
 * Every read is bounded by <len> (or head_max), including the SSE2 loads, which are only made when 16
 * bytes remain; the tests put each input right before an unreadable page to prove it.
 */
#include "_api.h"

#include <string.h>

#if defined(__SSE2__) && !defined(FLB_HTTP1_NO_SIMD)
#include <emmintrin.h>
#define USE_SSE2 1
#endif

#include "_http1.h"

/* Character classes (RFC 9110 section 5.6.2 token, 5.5 field-value, RFC 3986 for targets and hosts). */
#define C_TCHAR 0x01  /* token character: header names, methods, codings */
#define C_VALUE 0x02  /* field value byte: SP, VCHAR, obs-text (HT is handled apart) */
#define C_TARGET 0x04 /* request-target byte: VCHAR, nothing else */
#define C_HOST 0x08   /* reg-name byte of a Host (no colon, no brackets) */
#define C_HEX 0x10
#define C_DIGIT 0x20

static const uint8_t cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    2,  15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 6,  14, 6,  14, 6,  6,
    6,  31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  6,  6,  7,  15,
    7,  31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
};

#define IS(c, k) (cls[(uint8_t)(c)] & (k))
#define IS_OWS(c) ((c) == ' ' || (c) == '\t')

/* Returns the first byte in [p, end) that is not a field value byte (a control byte, DEL, or HT), or
 * <end>. Values are most of a head's bytes, so this is the loop worth vectorising. */
static inline const char *scan_value(const char *p, const char *end)
{
#ifdef USE_SSE2
    const __m128i ctl = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        /* max(v, 0x1f) == 0x1f exactly when v <= 0x1f, unsigned */
        __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl), _mm_cmpeq_epi8(v, del));
        int m = _mm_movemask_epi8(bad);
        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && IS(*p, C_VALUE))
        p++;
    return p;
}

/* Returns the first byte in [p, end) outside 0x21..0x7E, or <end>. */
static inline const char *scan_target(const char *p, const char *end)
{
#ifdef USE_SSE2
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, sp), sp), _mm_cmpeq_epi8(_mm_min_epu8(v, del), del));
        int m = _mm_movemask_epi8(bad);
        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && IS(*p, C_TARGET))
        p++;
    return p;
}

/* <lit> is lower case letters, digits and '-': OR-ing 0x20 folds only upper case letters onto it,
 * since no token character other than a letter maps onto those. */
static inline int eq_nocase(const char *p, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((uint8_t)p[i] | 0x20) != (uint8_t)lit[i])
            return 0;
    return 1;
}

#define LIT_EQ(p, n, lit) ((n) == sizeof(lit) - 1 && eq_nocase((p), (lit), sizeof(lit) - 1))

static enum flb_http1_hdr_kind classify(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return LIT_EQ(n, len, "te") ? FLB_HTTP1_H_TE : FLB_HTTP1_H_OTHER;
    case 4:
        return LIT_EQ(n, len, "host") ? FLB_HTTP1_H_HOST : FLB_HTTP1_H_OTHER;
    case 6:
        if (LIT_EQ(n, len, "cookie"))
            return FLB_HTTP1_H_COOKIE;
        return LIT_EQ(n, len, "expect") ? FLB_HTTP1_H_EXPECT : FLB_HTTP1_H_OTHER;
    case 7:
        if (LIT_EQ(n, len, "upgrade"))
            return FLB_HTTP1_H_UPGRADE;
        return LIT_EQ(n, len, "trailer") ? FLB_HTTP1_H_TRAILER : FLB_HTTP1_H_OTHER;
    case 10:
        if (LIT_EQ(n, len, "connection"))
            return FLB_HTTP1_H_CONNECTION;
        if (LIT_EQ(n, len, "keep-alive"))
            return FLB_HTTP1_H_KEEP_ALIVE;
        return LIT_EQ(n, len, "set-cookie") ? FLB_HTTP1_H_SET_COOKIE : FLB_HTTP1_H_OTHER;
    case 14:
        return LIT_EQ(n, len, "content-length") ? FLB_HTTP1_H_CONTENT_LENGTH : FLB_HTTP1_H_OTHER;
    case 16:
        return LIT_EQ(n, len, "proxy-connection") ? FLB_HTTP1_H_PROXY_CONNECTION : FLB_HTTP1_H_OTHER;
    case 17:
        if (LIT_EQ(n, len, "transfer-encoding"))
            return FLB_HTTP1_H_TRANSFER_ENCODING;
        return LIT_EQ(n, len, "x-marathon-app-id") ? FLB_HTTP1_H_APP_ID : FLB_HTTP1_H_OTHER;
    default:
        return FLB_HTTP1_H_OTHER;
    }
}

/* Whether <n> is Content-Length or Transfer-Encoding spelt with '_' for '-': CGI-style gateways (and
 * the servers behind them) map both spellings to the same variable, so such a field could frame the
 * body for the backend while fastlb took it for an ordinary one. */
static int framing_alias(const char *n, size_t len)
{
    const char *lit = len == 14 ? "content-length" : len == 17 ? "transfer-encoding" : NULL;
    if (lit == NULL || memchr(n, '_', len) == NULL)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = n[i] == '_' ? '-' : n[i];
        if (((uint8_t)c | 0x20) != (uint8_t)lit[i])
            return 0;
    }
    return 1;
}

/* What the fields of one head add up to, gathered while they are split. */
struct fields {
    struct flb_http1_header *h;
    uint32_t max, n;
    int is_request;
    uint32_t flags;
    const char *host;
    uint32_t host_len, nhost;
    const char *app_id;
    uint32_t app_id_len;
    uint32_t ncookies, cookie_first;
    int has_cl;
    uint64_t cl;
    int te;              /* a Transfer-Encoding field was seen */
    int te_chunked;      /* chunked was named */
    int te_last_chunked; /* ... and is the last coding so far */
    int te_malformed;    /* empty element, bad token, chunked twice or with parameters */
    int te_other;        /* a coding other than chunked */
};

/* Content-Length = 1*DIGIT, below 2^63 so that it fits any signed offset. RFC 9110 section 8.6 lets a
 * recipient take a list of identical values ("5, 5", or the field twice) as one; fastlb refuses them,
 * as llhttp does: forwarded as they came, such a head is read differently by the next hop. */
static int parse_content_length(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!IS(p[i], C_DIGIT))
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_C(0x7fffffffffffffff) - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Transfer-Encoding = #transfer-coding, gathered over every TE field of the head. Empty list elements,
 * which RFC 9110 would skip, are refused: "Transfer-Encoding: , chunked" is a known smuggling probe. */
static void parse_transfer_encoding(struct fields *f, const char *p, size_t n)
{
    size_t i = 0;
    f->te = 1;
    for (;;) {
        while (i < n && IS_OWS(p[i]))
            i++;
        size_t tok = i;
        while (i < n && IS(p[i], C_TCHAR))
            i++;
        size_t tok_len = i - tok;
        while (i < n && IS_OWS(p[i]))
            i++;
        int params = i < n && p[i] == ';';
        if (params) /* transfer-parameter: skipped up to the next comma (no coding we accept has one) */
            while (i < n && p[i] != ',')
                i++;
        if (tok_len == 0 || (i < n && p[i] != ',')) {
            f->te_malformed = 1;
            return;
        }
        if (LIT_EQ(p + tok, tok_len, "chunked")) {
            if (f->te_chunked || params)
                f->te_malformed = 1;
            f->te_chunked = 1;
            f->te_last_chunked = 1;
        } else {
            f->te_other = 1;
            f->te_last_chunked = 0;
        }
        if (i == n)
            return;
        i++; /* the comma */
    }
}

static void parse_connection(struct fields *f, const char *p, size_t n)
{
    size_t at = 0, len;
    for (;;) {
        size_t tok = flb_http1_list_next(p, n, &at, &len);
        if (len == 0)
            break;
        if (LIT_EQ(p + tok, len, "close"))
            f->flags |= FLB_HTTP1_F_CONN_CLOSE;
        else if (LIT_EQ(p + tok, len, "keep-alive"))
            f->flags |= FLB_HTTP1_F_CONN_KEEP_ALIVE;
        else if (LIT_EQ(p + tok, len, "upgrade"))
            f->flags |= FLB_HTTP1_F_CONN_UPGRADE;
        else
            f->flags |= FLB_HTTP1_F_CONN_OTHER;
    }
}

/* uri-host [ ":" port ] (RFC 9110 section 7.2, RFC 3986 section 3.2.2); empty is allowed (a target
 * without authority). */
static int host_valid(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return 1;
    if (p[0] == '[') {
        for (i = 1; i < n && p[i] != ']'; i++)
            if (!IS(p[i], C_HOST) && p[i] != ':')
                return 0;
        if (i == n || i == 1)
            return 0;
        i++;
    } else {
        while (i < n && IS(p[i], C_HOST))
            i++;
        if (i == 0)
            return 0;
    }
    if (i == n)
        return 1;
    if (p[i] != ':')
        return 0;
    for (i++; i < n; i++)
        if (!IS(p[i], C_DIGIT))
            return 0;
    return 1;
}

/* Acts on one complete field. Returns FLB_HTTP1_E_NONE or the error it makes the head. */
static enum flb_http1_error field_seen(struct fields *f, struct flb_http1_header *h)
{
    switch (h->kind) {
    case FLB_HTTP1_H_HOST:
        if (!f->is_request)
            break;
        if (++f->nhost > 1 || !host_valid(h->value, h->value_len))
            return FLB_HTTP1_E_HOST;
        f->host = h->value;
        f->host_len = h->value_len;
        break;
    case FLB_HTTP1_H_CONTENT_LENGTH: {
        uint64_t v;
        if (f->has_cl || parse_content_length(h->value, h->value_len, &v) != 0)
            return FLB_HTTP1_E_CONTENT_LENGTH;
        f->has_cl = 1;
        f->cl = v;
        break;
    }
    case FLB_HTTP1_H_TRANSFER_ENCODING:
        parse_transfer_encoding(f, h->value, h->value_len);
        break;
    case FLB_HTTP1_H_CONNECTION:
        parse_connection(f, h->value, h->value_len);
        break;
    case FLB_HTTP1_H_UPGRADE:
        f->flags |= FLB_HTTP1_F_UPGRADE;
        break;
    case FLB_HTTP1_H_EXPECT:
        if (LIT_EQ(h->value, h->value_len, "100-continue"))
            f->flags |= FLB_HTTP1_F_EXPECT_CONTINUE;
        else
            f->flags |= FLB_HTTP1_F_EXPECT_OTHER;
        break;
    case FLB_HTTP1_H_COOKIE:
        if (f->ncookies++ == 0)
            f->cookie_first = f->n;
        break;
    case FLB_HTTP1_H_APP_ID:
        if (!f->is_request)
            break;
        if (f->app_id)
            return FLB_HTTP1_E_APP_ID;
        f->app_id = h->value;
        f->app_id_len = h->value_len;
        break;
    default:
        break;
    }
    return FLB_HTTP1_E_NONE;
}

/* Splits the fields from <p> (a line start) to the empty line. Returns the byte after the empty line,
 * or NULL with *<err> set, or NULL with *<err> left at NONE when the input ends first. */
static const char *parse_fields(const char *p, const char *end, struct fields *f, enum flb_http1_error *err)
{
    for (;;) {
        if (p == end)
            return NULL;
        if (*p == '\r') {
            if (end - p < 2)
                return NULL;
            if (p[1] != '\n') {
                *err = FLB_HTTP1_E_LINE_ENDING;
                return NULL;
            }
            return p + 2;
        }
        const char *name = p;
        while (p < end && IS(*p, C_TCHAR))
            p++;
        if (p == end)
            return NULL;
        if (*p != ':' || p == name) {
            if (p != name)
                *err = FLB_HTTP1_E_HEADER_NAME; /* white space before the colon lands here too */
            else if (IS_OWS(*p))
                *err = FLB_HTTP1_E_OBS_FOLD;
            else if (*p == '\n')
                *err = FLB_HTTP1_E_LINE_ENDING;
            else
                *err = FLB_HTTP1_E_HEADER_NAME;
            return NULL;
        }
        size_t name_len = (size_t)(p - name);
        p++;
        const char *raw = p; /* the field value with the white space around it */
        while (p < end && IS_OWS(*p))
            p++;
        const char *value = p;
        for (;;) {
            p = scan_value(p, end);
            if (p == end)
                return NULL;
            if (*p != '\t')
                break;
            p++;
        }
        if (*p != '\r') {
            *err = *p == '\n' ? FLB_HTTP1_E_LINE_ENDING : FLB_HTTP1_E_HEADER_VALUE;
            return NULL;
        }
        if (end - p < 2)
            return NULL;
        if (p[1] != '\n') {
            *err = FLB_HTTP1_E_LINE_ENDING;
            return NULL;
        }
        const char *vend = p;
        while (vend > value && IS_OWS(vend[-1]))
            vend--;
        p += 2;
        if (f->n == f->max) {
            *err = FLB_HTTP1_E_TOO_MANY_HEADERS;
            return NULL;
        }
        struct flb_http1_header *h = &f->h[f->n];
        h->name = name;
        h->name_len = (uint32_t)name_len;
        h->value = value;
        h->value_len = (uint32_t)(vend - value);
        h->kind = classify(name, name_len);
        if (h->kind == FLB_HTTP1_H_OTHER && framing_alias(name, name_len)) {
            *err = FLB_HTTP1_E_HEADER_NAME;
            return NULL;
        }
        /* A tab in a framing field ("chunked<TAB>") is white space to RFC 9110 but not to every
         * server behind fastlb: one that reads another framing than fastlb's is a smuggling target. */
        if ((h->kind == FLB_HTTP1_H_TRANSFER_ENCODING || h->kind == FLB_HTTP1_H_CONTENT_LENGTH) &&
            memchr(raw, '\t', (size_t)(p - 2 - raw)) != NULL) {
            *err = FLB_HTTP1_E_HEADER_VALUE;
            return NULL;
        }
        if (h->kind != FLB_HTTP1_H_OTHER) {
            *err = field_seen(f, h);
            if (*err != FLB_HTTP1_E_NONE)
                return NULL;
        }
        f->n++;
    }
}

/* "HTTP/" DIGIT "." DIGIT at <p>. Returns the byte after it, or NULL as parse_fields does. Only 1.0 and
 * 1.1 are served: 1.2 would mean features fastlb cannot vouch for, and 2.0 over this syntax is bogus. */
static const char *parse_version(const char *p, const char *end, int *minor, enum flb_http1_error *err)
{
    static const char lit[] = "HTTP/";
    size_t avail = (size_t)(end - p);
    for (size_t i = 0; i < 8 && i < avail; i++) {
        char c = p[i];
        int ok = i < 5 ? c == lit[i] : i == 6 ? c == '.' : IS(c, C_DIGIT) != 0;
        if (!ok) {
            *err = FLB_HTTP1_E_VERSION;
            return NULL;
        }
    }
    if (avail < 8)
        return NULL;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1')) {
        *err = FLB_HTTP1_E_VERSION_UNSUPPORTED;
        return NULL;
    }
    *minor = p[7] - '0';
    return p + 8;
}

/* CRLF at <p>; <bad> is the error for a byte that starts no line ending. */
static const char *parse_crlf(const char *p, const char *end, enum flb_http1_error bad, enum flb_http1_error *err)
{
    if (p == end)
        return NULL;
    if (*p != '\r') {
        *err = *p == '\n' ? FLB_HTTP1_E_LINE_ENDING : bad;
        return NULL;
    }
    if (end - p < 2)
        return NULL;
    if (p[1] != '\n') {
        *err = FLB_HTTP1_E_LINE_ENDING;
        return NULL;
    }
    return p + 2;
}

/* Whether the bytes after <prev_len> can have completed the head or made it invalid at once: a head
 * ends with CRLF CRLF, and a bare LF is an error. Other errors wait for one of those, or for head_max. */
static int worth_parsing(const char *buf, size_t len, size_t prev_len)
{
    const char *p = buf + prev_len, *end = buf + len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        size_t i = (size_t)(p - buf);
        if (i == 0 || buf[i - 1] != '\r')
            return 1;
        if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return 1;
        p++;
    }
    return 0;
}

/* The request forms RFC 9112 section 3.2 allows: origin-form ("/..."), absolute-form ("scheme:..."),
 * authority-form (CONNECT only), asterisk-form (OPTIONS only). */
static int target_valid(const char *m, size_t mlen, const char *t, size_t tlen)
{
    if (mlen == 7 && memcmp(m, "CONNECT", 7) == 0)
        return host_valid(t, tlen);
    if (t[0] == '/')
        return 1;
    if (tlen == 1 && t[0] == '*')
        return mlen == 7 && memcmp(m, "OPTIONS", 7) == 0;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    if (!((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z'))
        return 0;
    for (size_t i = 1; i < tlen; i++) {
        char c = t[i];
        if (c == ':')
            return 1;
        if (!(IS(c, C_DIGIT) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '+' || c == '-' || c == '.'))
            return 0;
    }
    return 0;
}

ssize_t flb_http1_request_parse(struct flb_http1_request *req, const char *buf, size_t len, size_t prev_len)
{
    size_t head_max = req->head_max ? req->head_max : FLB_HTTP1_HEAD_MAX;
    size_t target_max = req->target_max ? req->target_max : FLB_HTTP1_TARGET_MAX;
    enum flb_http1_error err = FLB_HTTP1_E_NONE;
    int truncated = len > head_max;
    const char *p = buf, *end = buf + (truncated ? head_max : len);

    if (!truncated && prev_len > 0 && prev_len <= len && !worth_parsing(buf, len, prev_len))
        return FLB_AGAIN;

    /* method SP */
    const char *m = p;
    while (p < end && IS(*p, C_TCHAR))
        p++;
    if (p == end)
        goto partial;
    if (*p != ' ' || p == m) {
        err = FLB_HTTP1_E_METHOD;
        goto fail;
    }
    req->method = m;
    req->method_len = (uint32_t)(p - m);
    p++;

    /* request-target SP */
    const char *t = p;
    const char *tend = (size_t)(end - t) > target_max ? t + target_max : end;
    p = scan_target(t, tend);
    if (p == end)
        goto partial;
    if (p == tend && IS(*p, C_TARGET)) {
        err = FLB_HTTP1_E_TARGET_TOO_LONG;
        goto fail;
    }
    if (*p != ' ' || p == t || !target_valid(m, req->method_len, t, (size_t)(p - t))) {
        err = FLB_HTTP1_E_TARGET;
        goto fail;
    }
    req->target = t;
    req->target_len = (uint32_t)(p - t);
    p++;

    /* HTTP-version CRLF */
    p = parse_version(p, end, &req->minor, &err);
    if (p == NULL)
        goto partial;
    p = parse_crlf(p, end, FLB_HTTP1_E_VERSION, &err);
    if (p == NULL)
        goto partial;

    struct fields f = {.h = req->headers, .max = req->headers ? req->max_headers : 0, .is_request = 1};
    p = parse_fields(p, end, &f, &err);
    if (p == NULL)
        goto partial;

    /* Framing (RFC 9112 section 6): anything two readers could frame differently is refused. */
    if (f.te) {
        if (req->minor == 0)
            err = FLB_HTTP1_E_TE_HTTP10;
        else if (f.has_cl)
            err = FLB_HTTP1_E_CL_AND_TE;
        else if (f.te_malformed || !f.te_last_chunked)
            err = FLB_HTTP1_E_TE_NOT_CHUNKED;
        else if (f.te_other)
            err = FLB_HTTP1_E_TE_UNSUPPORTED;
        if (err != FLB_HTTP1_E_NONE)
            goto fail;
        req->framing = FLB_HTTP1_BODY_CHUNKED;
        req->content_length = 0;
    } else if (f.has_cl) {
        req->framing = FLB_HTTP1_BODY_LENGTH;
        req->content_length = f.cl;
    } else {
        req->framing = FLB_HTTP1_BODY_NONE;
        req->content_length = 0;
    }
    if (f.nhost == 0 && req->minor == 1) {
        err = FLB_HTTP1_E_HOST;
        goto fail;
    }
    req->host = f.host;
    req->host_len = f.host_len;
    req->app_id = f.app_id;
    req->app_id_len = f.app_id_len;
    req->nheaders = f.n;
    req->ncookies = f.ncookies;
    req->cookie_first = f.cookie_first;
    req->flags = f.flags;
    req->head_len = (uint32_t)(p - buf);
    req->error = FLB_HTTP1_E_NONE;
    return p - buf;

partial:
    if (err != FLB_HTTP1_E_NONE)
        goto fail;
    if (!truncated)
        return FLB_AGAIN;
    err = FLB_HTTP1_E_HEAD_TOO_LARGE;
fail:
    req->error = err;
    return FLB_ERR;
}

ssize_t flb_http1_response_parse(struct flb_http1_response *resp, const char *buf, size_t len, size_t prev_len,
                                 unsigned req_flags)
{
    size_t head_max = resp->head_max ? resp->head_max : FLB_HTTP1_HEAD_MAX;
    enum flb_http1_error err = FLB_HTTP1_E_NONE;
    int truncated = len > head_max;
    const char *p = buf, *end = buf + (truncated ? head_max : len);

    if (!truncated && prev_len > 0 && prev_len <= len && !worth_parsing(buf, len, prev_len))
        return FLB_AGAIN;

    /* HTTP-version SP status-code [SP reason-phrase] CRLF; the SP before an empty reason is often left
     * out, and taking that costs no ambiguity. */
    p = parse_version(p, end, &resp->minor, &err);
    if (p == NULL)
        goto partial;
    if (end - p < 4) {
        for (const char *q = p; q < end; q++)
            if (q == p ? *q != ' ' : !IS(*q, C_DIGIT)) {
                err = FLB_HTTP1_E_STATUS;
                goto fail;
            }
        goto partial;
    }
    if (p[0] != ' ' || !IS(p[1], C_DIGIT) || !IS(p[2], C_DIGIT) || !IS(p[3], C_DIGIT) || p[1] == '0') {
        err = FLB_HTTP1_E_STATUS;
        goto fail;
    }
    resp->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    p += 4;
    resp->reason = p;
    if (p < end && *p == ' ') {
        resp->reason = ++p;
        for (;;) {
            p = scan_value(p, end);
            if (p == end || *p != '\t')
                break;
            p++;
        }
    }
    resp->reason_len = (uint32_t)(p - resp->reason);
    p = parse_crlf(p, end, FLB_HTTP1_E_STATUS, &err);
    if (p == NULL)
        goto partial;

    struct fields f = {.h = resp->headers, .max = resp->headers ? resp->max_headers : 0, .is_request = 0};
    p = parse_fields(p, end, &f, &err);
    if (p == NULL)
        goto partial;

    /* RFC 9112 section 6.3, in its order; TE with CL and a malformed TE are refused rather than
     * resolved, a response being no place for creativity either. */
    if (f.te) {
        if (resp->minor == 0)
            err = FLB_HTTP1_E_TE_HTTP10;
        else if (f.has_cl)
            err = FLB_HTTP1_E_CL_AND_TE;
        else if (f.te_malformed)
            err = FLB_HTTP1_E_TE_NOT_CHUNKED;
        if (err != FLB_HTTP1_E_NONE)
            goto fail;
    }
    int status = resp->status;
    resp->content_length = 0;
    if (status == 101 || ((req_flags & FLB_HTTP1_REQ_CONNECT) && status >= 200 && status < 300)) {
        f.flags |= FLB_HTTP1_F_TUNNEL;
        resp->framing = FLB_HTTP1_BODY_NONE;
    } else if ((req_flags & FLB_HTTP1_REQ_HEAD) || status < 200 || status == 204 || status == 304) {
        resp->framing = FLB_HTTP1_BODY_NONE;
    } else if (f.te) {
        resp->framing = f.te_last_chunked ? FLB_HTTP1_BODY_CHUNKED : FLB_HTTP1_BODY_CLOSE;
    } else if (f.has_cl) {
        resp->framing = FLB_HTTP1_BODY_LENGTH;
        resp->content_length = f.cl;
    } else {
        resp->framing = FLB_HTTP1_BODY_CLOSE;
    }
    resp->nheaders = f.n;
    resp->flags = f.flags;
    resp->head_len = (uint32_t)(p - buf);
    resp->error = FLB_HTTP1_E_NONE;
    return p - buf;

partial:
    if (err != FLB_HTTP1_E_NONE)
        goto fail;
    if (!truncated)
        return FLB_AGAIN;
    err = FLB_HTTP1_E_HEAD_TOO_LARGE;
fail:
    resp->error = err;
    return FLB_ERR;
}

/* Chunked body, RFC 9112 section 7.1:
 *   chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; last-chunk = 1*"0" [ chunk-ext ] CRLF;
 *   trailer-section = *( field-line CRLF ); then CRLF.
 * Stricter than the grammar in one place: no white space between the size and a ';' (BWS), which no
 * client we know sends and some servers read as part of the size. */
enum {
    CK_SIZE0 = 0, /* first digit of a chunk size */
    CK_SIZE,
    CK_EXT,
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER_LINE, /* start of a trailer line, or the final CRLF */
    CK_TRAILER_NAME,
    CK_TRAILER_VALUE,
    CK_TRAILER_LF,
    CK_END_LF,
    CK_DONE,
    CK_ERROR,
};

static int hexval(char c)
{
    if (IS(c, C_DIGIT))
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

/* Trailer fields a recipient could merge into the head to change its framing or routing. */
static int trailer_forbidden(const char *name, size_t len)
{
    return LIT_EQ(name, len, "content-length") || LIT_EQ(name, len, "transfer-encoding") || LIT_EQ(name, len, "host");
}

ssize_t flb_http1_chunked_feed(struct flb_http1_chunked *c, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    enum flb_http1_error err = FLB_HTTP1_E_NONE;

    if (c->state == CK_ERROR)
        return FLB_ERR;
    if (c->state == CK_DONE)
        return 0;
    while (p < end) {
        char ch = *p;
        switch (c->state) {
        case CK_SIZE0:
            if (!IS(ch, C_HEX)) {
                err = FLB_HTTP1_E_CHUNK_SIZE;
                goto fail;
            }
            c->remaining = (uint64_t)hexval(ch);
            c->line_len = 1;
            c->state = CK_SIZE;
            p++;
            continue;
        case CK_SIZE:
            if (IS(ch, C_HEX)) {
                /* 60 bits at most: past any real body, and far from wrapping when added to offsets */
                if (c->remaining >> 56) {
                    err = FLB_HTTP1_E_CHUNK_SIZE;
                    goto fail;
                }
                c->remaining = c->remaining << 4 | (uint64_t)hexval(ch);
            } else if (ch == ';') {
                c->state = CK_EXT;
            } else if (ch == '\r') {
                c->state = CK_SIZE_LF;
            } else {
                err = FLB_HTTP1_E_CHUNK_SIZE;
                goto fail;
            }
            break;
        case CK_EXT:
            if (ch == '\r') {
                c->state = CK_SIZE_LF;
            } else if (!IS(ch, C_VALUE) && ch != '\t') {
                err = FLB_HTTP1_E_CHUNK_EXT;
                goto fail;
            }
            break;
        case CK_SIZE_LF:
            if (ch != '\n') {
                err = FLB_HTTP1_E_CHUNK_SIZE;
                goto fail;
            }
            p++;
            c->line_len = 0;
            c->state = c->remaining ? CK_DATA : CK_TRAILER_LINE;
            continue;
        case CK_DATA: {
            size_t n = (size_t)(end - p);
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            p += n;
            c->remaining -= n;
            c->data_bytes += n;
            if (c->remaining == 0)
                c->state = CK_DATA_CR;
            continue;
        }
        case CK_DATA_CR:
        case CK_DATA_LF:
            if (ch != (c->state == CK_DATA_CR ? '\r' : '\n')) {
                err = FLB_HTTP1_E_CHUNK_DATA;
                goto fail;
            }
            c->state = c->state == CK_DATA_CR ? CK_DATA_LF : CK_SIZE0;
            p++;
            continue;
        case CK_TRAILER_LINE:
            if (ch == '\r') {
                c->state = CK_END_LF;
            } else if (IS(ch, C_TCHAR)) {
                c->name[0] = (char)(ch | 0x20);
                c->name_len = 1;
                c->state = CK_TRAILER_NAME;
            } else {
                err = FLB_HTTP1_E_TRAILER;
                goto fail;
            }
            break;
        case CK_TRAILER_NAME:
            if (IS(ch, C_TCHAR)) {
                if (c->name_len < sizeof(c->name))
                    c->name[c->name_len] = (char)(ch | 0x20);
                if (c->name_len < 255)
                    c->name_len++;
            } else if (ch == ':' && !(c->name_len <= sizeof(c->name) && trailer_forbidden(c->name, c->name_len))) {
                c->state = CK_TRAILER_VALUE;
            } else {
                err = FLB_HTTP1_E_TRAILER;
                goto fail;
            }
            break;
        case CK_TRAILER_VALUE:
            if (ch == '\r') {
                c->state = CK_TRAILER_LF;
            } else if (!IS(ch, C_VALUE) && ch != '\t') {
                err = FLB_HTTP1_E_TRAILER;
                goto fail;
            }
            break;
        case CK_TRAILER_LF:
        case CK_END_LF:
            if (ch != '\n') {
                err = FLB_HTTP1_E_TRAILER;
                goto fail;
            }
            if (c->state == CK_END_LF) {
                c->state = CK_DONE;
                return p + 1 - buf;
            }
            c->state = CK_TRAILER_LINE;
            break;
        default:
            err = FLB_HTTP1_E_CHUNK_SIZE;
            goto fail;
        }
        /* the byte belonged to a size line or to the trailers: both are bounded */
        p++;
        c->line_len++;
        if (c->state >= CK_TRAILER_LINE) {
            if (c->line_len > FLB_HTTP1_TRAILERS_MAX) {
                err = FLB_HTTP1_E_TRAILERS_TOO_LARGE;
                goto fail;
            }
        } else if (c->line_len > FLB_HTTP1_CHUNK_LINE_MAX) {
            err = FLB_HTTP1_E_CHUNK_EXT;
            goto fail;
        }
    }
    return FLB_AGAIN;

fail:
    c->state = CK_ERROR;
    c->error = err;
    return FLB_ERR;
}

static const struct {
    const char *name;
    short status;
} errors[FLB_HTTP1_E_COUNT] = {
    [FLB_HTTP1_E_NONE] = {"none", 200},
    [FLB_HTTP1_E_METHOD] = {"method", 400},
    [FLB_HTTP1_E_TARGET] = {"target", 400},
    [FLB_HTTP1_E_TARGET_TOO_LONG] = {"target_too_long", 414},
    [FLB_HTTP1_E_VERSION] = {"version", 400},
    [FLB_HTTP1_E_VERSION_UNSUPPORTED] = {"version_unsupported", 505},
    [FLB_HTTP1_E_LINE_ENDING] = {"line_ending", 400},
    [FLB_HTTP1_E_HEADER_NAME] = {"header_name", 400},
    [FLB_HTTP1_E_HEADER_VALUE] = {"header_value", 400},
    [FLB_HTTP1_E_OBS_FOLD] = {"obs_fold", 400},
    [FLB_HTTP1_E_HEAD_TOO_LARGE] = {"head_too_large", 431},
    [FLB_HTTP1_E_TOO_MANY_HEADERS] = {"too_many_headers", 431},
    [FLB_HTTP1_E_HOST] = {"host", 400},
    [FLB_HTTP1_E_CONTENT_LENGTH] = {"content_length", 400},
    [FLB_HTTP1_E_CL_AND_TE] = {"cl_and_te", 400},
    [FLB_HTTP1_E_TE_NOT_CHUNKED] = {"te_not_chunked", 400},
    [FLB_HTTP1_E_TE_UNSUPPORTED] = {"te_unsupported", 501},
    [FLB_HTTP1_E_TE_HTTP10] = {"te_http10", 400},
    [FLB_HTTP1_E_APP_ID] = {"app_id", 400},
    [FLB_HTTP1_E_STATUS] = {"status", 400},
    [FLB_HTTP1_E_CHUNK_SIZE] = {"chunk_size", 400},
    [FLB_HTTP1_E_CHUNK_EXT] = {"chunk_ext", 400},
    [FLB_HTTP1_E_CHUNK_DATA] = {"chunk_data", 400},
    [FLB_HTTP1_E_TRAILER] = {"trailer", 400},
    [FLB_HTTP1_E_TRAILERS_TOO_LARGE] = {"trailers_too_large", 400},
};

int flb_http1_error_status(enum flb_http1_error err)
{
    if ((unsigned)err >= FLB_HTTP1_E_COUNT)
        return 400;
    return errors[err].status;
}

const char *flb_http1_error_name(enum flb_http1_error err)
{
    if ((unsigned)err >= FLB_HTTP1_E_COUNT)
        return "unknown";
    return errors[err].name;
}
