"""The Marathon provider wired to the controller and the real data plane, against the Marathon
emulator: apps become listeners that forward to their tasks, a new task is swapped in, a task that
starts KILLING is drained at once, and /stats reports the provider."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from fastlb import admin, server
from fastlb._core import DataPlane
from fastlb.emulator.backends import WhoAmI, reserve_port
from fastlb.emulator.emulator import MarathonEmulator, app_definition
from fastlb.marathon.args import MarathonArgs

TIMEOUT = 20.0


async def until(predicate, what: str) -> None:
    for _ in range(int(TIMEOUT / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def ask(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(reader.readline(), TIMEOUT)
    finally:
        writer.close()
        await writer.wait_closed()


def test_marathon_apps_are_served() -> None:
    with WhoAmI("one") as one, WhoAmI("two") as two, reserve_port() as reserved:
        asyncio.run(_scenario(int(reserved.rsplit(":", 1)[1]), one, two))


async def _scenario(service_port: int, one, two) -> None:
    emu = MarathonEmulator(heartbeat_interval=1.0)
    url = await emu.start()
    emu.add_app(app_definition("/svc", [service_port]))
    t1 = emu.add_task("/svc", [int(one.address.rsplit(":", 1)[1])])
    args = MarathonArgs(urls=(url,), groups=("*",), bind_addr="127.0.0.1", http_port=0, https_port=0, appid_port=0)
    c, _, _ = server.build(server.RunOptions(marathon=args, workers=1, drain_timeout=TIMEOUT), DataPlane)
    c.start()
    client = TestClient(TestServer(admin.make_app(c)))
    await client.start_server()
    try:
        await until(lambda: c.dataplane.generation >= 1, "the first Marathon table")
        assert (await ask(service_port)).startswith(b"one")
        t2 = emu.add_task("/svc", [int(two.address.rsplit(":", 1)[1])])
        gen = c.dataplane.generation
        await until(lambda: c.dataplane.generation > gen, "the table with the second task")
        seen = {(await ask(service_port))[:3] for _ in range(6)}
        assert seen == {b"one", b"two"}
        emu.set_task_state(t1, "TASK_KILLING")
        await until(lambda: c.dataplane.stats()["backends"].get(t1, {}).get("state") == "drain", "t1 draining")
        assert {(await ask(service_port))[:3] for _ in range(4)} == {b"two"}
        s = await (await client.get("/stats")).json()
        assert s["providers"]["marathon"]["synced"] is True
        assert s["swap"]["event_to_swap_s"] is None or s["swap"]["event_to_swap_s"] >= 0
        assert t2 in {b["id"] for b in s["services"][0]["backends"]}
    finally:
        await client.close()
        await c.drain()
        await emu.stop()
