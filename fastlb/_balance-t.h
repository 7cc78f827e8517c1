/* _balance-t.h: the balancing algorithms' types. A struct flb_balancer is built once, when a table
 * is compiled, and is immutable afterwards, apart from the per-worker scratch of round-robin.
 */
#ifndef FLB_BALANCE_T_H
#define FLB_BALANCE_T_H

#include "_backend-t.h"

enum flb_balance_algo {
    FLB_BAL_ROUNDROBIN = 0, /* smooth weighted round-robin (nginx's), per worker */
    FLB_BAL_LEASTCONN = 1,  /* fewest active connections / weight, counts shared by all workers */
    FLB_BAL_MAGLEV = 2,     /* Maglev consistent hash of the flow key */
    FLB_BAL_SOURCE = 3,     /* map-based hash of the client address over the weighted backends */
};

/* Maglev table size: the smallest prime >= FLB_MAGLEV_FACTOR * (backends rounded up to a power of
 * two), and >= FLB_MAGLEV_MIN. At least 101 slots per backend keeps any two backends' shares within
 * about 1% (Maglev paper, section 3.4); rounding means the size, and so every key's slot, changes only
 * when the backend count crosses a power of two, not each time an app scales by one task. */
#define FLB_MAGLEV_FACTOR 101
#define FLB_MAGLEV_MIN 307

/* How many extra probes a hash pick makes past an unavailable backend before it scans. */
#define FLB_HASH_PROBES 8

struct flb_balancer {
    enum flb_balance_algo algo;
    uint32_t n;                    /* backends */
    struct flb_backend **be;       /* borrowed from the table, sorted by identity */
    uint32_t *static_weight;       /* weight each backend had when the table was compiled */
    const uint32_t *maxconn;       /* [n] borrowed from the service: a backend at its maxconn (0: none)
                                      is not picked; NULL: no backend has one */
    /* maglev */
    uint32_t m;                    /* lookup size (prime) */
    uint32_t *lookup;              /* slot -> backend index */
    /* source (map-based) */
    uint32_t map_len;
    uint32_t *map;                 /* weighted slots -> backend index */
    /* round-robin / leastconn scratch: per worker, never shared */
    uint32_t nworkers;
    int64_t *cur;                  /* [nworkers][n rounded up to a cache line], 64-byte aligned:
                                      smooth-WRR current weights */
    uint32_t *rr;                  /* one cache line per worker: rotation offset for leastconn ties */
};

#endif
