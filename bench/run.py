"""The side-by-side harness shared by bench/l4.py and bench/l7.py.

Method (reference/performance.md §7): the arms run in blocks; inside a block each metric runs every
arm once, in a fresh random order, so that drift cancels in the per-block ratios. Every run restarts
every process it uses (backend, proxy), warms up, then measures. The proxy is pinned to one CPU, the
load generator and the backend to the other, so the proxy's CPU time per unit of work is measured in
isolation. A run that fails is recorded as failed with its reason, never dropped.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import arms as armlib
import loads
import report
from procs import ProcessFailed, Supervisor, cpu_seconds, install_stop_signals, rss_kib
from system import CpuSample, Tuning, machine_info, source_revision


@dataclass(frozen=True)
class Metric:
    key: str
    tool: str  # "wrk" | "iperf3"
    unit: str
    cpu_unit: str
    close: bool = False
    streams: int = 1
    title: str = ""
    paced: bool = False  # offered at a fixed rate (--rate-ka / --rate-cps): the figure is CPU per unit


METRICS = {
    "ka": Metric("ka", "wrk", "req/s", "CPU µs/req", title="keep-alive requests/s"),
    "cps": Metric("cps", "wrk", "conn/s", "CPU µs/conn", close=True, title="new connections/s (Connection: close)"),
    "ka_fixed": Metric("ka_fixed", "wrk", "req/s", "CPU µs/req", paced=True,
                       title="keep-alive at a fixed offered rate"),
    "cps_fixed": Metric("cps_fixed", "wrk", "conn/s", "CPU µs/conn", close=True, paced=True,
                        title="new connections at a fixed offered rate"),
    "gbps1": Metric("gbps1", "iperf3", "Gbit/s", "CPU s/GB", streams=1, title="TCP stream, 1 flow"),
    "gbps4": Metric("gbps4", "iperf3", "Gbit/s", "CPU s/GB", streams=4, title="TCP streams, 4 flows"),
}
DEFAULT_METRICS = {"l4": "ka,cps,gbps1,gbps4,ka_fixed,cps_fixed", "l7": "ka,ka_fixed"}
ALLOWED_METRICS = {"l4": set(METRICS), "l7": {"ka", "cps", "ka_fixed", "cps_fixed"}}


@dataclass
class Context:
    mode: str  # "tcp" (l4) | "http" (l7)
    out: Path
    duration: float
    warmup: float
    connections: int
    load_cpu: int
    proxy_cpu: int
    launcher: str
    rate_ka: float = 2000
    rate_cps: float = 1000

    def rate(self, metric: Metric) -> float | None:
        if not metric.paced:
            return None
        return self.rate_cps if metric.close else self.rate_ka


def parse_args(kind: str, argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=f"bench/{kind}.py",
        description=f"fastlb vs HAProxy vs direct, {kind.upper()}, alternating blocks (see bench/README.md).")
    p.add_argument("--blocks", "--pairs", type=int, default=5, help="alternating blocks (default 5)")
    p.add_argument("--duration", type=float, default=10, help="measured seconds per run (default 10)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds before each measurement (default 3)")
    p.add_argument("--arms", default="D,H,F", help="arms to compare: D,H,Hn,H2,F,Fn (default D,H,F)")
    p.add_argument("--nosplice", action="store_true",
                   help="add Hn (HAProxy nosplice) and, with F, Fn (fastlb without splice)")
    p.add_argument("--aa", action="store_true", help="add H2: a second HAProxy arm, the A/A noise control")
    p.add_argument("--metrics", default=DEFAULT_METRICS[kind], help=f"default {DEFAULT_METRICS[kind]}")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--rate-ka", type=float, default=2000,
                   help="offered req/s of ka_fixed (default 2000; keep it well under every arm's maximum)")
    p.add_argument("--rate-cps", type=float, default=1000, help="offered conn/s of cps_fixed (default 1000)")
    p.add_argument("--proxy-cpu", type=int, default=1)
    p.add_argument("--load-cpu", type=int, default=0, help="CPU of the load generator and the backend")
    p.add_argument("--fastlb", choices=("auto", "cli", "serve"), default="auto",
                   help="start F with `fastlb run` (cli) or bench/fastlb_serve.py (serve); auto: cli if present")
    p.add_argument("--seed", type=int, default=None, help="seed of the run order (default: random, recorded)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default bench/results/<timestamp>)")
    p.add_argument("--no-sysctl", action="store_true", help="do not write sysctls (they are still recorded)")
    p.add_argument("--max-steal", type=float, default=2.0,
                   help="runs with more CPU steal (%%) than this are kept in the raw data but left out of medians")
    a = p.parse_args(argv)
    keys = [k for k in a.arms.split(",") if k]
    if a.nosplice:
        keys += [k for k in ("Hn", "Fn" if "F" in keys else "") if k and k not in keys]
    if a.aa and "H2" not in keys:
        keys.append("H2")
    for k in keys:
        if k not in armlib.ARMS:
            p.error(f"unknown arm {k!r} (known: {', '.join(armlib.ARMS)})")
    a.arm_keys = keys
    a.metric_keys = [m for m in a.metrics.split(",") if m]
    for m in a.metric_keys:
        if m not in ALLOWED_METRICS[kind]:
            p.error(f"unknown metric {m!r} for {kind} (known: {', '.join(sorted(ALLOWED_METRICS[kind]))})")
    if a.blocks < 1 or a.duration < 1 or a.warmup < 0:
        p.error("--blocks and --duration must be at least 1, --warmup at least 0")
    return a


def main(kind: str, argv: list[str] | None = None) -> int:
    args = parse_args(kind, argv)
    # SIGTERM and SIGHUP unwind like Ctrl-C: every child is stopped and sysctls are put back. (SIGINT is
    # installed too: a shell starts background jobs with SIGINT ignored, and Python would keep it so.)
    install_stop_signals()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or armlib.HERE / "results" / f"{stamp}-{kind}").resolve()  # nginx -p needs it absolute
    out.mkdir(parents=True, exist_ok=True)
    launcher = armlib.fastlb_launcher(args.fastlb) if {"F", "Fn"} & set(args.arm_keys) else "none"
    ctx = Context("tcp" if kind == "l4" else "http", out, args.duration, args.warmup, args.connections,
                  args.load_cpu, args.proxy_cpu, launcher, args.rate_ka, args.rate_cps)
    tuning = Tuning()
    tuning.apply(write=not args.no_sysctl)
    meta = {
        "kind": kind, "started": stamp, "seed": seed, "argv": [sys.executable] + sys.argv,
        "blocks": args.blocks, "duration": args.duration, "warmup": args.warmup,
        "connections": args.connections, "rate_ka": args.rate_ka, "rate_cps": args.rate_cps,
        "arms": args.arm_keys, "metrics": args.metric_keys,
        "arm_labels": {k: armlib.ARMS[k].label for k in args.arm_keys},
        "metric_info": {m: vars(METRICS[m]) for m in args.metric_keys},
        "layout": {"proxy_cpu": args.proxy_cpu, "load_cpu": args.load_cpu},
        "fastlb_launcher": launcher, "max_steal": args.max_steal,
        "machine": machine_info(), "fastlb_revision": source_revision(armlib.REPO),
        "tuning": tuning.applied, "nofile": list(tuning.nofile),
        "status": "running",
    }
    records: list[dict[str, object]] = []
    total = args.blocks * len(args.metric_keys) * len(args.arm_keys)
    print(f"{kind}: {total} runs of {args.warmup:g}+{args.duration:g}s -> {out}", flush=True)
    try:
        for block in range(args.blocks):
            for mkey in args.metric_keys:
                order = list(args.arm_keys)
                rng.shuffle(order)
                for pos, akey in enumerate(order):
                    rec = run_one(ctx, block, METRICS[mkey], armlib.ARMS[akey], pos)
                    records.append(rec)
                    _print_run(len(records), total, rec)
                    _save(out, meta, records)
        meta["status"] = "complete"
    except KeyboardInterrupt:
        meta["status"] = "interrupted"
        print("interrupted: writing what was measured", file=sys.stderr)
    except SystemExit as e:
        meta["status"] = f"stopped by signal (exit {e.code})"
    finally:
        tuning.restore()
        meta["finished"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        _save(out, meta, records)
        report.write(out, meta, records)
    print(f"results: {out / 'results.md'}")
    failed = sum(1 for r in records if r["status"] != "ok")
    return 0 if meta["status"] == "complete" and failed == 0 else 1


def run_one(ctx: Context, block: int, metric: Metric, arm: armlib.Arm, position: int) -> dict[str, object]:
    rundir = ctx.out / "runs" / f"b{block:02d}-{metric.key}-{arm.key}"
    rundir.mkdir(parents=True, exist_ok=True)
    rec: dict[str, object] = {
        "block": block, "metric": metric.key, "arm": arm.key, "position": position,
        "started": time.time(), "status": "failed", "reason": "", "value": None, "unit": metric.unit,
        "commands": {},
    }
    try:
        with Supervisor(rundir) as sup:
            if metric.tool == "wrk":
                backend_port = armlib.start_nginx(sup, rundir, ctx.load_cpu)
            else:
                backend_port = armlib.start_iperf3_server(sup, ctx.load_cpu)
            running = armlib.start_arm(sup, arm, ctx.mode, backend_port, rundir, ctx.proxy_cpu, ctx.launcher)
            rec["commands"] = {c.name: c.command for c in sup.children}

            def load(seconds: float) -> dict[str, float]:
                if metric.tool == "wrk":
                    return loads.wrk(f"http://{armlib.HOST}:{running.port}/", seconds, ctx.connections,
                                     metric.close, ctx.load_cpu, ctx.rate(metric))
                return loads.iperf3(armlib.HOST, running.port, seconds, metric.streams, ctx.load_cpu)

            pace = ctx.rate(metric)
            delay = f"FASTLB_BENCH_DELAY_MS={loads.delay_ms(ctx.connections, pace)} " if pace else ""
            load_argv = ["taskset", "-c", str(ctx.load_cpu)] + _load_argv(ctx, metric, running.port)
            rec["commands"]["load"] = delay + shlex.join(load_argv)
            if ctx.warmup > 0:
                warm = load(ctx.warmup)
                rec["warmup_errors"] = warm["errors"]
            pid = running.proxy.pid if running.proxy else None
            if running.proxy and not running.proxy.alive():
                raise ProcessFailed(f"proxy died during warm-up:\n{running.proxy.log_tail()}")
            cpu0 = cpu_seconds(pid) if pid else 0.0
            sample0 = CpuSample()
            data = load(ctx.duration)
            sample1 = CpuSample()
            cpu1 = cpu_seconds(pid) if pid else 0.0
            if running.proxy and not running.proxy.alive():
                raise ProcessFailed(f"proxy died during the measurement:\n{running.proxy.log_tail()}")
            rec["cpus"] = sample1.since(sample0)
            rec["loadavg"] = float(Path("/proc/loadavg").read_text().split()[0])
            rec["steal_pct"] = max(v["steal_pct"] for v in rec["cpus"].values())
            rec["load"] = data
            rec["errors"] = data["errors"]
            if metric.tool == "wrk":
                rec["value"] = data["rps"]
                rec["work"] = data["requests"]
            else:
                rec["value"] = data["gbps"]
                rec["work"] = data["bytes"]
            if pid:
                rec["proxy_cpu_s"] = round(cpu1 - cpu0, 3)
                rec["proxy_rss_kib"] = rss_kib(pid)
                if metric.tool == "wrk":
                    rec["cpu_per_unit"] = 1e6 * rec["proxy_cpu_s"] / data["requests"]
                else:
                    rec["cpu_per_unit"] = rec["proxy_cpu_s"] / (data["bytes"] / 1e9)
            stats = running.stats()
            if stats is not None:
                (rundir / "stats.json").write_text(json.dumps(stats, indent=1))
            rec["status"] = "ok"
    except (ProcessFailed, loads.LoadFailed, OSError, ValueError, KeyError) as e:
        rec["reason"] = f"{type(e).__name__}: {e}"
        (rundir / "failure.txt").write_text(traceback.format_exc())
    rec["finished"] = time.time()
    return rec


def _load_argv(ctx: Context, metric: Metric, port: int) -> list[str]:
    if metric.tool == "wrk":
        return loads.wrk_argv(f"http://{armlib.HOST}:{port}/", ctx.duration, ctx.connections, metric.close)
    return loads.iperf3_argv(armlib.HOST, port, ctx.duration, metric.streams)


def _print_run(n: int, total: int, rec: dict[str, object]) -> None:
    head = f"[{n}/{total}] block {rec['block']} {rec['metric']:<6} {rec['arm']:<3}"
    if rec["status"] != "ok":
        print(f"{head} FAILED {str(rec['reason']).splitlines()[0][:200]}", flush=True)
        return
    cpu = f" proxy {rec['cpu_per_unit']:.2f} {METRICS[str(rec['metric'])].cpu_unit}" if "cpu_per_unit" in rec else ""
    print(f"{head} {rec['value']:.6g} {rec['unit']} errors {rec['errors']} steal {rec['steal_pct']}%{cpu}",
          flush=True)


def _save(out: Path, meta: dict[str, object], records: list[dict[str, object]]) -> None:
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps({"meta": meta, "runs": records}, indent=1, default=str))
    tmp.replace(out / "results.json")
