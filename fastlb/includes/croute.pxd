# Mirror of fastlb/_route-t.h, fastlb/_route.h and fastlb/_cidr.h.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


from fastlb.includes.caddr cimport sockaddr_storage, socklen_t
from fastlb.includes.cbackend cimport flb_backend
from fastlb.includes.cbalance cimport flb_balancer
from fastlb.includes.clistener cimport flb_listener

cdef extern from "_cidr.h" nogil:
    struct flb_cidr:
        uint8_t len
        uint8_t bits
        uint8_t net[16]

cdef extern from "_route-t.h" nogil:
    enum flb_mode:
        FLB_MODE_TCP
        FLB_MODE_HTTP

    struct flb_service_counters:
        char *name
        int64_t active
        uint64_t total
        uint64_t bytes_in
        uint64_t bytes_out
        uint64_t connect_errors
        uint64_t retries
        uint64_t timeouts
        uint64_t no_backend
        uint64_t denied
        uint64_t requests
        uint64_t status[6]
        uint64_t own
        int64_t queued
        int64_t queued_max
        uint64_t queue_total
        uint64_t queue_timeouts
        uint64_t queue_wait_ms

    struct flb_service:
        char *name
        flb_mode mode
        flb_service_counters *c
        uint32_t nbe
        flb_backend **be
        sockaddr_storage *addr
        socklen_t *addrlen
        uint32_t *fall
        flb_balancer bal
        uint8_t bal_built
        uint32_t connect_ms
        uint32_t idle_ms
        uint32_t retries
        uint32_t maxconn
        uint32_t *bemax
        uint32_t queue_ms
        uint32_t drain_ms
        uint32_t nallow
        flb_cidr *allow

    struct flb_route_listener:
        flb_listener *l
        uint32_t service
        uint32_t maxconn

    struct flb_table:
        uint64_t generation
        uint32_t maxconn
        uint32_t nsvc
        flb_service *svc
        uint32_t nlst
        flb_route_listener *lst

cdef extern from "_route.h" nogil:
    struct flb_counters_store:
        pass
    flb_table *flb_table_new(uint32_t nsvc, uint32_t nlst)
    void flb_table_put(flb_table *t)
    int flb_service_alloc(flb_service *s, uint32_t nbe)
    void flb_table_reuse(flb_table *t, uint32_t i, const flb_table *old, uint32_t src)
    flb_service_counters *flb_counters_get(flb_counters_store *s, const char *name)
