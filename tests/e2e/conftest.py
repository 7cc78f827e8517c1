"""Fixtures of the end-to-end tests: the identifying backends and a Marathon emulator, each started
for one test and stopped after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from fastlb.emulator.demo import IdentServers

from .harness import TimedEmulator


@pytest.fixture
def servers() -> Iterator[IdentServers]:
    with IdentServers() as s:
        yield s


@pytest.fixture
async def emu() -> AsyncIterator[TimedEmulator]:
    e = TimedEmulator(heartbeat_interval=1.0)
    await e.start()
    try:
        yield e
    finally:
        await e.stop()
