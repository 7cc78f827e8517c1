"""Benchmark 2: from a task's event to its first request through fastlb.

``fastlb run --marathon URL`` (a subprocess, 2 workers) follows the Marathon emulator; a client process
sends requests back to back (one connection each) through the app's service port. For each of N
rounds a new backend starts and the emulator emits its task's status_update_event (TASK_RUNNING);
the latency is from that emission (the event queued on fastlb's stream) to the first connection the
new backend accepts (both ``time.monotonic()`` on this machine). The previous task is then killed so
that the app always has two tasks and round-robin sends the new one every other connection: the
figure includes up to two client requests (~1-2 ms here). fastlb's own view (receipt of the event
to its table handed over, ``event_latency_ms``; to the swap, ``event_to_swap_s``) is reported beside.

    python3 bench/marathon/event_latency.py [--events 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import _common
from _procs import ClientProcess
from e2e.harness import TimedEmulator, running_fastlb, until

from fastlb.emulator.demo import IdentServers, free_port, task
from fastlb.emulator.emulator import app_definition

LABELS = {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "tcp"}


def fillers(count: int) -> list[dict]:
    """<count> more apps, one task each, on service ports 40000 and up (a larger cluster around the one
    measured: every event then costs a build, merge and publish of the whole table)."""
    apps = []
    for n in range(count):
        app = app_definition(f"/filler/app{n:05d}", [40000 + n], labels=LABELS)
        app["tasks"] = [task(app["id"], n, "127.0.0.1", [1 + n % 1000], [40000 + n])]
        apps.append(app)
    return apps


def lat(ids: set[str]) -> set[str]:
    return {i for i in ids if i.startswith("lat.")}


async def run(events: int, workers: int, extra_apps: int, log: Path) -> list[str]:
    latencies: list[float] = []
    provider_ms: list[float] = []
    swap_ms: list[float] = []
    with IdentServers() as servers:
        emu = TimedEmulator(heartbeat_interval=1.0)
        await emu.start()
        try:
            port = free_port()
            for app in fillers(extra_apps):
                emu.load_app(app)
            emu.add_app(app_definition("/lat", [port], labels=LABELS))
            first = servers.start("t0")
            previous = (emu.add_task("/lat", [first.port], task_id="lat.t0._app.1"), "t0")
            async with running_fastlb(["--marathon", emu.url], log, workers=workers) as lb:
                await lb.wait_backends(lambda ids: lat(ids) == {previous[0]}, "the first task", timeout=300)
                client = await ClientProcess(port).start()
                try:
                    for n in range(1, events + 1):
                        ident = servers.start(f"t{n}")
                        task_id = emu.add_task("/lat", [ident.port], task_id=f"lat.t{n}._app.1")
                        emitted = emu.emitted_at("status_update_event", task_id)
                        await until(lambda i=ident: i.first_accept is not None, f"t{n}'s first connection")
                        assert ident.first_accept is not None
                        latencies.append(ident.first_accept - emitted)
                        stats = await lb.stats()
                        ms = stats["providers"]["marathon"].get("event_latency_ms")
                        if ms is not None:
                            provider_ms.append(ms)
                        if stats["swap"].get("event_to_swap_s") is not None:
                            swap_ms.append(stats["swap"]["event_to_swap_s"] * 1000)
                        emu.set_task_state(previous[0], "TASK_KILLED")
                        await lb.wait_backends(
                            lambda ids, t=task_id: lat(ids) == {t}, "the previous task gone"
                        )
                        servers.stop(previous[1])
                        previous = (task_id, f"t{n}")
                finally:
                    result = await client.stop()
        finally:
            await emu.stop()
    ms = [x * 1000 for x in latencies]
    lines = [
        f"{events} events; {extra_apps} other apps; fastlb with {workers} workers; "
        "client: one process, one connection per request, "
        f"{result['ok']} requests, {result['failures']} failed",
        "",
        "| measure | p50 ms | p95 ms | max ms | min ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| emulator emits status_update_event → new backend accepts its first connection | "
        f"{statistics.median(ms):.1f} | {_common.percentile(ms, 95):.1f} | {max(ms):.1f} | {min(ms):.1f} |",
    ]
    if provider_ms:
        lines.append(
            f"| fastlb: event received → table handed to the controller (`event_latency_ms`) | "
            f"{statistics.median(provider_ms):.1f} | {_common.percentile(provider_ms, 95):.1f} | "
            f"{max(provider_ms):.1f} | {min(provider_ms):.1f} |"
        )
    if swap_ms:
        lines.append(
            f"| fastlb: event received → table serving (`event_to_swap_s`) | "
            f"{statistics.median(swap_ms):.1f} | {_common.percentile(swap_ms, 95):.1f} | "
            f"{max(swap_ms):.1f} | {min(swap_ms):.1f} |"
        )
    lines += ["", "all latencies (ms): " + ", ".join(f"{x:.1f}" for x in ms)]
    if result["failures"]:
        lines.append(f"client failures: {result['first_failures']}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--extra-apps", type=int, default=0, help="other apps in the cluster (service ports 40000+)"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = asyncio.run(run(args.events, args.workers, args.extra_apps, Path(tmp) / "fastlb.log"))
    _common.report("event-latency", "Marathon event to first request through fastlb", lines)


if __name__ == "__main__":
    main()
