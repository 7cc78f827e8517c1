/* _splice.h: forwarding one direction, by copy through a small buffer for small messages and by
 * splice(2) socket -> pipe -> socket for bulk flows between plain sockets; the pool of pipes and buffers
 * behind it. Sockets are read and written through their transport (_xprt.h). */
#ifndef FLB_SPLICE_H
#define FLB_SPLICE_H

#include "_splice-t.h"
#include "_xprt-t.h"

#include <sys/types.h>

/* Sets up a worker's pool. FLB_OK or FLB_ERR (ENOMEM). */
int flb_pool_init(struct flb_pool *p, _Atomic long *alive, long max, uint32_t nworkers, int pipe_size,
                  uint32_t buf_size, uint64_t splice_threshold);

/* Closes the pooled pipes and frees the pooled buffers (the pumps must have given theirs back). */
void flb_pool_destroy(struct flb_pool *p);

static inline void flb_pump_init(struct flb_pump *u)
{
    u->pipe[0] = u->pipe[1] = -1;
    u->peer_fin = 0;
    u->fin_by_close = 0;
}

static inline size_t flb_pump_pending(const struct flb_pump *u)
{
    return (size_t)(u->len - u->off) + u->inpipe;
}

/* Reads from <src> into the pump (with splice(2) for a bulk flow when <splice_ok>), which must hold nothing (flb_pump_pending() == 0). Returns the bytes read (> 0), 0 at end of stream (and sets eof),
 * FLB_AGAIN when the source is empty, FLB_ERR with errno. After a copy that came back shorter than
 * the buffer, <drained> is set: a caller can then wait for epoll instead of spending a recv on the
 * EAGAIN it would almost surely get (level-triggered epoll reports whatever arrived meanwhile).
 * With <peer_fin> set, such a short copy has read everything the source will ever send, so it
 * also sets eof: the recv that would only return 0 is never made. */
ssize_t flb_pump_fill(struct flb_pump *u, struct flb_pool *p, struct flb_xprt *src, int splice_ok);

/* Writes what the pump holds to <dst>, adding the bytes written to *<moved>. Returns FLB_OK once
 * it holds nothing (its buffer or pipe is back in the pool), FLB_AGAIN when <dst> is full,
 * FLB_ERR with errno. */
int flb_pump_flush(struct flb_pump *u, struct flb_pool *p, struct flb_xprt *dst, size_t *moved);

/* Pushes out what a write with SPLICE_F_MORE left corked in <dst>, once the source has run dry
 * (the kernel would otherwise hold a partial segment back). */
void flb_pump_uncork(struct flb_pump *u, struct flb_xprt *dst);

/* Moves what <src> has to <dst> through <u>, one direction of a tunnel: writes what is pending, reads
 * again at most <rounds> times (and on while <src> holds bytes taken off its socket, which epoll
 * cannot report), and stops after a short read (the rest waits for epoll), when <dst> cannot take
 * more, or at end of stream, which it passes on as shutdown(SHUT_WR) once everything read has been
 * written, and sets <shut>. With <fin_by_close> set it only sets <shut>: the owner promises to close
 * <dst> right away, and close() sends the FIN itself (the owner must also have read <dst> to its end,
 * else close() would send a reset); a secure <dst> still gets its shutw (close_notify). Bytes written
 * are added to <*moved>. Returns FLB_OK, or FLB_ERR when either side failed (the caller closes the
 * connection). */
int flb_pump_run(struct flb_pump *u, struct flb_pool *p, struct flb_xprt *src, struct flb_xprt *dst, int rounds,
                 size_t *moved);

/* Gives back the pump's buffer and pipe; a pipe still holding bytes is closed, not pooled. */
void flb_pump_release(struct flb_pump *u, struct flb_pool *p);

#endif
