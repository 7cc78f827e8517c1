"""What a provider of routes is: the contract the controller holds the static file and Marathon to.

Providers each hand over whole ``spec.RouteTable``s and say backend states that need no new table; the
controller (``fastlb.controller``) merges their tables (``fastlb.merge``) and publishes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fastlb import spec

OnChange = Callable[[spec.RouteTable], None]
# (backend id, state): providers pass "ready" | "drain" | "maint" | "up" | "down", the health checker
# passes its verdict as a bool (True: up).
OnBackendState = Callable[[str, str | bool], None]


class Provider(Protocol):
    """A source of routes. ``run`` calls <on_change> with every new whole table and <on_backend_state>
    with (backend id, "ready" | "drain" | "maint" | "up" | "down") for changes that need no new table;
    it returns only when cancelled. ``resync`` re-reads the source now and says whether that succeeded;
    a new table it brings goes to <on_change> as usual. ``table`` is the last table handed over. A
    provider whose class sets ``ready_at_start = True`` has its ``table()`` published before ``run``
    starts; the others serve nothing until their first ``on_change`` (Marathon: after its first full
    resync)."""

    async def run(self, on_change: OnChange, on_backend_state: OnBackendState) -> None: ...
    async def resync(self) -> bool: ...
    def table(self) -> spec.RouteTable | None: ...
    def app_errors(self) -> Any: ...
    def status(self) -> Any: ...
