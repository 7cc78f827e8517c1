/* _alog.h: the access log, one JSON line per request:
 *   {"time":1700000000.123,"client":"ip:port","listener":"ip:port","service":"name","backend":"id",
 *    "method":"GET","path":"/x","status":200,"request_bytes":78,"response_bytes":1234,
 *    "duration_us":456,"response_us":301}
 * "service" and "backend" are "" when the request reached none; "path" is the request target as the
 * client sent it (at most FLB_H1_LOG_PATH bytes of it). "request_bytes": the request's head and body
 * as read from the client; "response_bytes": the bytes sent to the client (fastlb's own answer: its
 * length). "duration_us": from the request head read whole to the response sent whole (or fastlb's
 * answer queued); "response_us": from the same start to the backend's first response head, -1 when no
 * backend answered. After a 101 the line is written at once: the tunnel's bytes are not in it.
 *
 * Off the hot path: each worker appends lines to its own buffer and flushes it once per batch of
 * events with non-blocking write(2)s of whole lines of at most PIPE_BUF bytes, so lines from several
 * workers never interleave on a pipe. A worker never waits for the log: when the reader is slow and
 * the buffer is full, lines are dropped and counted (DataPlane.stats()["access_log"]). */
#ifndef FLB_ALOG_H
#define FLB_ALOG_H

#include "_engine-t.h"
#include "_h1conn-t.h"

/* Logs the request <h> has just finished (or answered itself). No-op when the log is off. */
void flb_alog_request(struct flb_worker *w, const struct flb_h1conn *h);

/* Writes what the worker's buffer holds, as far as the fd takes it without blocking. */
void flb_alog_flush(struct flb_worker *w);

#endif
