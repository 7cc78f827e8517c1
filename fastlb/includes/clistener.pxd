# Mirror of fastlb/_listener-t.h and fastlb/_listener.h.
from libc.stdint cimport int64_t, uint32_t, uint64_t


from fastlb.includes.caddr cimport sockaddr, sockaddr_storage, socklen_t

cdef extern from "_listener-t.h" nogil:
    struct flb_listener:
        char *address
        sockaddr_storage addr
        socklen_t addrlen
        uint32_t nworkers
        int *fd
        int64_t active
        uint64_t total
        uint64_t refused

cdef extern from "_listener.h" nogil:
    flb_listener *flb_listener_new(const char *address, const sockaddr *sa, socklen_t len, uint32_t nworkers)
    int flb_listener_probe(const flb_listener *l)
    int flb_listener_overlap(const sockaddr_storage *a, const sockaddr_storage *b)
    int flb_listener_open(flb_listener *l)
    int flb_listener_adopt(flb_listener *l, const int *fds, uint32_t n)
    void flb_listener_close(flb_listener *l)
    flb_listener *flb_listener_get(flb_listener *l)
    void flb_listener_put(flb_listener *l)
