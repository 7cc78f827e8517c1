"""The side-by-side harness shared by bench/l4.py, bench/l7.py and bench/tls.py.

Method (docs/benchmarks.md): the arms run in blocks; inside a block each point (metric ×
clients × backends × workers) runs every arm once, in a fresh random order, so that drift cancels in
the per-block ratios. Every run restarts every process it uses (backend, proxy), warms up, then
measures. With one worker the proxy is pinned to one CPU, the load generator and the backend to the
other, so the proxy's CPU time per unit of work is measured in isolation; with more workers the proxy
also gets the load CPU, and the two share it. A run that fails is recorded as failed with its reason,
and a point the open-files limit cannot hold as skipped with its reason; neither is ever dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import arms as armlib
import idle
import loads
import report
from procs import ProcessFailed, RssSampler, Supervisor, cpu_seconds, fd_count, install_stop_signals, rss_at, rss_kib
from system import CpuSample, Tuning, machine_info, source_revision


@dataclass(frozen=True)
class Metric:
    key: str
    tool: str  # "wrk" | "iperf3" | "idle" | "download" (tls: wrk over one connection, a large object)
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
    "idle": Metric("idle", "idle", "kB/conn", "kB/conn", title="proxy memory per idle client connection"),
    # bench/tls.py: TLS terminated by the proxy (D: by nginx itself); how each is measured is in tls.py
    "tls_ka": Metric("tls_ka", "wrk", "req/s", "CPU µs/req", title="keep-alive requests/s over TLS"),
    "tls_cps": Metric("tls_cps", "wrk", "hs/s", "CPU µs/hs", close=True,
                      title="full TLS handshakes/s (one request per connection, no session offered)"),
    "tls_resumed": Metric("tls_resumed", "wrk", "hs/s", "CPU µs/hs", close=True,
                          title="TLS handshakes/s, each connection offering its last session"),
    "tls_gbps": Metric("tls_gbps", "download", "Gbit/s", "CPU s/GB", streams=1,
                       title="TLS download, 1 connection"),
    "tls_idle": Metric("tls_idle", "idle", "kB/conn", "kB/conn", title="proxy memory per idle TLS connection"),
}
TLS_METRICS = ("tls_ka", "tls_cps", "tls_resumed", "tls_gbps", "tls_idle")
DEFAULT_METRICS = {"l4": "ka,cps,gbps1,gbps4", "l7": "ka,cps", "tls": ",".join(TLS_METRICS)}
ALLOWED_METRICS = {"l4": set(METRICS) - set(TLS_METRICS), "l7": {"ka", "cps", "ka_fixed", "cps_fixed", "idle"},
                   "tls": set(TLS_METRICS)}
DEFAULT_CLIENTS = "1,8,32,64,256,1000,4000"
DEFAULT_BACKENDS = "1,10"
DEFAULT_WORKERS = "1,2"
# bench/tls.py's defaults: fewer client counts (a full handshake costs far more than a request), one
# backend, one worker (--workers 2 for the second line)
KIND_DEFAULTS = {"tls": {"clients": "1,32,256,1000", "backends": "1", "workers": "1"}}
SETTLE_S = 0.5  # idle metric: quiet time before each RSS reading
# idle metric, after the request: how long both proxies idle before the reading. fastlb gives the memory
# freed after a burst back every 2 s (fastlb.controller.TRIM_INTERVAL_S); HAProxy keeps its pools.
AFTER_SETTLE_S = 3.0


@dataclass(frozen=True)
class Point:
    """One cell of the sweep; every arm runs it once per block."""

    metric: str
    clients: int  # wrk connections; iperf3: streams; idle: connections held open
    backends: int
    workers: int

    @property
    def label(self) -> str:
        return f"{self.metric} c{self.clients} b{self.backends} w{self.workers}"


def plan(metric_keys: list[str], clients: list[int], backends: list[int], workers: list[int],
         idle_conns: int) -> list[Point]:
    """Every point of the sweep, metric by metric, then workers, backends, clients. iperf3's metrics have
    their own stream count and one backend (its control and data connections must meet one server), as
    has tls_gbps (one download); the idle metrics hold <idle_conns> connections."""
    out = []
    for m in metric_keys:
        metric = METRICS[m]
        for w in workers:
            if metric.tool in ("iperf3", "download"):
                cs, bs = [metric.streams], [1]
            elif metric.tool == "idle":
                cs, bs = [idle_conns], backends
            else:
                cs, bs = clients, backends
            out += [Point(m, c, b, w) for b in bs for c in cs]
    return out


def point_arms(point: Point, arm_keys: list[str]) -> list[str]:
    """The arms a point runs: the idle metric measures a proxy, so D has nothing to give it."""
    if METRICS[point.metric].tool == "idle":
        return [a for a in arm_keys if armlib.ARMS[a].kind != "direct"]
    return list(arm_keys)


def skip_reason(point: Point, nofile_soft: int) -> str:
    """Why <point> cannot run under this open-files limit ("" when it can)."""
    need = armlib.fds_needed(point.clients)
    if need <= nofile_soft:
        return ""
    return (f"needs {need} open files ({point.clients} connections: 2.6 per connection, HAProxy's maxconn rule, "
            f"+ 256) but the open-files limit is {nofile_soft} (raise the hard limit: ulimit -Hn, "
            "/etc/security/limits.conf or LimitNOFILE=)")


def run_seconds(point: Point, warmup: float, duration: float) -> float:
    """A rough wall time of one run, for the estimate printed at the start."""
    if METRICS[point.metric].tool == "idle":
        return 4 + point.clients / (300 if point.metric == "tls_idle" else 1000)  # TLS: a handshake each
    return warmup + duration + 2


def int_list(text: str, name: str, lo: int = 1, hi: int = 1_000_000) -> list[int]:
    """"1,8,32" -> [1, 8, 32]: positive, in order, without repeats."""
    out: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            v = int(item)
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not a whole number") from None
        if not lo <= v <= hi:
            raise ValueError(f"{name}: {v} is outside {lo}..{hi}")
        if v not in out:
            out.append(v)
    if not out:
        raise ValueError(f"{name}: empty list")
    return out


@dataclass
class Context:
    mode: str  # "tcp" (l4) | "http" (l7)
    out: Path
    duration: float
    warmup: float
    load_cpu: int
    proxy_cpu: int
    launcher: str
    rate_ka: float = 2000
    rate_cps: float = 1000
    nofile_soft: int = 0
    tls: Any = None  # bench/tls.py: its tls.Setup (certificate, wrk's shim, the large object)

    def rate(self, metric: Metric) -> float | None:
        if not metric.paced:
            return None
        return self.rate_cps if metric.close else self.rate_ka


def parse_args(kind: str, argv: list[str] | None) -> argparse.Namespace:
    defaults = KIND_DEFAULTS.get(kind, {})
    clients_default = defaults.get("clients", DEFAULT_CLIENTS)
    backends_default = defaults.get("backends", DEFAULT_BACKENDS)
    workers_default = defaults.get("workers", DEFAULT_WORKERS)
    p = argparse.ArgumentParser(
        prog=f"bench/{kind}.py",
        description=f"fastlb vs HAProxy vs direct, {kind.upper()}, alternating blocks (see bench/README.md).")
    p.add_argument("--blocks", "--pairs", type=int, default=5, help="alternating blocks (default 5)")
    p.add_argument("--duration", type=float, default=10, help="measured seconds per run (default 10)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds before each measurement (default 3)")
    p.add_argument("--arms", default="D,H,F", help="arms to compare: D,H,Hn,H2,Hr,F,Fn (default D,H,F)")
    p.add_argument("--nosplice", action="store_true",
                   help="add Hn (HAProxy nosplice) and, with F, Fn (fastlb without splice)")
    p.add_argument("--aa", action="store_true", help="add H2: a second HAProxy arm, the A/A noise control")
    p.add_argument("--metrics", default=DEFAULT_METRICS[kind],
                   help=f"default {DEFAULT_METRICS[kind]}; known: {', '.join(sorted(ALLOWED_METRICS[kind]))}")
    p.add_argument("--clients", default=clients_default,
                   help=f"wrk connections, one point each (default {clients_default})")
    p.add_argument("--connections", type=int, default=None, help="one client count: the same as --clients N")
    p.add_argument("--backends", default=backends_default,
                   help=f"backend addresses the proxies round-robin over, one point each (default {backends_default})")
    p.add_argument("--workers", default=workers_default,
                   help=f"fastlb --workers / HAProxy nbthread, one point each (default {workers_default}); above 1 "
                        "the proxy also gets the load CPU")
    p.add_argument("--idle-conns", type=int, default=2000,
                   help="connections the idle metric holds open (default 2000)")
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
    if kind == "tls":
        p.add_argument("--key", choices=("ec", "rsa"), default="ec",
                       help="the certificate's key: ECDSA P-256 (default) or RSA 2048")
        p.add_argument("--gbps-mib", type=int, default=1024,
                       help="size of the object tls_gbps downloads, MiB (default 1024)")
    a = p.parse_args(argv)
    keys = [k for k in a.arms.split(",") if k]
    if a.nosplice:
        keys += [k for k in ("Hn", "Fn" if "F" in keys else "") if k and k not in keys]
    if a.aa and "H2" not in keys:
        keys.append("H2")
    for k in keys:
        if k not in armlib.ARMS:
            p.error(f"unknown arm {k!r} (known: {', '.join(armlib.ARMS)})")
        if kind == "tls" and not armlib.ARMS[k].splice and armlib.ARMS[k].kind != "direct":
            p.error(f"arm {k!r}: nothing is spliced over TLS, so there is no nosplice arm (known: D,H,H2,F)")
    if kind == "tls" and a.fastlb == "serve" and "F" in keys:
        p.error("--fastlb serve has no TLS listener: F needs `fastlb run` (--fastlb cli or auto)")
    a.arm_keys = keys
    a.metric_keys = [m for m in a.metrics.split(",") if m]
    if not a.metric_keys:
        p.error("--metrics: name at least one metric")
    for m in a.metric_keys:
        if m not in ALLOWED_METRICS[kind]:
            p.error(f"unknown metric {m!r} for {kind} (known: {', '.join(sorted(ALLOWED_METRICS[kind]))})")
    if a.blocks < 1 or a.duration < 1 or a.warmup < 0:
        p.error("--blocks and --duration must be at least 1, --warmup at least 0")
    try:
        a.client_counts = [a.connections] if a.connections is not None else int_list(a.clients, "--clients")
        if a.connections is not None and a.connections < 1:
            raise ValueError("--connections must be at least 1")
        a.backend_counts = int_list(a.backends, "--backends", hi=250)
        a.worker_counts = int_list(a.workers, "--workers", hi=64)
        if a.idle_conns < 1:
            raise ValueError("--idle-conns must be at least 1")
        if kind == "tls" and not 1 <= a.gbps_mib <= 65536:
            raise ValueError("--gbps-mib must be 1..65536")
    except ValueError as e:
        p.error(str(e))
    a.points = plan(a.metric_keys, a.client_counts, a.backend_counts, a.worker_counts, a.idle_conns)
    return a


Runner = Callable[["Context", int, Point, armlib.Arm, int], dict[str, object]]
Setup = Callable[[argparse.Namespace, Path], tuple[Any, dict[str, object]]]


def main(kind: str, argv: list[str] | None = None, runner: Runner | None = None, setup: Setup | None = None) -> int:
    """One session: <runner> runs one arm at one point (run_one: l4, l7); <setup>, given the options and
    the results folder, makes what every run shares (bench/tls.py: the certificate) and returns it,
    for Context.tls, with what it adds to the meta."""
    args = parse_args(kind, argv)
    runner = runner or run_one
    # SIGTERM and SIGHUP unwind like Ctrl-C: every child is stopped and sysctls are put back. (SIGINT is
    # installed too: a shell starts background jobs with SIGINT ignored, and Python would keep it so.)
    install_stop_signals()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or armlib.HERE / "results" / f"{stamp}-{kind}").resolve()  # nginx -p needs it absolute
    out.mkdir(parents=True, exist_ok=True)
    launcher = armlib.fastlb_launcher(args.fastlb) if {"F", "Fn"} & set(args.arm_keys) else "none"
    tuning = Tuning()
    tuning.apply(write=not args.no_sysctl)
    ctx = Context("tcp" if kind == "l4" else "http", out, args.duration, args.warmup,
                  args.load_cpu, args.proxy_cpu, launcher, args.rate_ka, args.rate_cps, tuning.nofile[0])
    extra: dict[str, object] = {}
    if setup is not None:
        try:
            ctx.tls, extra = setup(args, out)
        except BaseException:
            tuning.restore()
            raise
    points: list[Point] = args.points
    skipped = {pt: skip_reason(pt, ctx.nofile_soft) for pt in points}
    meta = {
        "kind": kind, "started": stamp, "seed": seed, "argv": [sys.executable] + sys.argv,
        "blocks": args.blocks, "duration": args.duration, "warmup": args.warmup,
        "clients": args.client_counts, "backends": args.backend_counts, "workers": args.worker_counts,
        "idle_conns": args.idle_conns, "rate_ka": args.rate_ka, "rate_cps": args.rate_cps,
        "arms": args.arm_keys, "metrics": args.metric_keys,
        "points": [vars(pt) for pt in points],
        "arm_labels": {k: armlib.ARMS[k].label for k in args.arm_keys},
        "metric_info": {m: vars(METRICS[m]) for m in args.metric_keys},
        "layout": {"proxy_cpu": args.proxy_cpu, "load_cpu": args.load_cpu,
                   "proxy_cpus": {str(w): armlib.cpu_list(armlib.proxy_cpus(w, args.proxy_cpu, args.load_cpu))
                                  for w in args.worker_counts}},
        "fastlb_launcher": launcher, "max_steal": args.max_steal,
        "machine": machine_info(), "fastlb_revision": source_revision(armlib.REPO),
        "tuning": tuning.applied, "nofile": list(tuning.nofile),
        "nofile_needed": max(armlib.fds_needed(pt.clients) for pt in points),
        "skipped_points": [dict(vars(pt), reason=why) for pt, why in skipped.items() if why],
        "status": "running",
    }
    meta.update(extra)
    records: list[dict[str, object]] = []
    total = args.blocks * sum(len(point_arms(pt, args.arm_keys)) for pt in points)
    to_run = args.blocks * sum(len(point_arms(pt, args.arm_keys)) for pt in points if not skipped[pt])
    seconds = args.blocks * sum(len(point_arms(pt, args.arm_keys)) * run_seconds(pt, args.warmup, args.duration)
                                for pt in points if not skipped[pt])
    timed = any(METRICS[pt.metric].tool != "idle" for pt in points)
    print(f"{kind}: {len(points)} points, {total} runs ({total - to_run} skipped)"
          + (f" of {args.warmup:g}+{args.duration:g}s" if timed else "")
          + f", about {max(1, round(seconds / 60))} min -> {out}", flush=True)
    for pt, why in skipped.items():
        if why:
            print(f"skipping {pt.label}: {why}", flush=True)
    try:
        for block in range(args.blocks):
            for pt in points:
                order = point_arms(pt, args.arm_keys)
                rng.shuffle(order)
                for pos, akey in enumerate(order):
                    if skipped[pt]:
                        rec = _record(block, pt, METRICS[pt.metric], akey, pos)
                        rec["status"], rec["reason"] = "skipped", skipped[pt]
                    else:
                        rec = runner(ctx, block, pt, armlib.ARMS[akey], pos)
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
    failed = sum(1 for r in records if r["status"] not in ("ok", "skipped"))
    return 0 if meta["status"] == "complete" and failed == 0 else 1


def run_name(point: Point, arm: str) -> str:
    """runs/<block>-<this>/: metric, c<clients>, be<backends>, w<workers>, arm."""
    return f"{point.metric}-c{point.clients}-be{point.backends}-w{point.workers}-{arm}"


def _record(block: int, point: Point, metric: Metric, arm: str, position: int) -> dict[str, object]:
    return {
        "block": block, "metric": metric.key, "clients": point.clients, "backends": point.backends,
        "workers": point.workers, "arm": arm, "position": position,
        "started": time.time(), "status": "failed", "reason": "", "value": None, "unit": metric.unit,
        "commands": {},
    }


def run_one(ctx: Context, block: int, point: Point, arm: armlib.Arm, position: int) -> dict[str, object]:
    metric = METRICS[point.metric]
    rundir = ctx.out / "runs" / f"b{block:02d}-{run_name(point, arm.key)}"
    rundir.mkdir(parents=True, exist_ok=True)
    rec = _record(block, point, metric, arm.key, position)
    cpus = armlib.proxy_cpus(point.workers, ctx.proxy_cpu, ctx.load_cpu)
    rec["proxy_cpus"] = armlib.cpu_list(cpus) if arm.kind != "direct" else ""
    rec["nofile_needed"] = armlib.fds_needed(point.clients)
    try:
        with Supervisor(rundir) as sup:
            backends = None
            if metric.tool == "iperf3":
                backend_port: int | armlib.Backends = armlib.start_iperf3_server(sup, ctx.load_cpu)
            else:
                backends = armlib.start_backends(sup, rundir, ctx.load_cpu, point.backends)
                backend_port = backends
            timeouts = armlib.IDLE_HTTP_TIMEOUTS if metric.tool == "idle" else None
            running = armlib.start_arm(sup, arm, ctx.mode, backend_port, rundir, cpus, ctx.launcher,
                                       workers=point.workers, http_timeouts=timeouts)
            rec["commands"] = {c.name: c.command for c in sup.children}
            if metric.tool == "idle":
                assert backends is not None and running.proxy is not None
                measure_idle(ctx, point, running, backends, rec)
            else:
                _measure_load(ctx, point, metric, running, backends, rec)
            stats = running.stats()
            if stats is not None:
                (rundir / "stats.json").write_text(json.dumps(stats, indent=1))
            rec["status"] = "ok"
    except (ProcessFailed, loads.LoadFailed, idle.IdleFailed, OSError, ValueError, KeyError) as e:
        rec["reason"] = f"{type(e).__name__}: {e}"
        (rundir / "failure.txt").write_text(traceback.format_exc())
    rec["finished"] = time.time()
    return rec


def _measure_load(ctx: Context, point: Point, metric: Metric, running: armlib.Running,
                  backends: armlib.Backends | None, rec: dict[str, object]) -> None:
    """wrk or iperf3 through <running>: warm-up, then the measured window with the proxy's CPU time, RSS
    (sampled, so that its value at the end of the window is known) and the backend's accepts around it."""

    def load(seconds: float) -> dict[str, float]:
        if metric.tool == "wrk":
            return loads.wrk(f"http://{armlib.HOST}:{running.port}/", seconds, point.clients,
                             metric.close, ctx.load_cpu, ctx.rate(metric))
        return loads.iperf3(armlib.HOST, running.port, seconds, metric.streams, ctx.load_cpu)

    pace = ctx.rate(metric)
    delay = f"FASTLB_BENCH_DELAY_MS={loads.delay_ms(point.clients, pace)} " if pace else ""
    load_argv = ["taskset", "-c", str(ctx.load_cpu)] + _load_argv(ctx, point, metric, running.port)
    rec["commands"]["load"] = delay + shlex.join(load_argv)  # type: ignore[index]
    measure_window(ctx, metric, running, backends, rec, load)


