"""Benchmark 4: fastlb run against Marathon clusters of 100 to 20,000 apps.

For each size, the emulator holds that many apps (one task each; every <--two-ports>th app has two
service ports), on service ports from <--base-port> up (below the kernel's ephemeral range, where
outgoing connections would take some), and the measured app ``/lat`` beside them. Then:

- first serve: from starting ``fastlb run --marathon URL`` to the first connection ``/lat``'s task
  accepts through it (a client process sends requests back to back from the start);
- RSS of the fastlb process (``VmRSS``) once it serves, and after the events;
- event → traffic: as event_latency.py, <--events> rounds of a new task's status_update_event
  (RUNNING) to its first connection through fastlb, the previous task then killed; p50 and p99;
- resync: the wall time of ``GET /_mlb_signal/hup`` (the emulator serializes /v2/apps, fastlb fetches,
  decodes, builds and publishes it), median of <--resyncs>;
- listeners bound and left out (``listen_errors``: each listener costs one descriptor per worker, and
  fastlb holds at most the open-file limit).

    python3 bench/marathon/scale.py [--apps 100 1000 10000 20000] [--events 20] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _procs import ClientProcess
from e2e.harness import TimedEmulator, running_fastlb, until

from fastlb.emulator.demo import IdentServers, free_port, task
from fastlb.emulator.emulator import app_definition

LABELS = {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "tcp", "HAPROXY_1_MODE": "tcp"}


def cluster(count: int, base_port: int, two_ports: int, internal: int) -> tuple[list[dict[str, Any]], int]:
    """<count> apps, one task each, every <two_ports>th with a second service port, every <internal>th
    in HAPROXY_GROUP internal (not served: no listener); and the number of service ports served."""
    apps = []
    port = base_port
    served = 0
    for n in range(count):
        ports = [port, port + 1] if two_ports and n % two_ports == 0 else [port]
        port += len(ports)
        labels = dict(LABELS)
        if internal and n % internal == internal - 1:
            labels["HAPROXY_GROUP"] = "internal"
        else:
            served += len(ports)
        app = app_definition(f"/scale/app{n:05d}", ports, labels=labels)
        app["tasks"] = [task(app["id"], n, "127.0.0.1", [1 + n % 1000 + k for k in range(len(ports))], ports)]
        apps.append(app)
    return apps, served


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def one_size(apps: int, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    r: dict[str, Any] = {"apps": apps}
    with IdentServers() as servers:
        emu = TimedEmulator(heartbeat_interval=1.0)
        await emu.start()
        try:
            defs, r["service_ports"] = cluster(apps, args.base_port, args.two_ports, args.internal)
            for app in defs:
                emu.load_app(app)
            port = free_port()
            emu.add_app(app_definition("/lat", [port], labels=LABELS))
            first = servers.start("t0")
            previous = (emu.add_task("/lat", [first.port], task_id="lat.t0._app.1"), "t0")
            # this client finds the first serve (refused until fastlb listens); the next counts failures
            client = await ClientProcess(port).start()
            try:
                t0 = time.monotonic()
                async with running_fastlb(["--marathon", emu.url], log, workers=args.workers) as lb:
                    stats = await lb.stats()
                    r["listeners"] = len(stats["listeners"])
                    r["left_out"] = len(stats["listen_errors"])
                    r["left_out_why"] = sorted({x.rsplit(": ", 1)[-1] for x in stats["listen_errors"]})
                    r["rss_serving_mb"] = rss_mb(lb.proc.pid) if lb.proc is not None else float("nan")
                    await until(lambda: first.first_accept is not None, "the first serve", timeout=args.serve_timeout)
                    assert first.first_accept is not None and lb.proc is not None
                    r["first_serve_s"] = first.first_accept - t0
                    r["rss_serving_mb"] = rss_mb(lb.proc.pid)
                    stats = await lb.stats()
                    r["listeners"] = len(stats["listeners"])
                    r["left_out"] = len(stats["listen_errors"])
                    r["left_out_why"] = sorted({x.rsplit(": ", 1)[-1] for x in stats["listen_errors"]})
                    await client.stop()
                    client = await ClientProcess(port).start()
                    latencies = []
                    for n in range(1, args.events + 1):
                        ident = servers.start(f"t{n}")
                        task_id = emu.add_task("/lat", [ident.port], task_id=f"lat.t{n}._app.1")
                        emitted = emu.emitted_at("status_update_event", task_id)
                        await until(lambda i=ident: i.first_accept is not None, f"t{n}'s first connection")
                        assert ident.first_accept is not None
                        latencies.append((ident.first_accept - emitted) * 1000)
                        emu.set_task_state(previous[0], "TASK_KILLED")
                        # no /routes polling (a large body at this size): the kill is applied within
                        # milliseconds, and a connection refused meanwhile is retried on the other task
                        await asyncio.sleep(1.0)
                        servers.stop(previous[1])
                        previous = (task_id, f"t{n}")
                    r["event_p50_ms"] = statistics.median(latencies)
                    r["event_p99_ms"] = _common.percentile(latencies, 99)
                    r["latencies"] = latencies
                    resyncs = []
                    for _ in range(args.resyncs):
                        t1 = time.monotonic()
                        async with lb.session.get(lb.admin + "/_mlb_signal/hup") as resp:  # type: ignore[union-attr]
                            assert resp.status == 200, resp.status
                        resyncs.append(time.monotonic() - t1)
                    r["resync_s"] = statistics.median(resyncs)
                    r["rss_end_mb"] = rss_mb(lb.proc.pid)
            except AssertionError as e:
                r["error"] = str(e)
            finally:
                result = await client.stop()
                r["requests"], r["failed"] = result["ok"], result["failures"]
        finally:
            await emu.stop()
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--apps", type=int, nargs="+", default=[100, 1000, 10000, 20000])
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--resyncs", type=int, default=3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--two-ports", type=int, default=4, help="every Nth app has two service ports (0: none)")
    p.add_argument("--internal", type=int, default=0, help="every Nth app in another group, not served (0: none)")
    p.add_argument("--base-port", type=int, default=5000)
    p.add_argument("--serve-timeout", type=float, default=180.0, help="seconds to wait for the first serve")
    args = p.parse_args()
    _common.raise_fd_limit()
    rows = []
    for apps in args.apps:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(asyncio.run(one_size(apps, args, Path(tmp) / "fastlb.log")))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    lines = [
        f"fastlb run with {args.workers} worker(s), open-file limit {nofile[0]}; one task per app, every "
        f"{args.two_ports}th app with two service ports"
        + (f", every {args.internal}th app in a group fastlb does not serve" if args.internal else "")
        + f"; {args.events} events and {args.resyncs} resyncs per size; requests (failed): after the first serve",
        "",
        "| apps | service ports served | listeners bound / left out | first serve s | RSS MB (serving / end) "
        "| event → traffic p50 ms | p99 ms | resync s | requests (failed) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        why = f" ({', '.join(r['left_out_why'])})" if r.get("left_out") else ""
        if "error" in r:
            lines.append(
                f"| {r['apps']:,} | {r['service_ports'] + 1:,} "
                f"| {r.get('listeners', 0):,} / {r.get('left_out', 0):,}{why} | not served: {r['error']} "
                f"| {r.get('rss_serving_mb', float('nan')):.0f} | | | | "
                f"{r['requests']:,} ({r['failed']}) |"
            )
            continue
        lines.append(
            f"| {r['apps']:,} | {r['service_ports'] + 1:,} | {r['listeners']:,} / {r['left_out']:,}{why} "
            f"| {r['first_serve_s']:.2f} | {r['rss_serving_mb']:.0f} / {r['rss_end_mb']:.0f} "
            f"| {r['event_p50_ms']:.1f} | {r['event_p99_ms']:.1f} | {r['resync_s']:.2f} "
            f"| {r['requests']:,} ({r['failed']}) |"
        )
    lines += ["", "event → traffic, all (ms):"]
    for r in rows:
        lines.append(f"- {r['apps']:,} apps: " + ", ".join(f"{x:.1f}" for x in r.get("latencies", [])))
    _common.report("scale", "fastlb run against Marathon clusters of 100 to 20,000 apps", lines)


if __name__ == "__main__":
    main()
