"""Load generators: wrk for HTTP request rates and latency, iperf3 for TCP streaming.

Each runner returns a plain dict of what the tool measured, or raises ``LoadFailed`` with the tool's
own words; a run is never turned into a zero silently.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from procs import run_to_end

WRK_SCRIPT = Path(__file__).with_name("templates") / "wrk-report.lua"


class LoadFailed(RuntimeError):
    pass


def wrk_argv(url: str, duration: float, connections: int, close: bool) -> list[str]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "5s",
            "-s", str(WRK_SCRIPT)]
    if close:
        argv += ["-H", "Connection: close"]
    return argv + [url]


def parse_wrk(stdout: str) -> dict[str, float]:
    for line in stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line[len("WRKJSON "):])
            seconds = data["duration_us"] / 1e6
            data["seconds"] = seconds
            data["rps"] = data["requests"] / seconds if seconds > 0 else 0.0
            data["errors"] = data["connect"] + data["read"] + data["write"] + data["timeout"] + data["status"]
            return data
    raise LoadFailed("wrk printed no summary:\n" + stdout[-2000:])


def delay_ms(connections: int, rate: float) -> int:
    """wrk's per-request delay that offers about <rate> requests/s over <connections> connections."""
    return max(1, round(connections * 1000 / rate))


def wrk(url: str, duration: float, connections: int, close: bool, cpu: int | None,
        rate: float | None = None) -> dict[str, float]:
    """Closed-loop at full speed, or, with <rate>, each connection paced to a fixed offered rate."""
    argv = wrk_argv(url, duration, connections, close)
    env = None
    if rate:
        env = dict(os.environ, FASTLB_BENCH_DELAY_MS=str(delay_ms(connections, rate)))
    try:
        p = run_to_end(argv, timeout=duration + 30, cpu=cpu, env=env)
    except subprocess.TimeoutExpired:
        raise LoadFailed(f"wrk did not finish within {duration + 30}s") from None
    if p.returncode != 0:
        raise LoadFailed(f"wrk exited {p.returncode}: {(p.stderr or p.stdout)[-2000:]}")
    data = parse_wrk(p.stdout)
    if data["requests"] == 0:
        raise LoadFailed(f"wrk completed no request (errors: connect {data['connect']}, read {data['read']}, "
                         f"write {data['write']}, timeout {data['timeout']})")
    return data


def iperf3_argv(host: str, port: int, duration: float, streams: int) -> list[str]:
    # -Z: sendfile on the client, so that the sender is not the bottleneck (§7.3).
    return ["iperf3", "-c", host, "-p", str(port), "-t", str(max(1, round(duration))), "-P", str(streams),
            "-Z", "-J"]


def parse_iperf3(stdout: str) -> dict[str, float]:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        raise LoadFailed("iperf3 printed no JSON:\n" + stdout[-2000:]) from None
    if data.get("error"):
        raise LoadFailed(f"iperf3: {data['error']}")
    recv = data["end"]["sum_received"]
    sent = data["end"].get("sum_sent", {})
    return {
        "gbps": recv["bits_per_second"] / 1e9,
        "bytes": recv["bytes"],
        "seconds": recv["seconds"],
        "retransmits": sent.get("retransmits", 0),
        "errors": 0,
    }


def iperf3(host: str, port: int, duration: float, streams: int, cpu: int | None) -> dict[str, float]:
    argv = iperf3_argv(host, port, duration, streams)
    try:
        p = run_to_end(argv, timeout=duration + 30, cpu=cpu)
    except subprocess.TimeoutExpired:
        raise LoadFailed(f"iperf3 did not finish within {duration + 30}s") from None
    data = parse_iperf3(p.stdout)
    if p.returncode != 0:
        raise LoadFailed(f"iperf3 exited {p.returncode}: {p.stderr[-2000:]}")
    if data["bytes"] == 0:
        raise LoadFailed("iperf3 moved no byte")
    return data