def measure_window(ctx: Context, metric: Metric, running: armlib.Running, backends: armlib.Backends | None,
                   rec: dict[str, object], load: Callable[[float], dict[str, Any]],
                   probe: Callable[[], Any] | None = None) -> tuple[Any, Any]:
    """<load> (called with the seconds to run) warms up, then runs the measured window, around which the
    proxy's CPU time, RSS and the backend's accepts are read into <rec>. A load that moves bytes (its
    data has "gbps") is counted per byte, any other per request. <probe>, when given, is read just
    outside the window (before the first and after the last CPU reading, so its own work is not
    counted); its two readings are returned."""
    if ctx.warmup > 0:
        warm = load(ctx.warmup)
        rec["warmup_errors"] = warm["errors"]
    pid = running.proxy.pid if running.proxy else None
    if running.proxy and not running.proxy.alive():
        raise ProcessFailed(f"proxy died during warm-up:\n{running.proxy.log_tail()}")
    probe0 = probe() if probe else None
    accepts0 = backends.accepts() if backends else None
    cpu0 = cpu_seconds(pid) if pid else 0.0
    sample0 = CpuSample()
    rss = RssSampler(pid) if pid else None
    with rss or contextlib.nullcontext():
        t0 = time.monotonic()
        data = load(ctx.duration)
    sample1 = CpuSample()
    cpu1 = cpu_seconds(pid) if pid else 0.0
    accepts1 = backends.accepts() if backends else None
    probe1 = probe() if probe else None
    if running.proxy and not running.proxy.alive():
        raise ProcessFailed(f"proxy died during the measurement:\n{running.proxy.log_tail()}")
    rec["cpus"] = sample1.since(sample0)
    rec["loadavg"] = float(Path("/proc/loadavg").read_text().split()[0])
    rec["steal_pct"] = max(v["steal_pct"] for v in rec["cpus"].values())  # type: ignore[attr-defined]
    rec["load"] = data
    rec["errors"] = data["errors"]
    bulk = "gbps" in data
    work = data["bytes"] if bulk else data["requests"]
    rec["value"] = data["gbps"] if bulk else data["rps"]
    rec["work"] = work
    if accepts0 is not None and accepts1 is not None:
        opened = armlib.backend_connections(accepts0, accepts1)
        rec["backend_conns"] = opened
        rec["backend_conns_per_unit"] = opened / work if work else None
    if pid:
        rec["proxy_cpu_s"] = round(cpu1 - cpu0, 3)
        # wrk measures for round(duration) seconds from its start; the last sample before that is the
        # RSS with the window's connections still open.
        samples = rss.samples if rss else []
        end = rss_at(samples, t0 + max(1, round(ctx.duration)) - 0.05)
        rec["proxy_rss_kib"] = end if end is not None else rss_kib(pid)
        rec["proxy_rss_peak_kib"] = max([kib for _, kib in samples] + [rec["proxy_rss_kib"]])
        if bulk:
            rec["cpu_per_unit"] = rec["proxy_cpu_s"] / (data["bytes"] / 1e9)
        else:
            rec["cpu_per_unit"] = 1e6 * rec["proxy_cpu_s"] / data["requests"]
    return probe0, probe1


