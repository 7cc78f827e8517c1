# Mirror of fastlb/_balance-t.h and fastlb/_balance.h.

from libc.stdint cimport int64_t, uint32_t, uint64_t

from fastlb.includes.cbackend cimport flb_backend


cdef extern from "_balance-t.h" nogil:
    enum flb_balance_algo:
        FLB_BAL_ROUNDROBIN
        FLB_BAL_LEASTCONN
        FLB_BAL_MAGLEV
        FLB_BAL_SOURCE

    enum:
        FLB_MAGLEV_FACTOR
        FLB_MAGLEV_MIN
        FLB_HASH_PROBES

    struct flb_balancer:
        flb_balance_algo algo
        uint32_t n
        flb_backend **be
        uint32_t *static_weight
        const uint32_t *maxconn
        uint32_t m
        uint32_t *lookup
        uint32_t map_len
        uint32_t *map
        uint32_t nworkers
        int64_t *cur
        uint32_t *rr


cdef extern from "_balance.h" nogil:
    int flb_balance_build(flb_balancer *b, flb_balance_algo algo, flb_backend **be, uint32_t n,
                          uint32_t nworkers)
    void flb_balance_free(flb_balancer *b)
    int flb_balance_pick(flb_balancer *b, uint64_t key, uint32_t worker, const uint32_t *exclude,
                         uint32_t nexclude)
    uint64_t flb_hash64(const void *data, size_t len, uint64_t seed)
    uint32_t flb_next_prime(uint32_t x)
