"""Shared test setup: enough fds for thousands of loopback connections, a check after every test that
the C core's live resources (fds, pipes, connections, tables, backends, listeners) are back where they
were, and the data-plane fixtures of the engine, HTTP and TLS tests (started DataPlanes, reserved
listener ports)."""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fastlb import _core
from fastlb._core import DataPlane
from fastlb.emulator.backends import reserve_port


def pytest_configure(config: pytest.Config) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 65536:
        hard = 65536
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@pytest.fixture(autouse=True)
def live_resources_return() -> Iterator[None]:
    """Fails the test after which the C core holds more (or fewer) resources than before it.
    Workers close connections asynchronously, so this waits a few seconds for them to settle."""
    before = _core.live_counts()
    yield
    deadline = time.monotonic() + 5.0
    now = _core.live_counts()
    while now != before and time.monotonic() < deadline:
        time.sleep(0.02)
        now = _core.live_counts()
    assert now == before, f"live resources leaked: before {before}, after {now}"


@pytest.fixture
def dataplane() -> Iterator[Callable[..., DataPlane]]:
    """Makes started DataPlanes (2 workers unless told) and stops them at the end of the test."""
    made: list[DataPlane] = []

    def make(workers: int = 2, **kw: Any) -> DataPlane:
        dp = DataPlane(workers, **kw)
        made.append(dp)
        dp.start()
        return dp

    yield make
    for dp in made:
        dp.stop()


@pytest.fixture
def ports() -> Iterator[Callable[[], str]]:
    """Reserves free ports for listeners for the length of the test."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(reserve_port())
