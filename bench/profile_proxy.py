#!/usr/bin/env python3
"""Where a proxy spends its time: syscalls per request (or per MB), CPU, and optionally a profile.

Starts one arm exactly as bench/l4.py does (same backend, same pinning), warms it up, then attaches to
the proxy for one load run:
- always: ``perf stat`` counting every syscall tracepoint listed in SYSCALLS plus task-clock and context
  switches (in-kernel counters: the proxy is barely slowed down), and each CPU's busy share over the
  load (/proc/stat: user, system, softirq), which says whether the proxy or the load generator's CPU
  is the one that runs out;
- ``--record``: ``perf record -g`` and the top of ``perf report``;
- ``--strace``: ``strace -c -f`` (slows the proxy a lot; its counts per request stay meaningful).
The admin /stats of fastlb is saved before and after the load.

    python3 bench/profile_proxy.py --arm F --metric ka --duration 5
    python3 bench/profile_proxy.py --arm H --metric gbps1 --record
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import arms as armlib
import loads
from procs import Supervisor, cpu_seconds
from run import METRICS
from system import Tuning

SYSCALLS = [
    "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4", "connect", "socket", "close", "shutdown",
    "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "splice", "pipe2",
    "fcntl", "setsockopt", "getsockopt", "getsockname", "futex",
]


def available_tracepoints() -> list[str]:
    base = Path("/sys/kernel/tracing/events/syscalls")
    if not base.exists():
        base = Path("/sys/kernel/debug/tracing/events/syscalls")
    return [s for s in SYSCALLS if (base / f"sys_enter_{s}").exists()]


def cpu_times() -> dict[int, list[int]]:
    """Per CPU, /proc/stat's jiffies: user nice system idle iowait irq softirq steal."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name != "cpu":
            out[int(name[3:])] = [int(v) for v in vals[:8]]
    return out


def cpu_busy(before: dict[int, list[int]], after: dict[int, list[int]]) -> dict[int, dict[str, float]]:
    """Per CPU, the share of the window spent busy, in softirq (the kernel's network work), and idle."""
    out = {}
    for cpu, a in after.items():
        d = [x - y for x, y in zip(a, before[cpu], strict=True)]
        total = sum(d) or 1
        idle = d[3] + d[4]
        out[cpu] = {"busy": round(1 - idle / total, 3), "softirq": round(d[6] / total, 3),
                    "system": round(d[2] / total, 3), "user": round((d[0] + d[1]) / total, 3)}
    return out


def parse_perf_csv(text: str) -> dict[str, float]:
    counts = {}
    for line in text.splitlines():
        cols = line.split(",")
        if len(cols) < 3 or not cols[0] or line.startswith("#"):
            continue
        try:
            value = float(cols[0])
        except ValueError:
            continue
        counts[cols[2].removeprefix("syscalls:sys_enter_")] = value
    return counts


