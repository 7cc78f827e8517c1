"""A MarathonProvider running against MarathonEmulator members, with its callbacks recorded."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastlb import spec
from fastlb.emulator.emulator import MarathonEmulator, app_definition
from fastlb.marathon.provider import MarathonProvider
from fastlb.marathon.state import MarathonOptions

WAIT = 20.0  # generous: a loaded 2-core machine


def backend_ids(table: spec.RouteTable) -> set[str]:
    return {b.id for s in table.services for b in s.backends}


def backend_states(table: spec.RouteTable) -> dict[str, str]:
    return {b.id: b.state for s in table.services for b in s.backends}


class Recorder:
    """The provider's callbacks, recorded, with a way to await a condition on them."""

    def __init__(self, emulators: list[MarathonEmulator] | None = None) -> None:
        self.tables: list[spec.RouteTable] = []
        self.backend_calls: list[tuple[str, str]] = []
        self.log: list[tuple[str, object]] = []  # both callbacks, in the order they came
        # for each on_backend_state call, the requests the emulators had received by then
        self.requests_at_call: list[list[tuple[str, str, dict[str, str]]]] = []
        self.emulators = emulators or []
        self._changed = asyncio.Event()

    @property
    def table(self) -> spec.RouteTable | None:
        return self.tables[-1] if self.tables else None

    def on_change(self, table: spec.RouteTable) -> None:
        self.tables.append(table)
        self.log.append(("table", table))
        self._changed.set()

    def on_backend_state(self, backend_id: str, state: str) -> None:
        self.backend_calls.append((backend_id, state))
        self.log.append(("backend", (backend_id, state)))
        self.requests_at_call.append([r for e in self.emulators for r in e.requests])
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; last table: {self.table}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.2)):
                    await self._changed.wait()

    async def wait_backends(self, ids: set[str], timeout: float = WAIT) -> None:
        await self.wait_for(
            lambda: self.table is not None and backend_ids(self.table) == ids,
            f"backends {sorted(ids)}",
            timeout,
        )


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def web_app(app_id: str = "/web", port: int = 10000) -> dict[str, Any]:
    return app_definition(app_id, [port], labels={"HAPROXY_GROUP": "external"})


def make_provider(urls: list[str], **kwargs: Any) -> MarathonProvider:
    kwargs.setdefault("initial_backoff", 0.05)
    kwargs.setdefault("max_backoff", 0.5)
    kwargs.setdefault("connect_timeout", 2.0)
    kwargs.setdefault("read_timeout", 5.0)
    options = kwargs.pop("options", MarathonOptions(http_port=0, https_port=0, appid_port=0))
    return MarathonProvider(urls, options, **kwargs)


@contextlib.asynccontextmanager
async def running(provider: MarathonProvider, recorder: Recorder) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(provider.run(recorder.on_change, recorder.on_backend_state))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled() or task.exception() is None
