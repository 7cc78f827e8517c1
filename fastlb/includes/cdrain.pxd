# Mirror of fastlb/_drain.h.
from libc.stdint cimport uint32_t, uint64_t

from fastlb.includes.cbackend cimport flb_backend

cdef extern from "_drain.h" nogil:
    struct flb_drain:
        const flb_backend *b
        uint64_t deadline_ms

    struct flb_drains:
        uint32_t n
        flb_drain *d

    flb_drains *flb_drains_new(uint32_t n)
    void flb_drains_sort(flb_drains *d)
    void flb_drains_free(flb_drains *d)
