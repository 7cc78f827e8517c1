"""Shared test setup: enough fds for thousands of loopback connections, and a check after every
test that the C core's live resources (fds, pipes, connections, tables, backends, listeners) are
back where they were."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator

import pytest

from fastlb import _core


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
