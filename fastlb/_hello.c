/* _hello.c: the ClientHello reader (see _hello.h; RFC 8446 4.1.2, RFC 5246 7.4.1.2, RFC 6066 3).
 *
 * The handshake message is read through a cursor that steps over record headers, so a message cut
 * into records of any size reads as one run of bytes, with nothing copied but the host name. */
#include "_api.h"

#include "_hello.h"

#include <string.h>

#define REC_HANDSHAKE 0x16
#define HS_CLIENT_HELLO 0x01
#define EXT_SERVER_NAME 0x0000
#define NAME_HOST 0x00
#define RECORD_MAX 16384 /* a plaintext record's payload, at most */

/* A cursor over the handshake bytes the records carry. <rc>: FLB_OK, or the first reason to stop
 * (FLB_AGAIN: out of input; FLB_HELLO_BAD). Once set, every read answers zeros and changes nothing. */
struct rd {
    const uint8_t *buf;
    size_t len;
    size_t pos;       /* next input byte */
    size_t left;      /* payload bytes of the current record not read yet */
    uint32_t records; /* record headers read */
    size_t taken;     /* handshake bytes read */
    int rc;
};

/* Steps over the next record header. FLB_OK, or sets <rc>. */
static int record(struct rd *r)
{
    const uint8_t *h = r->buf + r->pos;
    size_t n;

    if (r->records == FLB_HELLO_RECORDS)
        return r->rc = FLB_HELLO_BAD;
    if (r->len - r->pos < 5)
        return r->rc = FLB_AGAIN;
    n = (size_t)h[3] << 8 | h[4];
    if (h[0] != REC_HANDSHAKE || h[1] != 3 || n == 0 || n > RECORD_MAX)
        return r->rc = FLB_HELLO_BAD;
    r->pos += 5;
    r->left = n;
    r->records++;
    return FLB_OK;
}

/* Reads <n> handshake bytes into <out> (NULL: skips them). FLB_OK, or sets <rc>. */
static int take(struct rd *r, uint8_t *out, size_t n)
{
    if (r->rc != FLB_OK)
        return r->rc;
    if (n > FLB_HELLO_MAX - r->taken)
        return r->rc = FLB_HELLO_BAD;
    while (n > 0) {
        if (r->left == 0 && record(r) != FLB_OK)
            return r->rc;
        size_t k = n < r->left ? n : r->left;
        if (k > r->len - r->pos)
            k = r->len - r->pos;
        if (k == 0)
            return r->rc = FLB_AGAIN;
        if (out != NULL) {
            memcpy(out, r->buf + r->pos, k);
            out += k;
        }
        r->pos += k;
        r->left -= k;
        r->taken += k;
        n -= k;
    }
    return FLB_OK;
}

static uint32_t u8(struct rd *r)
{
    uint8_t b[1] = {0};

    take(r, r->rc == FLB_OK ? b : NULL, 1);
    return r->rc == FLB_OK ? b[0] : 0;
}

static uint32_t u16(struct rd *r)
{
    uint8_t b[2] = {0, 0};

    take(r, r->rc == FLB_OK ? b : NULL, 2);
    return r->rc == FLB_OK ? (uint32_t)b[0] << 8 | b[1] : 0;
}

static uint32_t u24(struct rd *r)
{
    uint8_t b[3] = {0, 0, 0};

    take(r, r->rc == FLB_OK ? b : NULL, 3);
    return r->rc == FLB_OK ? (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2] : 0;
}

