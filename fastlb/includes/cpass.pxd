# Mirror of fastlb/_pass-t.h (what a compile and the stats read): TLS passthrough on the https listener.
from libc.stdint cimport uint8_t, uint64_t

from fastlb.includes.cl7 cimport flb_l7_listener, flb_l7_table, flb_vhost

cdef extern from "_pass-t.h" nogil:
    struct flb_pass_counters:
        uint64_t passthrough
        uint64_t unknown_sni

# The fields passthrough adds to a listener's records (kept out of clistener and cl7).
cdef extern from *:
    """
    #include "_listener-t.h"
    #include "_l7-t.h"
    static inline struct flb_pass_counters *flb_pass_counters_of(struct flb_listener *l) { return &l->pass; }
    static inline void flb_pass_set_sni(struct flb_l7_listener *ll) { ll->sni = 1; }
    static inline int flb_pass_sni(const struct flb_l7_listener *ll) { return ll->sni; }
    static inline struct flb_vhost *flb_pass_routes(struct flb_l7_table *lt) { return &lt->sni; }
    """
    flb_pass_counters *flb_pass_counters_of(void *l)
    void flb_pass_set_sni(flb_l7_listener *ll)
    bint flb_pass_sni(const flb_l7_listener *ll)
    flb_vhost *flb_pass_routes(flb_l7_table *lt)
