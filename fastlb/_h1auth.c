/* _h1auth.c: allow-lists and basic auth (see _h1auth.h). */
#define _GNU_SOURCE
#include "_api.h"

#include "_h1auth.h"

#include "_balance.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static int prefix_matches(const uint8_t *a, const uint8_t *b, uint32_t bits)
{
    uint32_t bytes = bits / 8, rest = bits % 8;

    if (memcmp(a, b, bytes) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

/* Whether <addr> of <family> is in <hs>'s allow-list; an IPv4-mapped IPv6 address is the IPv4 address
 * it carries. */
static int listed(const struct flb_l7_service *hs, int family, const uint8_t *addr)
{
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
        family = AF_INET;
        addr += 12;
    }
    for (uint32_t i = 0; i < hs->ncidrs; i++)
        if (hs->cidrs[i].family == family && prefix_matches(addr, hs->cidrs[i].addr, hs->cidrs[i].bits))
            return 1;
    return 0;
}

/* Traefik 1.7's useXForwardedFor: the entries of every X-Forwarded-For field, in order, split at ','
 * and trimmed, until one is in the list (1) or one is not an IP address (0: Traefik stops there with
 * an error, and refuses) or none is left (0). */
static int forwarded_listed(const struct flb_l7_service *hs, const struct flb_http1_request *req)
{
    for (uint32_t i = 0; i < req->nheaders; i++) {
        const struct flb_http1_header *hd = &req->headers[i];
        const char *p = hd->value, *end = hd->value + hd->value_len;

        if (hd->kind != FLB_HTTP1_H_OTHER || hd->name_len != 15 || strncasecmp(hd->name, "x-forwarded-for", 15) != 0)
            continue;
        for (;;) {
            const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma != NULL ? comma : end;
            char text[INET6_ADDRSTRLEN];
            uint8_t addr[16];
            int family;

            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e == p || (size_t)(e - p) >= sizeof(text))
                return 0;
            memcpy(text, p, (size_t)(e - p));
            text[e - p] = '\0';
            if (inet_pton(AF_INET, text, addr) == 1)
                family = AF_INET;
            else if (inet_pton(AF_INET6, text, addr) == 1)
                family = AF_INET6;
            else
                return 0;
            if (listed(hs, family, addr))
                return 1;
            if (comma == NULL)
                break;
            p = comma + 1;
        }
    }
    return 0;
}

