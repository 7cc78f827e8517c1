/* _drain.h: what drains, and how.
 *
 * Backends: a backend set to drain takes no new connection; once its service's
 * drain_timeout_ms has passed, its open connections are closed (both sides shut down cleanly).
 *
 * The control thread, which sees every state change, keeps the list of draining backends with a
 * deadline and hands the workers an immutable copy (flb_engine_set_drains), sorted by deadline. Each
 * worker sleeps no longer than until the next deadline it has not handled yet, and then closes its
 * own connections to the backends whose deadline has passed and that still drain.
 *
 * Why a list beside the backend records rather than a field of each: the deadline needs the moment
 * the drain began, which only the control thread knows, and only a handful of backends drain at once.
 */
#ifndef FLB_DRAIN_H
#define FLB_DRAIN_H

#include "_backend-t.h"
#include "_engine-t.h"

struct flb_drain {
    const struct flb_backend *b; /* compared, never followed: the control thread drops an entry
                                    before its record can be freed and reused */
    uint64_t deadline_ms;        /* flb_now_ms() clock */
};

struct flb_drains {
    uint32_t n;
    struct flb_drain d[]; /* [n], by deadline */
};

/* A list of <n> entries for the caller to fill in (then it sorts it with flb_drains_sort). NULL with
 * errno. */
struct flb_drains *flb_drains_new(uint32_t n);

void flb_drains_sort(struct flb_drains *d);

void flb_drains_free(struct flb_drains *d);

/* Worker side: ms until the worker's next unhandled deadline (0 if due), or -1 when none. */
int flb_drain_timeout(const struct flb_worker *w);

/* Worker side: closes the worker's connections to draining backends whose deadline has passed. */
void flb_drain_expire(struct flb_worker *w);

/* Listeners: once fastlb stops accepting (SIGTERM, or the old process of a hot upgrade) or a table
 * swap drops a listener, the HTTP connections accepted there end as HTTP/1.1 lets a server end a
 * persistent connection without losing a request: the request under way is answered, its response
 * says "Connection: close" and the connection closes after it; an idle kept-alive connection (no
 * byte of a next request, in its buffer or its socket) closes at once, while one holding bytes of a
 * request is answered first. Once fastlb stops accepting, no backend connection is pooled and the
 * pooled ones close. So a drain lasts as long as the longest request in flight, not the deadline. */

/* Whether connections accepted on listener <l> drain (see above): fastlb no longer accepts, or <l>
 * has left the worker's table. */
int flb_drain_listener(const struct flb_worker *w, const struct flb_listener *l);

/* Worker side, after it adopted a control request (<old>: the table it routed with before): closes
 * the idle connections that a drain begun by this request ends, and the pooled backend connections
 * once fastlb stops accepting. */
void flb_drain_adopted(struct flb_worker *w, const struct flb_table *old);

#endif
