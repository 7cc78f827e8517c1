/* _h1edit.c: head edits as writev pieces (see _h1edit.h). */
#include "_api.h"

#include "_h1edit.h"

#include "_http1.h"
#include "_vhost.h"

#include <string.h>

int flb_h1edit_add(struct flb_h1edits *ed, uint32_t at, uint32_t cut, const char *ins, uint32_t ins_len)
{
    uint32_t i;

    if (ed->n == FLB_H1EDIT_MAX)
        return FLB_ERR;
    for (i = ed->n; i > 0 && ed->e[i - 1].at > at; i--)
        ed->e[i] = ed->e[i - 1];
    ed->e[i] = (struct flb_h1edit){.at = at, .cut = cut, .ins = ins, .ins_len = ins_len};
    ed->n++;
    return FLB_OK;
}

int flb_h1edit_iov(const struct flb_h1edits *ed, const char *buf, uint32_t len, struct iovec *iov, uint32_t cap)
{
    uint32_t pos = 0, n = 0;

#define PIECE(p, l)                                                                                                   \
    do {                                                                                                              \
        if ((l) > 0) {                                                                                                \
            if (n == cap)                                                                                             \
                return FLB_ERR;                                                                                       \
            iov[n].iov_base = (void *)(p);                                                                            \
            iov[n].iov_len = (l);                                                                                     \
            n++;                                                                                                      \
        }                                                                                                             \
    } while (0)

    for (uint32_t i = 0; i < ed->n; i++) {
        const struct flb_h1edit *e = &ed->e[i];
        if (e->at < pos)
            return FLB_ERR; /* overlapping cuts: a bug in the caller, never sent */
        PIECE(buf + pos, e->at - pos);
        PIECE(e->ins, e->ins_len);
        pos = e->at + e->cut;
    }
    if (pos > len)
        return FLB_ERR;
    PIECE(buf + pos, len - pos);
#undef PIECE
    return (int)n;
}

void flb_h1edit_line(const char *buf, const struct flb_http1_header *h, uint32_t *start, uint32_t *end)
{
    const char *p = h->value + h->value_len;

    /* the parser has checked the line: only white space, then CRLF, follows the value */
    while (*p != '\n')
        p++;
    *start = (uint32_t)(h->name - buf);
    *end = (uint32_t)(p + 1 - buf);
}

static uint8_t lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c | 0x20) : (uint8_t)c;
}

static int name_eq(const struct flb_http1_header *h, const char *tok, uint32_t len)
{
    if (h->name_len != len)
        return 0;
    for (uint32_t i = 0; i < len; i++)
        if (lower(h->name[i]) != lower(tok[i]))
            return 0;
    return 1;
}

int flb_h1edit_name_is(const struct flb_http1_header *h, const char *lit, uint32_t lit_len)
{
    return name_eq(h, lit, lit_len);
}

static int ows(char c)
{
    return c == ' ' || c == '\t';
}


static int cuttable(const struct flb_http1_header *h)
{
    switch (h->kind) {
    case FLB_HTTP1_H_OTHER:
    case FLB_HTTP1_H_KEEP_ALIVE:
    case FLB_HTTP1_H_TE:
    case FLB_HTTP1_H_TRAILER:
    case FLB_HTTP1_H_PROXY_CONNECTION:
        return 1;
    default:
        return 0;
    }
}

static int edited(const struct flb_h1edits *ed, uint32_t start, uint32_t end)
{
    for (uint32_t i = 0; i < ed->n; i++)
        if (ed->e[i].at >= start && ed->e[i].at < end)
            return 1;
    return 0;
}

int flb_h1edit_cut_line(struct flb_h1edits *ed, const char *buf, const struct flb_http1_header *h)
{
    uint32_t s, e;

    flb_h1edit_line(buf, h, &s, &e);
    if (edited(ed, s, e))
        return FLB_OK;
    return flb_h1edit_add(ed, s, e - s, NULL, 0);
}

static int cut_named(struct flb_h1edits *ed, const char *buf, const struct flb_http1_header *hd, uint32_t n,
                     const char *tok, uint32_t len)
{
    for (uint32_t j = 0; j < n; j++) {
        uint32_t s, e;
        if (!cuttable(&hd[j]) || !name_eq(&hd[j], tok, len))
            continue;
        flb_h1edit_line(buf, &hd[j], &s, &e);
        if (edited(ed, s, e))
            continue; /* fastlb's own edit of it (X-Forwarded-*, HSTS) stands */
        if (flb_h1edit_add(ed, s, e - s, NULL, 0) != FLB_OK)
            return FLB_ERR;
    }
    return FLB_OK;
}

int flb_h1edit_connection_named(struct flb_h1edits *ed, const char *buf, const struct flb_http1_header *hd,
                                uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t at = 0, len, tok;

        if (hd[i].kind != FLB_HTTP1_H_CONNECTION)
            continue;
        for (;;) {
            tok = flb_http1_list_next(hd[i].value, hd[i].value_len, &at, &len);
            if (len == 0)
                break;
            if (cut_named(ed, buf, hd, n, hd[i].value + tok, (uint32_t)len) != FLB_OK)
                return FLB_ERR;
        }
    }
    return FLB_OK;
}

