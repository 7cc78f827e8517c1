# Mirror of fastlb/_backend-t.h and fastlb/_backend.h. Atomic fields are declared as plain integers: Cython
# reads and writes them with C's plain syntax, which for an _Atomic object is a sequentially consistent
# load or store.
from libc.stdint cimport int64_t, uint32_t, uint64_t


from fastlb.includes.caddr cimport sockaddr_storage, socklen_t

cdef extern from "_backend-t.h" nogil:
    enum flb_admin:
        FLB_ADMIN_READY
        FLB_ADMIN_DRAIN
        FLB_ADMIN_MAINT

    enum flb_health:
        FLB_HEALTH_UP
        FLB_HEALTH_DOWN

    struct flb_backend_counters:
        uint64_t conn_total
        uint64_t bytes_in
        uint64_t bytes_out
        uint64_t connect_errors
        uint64_t retries
        uint64_t timeouts
        uint64_t requests
        uint64_t reused
        uint64_t status[6]
        int64_t idle

    struct flb_backend:
        char *id
        sockaddr_storage addr
        socklen_t addrlen
        uint32_t admin
        uint32_t health
        uint32_t weight
        uint32_t fails
        int64_t active
        flb_backend_counters c
        int refs

    bint flb_backend_available(const flb_backend *b)

cdef extern from "_backend.h" nogil:
    struct flb_backend_store:
        pass
    flb_backend *flb_backend_get(flb_backend_store *s, const char *id)
    flb_backend *flb_backend_find(flb_backend_store *s, const char *id)
    void flb_backend_put(flb_backend *b)