def parse_strace(text: str) -> dict[str, int]:
    calls = {}
    for line in text.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if m:
            calls[m.group(2)] = int(m.group(1))
    return calls


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arm", default="F", choices=sorted(armlib.ARMS))
    p.add_argument("--metric", default="ka", choices=sorted(m for m, v in METRICS.items() if v.tool != "idle"))
    p.add_argument("--mode", choices=("tcp", "http"), default="tcp")
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--record", action="store_true", help="also perf record -g and report the top symbols")
    p.add_argument("--strace", action="store_true", help="also strace -c -f (slow; short runs only)")
    p.add_argument("--fastlb", choices=("auto", "cli", "serve"), default="auto")
    p.add_argument("--proxy-cpu", type=int, default=1)
    p.add_argument("--load-cpu", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    arm, metric = armlib.ARMS[a.arm], METRICS[a.metric]
    if arm.kind == "direct":
        p.error("profile attaches to a proxy: pick an arm other than D")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (a.out or armlib.HERE / "results" / f"{stamp}-profile-{a.arm}-{a.metric}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    launcher = armlib.fastlb_launcher(a.fastlb) if arm.kind == "fastlb" else "none"
    tuning = Tuning()
    tuning.apply()
    report: dict[str, object] = {"arm": a.arm, "metric": a.metric, "mode": a.mode, "duration": a.duration}
    try:
        with Supervisor(out) as sup:
            if metric.tool == "wrk":
                bport = armlib.start_nginx(sup, out, a.load_cpu)
            else:
                bport = armlib.start_iperf3_server(sup, a.load_cpu)
            running = armlib.start_arm(sup, arm, a.mode, bport, out, a.proxy_cpu, launcher)
            assert running.proxy is not None
            pid = running.proxy.pid

            def load(seconds: float) -> dict[str, float]:
                if metric.tool == "wrk":
                    return loads.wrk(f"http://{armlib.HOST}:{running.port}/", seconds, a.connections,
                                     metric.close, a.load_cpu)
                return loads.iperf3(armlib.HOST, running.port, seconds, metric.streams, a.load_cpu)

            load(a.warmup)
            report["stats_before"] = running.stats()
            tps = available_tracepoints()
            events = ["task-clock", "context-switches", "raw_syscalls:sys_enter"] + [
                f"syscalls:sys_enter_{s}" for s in tps]
            window = str(round(a.duration + 0.5, 1))
            watchers = [subprocess.Popen(
                ["perf", "stat", "-x,", "-o", str(out / "perf-stat.csv"), "-e", ",".join(events), "-p", str(pid),
                 "--", "sleep", window], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)]
            if a.record:
                watchers.append(subprocess.Popen(
                    ["perf", "record", "-g", "-o", str(out / "perf.data"), "-p", str(pid), "--", "sleep", window],
                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            if a.strace:
                strace = subprocess.Popen(["strace", "-c", "-f", "-o", str(out / "strace.txt"), "-p", str(pid)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            time.sleep(0.2)
            c0, t0 = cpu_seconds(pid), cpu_times()
            data = load(a.duration)
            c1, t1 = cpu_seconds(pid), cpu_times()
            report["cpus"] = cpu_busy(t0, t1)
            if a.strace:
                strace.send_signal(2)
                strace.wait(30)
            for w in watchers:
                w.wait(60)
            report["stats_after"] = running.stats()
            report["load"] = data
            report["proxy_cpu_s"] = round(c1 - c0, 3)
    finally:
        tuning.restore()
    work = data["requests"] if metric.tool == "wrk" else data["bytes"] / 1e6
    per = "request" if metric.tool == "wrk" else "MB"
    counts = parse_perf_csv((out / "perf-stat.csv").read_text())
    report["perf_counts"] = counts
    lines = [f"# profile of {a.arm} ({arm.label}), {metric.title}", "",
             f"{work:,.0f} {per}s in {a.duration:g} s; proxy CPU {report['proxy_cpu_s']} s "
             f"({1e6 * float(report['proxy_cpu_s']) / work:.2f} µs per {per})", "",
             "| CPU | role | busy | user | system | softirq |", "| --- | --- | --- | --- | --- | --- |",
             *(f"| {cpu} | {'load' if cpu == a.load_cpu else 'proxy' if cpu == a.proxy_cpu else ''} | "
               f"{c['busy']:.0%} | {c['user']:.0%} | {c['system']:.0%} | {c['softirq']:.0%} |"
               for cpu, c in sorted(report["cpus"].items())),  # type: ignore[attr-defined]
             "",
             f"| counter | total | per {per} |", "| --- | --- | --- |"]
    for name, v in sorted(counts.items(), key=lambda kv: -kv[1]):
        if v:
            lines.append(f"| {name} | {v:,.0f} | {v / work:.3f} |")
    if a.strace:
        sc = parse_strace((out / "strace.txt").read_text())
        report["strace_calls"] = sc
        lines += ["", f"strace -c -f (calls per {per}):", ""]
        lines += [f"- {k}: {v / work:.3f}" for k, v in sorted(sc.items(), key=lambda kv: -kv[1])]
    if a.record:
        rep = subprocess.run(["perf", "report", "-i", str(out / "perf.data"), "--stdio", "--no-children",
                              "--sort", "dso,symbol", "--percent-limit", "1.5", "-g", "none"],
                             capture_output=True, text=True, timeout=300)
        (out / "perf-report.txt").write_text(rep.stdout)
        lines += ["", "perf report (self time, top symbols):", "", "```"]
        lines += [x for x in rep.stdout.splitlines() if x.strip() and not x.startswith("#")][:40]
        lines += ["```"]
    (out / "profile.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\n-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
