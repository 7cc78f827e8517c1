/* _h1edit.h: changing a head without copying it. An edit cuts bytes at an offset of the head and/or
 * inserts text there; the head is then sent as a writev of its unchanged pieces and the inserted
 * text (the head's own bytes are never moved). */
#ifndef FLB_H1EDIT_H
#define FLB_H1EDIT_H

#include "_http1-t.h"

#include <sys/uio.h>

/* Edits one head may carry: as writev pieces, at most 2 * FLB_H1EDIT_MAX + 1, which the connection's
 * FLB_H1_IOV - 2 iovecs hold. */
#define FLB_H1EDIT_MAX 14

struct flb_h1edit {
    uint32_t at;       /* offset in the head */
    uint32_t cut;      /* bytes removed from <at> */
    const char *ins;   /* text inserted at <at> (before what follows the cut) */
    uint32_t ins_len;
};

struct flb_h1edits {
    struct flb_h1edit e[FLB_H1EDIT_MAX];
    uint32_t n;
};

/* Adds an edit, keeping them ordered by offset (edits at one offset keep their order). Cuts must
 * not overlap. FLB_OK, or FLB_ERR when the head carries too many edits. */
int flb_h1edit_add(struct flb_h1edits *ed, uint32_t at, uint32_t cut, const char *ins, uint32_t ins_len);

/* Writes the iovecs of head <buf> (<len> bytes) with <ed> applied into <iov>. Returns how many, or
 * FLB_ERR when more than <cap> would be needed. */
int flb_h1edit_iov(const struct flb_h1edits *ed, const char *buf, uint32_t len, struct iovec *iov, uint32_t cap);

/* The offsets of field <h>'s whole line in head <buf>: its start and just past its CRLF. */
void flb_h1edit_line(const char *buf, const struct flb_http1_header *h, uint32_t *start, uint32_t *end);

/* Cuts field <h>'s whole line from head <buf>, unless an edit is already made inside it (that edit
 * stands). FLB_OK, or FLB_ERR when the head carries too many edits. */
int flb_h1edit_cut_line(struct flb_h1edits *ed, const char *buf, const struct flb_http1_header *h);

/* Finds the cookie <name> in Cookie field <h> of head <buf>. Returns 1 and sets its value and the
 * bytes to cut to remove it ([*cut_at, *cut_at + *cut_len): the pair and one separator, or the whole
 * line when it is the field's only cookie); 0 when the field does not carry it. */
int flb_h1edit_cookie(const char *buf, const struct flb_http1_header *h, const char *name, uint32_t name_len,
                      const char **value, uint32_t *value_len, uint32_t *cut_at, uint32_t *cut_len);

/* Cuts the fields that the head's Connection fields name (RFC 9110 section 7.6.1: they are meant for
 * fastlb's hop alone), except fields that frame, route or upgrade the message (only ordinary fields and
 * the hop-by-hop Keep-Alive, TE, Trailer and Proxy-Connection are cut: "Connection: Content-Length" must
 * not unframe a request, "Connection: Upgrade" keeps its Upgrade) and lines that already carry an edit. FLB_OK, or FLB_ERR when the head would need more edits than fastlb makes. */
int flb_h1edit_connection_named(struct flb_h1edits *ed, const char *buf, const struct flb_http1_header *hd,
                                uint32_t n);

/* Takes path prefix <prefix> (<len> bytes, starting with '/' and not ending with one) off request
 * target <target> of head <buf>, when the target's path (origin-form, or absolute-form after its
 * authority) begins with it at a segment boundary: followed by '/', '?' or the end. The rest stays as
 * it came ("/api/x?q" gives "/x?q"), and a path left empty becomes "/" ("/api" and "/api?q" give "/"
 * and "/?q"); "/apix" and "/x/api" are left alone. The new target is made of the old one's bytes and
 * that '/' only, so it is as valid as the old one. Returns 1 when an edit was added, 0 when the target
 * is left alone, FLB_ERR when <ed> is full. */
int flb_h1edit_strip_prefix(struct flb_h1edits *ed, const char *buf, const char *target, uint32_t target_len,
                            const char *prefix, uint32_t len);

/* Splits a Location value <v> (<len> bytes): an absolute path ("/x"; not "//x", which names another
 * host) gives <*host_len> 0; an "http://" or "https://" URL (scheme in any case) with no userinfo gives
 * its host (without port) in <*host>. Returns the offset of the path in <v> (a '/'), or FLB_ERR when
 * <v> is neither, or is a URL without a path. */
int flb_h1edit_location(const char *v, uint32_t len, const char **host, uint32_t *host_len);

/* Case-insensitive comparison of field name <h> with lower-case <lit>. */
int flb_h1edit_name_is(const struct flb_http1_header *h, const char *lit, uint32_t lit_len);

#endif
