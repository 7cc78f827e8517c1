# cython: language_level=3
"""fastlb._core: the only bridge between Python and the C data plane.

Each concept's Cython lives in its own _<concept>.pxi, included here so that everything compiles into
one C unit (the uvloop way)."""

from fastlb.includes.capi cimport flb_live


def live_counts():
    """fds, pipes, conns, tables, backends, listeners alive in the C core."""
    return {
        "fds": flb_live.fds,
        "pipes": flb_live.pipes,
        "conns": flb_live.conns,
        "tables": flb_live.tables,
        "backends": flb_live.backends,
        "listeners": flb_live.listeners,
    }


include "_balance.pxi"
include "_http1.pxi"
