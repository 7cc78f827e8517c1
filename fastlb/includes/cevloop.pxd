# Mirror of the part of fastlb/_evloop.h that Python calls: the workers' clock.
from libc.stdint cimport uint64_t

cdef extern from "_evloop.h" nogil:
    uint64_t flb_now_ms()