def measure_idle(ctx: Context, point: Point, running: armlib.Running, backends: armlib.Backends,
                 rec: dict[str, object], clients: idle.IdleClients | None = None, what: str = "") -> None:
    """<point.clients> connections that send nothing, then one keep-alive request each: the proxy's RSS
    (and open files, and the kernel's TCP counters) before, while they idle, and after the request.
    <clients> (default: plain TCP ones) opens them; <what> says how, for the command record."""
    assert running.proxy is not None
    pid = running.proxy.pid
    n = point.clients
    time.sleep(SETTLE_S)
    fds0, rss0, ss0, acc0 = fd_count(pid), rss_kib(pid), idle.sockstat(), backends.accepts()
    rec["commands"]["load"] = (  # type: ignore[index]
        f"(harness) {n} connections to {armlib.HOST}:{running.port} from CPU{ctx.load_cpu}: "
        f"{what or 'idle'}, then one GET / HTTP/1.1 each, then idle again")
    if clients is None:
        clients = idle.IdleClients(armlib.HOST, running.port, n)
    with idle.pinned(ctx.load_cpu), clients:
        opened = clients.open(timeout=30)
        if opened == 0:
            raise idle.IdleFailed(f"no connection to the proxy opened ({clients.connect_errors} errors)")
        fds1 = idle.wait_settled(lambda: fd_count(pid), fds0 + opened, timeout=30)
        time.sleep(SETTLE_S)
        rss1, ss1, open1 = rss_kib(pid), idle.sockstat(), clients.still_open()
        answered = clients.request_all(timeout=60)
        fds2 = idle.wait_settled(lambda: fd_count(pid), 0, timeout=30)
        time.sleep(AFTER_SETTLE_S)
        rss2, ss2, open2 = rss_kib(pid), idle.sockstat(), clients.still_open()
        acc2 = backends.accepts()
    if not running.proxy.alive():
        raise ProcessFailed(f"proxy died while holding idle connections:\n{running.proxy.log_tail()}")
    rec["idle"] = {
        "conns": n, "opened": opened, "connect_errors": clients.connect_errors,
        "rss_kib": [rss0, rss1, rss2], "fds": [fds0, fds1, fds2], "open": [open1, open2],
        "answered": answered, "backend_conns": armlib.backend_connections(acc0, acc2),
        "sockstat_tcp": [ss0, ss1, ss2], **clients.details(),
    }
    rec["value"] = idle.per_conn_kib(rss0, rss1, opened)
    rec["after_value"] = idle.per_conn_kib(rss0, rss2, opened)
    rec["proxy_rss_kib"] = rss2
    rec["errors"] = clients.connect_errors + (opened - answered) + (opened - open2)
    rec["steal_pct"] = 0.0  # memory, not time: steal does not bias it, so no idle run is left out for it
    if open1 < opened or open2 < answered:
        rec["note"] = f"the proxy closed {opened - open1} idle and {answered - open2} answered connections"


