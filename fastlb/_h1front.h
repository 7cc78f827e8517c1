/* _h1front.h: what a service adds to each request and answer of its own, on top of routing (Traefik's
 * frontend headers and redirect labels): header fields set on or removed from each request forwarded
 * and each response sent back, Strict-Transport-Security, and the redirect of the URLs a POSIX
 * regular expression matches. Built by the control thread with the table, immutable afterwards, read
 * by every worker (regexec(3) may run on one compiled regex_t from several threads at once). */
#ifndef FLB_H1FRONT_H
#define FLB_H1FRONT_H

#include "_h1edit.h"
#include "_l7-t.h"

#include <regex.h>
#include <stddef.h>

/* Header fields set or removed on one direction. */
struct flb_h1front_fields {
    uint32_t n;
    struct flb_l7_str *names;    /* [n] each field set or removed, lower case: its lines are cut */
    struct flb_l7_str lines;     /* "Name: value\r\n" of each field set (s NULL: only removals); added */
    uint8_t xfp, xfport;         /* request: X-Forwarded-Proto / -Port are among the names: fastlb's own is not added */
};

struct flb_h1front {
    struct flb_h1front_fields req, resp;
    struct flb_l7_str sts;       /* "Strict-Transport-Security: max-age=N...\r\n"; s NULL: none */
    uint8_t sts_plain;           /* sent on requests that came in plain too (forceSTSHeader); else TLS only */
    uint16_t https_code;         /* the redirect to https (redirect_https): 301 or 302; 0: 301 */
    uint8_t has_re;
    regex_t re;                  /* REG_EXTENDED, over "http://<Host><path and query>" */
    size_t re_groups;            /* its parenthesised groups */
    struct flb_l7_str repl;      /* the replacement: "$N", "${N}" its groups, "$$" a '$' */
    uint16_t re_code;            /* 302, or 301 when permanent */
};

/* A zeroed record (calloc), or NULL (ENOMEM). */
struct flb_h1front *flb_h1front_new(void);
void flb_h1front_free(struct flb_h1front *f);

/* Compiles <pattern> (POSIX ERE) into <f>. FLB_OK, or FLB_ERR with regerror(3)'s words in <err>. */
int flb_h1front_set_regex(struct flb_h1front *f, const char *pattern, char *err, size_t errlen);

/* Whether field <h> is one that <f> sets or removes. */
int flb_h1front_named(const struct flb_h1front_fields *f, const struct flb_http1_header *h);

/* Cuts the lines of head <buf> among <hd>[0 .. n) that <f> names, except lines that already carry an
 * edit, and adds <f>'s own lines before the head's final CRLF (<head_len>: the head's length). FLB_OK,
 * or FLB_ERR when the head would carry too many edits. */
int flb_h1front_apply(const struct flb_h1front_fields *f, struct flb_h1edits *ed, const char *buf,
                      const struct flb_http1_header *hd, uint32_t n, uint32_t head_len);

/* The regex redirect of URL <url> (<len> bytes, NUL-terminated): every match replaced as Go's
 * Regexp.ReplaceAllString does, into <out>. Returns the new URL's length when the regex matched and the
 * URL changed (redirect there), 0 when it did not (serve the request), FLB_ERR when the new URL would
 * not fit <cap> or holds a control character. */
ssize_t flb_h1front_redirect(const struct flb_h1front *f, const char *url, size_t len, char *out, size_t cap);

#endif
