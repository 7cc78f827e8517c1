"""Benchmark 1: a full resync of a large Marathon cluster into a published table.

The body of ``GET /v2/apps?embed=apps.tasks&embed=apps.readiness`` for N apps (one service port each,
HOST networking, tasks on IP literals: ``bench_payload`` of tests/perf_invariants/workloads.py, whose
output-identity tests hold that cluster's digests) is made up front; then each stage of what the Marathon
provider and the controller do with it is timed on its own:

1. decode: ``models.decode_apps`` (msgspec, typed)
2. state: the rest of ``MarathonState.replace_all`` (indexing apps and tasks)
3. build: ``MarathonState.table()``, the first build (nothing to reuse)
4. merge: what the controller adds (``TableMerger.merge``, as ``Controller.publish`` does;
   the merger is kept for the event, which it merges by what changed)
5. publish: ``DataPlane.publish`` of that table: compile, open every listener in every worker, swap

then warm: the task index the provider makes once it has handed the table over (``MarathonState.warm``),
and the same after one task is added by event (the incremental path: the build reuses every
unchanged app, the publish compiles its service alone). Target: stages 1-5 under 1 s for 10,000 apps and 50,000 tasks.

    python3 bench/marathon/resync.py [--apps 10000] [--tasks 5] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import time

import _common

_common.raise_fd_limit()

from perf_invariants.workloads import STAMP, bench_payload

from fastlb._core import DataPlane
from fastlb.marathon import models
from fastlb.marathon.state import MarathonOptions, MarathonState
from fastlb.merge import TableMerger


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def one_run(body: bytes, options: MarathonOptions, workers: int, gc_off: bool) -> dict[str, float]:
    gc.collect()
    if gc_off:
        gc.disable()
    r: dict[str, float] = {}
    _, r["decode"] = timed(lambda: models.decode_apps(body))
    state = MarathonState(options, lambda host: host)
    _, whole = timed(lambda: state.replace_all(body))
    r["state"] = max(0.0, whole - r["decode"])
    table, r["build"] = timed(state.table)
    merger = TableMerger()
    (merged, _), r["merge"] = timed(lambda: merger.merge([("marathon", table)]))
    dp = DataPlane(workers)
    dp.start()
    try:
        _, r["publish"] = timed(lambda: dp.publish(merged))
        r["total"] = r["decode"] + r["state"] + r["build"] + r["merge"] + r["publish"]
        _, r["warm"] = timed(state.warm)  # as the provider does once the table is handed over
        # One task more, by event: apply, rebuild (reusing every other app), publish.
        event = json.dumps(
            {
                "eventType": "status_update_event",
                "timestamp": STAMP,
                "slaveId": "agent-x",
                "taskId": "bench_app00000.instance-new._app.1",
                "taskStatus": "TASK_RUNNING",
                "message": "",
                "appId": "/bench/app00000",
                "host": "10.0.99.0",
                "ipAddresses": [{"ipAddress": "10.0.99.0", "protocol": "IPv4"}],
                "ports": [31999],
                "version": STAMP,
            }
        ).encode()
        t0 = time.perf_counter()
        state.apply_event("status_update_event", event)
        table2 = state.table()
        t1 = time.perf_counter()
        merged2, _ = merger.merge([("marathon", table2)])
        assert merged2 != merged  # what Controller.publish asks before publishing
        t2 = time.perf_counter()
        dp.publish(merged2)
        t3 = time.perf_counter()
        r["event_build"] = t1 - t0
        r["event_merge"] = t2 - t1
        r["event_publish"] = t3 - t2
        r["backends"] = sum(len(s.backends) for s in table2.services)
        r["listeners"] = len(table2.listeners)
    finally:
        dp.stop()
        gc.enable()
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--apps", type=int, default=10000)
    p.add_argument("--tasks", type=int, default=5, help="tasks per app")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bind-addr", default="127.0.77.1", help="where the service ports are bound")
    p.add_argument("--base-port", type=int, default=20000)
    p.add_argument(
        "--gc-off", action="store_true", help="Python's cyclic GC off while timing (to see its share)"
    )
    args = p.parse_args()
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if args.apps * args.workers + 1000 > limit:
        p.error(
            f"{args.apps} listeners x {args.workers} workers need more fds than the limit here ({limit}): "
            "fewer --workers (each worker holds its own SO_REUSEPORT socket per listener)"
        )
    body = bench_payload(args.apps, args.tasks, args.base_port)
    options = MarathonOptions(bind_addr=args.bind_addr, http_port=0, https_port=0, appid_port=0)
    runs = [one_run(body, options, args.workers, args.gc_off) for _ in range(args.repeat)]
    stages = ["decode", "state", "build", "merge", "publish", "total"]
    stages += ["warm", "event_build", "event_merge", "event_publish"]
    lines = [
        f"{args.apps} apps, {args.apps * args.tasks} tasks, payload {len(body) / 1e6:.1f} MB; "
        f"table: {int(runs[0]['listeners'])} listeners, {int(runs[0]['backends'])} backends; "
        f"DataPlane({args.workers} workers); cyclic GC {'off' if args.gc_off else 'on'}; {args.repeat} runs",
        "",
        "| stage | median ms | min ms | max ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for stage in stages:
        values = [r[stage] * 1000 for r in runs]
        lines.append(f"| {stage} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |")
    total = statistics.median(r["total"] for r in runs)
    lines += [
        "",
        f"resync total (decode + state + build + merge + publish): {total * 1000:.0f} ms "
        f"({'meets' if total < 1.0 else 'misses'} the 1 s target)",
        "event_build, event_merge, event_publish: one status_update_event RUNNING applied on that "
        "state, the table rebuilt (unchanged apps reused), merged by the controller, and published.",
    ]
    _common.report("resync", "Marathon resync into a published table", lines)


if __name__ == "__main__":
    main()