def _load_argv(ctx: Context, point: Point, metric: Metric, port: int) -> list[str]:
    if metric.tool == "wrk":
        return loads.wrk_argv(f"http://{armlib.HOST}:{port}/", ctx.duration, point.clients, metric.close)
    return loads.iperf3_argv(armlib.HOST, port, ctx.duration, metric.streams)


def _print_run(n: int, total: int, rec: dict[str, object]) -> None:
    head = (f"[{n}/{total}] block {rec['block']} {rec['metric']:<6} c{rec['clients']:<5} b{rec['backends']:<3} "
            f"w{rec['workers']} {rec['arm']:<3}")
    if rec["status"] != "ok":
        print(f"{head} {str(rec['status']).upper()} {str(rec['reason']).splitlines()[0][:200]}", flush=True)
        return
    metric = METRICS[str(rec["metric"])]
    if metric.tool == "idle":
        i = rec["idle"]
        first = "after the handshake" if rec["metric"] == "tls_idle" else "idle"
        print(f"{head} {rec['value']:.3g} kB/conn {first}, {rec['after_value']:.3g} after a request "
              f"(opened {i['opened']}, answered {i['answered']}, open {i['open'][1]})", flush=True)  # type: ignore[index]
        return
    cpu = f" proxy {rec['cpu_per_unit']:.2f} {metric.cpu_unit}" if "cpu_per_unit" in rec else ""
    bconn = f" bconn/unit {rec['backend_conns_per_unit']:.3g}" if rec.get("backend_conns_per_unit") is not None else ""
    lat = ""
    if isinstance(rec.get("load"), dict) and "p99" in rec["load"]:  # type: ignore[operator]
        lat = f" p99 {rec['load']['p99']}µs"  # type: ignore[index]
    print(f"{head} {rec['value']:.6g} {rec['unit']} errors {rec['errors']} steal {rec['steal_pct']}%{cpu}{lat}"
          f"{bconn}{_tls_note(rec)}", flush=True)


def _tls_note(rec: dict[str, Any]) -> str:
    """bench/tls.py's runs: how many handshakes resumed, as the client (wrk's shim) and the proxy saw it."""
    tls = rec.get("tls")
    if not isinstance(tls, dict):
        return ""
    out = ""
    c, srv = tls.get("client"), tls.get("server")
    if c:
        out += f" TLS resumed {c['resumed']}/{c['handshakes']} (client)"
    if srv:
        out += f", {srv['resumed']}/{srv['handshakes']} (proxy), {sum(srv['failed'].values())} failed"
    return out


def _save(out: Path, meta: dict[str, object], records: list[dict[str, object]]) -> None:
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps({"meta": meta, "runs": records}, indent=1, default=str))
    tmp.replace(out / "results.json")
