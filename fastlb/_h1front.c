/* _h1front.c: a service's own header fields and regex redirect (see _h1front.h). */
#include "_api.h"

#include "_h1front.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

struct flb_h1front *flb_h1front_new(void)
{
    return calloc(1, sizeof(struct flb_h1front));
}

static void fields_free(struct flb_h1front_fields *f)
{
    for (uint32_t i = 0; i < f->n; i++)
        free(f->names[i].s);
    free(f->names);
    free(f->lines.s);
}

void flb_h1front_free(struct flb_h1front *f)
{
    if (f == NULL)
        return;
    fields_free(&f->req);
    fields_free(&f->resp);
    free(f->sts.s);
    free(f->repl.s);
    if (f->has_re)
        regfree(&f->re);
    free(f);
}

int flb_h1front_set_regex(struct flb_h1front *f, const char *pattern, char *err, size_t errlen)
{
    int rc = regcomp(&f->re, pattern, REG_EXTENDED);

    if (rc != 0) {
        regerror(rc, &f->re, err, errlen);
        return FLB_ERR;
    }
    f->has_re = 1;
    f->re_groups = f->re.re_nsub;
    return FLB_OK;
}

int flb_h1front_named(const struct flb_h1front_fields *f, const struct flb_http1_header *h)
{
    for (uint32_t i = 0; i < f->n; i++)
        if (flb_h1edit_name_is(h, f->names[i].s, f->names[i].len))
            return 1;
    return 0;
}

int flb_h1front_apply(const struct flb_h1front_fields *f, struct flb_h1edits *ed, const char *buf,
                      const struct flb_http1_header *hd, uint32_t n, uint32_t head_len)
{
    for (uint32_t i = 0; i < n; i++) {
        if (flb_h1front_named(f, &hd[i]) && flb_h1edit_cut_line(ed, buf, &hd[i]) != FLB_OK)
            return FLB_ERR;
    }
    if (f->lines.s == NULL)
        return FLB_OK;
    return flb_h1edit_add(ed, head_len - 2, 0, f->lines.s, f->lines.len);
}

#define GROUPS 10 /* $0 .. $9 are found; a higher group is empty, as one the regex lacks */

/* Appends <len> bytes to out[*o ..), FLB_ERR when they do not fit. */
static int put(char *out, size_t cap, size_t *o, const char *p, size_t len)
{
    if (len >= cap - *o)
        return FLB_ERR;
    memcpy(out + *o, p, len);
    *o += len;
    return FLB_OK;
}

/* The replacement of one match <m> (offsets into <url>), "$N" and "${N}" expanded, as Go's Expand. */
static int expand(const struct flb_h1front *f, const char *url, const regmatch_t *m, char *out, size_t cap,
                  size_t *o)
{
    const char *r = f->repl.s, *end = f->repl.s + f->repl.len;

    while (r < end) {
        const char *dollar = memchr(r, '$', (size_t)(end - r));
        size_t g = 0;
        int digits = 0;

        if (dollar == NULL)
            return put(out, cap, o, r, (size_t)(end - r));
        if (put(out, cap, o, r, (size_t)(dollar - r)) != FLB_OK)
            return FLB_ERR;
        r = dollar + 1;
        if (r < end && *r == '$') {
            if (put(out, cap, o, "$", 1) != FLB_OK)
                return FLB_ERR;
            r++;
            continue;
        }
        int brace = r < end && *r == '{';
        const char *q = r + brace;
        while (q < end && *q >= '0' && *q <= '9') {
            if (g < 1000)
                g = g * 10 + (size_t)(*q - '0');
            q++;
            digits++;
        }
        if (digits == 0 || (brace && (q == end || *q != '}'))) {
            /* not a group: the '$' as written (the compile refuses such a replacement) */
            if (put(out, cap, o, "$", 1) != FLB_OK)
                return FLB_ERR;
            continue;
        }
        r = q + brace;
        if (g < GROUPS && g <= f->re_groups && m[g].rm_so >= 0 &&
            put(out, cap, o, url + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so)) != FLB_OK)
            return FLB_ERR;
    }
    return FLB_OK;
}

ssize_t flb_h1front_redirect(const struct flb_h1front *f, const char *url, size_t len, char *out, size_t cap)
{
    size_t search = 0, last = 0, o = 0;
    int matched = 0;

    if (!f->has_re || cap == 0)
        return 0;
    /* Go's ReplaceAllString: each non-overlapping match, left to right; an empty match right after
     * the previous match is not replaced; the search always moves on by one byte at least */
    while (search <= len) {
        regmatch_t m[GROUPS];
        if (regexec(&f->re, url + search, GROUPS, m, search > 0 ? REG_NOTBOL : 0) != 0)
            break;
        for (int i = 0; i < GROUPS; i++) {
            if (m[i].rm_so >= 0) {
                m[i].rm_so += (regoff_t)search;
                m[i].rm_eo += (regoff_t)search;
            }
        }
        size_t a0 = (size_t)m[0].rm_so, a1 = (size_t)m[0].rm_eo;
        if (put(out, cap, &o, url + last, a0 - last) != FLB_OK)
            return FLB_ERR;
        if (a1 > last || a0 == 0) {
            if (expand(f, url, m, out, cap, &o) != FLB_OK)
                return FLB_ERR;
            matched = 1;
        }
        last = a1;
        search = search + 1 > a1 ? search + 1 : a1;
    }
    if (!matched)
        return 0;
    if (put(out, cap, &o, url + last, len - last) != FLB_OK)
        return FLB_ERR;
    out[o] = '\0';
    if (o == len && memcmp(out, url, len) == 0)
        return 0; /* the same URL: Traefik serves it */
    for (size_t i = 0; i < o; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            return FLB_ERR;
    return (ssize_t)o;
}
