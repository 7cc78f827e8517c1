# Mirror of fastlb/_engine-t.h and fastlb/_engine.h.
from libc.stdint cimport int64_t, uint32_t, uint64_t

from fastlb.includes.cbackend cimport flb_backend_store
from fastlb.includes.cdrain cimport flb_drains
from fastlb.includes.clistener cimport flb_listener
from fastlb.includes.croute cimport flb_counters_store, flb_table

cdef extern from "_engine-t.h" nogil:
    struct flb_engine_options:
        uint32_t workers
        uint32_t maxconn
        long pipe_max
        int pipe_size
        uint32_t buffer_size
        uint64_t splice_threshold
        uint32_t pool_max
        uint32_t pool_idle_ms
        uint32_t fd_max

    struct flb_engine:
        flb_engine_options opt
        uint64_t generation
        uint64_t swaps
        int64_t active
        uint64_t total
        uint64_t held_maxconn
        uint64_t held_fds
        uint64_t accept_emfile
        long pipes
        flb_backend_store *backends
        flb_counters_store *counters

cdef extern from "_engine.h" nogil:
    flb_engine *flb_engine_new(const flb_engine_options *o)
    int flb_engine_start(flb_engine *e)
    uint64_t flb_engine_publish(flb_engine *e, flb_table *t)
    flb_table *flb_engine_table(flb_engine *e)
    flb_listener *flb_engine_listener(flb_engine *e, const char *address)
    int flb_engine_accepting(flb_engine *e)
    void flb_engine_stop_accepting(flb_engine *e)
    void flb_engine_close_all(flb_engine *e)
    void flb_engine_stop(flb_engine *e)
    void flb_engine_free(flb_engine *e)
    void flb_engine_sweep(flb_engine *e)
    void flb_engine_set_drains(flb_engine *e, flb_drains *d)
    int flb_engine_trim(size_t min_free)