int flb_h1edit_cookie(const char *buf, const struct flb_http1_header *h, const char *name, uint32_t name_len,
                      const char **value, uint32_t *value_len, uint32_t *cut_at, uint32_t *cut_len)
{
    const char *p = h->value, *end = h->value + h->value_len;
    const char *prev_sep = NULL; /* the ';' before the current pair */
    int pairs_before = 0;

    while (p < end) {
        while (p < end && ows(*p))
            p++;
        const char *start = p;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pend = semi != NULL ? semi : end;
        const char *eq = memchr(start, '=', (size_t)(pend - start));
        const char *nend = eq != NULL ? eq : pend;
        while (nend > start && ows(nend[-1]))
            nend--;
        if (eq != NULL && (uint32_t)(nend - start) == name_len && memcmp(start, name, name_len) == 0) {
            const char *v = eq + 1, *vend = pend;
            while (v < vend && ows(*v))
                v++;
            while (vend > v && ows(vend[-1]))
                vend--;
            *value = v;
            *value_len = (uint32_t)(vend - v);
            if (semi != NULL) {
                /* more pairs follow: cut this pair up to the next one */
                const char *next = semi + 1;
                while (next < end && ows(*next))
                    next++;
                if (next == end && pairs_before == 0)
                    goto whole_line;
                *cut_at = (uint32_t)(start - buf);
                *cut_len = (uint32_t)(next - start);
                if (next == end) {
                    /* "a=1; ours;" : cut from the previous separator */
                    *cut_at = (uint32_t)(prev_sep - buf);
                    *cut_len = (uint32_t)(end - prev_sep);
                }
            } else if (pairs_before > 0) {
                /* the last pair: cut from the separator before it */
                *cut_at = (uint32_t)(prev_sep - buf);
                *cut_len = (uint32_t)(end - prev_sep);
            } else {
                goto whole_line;
            }
            return 1;
        }
        if (pend > start)
            pairs_before++;
        if (semi == NULL)
            break;
        prev_sep = semi;
        p = semi + 1;
    }
    return 0;
whole_line: {
    uint32_t s, e;
    flb_h1edit_line(buf, h, &s, &e);
    *cut_at = s;
    *cut_len = e - s;
    return 1;
}
}

int flb_h1edit_strip_prefix(struct flb_h1edits *ed, const char *buf, const char *target, uint32_t target_len,
                            const char *prefix, uint32_t len)
{
    const char *path;
    size_t plen;
    uint32_t at, rest;

    flb_vhost_path(target, target_len, &path, &plen);
    if (plen < len || memcmp(path, prefix, len) != 0 || (plen > len && path[len] != '/'))
        return 0;
    at = (uint32_t)(path - buf);
    rest = target_len - (uint32_t)(path - target) - len; /* what follows the prefix, query included */
    /* "/api/x": cut "/api"; "/api" or "/api?q": cut it and put "/" in its place */
    if (rest > 0 && path[len] == '/')
        return flb_h1edit_add(ed, at, len, NULL, 0) == FLB_OK ? 1 : FLB_ERR;
    return flb_h1edit_add(ed, at, len, "/", 1) == FLB_OK ? 1 : FLB_ERR;
}

static int scheme_is(const char *v, uint32_t len, const char *lit, uint32_t n)
{
    if (len < n)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (lower(v[i]) != (uint8_t)lit[i])
            return 0;
    return 1;
}

int flb_h1edit_location(const char *v, uint32_t len, const char **host, uint32_t *host_len)
{
    uint32_t i, start, end;

    if (len > 0 && v[0] == '/') {
        if (len > 1 && v[1] == '/')
            return FLB_ERR;
        *host = v;
        *host_len = 0;
        return 0;
    }
    if (scheme_is(v, len, "http://", 7))
        start = 7;
    else if (scheme_is(v, len, "https://", 8))
        start = 8;
    else
        return FLB_ERR;
    for (i = start; i < len && v[i] != '/' && v[i] != '?' && v[i] != '#'; i++)
        if (v[i] == '@' || v[i] == '\\')
            return FLB_ERR; /* userinfo, or a backslash some clients take for '/': left alone */
    if (i == len || v[i] != '/')
        return FLB_ERR;
    end = i;
    /* the port: ":" and digits at the end of the authority (an IPv6 literal ends with ']') */
    for (uint32_t j = end; j > start; j--) {
        if (v[j - 1] == ':') {
            end = j - 1;
            break;
        }
        if (v[j - 1] < '0' || v[j - 1] > '9')
            break;
    }
    if (end == start)
        return FLB_ERR;
    *host = v + start;
    *host_len = end - start;
    return (int)i;
}