int flb_h1auth_allowed(const struct flb_l7_service *hs, const struct sockaddr *sa,
                       const struct flb_http1_request *req)
{
    if (hs->ncidrs == 0)
        return 1;
    if (sa->sa_family == AF_INET && listed(hs, AF_INET, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr))
        return 1;
    if (sa->sa_family == AF_INET6 &&
        listed(hs, AF_INET6, (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr))
        return 1;
    return hs->allow_xff && req != NULL && forwarded_listed(hs, req);
}

int flb_h1auth_cidr_parse(const char *text, struct flb_l7_cidr *c)
{
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t n = slash != NULL ? (size_t)(slash - text) : strlen(text);
    long bits = -1;

    memset(c, 0, sizeof(*c));
    if (n == 0 || n >= sizeof(ip))
        goto bad;
    memcpy(ip, text, n);
    ip[n] = '\0';
    if (inet_pton(AF_INET, ip, c->addr) == 1)
        c->family = AF_INET;
    else if (inet_pton(AF_INET6, ip, c->addr) == 1)
        c->family = AF_INET6;
    else
        goto bad;
    if (slash != NULL) {
        char *end;
        if (slash[1] == '\0')
            goto bad;
        bits = strtol(slash + 1, &end, 10);
        if (*end != '\0' || bits < 0 || bits > (c->family == AF_INET ? 32 : 128))
            goto bad;
    }
    c->bits = bits >= 0 ? (uint32_t)bits : (c->family == AF_INET ? 32 : 128);
    return FLB_OK;
bad:
    errno = EINVAL;
    return FLB_ERR;
}

static int b64(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes base64 <in> into <out> (NUL-terminated). Returns the decoded length or -1. */
static int b64_decode(const char *in, size_t len, char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;

    while (len > 0 && in[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++) {
        int v = b64((uint8_t)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return (int)n;
}

/* Whether the NUL-terminated <got> is <want> (<want_len> bytes), in a time that does not depend on
 * where they differ. */
static int same(const char *got, const char *want, size_t want_len)
{
    return strlen(got) == want_len && CRYPTO_memcmp(got, want, want_len) == 0;
}

static const char to64_chars[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* <n> characters of crypt's base-64 for the low bits of <v>, least significant first. */
static char *to64(char *out, uint32_t v, int n)
{
    while (n-- > 0) {
        *out++ = to64_chars[v & 0x3f];
        v >>= 6;
    }
    return out;
}

/* Apache's MD5 htpasswd hash ("$apr1$<salt>$<22 characters>", htpasswd -m): MD5-crypt with the magic
 * "$apr1$", which libxcrypt does not know. */
static int apr1_matches(const char *pw, const char *hash)
{
    static const char magic[] = "$apr1$";
    const char *salt = hash + 6, *end = salt;
    size_t pwlen = strlen(pw), slen;
    uint8_t fin[16];
    char out[22 + 1], *o = out;
    EVP_MD_CTX *ctx = NULL;
    EVP_MD *md5 = NULL;
    int ok = 0;

    while (*end != '\0' && *end != '$' && end - salt < 8)
        end++;
    if (*end != '$')
        return 0;
    slen = (size_t)(end - salt);
    /* fetched once here, not by each of the 1002 inits (half the cost) */
    if ((md5 = EVP_MD_fetch(NULL, "MD5", NULL)) == NULL || (ctx = EVP_MD_CTX_new()) == NULL)
        goto done;
    /* the alternate sum, then the first, as md5_crypt.c (FreeBSD) and apr_md5.c compute them */
    if (!EVP_DigestInit_ex(ctx, md5, NULL) || !EVP_DigestUpdate(ctx, pw, pwlen) ||
        !EVP_DigestUpdate(ctx, salt, slen) || !EVP_DigestUpdate(ctx, pw, pwlen) ||
        !EVP_DigestFinal_ex(ctx, fin, NULL))
        goto done;
    if (!EVP_DigestInit_ex(ctx, md5, NULL) || !EVP_DigestUpdate(ctx, pw, pwlen) ||
        !EVP_DigestUpdate(ctx, magic, 6) || !EVP_DigestUpdate(ctx, salt, slen))
        goto done;
    for (size_t left = pwlen; left > 0; left -= left > 16 ? 16 : left)
        if (!EVP_DigestUpdate(ctx, fin, left > 16 ? 16 : left))
            goto done;
    for (size_t i = pwlen; i > 0; i >>= 1)
        if (!EVP_DigestUpdate(ctx, (i & 1) ? "" : pw, 1))
            goto done;
    if (!EVP_DigestFinal_ex(ctx, fin, NULL))
        goto done;
    /* 1000 rounds, to slow down guessing */
    for (int i = 0; i < 1000; i++) {
        if (!EVP_DigestInit_ex(ctx, md5, NULL) ||
            !((i & 1) ? EVP_DigestUpdate(ctx, pw, pwlen) : EVP_DigestUpdate(ctx, fin, 16)) ||
            (i % 3 && !EVP_DigestUpdate(ctx, salt, slen)) || (i % 7 && !EVP_DigestUpdate(ctx, pw, pwlen)) ||
            !((i & 1) ? EVP_DigestUpdate(ctx, fin, 16) : EVP_DigestUpdate(ctx, pw, pwlen)) ||
            !EVP_DigestFinal_ex(ctx, fin, NULL))
            goto done;
    }
    o = to64(o, (uint32_t)fin[0] << 16 | (uint32_t)fin[6] << 8 | fin[12], 4);
    o = to64(o, (uint32_t)fin[1] << 16 | (uint32_t)fin[7] << 8 | fin[13], 4);
    o = to64(o, (uint32_t)fin[2] << 16 | (uint32_t)fin[8] << 8 | fin[14], 4);
    o = to64(o, (uint32_t)fin[3] << 16 | (uint32_t)fin[9] << 8 | fin[15], 4);
    o = to64(o, (uint32_t)fin[4] << 16 | (uint32_t)fin[10] << 8 | fin[5], 4);
    o = to64(o, fin[11], 2);
    *o = '\0';
    ok = same(out, end + 1, strlen(end + 1));
done:
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md5);
    OPENSSL_cleanse(fin, sizeof(fin));
    return ok;
}

/* htpasswd's "{SHA}" hash (htpasswd -s): "{SHA}" and base64 of the password's SHA-1. */
static int sha_matches(const char *pw, const char *hash)
{
    static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t md[20];
    char out[28 + 1], *o = out;

    if (!EVP_Digest(pw, strlen(pw), md, NULL, EVP_sha1(), NULL))
        return 0;
    for (int i = 0; i < 21; i += 3) {
        uint32_t v = (uint32_t)md[i] << 16 | (uint32_t)(i + 1 < 20 ? md[i + 1] : 0) << 8 | (i + 2 < 20 ? md[i + 2] : 0);
        *o++ = b64_chars[v >> 18];
        *o++ = b64_chars[(v >> 12) & 0x3f];
        *o++ = b64_chars[(v >> 6) & 0x3f];
        *o++ = i + 2 < 20 ? b64_chars[v & 0x3f] : '=';
    }
    *o = '\0';
    OPENSSL_cleanse(md, sizeof(md));
    return same(out, hash + 5, strlen(hash + 5));
}

/* Whether password <pw> is the one of <hash>: htpasswd's $apr1$ and {SHA}, else crypt(3). */
static int password_matches(struct flb_l7_worker *lw, const char *pw, const char *hash)
{
    if (strncmp(hash, "$apr1$", 6) == 0)
        return apr1_matches(pw, hash);
    if (strncmp(hash, "{SHA}", 5) == 0)
        return sha_matches(pw, hash);
    if (lw->crypt == NULL && (lw->crypt = calloc(1, sizeof(struct crypt_data))) == NULL)
        return 0;
    /* crypt_rn (libxcrypt) rather than crypt_r: NULL on failure, and not intercepted by the
     * sanitizers, whose crypt_r wrapper needs libcrypt loaded before them */
    const char *got = crypt_rn(pw, hash, lw->crypt, (int)sizeof(struct crypt_data));
    return got != NULL && got[0] != '*' && same(got, hash, strlen(hash));
}

int flb_h1auth_check(const struct flb_l7 *l, struct flb_l7_worker *lw, const struct flb_l7_service *hs,
                     const char *value, size_t len)
{
    char creds[512];
    uint64_t key;
    uint32_t slot;
    int n, ok = 0;

    if (value == NULL || len < 6 || strncasecmp(value, "basic ", 6) != 0)
        return 0;
    key = flb_hash64(value, len, l->auth_key);
    slot = (uint32_t)(key % FLB_L7_AUTH_CACHE);
    if (lw->auth[slot].key == key && lw->auth[slot].epoch == hs->auth_epoch)
        return 1;
    value += 6;
    len -= 6;
    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    n = b64_decode(value, len, creds, sizeof(creds));
    if (n <= 0 || memchr(creds, '\0', (size_t)n) != NULL)
        goto out;
    char *colon = strchr(creds, ':');
    if (colon == NULL)
        goto out;
    *colon = '\0';
    for (uint32_t i = 0; i < hs->nusers; i++) {
        if (strcmp(hs->users[i].name, creds) != 0)
            continue;
        if (password_matches(lw, colon + 1, hs->users[i].hash)) {
            lw->auth[slot].key = key;
            lw->auth[slot].epoch = hs->auth_epoch;
            ok = 1;
        }
        break;
    }
out:
    OPENSSL_cleanse(creds, sizeof(creds));
    return ok;
}
