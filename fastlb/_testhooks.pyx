# cython: language_level=3
"""fastlb._testhooks: the C units that tests reach directly, each through the hooks of its .pxi.

Not part of fastlb: nothing in the load balancer imports it, only the tests do (tests/balance, tests/http1).
Built by setup.py beside fastlb._core from the same C files (those the hooks call), so that fastlb._core
exports its API alone (_core.pyi)."""

include "_balance.pxi"
include "_http1.pxi"