/* A DNS host name (RFC 6066: no trailing dot, no IP literal check), lower-cased in place. */
static int host_name(char *n, size_t len)
{
    if (len == 0 || len > FLB_HELLO_NAME_MAX || n[0] == '.' || n[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (c >= 'A' && c <= 'Z')
            n[i] = (char)(c | 0x20);
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

/* The server_name extension's body, <n> bytes: the first host_name entry into <out>. */
static int server_name(struct rd *r, size_t n, struct flb_hello *out)
{
    size_t list = u16(r), used = 2;

    if (r->rc != FLB_OK)
        return r->rc;
    if (list + 2 != n || list < 3)
        return r->rc = FLB_HELLO_BAD;
    while (used < n) {
        uint32_t type = u8(r);
        size_t len = u16(r);
        used += 3;
        if (r->rc != FLB_OK)
            return r->rc;
        if (used + len > n)
            return r->rc = FLB_HELLO_BAD;
        if (type == NAME_HOST && out->name_len == 0) {
            if (len > FLB_HELLO_NAME_MAX)
                return r->rc = FLB_HELLO_BAD;
            if (take(r, (uint8_t *)out->name, len) != FLB_OK)
                return r->rc;
            if (!host_name(out->name, len))
                return r->rc = FLB_HELLO_BAD;
            out->name[len] = '\0';
            out->name_len = (uint32_t)len;
        } else if (type == NAME_HOST) {
            return r->rc = FLB_HELLO_BAD; /* one host_name at most */
        } else {
            take(r, NULL, len);
        }
        used += len;
    }
    return r->rc;
}

int flb_hello_read(const uint8_t *buf, size_t len, struct flb_hello *out)
{
    struct rd r = {.buf = buf, .len = len};
    size_t body, end, ext_end;
    int seen_sni = 0;

    out->name[0] = '\0';
    out->name_len = 0;
    if (len == 0)
        return FLB_AGAIN;
    if (buf[0] != REC_HANDSHAKE)
        return FLB_HELLO_NOT_TLS;
    if (u8(&r) != HS_CLIENT_HELLO && r.rc == FLB_OK)
        return FLB_HELLO_BAD;
    body = u24(&r);
    if (r.rc != FLB_OK)
        return r.rc;
    /* version, random, then the session id, cipher suites and compression methods, each with its length */
    if (body + 4 > FLB_HELLO_MAX || body < 2 + 32 + 1 + 2 + 2 + 1 + 1)
        return FLB_HELLO_BAD;
    end = 4 + body;
    if (u8(&r) != 3 && r.rc == FLB_OK)
        return FLB_HELLO_BAD;
    take(&r, NULL, 1 + 32);
    size_t sid = u8(&r);
    if (r.rc == FLB_OK && sid > 32)
        return FLB_HELLO_BAD;
    take(&r, NULL, sid);
    size_t suites = u16(&r);
    if (r.rc == FLB_OK && (suites < 2 || suites % 2 != 0))
        return FLB_HELLO_BAD;
    take(&r, NULL, suites);
    size_t comp = u8(&r);
    if (r.rc == FLB_OK && comp < 1)
        return FLB_HELLO_BAD;
    take(&r, NULL, comp);
    if (r.rc != FLB_OK)
        return r.rc;
    if (r.taken > end)
        return FLB_HELLO_BAD;
    if (r.taken == end)
        return FLB_HELLO_NO_SNI; /* no extensions at all (a TLS 1.2 client may send none) */
    ext_end = r.taken + 2 + u16(&r);
    if (r.rc != FLB_OK)
        return r.rc;
    if (ext_end != end)
        return FLB_HELLO_BAD;
    while (r.taken < end) {
        uint32_t type = u16(&r);
        size_t n = u16(&r);
        if (r.rc != FLB_OK)
            return r.rc;
        if (r.taken + n > end)
            return FLB_HELLO_BAD;
        if (type == EXT_SERVER_NAME) {
            if (seen_sni++)
                return FLB_HELLO_BAD; /* an extension appears once */
            if (server_name(&r, n, out) != FLB_OK)
                return r.rc;
        } else if (take(&r, NULL, n) != FLB_OK) {
            return r.rc;
        }
    }
    return out->name_len > 0 ? FLB_HELLO_SNI : FLB_HELLO_NO_SNI;
}
