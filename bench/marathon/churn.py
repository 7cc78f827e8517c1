"""Benchmark 3: requests through fastlb while Marathon changes tasks 20 times a second.

``fastlb run --marathon URL`` (a subprocess, 2 workers) follows the Marathon emulator. Client
processes send requests back to back through the app's service port, one connection each (and
``wrk`` with ``Connection: close`` when ``--wrk`` is given). Meanwhile the emulator changes the app's
tasks at ``--rate`` changes a second for ``--seconds``, as a rolling restart does, in a cycle of
three changes: a new task RUNNING (its backend started first), the oldest task KILLING, and the
task that started KILLING one cycle earlier (150 ms at 20/s) stops listening, then its TASK_KILLED.
Every change is one status_update_event (plus its instance_changed_event). Target: zero failed requests.

    python3 bench/marathon/churn.py [--rate 20] [--seconds 30] [--clients 2] [--wrk]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path

import _common
from _procs import ClientProcess
from e2e.harness import TimedEmulator, running_fastlb

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition

LABELS = {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "tcp"}
START_TASKS = 4


async def run(rate: float, seconds: float, clients: int, wrk: bool, log: Path) -> list[str]:
    changes = 0
    lines: list[str] = []
    with IdentServers() as servers:
        emu = TimedEmulator(heartbeat_interval=1.0)
        await emu.start()
        try:
            port = free_port()
            emu.add_app(app_definition("/churn", [port], labels=LABELS))
            running: deque[tuple[str, str]] = deque()  # (task id, backend name), oldest first
            serial = 0

            def new_task() -> None:
                nonlocal serial
                serial += 1
                name = f"t{serial}"
                ident = servers.start(name)
                running.append((emu.add_task("/churn", [ident.port], task_id=f"churn.{name}._app.1"), name))

            for _ in range(START_TASKS):
                new_task()
            async with running_fastlb(["--marathon", emu.url], log) as lb:
                await lb.wait_backends(lambda ids: ids == {t for t, _ in running}, "the first tasks")
                procs = [await ClientProcess(port).start() for _ in range(clients)]
                wrk_proc = None
                if wrk:
                    wrk_proc = await asyncio.create_subprocess_exec(
                        "wrk",
                        "-t1",
                        "-c8",
                        f"-d{int(seconds) + 2}s",
                        "-H",
                        "Connection: close",
                        f"http://127.0.0.1:{port}/",
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                # One task starts KILLING before the clock starts, so that each TASK_KILLED comes one
                # cycle (3 changes) after its KILLING: a task gets that long to finish what it holds.
                killing: deque[tuple[str, str]] = deque([running.popleft()])
                emu.set_task_state(killing[0][0], "TASK_KILLING")
                await lb.wait_backends(
                    lambda ids: ids == {t for t, _ in running} | {killing[0][0]}, "a draining task"
                )
                swaps_before = (await lb.stats())["swaps"]
                step = 1.0 / rate
                start = time.monotonic()
                late = 0.0
                while time.monotonic() - start < seconds:
                    kind = changes % 3
                    if kind == 0:
                        new_task()
                    elif kind == 1:
                        killing.append(running.popleft())
                        emu.set_task_state(killing[-1][0], "TASK_KILLING")
                    else:
                        task_id, name = killing.popleft()
                        servers.stop(name)  # the task's process exits, then Mesos says KILLED
                        emu.set_task_state(task_id, "TASK_KILLED")
                    changes += 1
                    due = start + changes * step
                    delay = due - time.monotonic()
                    late = max(late, -delay)
                    await asyncio.sleep(max(0.0, delay))
                elapsed = time.monotonic() - start
                want = {t for t, _ in running} | {t for t, _ in killing}
                await lb.wait_backends(lambda ids: ids == want, "the last change served", timeout=30)
                settled = time.monotonic() - start - elapsed
                results = [await p.stop() for p in procs]
                stats = await lb.stats()
                wrk_out = ""
                if wrk_proc is not None:
                    out, _ = await wrk_proc.communicate()
                    wrk_out = out.decode(errors="replace")
            provider = stats["providers"]["marathon"]
            requests = sum(r["ok"] + r["failures"] for r in results)
            failures = sum(r["failures"] for r in results)
            lines += [
                f"{changes} task changes in {elapsed:.1f} s ({changes / elapsed:.1f}/s; the change loop ran "
                f"at most {late * 1000:.0f} ms late); table matched Marathon {settled * 1000:.0f} ms after "
                "the last change",
                f"fastlb: {stats['swaps'] - swaps_before} table swaps during the run, "
                f"{provider['tables_published']} tables from the provider, events received: "
                f"status_update_event {provider['events'].get('status_update_event', 0)}, "
                f"instance_changed_event {provider['events'].get('instance_changed_event', 0)}; "
                f"reconnects {provider['reconnects']}",
                "",
                "| client | requests | failed |",
                "| --- | ---: | ---: |",
            ]
            for n, r in enumerate(results):
                lines.append(
                    f"| python loop {n + 1} (new connection per request) | {r['ok'] + r['failures']} | "
                    f"{r['failures']} |"
                )
            if wrk_out:
                total = re.search(r"(\d+) requests in", wrk_out)
                errors = re.search(r"Socket errors: (.*)", wrk_out)
                non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_out)
                lines.append(
                    f"| wrk -t1 -c8, Connection: close | {total.group(1) if total else '?'} | "
                    f"{(errors.group(1) if errors else 'no socket errors')}; "
                    f"non-2xx {non2xx.group(1) if non2xx else 0} |"
                )
            lines += [
                "",
                f"python clients: {requests} requests, {failures} failed "
                f"({'meets' if failures == 0 else 'misses'} the zero-failure target)",
            ]
            for r in results:
                if r["failures"]:
                    lines.append(f"first failures: {r['first_failures']}")
            if wrk_out:
                lines += ["", "```", wrk_out.strip(), "```"]
        finally:
            await emu.stop()
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=20.0, help="task changes a second")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--clients", type=int, default=2, help="client processes")
    p.add_argument("--wrk", action="store_true", help="also run wrk (Connection: close) through the port")
    args = p.parse_args()
    if args.wrk and shutil.which("wrk") is None:
        p.error("--wrk: wrk is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        lines = asyncio.run(run(args.rate, args.seconds, args.clients, args.wrk, Path(tmp) / "fastlb.log"))
    _common.report("churn", "Requests through fastlb while Marathon changes tasks", lines)


if __name__ == "__main__":
    main()
