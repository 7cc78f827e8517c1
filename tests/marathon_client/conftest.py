"""Async tests run on a fresh event loop each, under a deadline, without a plugin."""

from __future__ import annotations

import asyncio
import inspect

import pytest

TEST_DEADLINE = 60.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    async def bounded() -> None:
        async with asyncio.timeout(TEST_DEADLINE):
            await pyfuncitem.obj(**args)

    asyncio.run(bounded())
    return True
