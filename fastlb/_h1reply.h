/* _h1reply.h: fastlb's own short answers (400, 401, 403, 408, 414, 431, 501, 502, 503, 504, 505, and
 * the redirects 301, 302, 303, 307, 308).
 * Each says Connection: close: fastlb closes the client connection after answering it, so a request
 * it refused never leaves bytes behind that could be read as the next one. */
#ifndef FLB_H1REPLY_H
#define FLB_H1REPLY_H

#include "_api.h"

#include <sys/types.h>
#include <sys/uio.h>

/* Writes the answer <status> into <buf>: status line, Content-Type, Content-Length, Connection: close,
 * the header lines <extra> (each piece's text concatenated; whole CRLF-ended lines), then a one-line
 * text body. Returns its length, or FLB_ERR when it does not fit <cap>. */
ssize_t flb_h1reply(char *buf, size_t cap, int status, const struct iovec *extra, int nextra);

/* The reason phrase fastlb uses for <status> ("" for one it never sends). */
const char *flb_h1reply_reason(int status);

#endif
