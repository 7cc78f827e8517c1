"""Python's cyclic collector and large tables (counted, not timed): a table's structs are not tracked
by it (they can form no cycle), and once a table is large the controller collects once and freezes
what survives, so that the automatic full collections, which walk every tracked object, walk only
what is newer; a small change does not freeze again, a table twice as large does."""

from __future__ import annotations

import asyncio
import gc

from fastlb import spec
from fastlb.controller import GC_FREEZE_SERVICES, Controller

from .test_controller import ListProvider, svc, table
from support.fake_dataplane import FakeDataPlane


def _big(n: int, changed: int = -1) -> spec.RouteTable:
    return table(*(svc(f"s{i}", f"10.{i >> 8 & 255}.{i & 255}.{1 if i != changed else 2}:80") for i in range(n)))


def test_table_structs_are_not_tracked() -> None:
    t = _big(3)
    for obj in (t, t.services[0], t.services[0].backends[0], t.services[0].http, t.services[0].timeouts):
        assert not gc.is_tracked(obj), type(obj)


def test_a_large_table_is_collected_and_frozen_once(monkeypatch) -> None:
    freezes: list[int] = []
    real_freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: (freezes.append(1), real_freeze())[1])

    async def go() -> None:
        dp = FakeDataPlane()
        p = ListProvider(table(svc("s0", "10.0.0.1:80")))
        c = Controller(dp, {"static": p})
        c.start()
        await p.running.wait()
        frozen = gc.get_freeze_count()
        n = GC_FREEZE_SERVICES + 500
        p.on_change(_big(n))
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(dp.published[-1].services) == n
        assert len(freezes) == 1 and gc.get_freeze_count() > frozen
        assert len(gc.get_objects()) < gc.get_freeze_count()  # a full collection walks less than is frozen
        p.on_change(_big(n, changed=7))  # an event: one service changed
        for _ in range(3):
            await asyncio.sleep(0)
        assert dp.published[-1].services[7].backends[0].address.endswith(".2:80")
        assert len(freezes) == 1
        p.on_change(_big(2 * n))  # twice as large: once more
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(freezes) == 2
        c.request_stop()
        await c.drain()

    try:
        asyncio.run(go())
    finally:
        gc.unfreeze()
