/* _splice-t.h: one direction of forwarding (a pump) and the per-worker pool it draws on. */
#ifndef FLB_SPLICE_T_H
#define FLB_SPLICE_T_H

#include "_api.h"

/* A worker's pipes and copy buffers. Touched by its worker only, except <alive>, which every
 * worker shares to keep the pipes alive (pooled or in use) under <max>. */
struct flb_pool {
    int *pipes;               /* [2 * cap] free pipes, read end then write end */
    uint32_t npipes, cap;     /* free pipes held, and at most */
    _Atomic long *alive;      /* pipes alive in the whole engine */
    long max;                 /* at most this many alive; 0: splice off */
    int pipe_size;            /* F_SETPIPE_SZ */
    char **bufs;              /* free copy buffers */
    uint32_t nbufs, bufcap;
    uint32_t buf_size;
    uint64_t splice_threshold; /* bytes in one go (without the source running dry) that make a flow bulk */
};

/* One direction (source socket -> destination socket). Bytes are either in <buf> (copy) or in
 * <pipe> (splice), never both: a pump reads again only once everything read has been written, which
 * keeps the order and lets both be given back the moment they are empty. */
struct flb_pump {
    char *buf;                /* from the pool while holding bytes; NULL otherwise */
    uint32_t off, len;        /* bytes buf[off..len) are still to be written */
    int pipe[2];              /* from the pool while holding bytes; -1 otherwise */
    uint32_t inpipe;          /* bytes in the pipe (splice cannot tell us) */
    uint64_t streak;          /* bytes read since the source last ran dry */
    uint8_t bulk;             /* this flow moves bulk: read it with splice when a pipe is free */
    uint8_t nosplice;         /* splice failed on these sockets: copy only */
    uint8_t more;             /* the last read filled what it asked: more is likely to follow */
    uint8_t corked;           /* the last write had SPLICE_F_MORE: a partial segment may wait */
    uint8_t drained;          /* the last read was a short copy: the source is most likely empty */
    uint8_t eof;              /* the source sent its FIN */
    uint8_t shut;             /* the destination was shut down for writing (or is about to be closed) */
    /* Set by the owner, 0 otherwise (flb_pump_init): */
    uint8_t peer_fin;         /* epoll reported EPOLLRDHUP on the source: its FIN is in */
    uint8_t fin_by_close;     /* the owner closes <dst> as soon as this pump passes its FIN on */
};

#endif
