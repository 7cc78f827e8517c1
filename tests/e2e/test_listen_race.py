"""Service ports taken by another process at random moments, while Marathon adds their apps and task
events arrive: a port fastlb cannot bind costs that listener alone. Every event reaches traffic on
the ports that bind, no swap fails for a bind error, each port left out is one line in the log and
one in ``listen_errors``, and once the other process lets go, the backoff binds it."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition

from .harness import ClientLoop, TimedEmulator, arequest, running_fastlb, until

pytestmark = pytest.mark.timeout(180)

BUSY = 20

# Another process: listens on the first five ports at once, then on the others in a random order at
# random moments (fastlb may have bound some first); prints the ports it holds, lets go at EOF.
HOLDER = r"""
import random, socket, sys, time
ports = [int(p) for p in sys.argv[2:]]
rng = random.Random(int(sys.argv[1]))
held = []
def take(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        s.listen(8)
        held.append((port, s))
    except OSError:
        s.close()
for port in ports[:5]:
    take(port)
print("ready", flush=True)
rest = ports[5:]
rng.shuffle(rest)
for port in rest:
    time.sleep(rng.uniform(0, 0.04))
    take(port)
print(" ".join(str(p) for p, _ in held), flush=True)
sys.stdin.read()
"""


async def test_ports_taken_by_another_process_cost_their_listener_alone(
    emu: TimedEmulator, servers: IdentServers, tmp_path: Path
) -> None:
    rng = random.Random()
    port = free_port()
    emu.add_app(app_definition("/lat", [port], labels={"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http"}))
    previous = emu.add_task("/lat", [servers.start("t0").port], task_id="lat.t0._app.1")
    ports = {port}
    while len(ports) < BUSY + 1:  # free_port() may say one port twice
        ports.add(free_port())
    busy = {f"/busy{k}": p for k, p in enumerate(sorted(ports - {port}))}
    async with running_fastlb(["--marathon", emu.url, "--bind-addr", "127.0.0.1"], tmp_path / "fastlb.log") as lb:
        await lb.wait_backends(lambda ids: previous in ids, "the first task")
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLDER, str(rng.randrange(1 << 30)), *map(str, busy.values()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert (await holder.stdout.readline()).strip() == b"ready"
            with ClientLoop(port, pause=0.001) as clients:
                await clients.wait_ok(10)
                apps = list(busy.items())
                rng.shuffle(apps)
                for n in range(1, BUSY + 1):
                    # an app whose port may be taken, then a task event on the port that binds
                    app_id, app_port = apps[n - 1]
                    emu.add_app(app_definition(app_id, [app_port], labels={"HAPROXY_GROUP": "external"}))
                    emu.add_task(app_id, [servers.start(app_id[1:]).port], task_id=f"{app_id[1:]}.t._app.1")
                    await asyncio.sleep(rng.uniform(0, 0.03))
                    ident = servers.start(f"t{n}")
                    task_id = emu.add_task("/lat", [ident.port], task_id=f"lat.t{n}._app.1")
                    await until(lambda i=ident: i.first_accept is not None, f"t{n}'s first connection")
                    emu.set_task_state(previous, "TASK_KILLED")
                    await lb.wait_backends(lambda ids, t=task_id, p=previous: t in ids and p not in ids,
                                           "the previous task gone")
                    previous = task_id
                assert clients.failures == []
            held = {int(p) for p in (await holder.stdout.readline()).split()}
            assert len(held) >= 5
            addresses = {p: f"127.0.0.1:{p}" for p in busy.values()}
            want = sorted(addresses[p] for p in held)

            async def left_out() -> list[str]:
                stats = await lb.stats()
                return sorted(line.split()[1] for line in stats["listen_errors"])

            async def left_out_now(expected: list[str]) -> bool:
                return await left_out() == expected

            await until(lambda: left_out_now(want), "listen_errors: the ports the other process holds")
            for app_id, app_port in busy.items():
                if app_port not in held:
                    assert await arequest(app_port) == app_id[1:]
            await asyncio.sleep(2.5)  # the backoff tries them again, in vain
            log = lb.log_path.read_text()
            assert "swap_failed" not in log
            for p in held:
                assert log.count(f"listener_skipped listener={addresses[p]} ") == 1, log[-3000:]
            assert lb.session is not None
            async with lb.session.get(lb.admin + "/metrics") as r:
                assert f"fastlb_listeners_skipped {len(held)}" in await r.text()
        finally:
            holder.stdin.close()
            await holder.wait()
        # let go: the backoff binds them, and their apps serve
        await until(lambda: left_out_now([]), "every port bound", timeout=40)
        for app_id, app_port in busy.items():
            assert await arequest(app_port) == app_id[1:]
        log = lb.log_path.read_text()
        for p in held:
            assert f"listener_bound listener={addresses[p]}" in log
