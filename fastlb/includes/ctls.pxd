# Mirror of fastlb/_tls-t.h and fastlb/_tls.h (what a compile and the stats call).
from libc.stddef cimport size_t
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "_tls-t.h" nogil:
    enum:
        FLB_TLS_F_N

    struct flb_tls_counters:
        uint64_t handshakes
        uint64_t resumed
        uint64_t failed[8]

    struct flb_tls:
        uint32_t ncerts
        uint32_t handshake_ms

    struct flb_tls_tickets:
        pass

cdef extern from "_tls.h" nogil:
    flb_tls *flb_tls_new(uint32_t nworkers, uint32_t ncerts, uint32_t handshake_ms, flb_tls_tickets *tickets)
    flb_tls_tickets *flb_tls_tickets_new()
    void flb_tls_tickets_put(flb_tls_tickets *k)
    int flb_tls_tickets_set(flb_tls_tickets *k, const unsigned char *keys, uint32_t nkeys, size_t key_len,
                            uint32_t enc)
    int flb_tls_set(flb_tls *t, uint32_t i, const char *pem, size_t len, const char *const *names, uint32_t nnames,
                    char *err, size_t errlen)
    int flb_tls_options(flb_tls *t, uint32_t i, const char *const *claims, uint32_t nclaims,
                        const unsigned char *alpn, size_t alpn_len, const char *min_version, const char *ciphers,
                        const char *suites, char *err, size_t errlen)
    int flb_tls_set_from(flb_tls *t, uint32_t i, const flb_tls *src, uint32_t j, const char *const *names,
                         uint32_t nnames, char *err, size_t errlen)
    int flb_tls_loaded(const flb_tls *t, uint32_t i)
    int flb_tls_verify(flb_tls *t, uint32_t i, int mode, const char *ca_pem, size_t len, char *err, size_t errlen)
    flb_tls *flb_tls_get(flb_tls *t)
    void flb_tls_put(flb_tls *t)
    long flb_tls_live
    long flb_tls_reads

# The listener's TLS counters (kept out of clistener).
cdef extern from *:
    """
    #include "_listener-t.h"
    static inline struct flb_tls_counters *flb_tls_counters_of(struct flb_listener *l) { return &l->tls; }
    """
    flb_tls_counters *flb_tls_counters_of(void *l)
