/* _h1auth.c: allow-lists and basic auth (see _h1auth.h). */
#define _GNU_SOURCE
#include "_api.h"

#include "_h1auth.h"

#include "_balance.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <netinet/in.h>
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

int flb_h1auth_allowed(const struct flb_l7_service *hs, const struct sockaddr *sa)
{
    const uint8_t *addr;
    int family = sa->sa_family;

    if (hs->ncidrs == 0)
        return 1;
    if (family == AF_INET) {
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        addr = (const uint8_t *)a6;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            addr += 12;
        }
    } else {
        return 0;
    }
    for (uint32_t i = 0; i < hs->ncidrs; i++)
        if (hs->cidrs[i].family == family && prefix_matches(addr, hs->cidrs[i].addr, hs->cidrs[i].bits))
            return 1;
    return 0;
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

int flb_h1auth_check(const struct flb_l7 *l, struct flb_l7_worker *lw, const struct flb_l7_service *hs,
                     const char *value, size_t len)
{
    char creds[512];
    uint64_t key;
    uint32_t slot;
    int n;

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
        return 0;
    char *colon = strchr(creds, ':');
    if (colon == NULL)
        return 0;
    *colon = '\0';
    for (uint32_t i = 0; i < hs->nusers; i++) {
        if (strcmp(hs->users[i].name, creds) != 0)
            continue;
        if (lw->crypt == NULL && (lw->crypt = calloc(1, sizeof(struct crypt_data))) == NULL)
            return 0;
        /* crypt_rn (libxcrypt) rather than crypt_r: NULL on failure, and not intercepted by the
         * sanitizers, whose crypt_r wrapper needs libcrypt loaded before them */
        const char *got = crypt_rn(colon + 1, hs->users[i].hash, lw->crypt, (int)sizeof(struct crypt_data));
        if (got == NULL || got[0] == '*' || strcmp(got, hs->users[i].hash) != 0)
            return 0;
        lw->auth[slot].key = key;
        lw->auth[slot].epoch = hs->auth_epoch;
        return 1;
    }
    return 0;
}
