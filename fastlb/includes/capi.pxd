# Mirror of fastlb/_api.h.

cdef extern from "_api.h" nogil:
    enum:
        FLB_OK
        FLB_ERR
        FLB_AGAIN

    struct flb_live_t "flb_live":
        long fds
        long pipes
        long conns
        long tables
        long backends
        long listeners

    flb_live_t flb_live
