"""What every Marathon benchmark shares: the machine it ran on, the command, and a markdown report
written under bench/results/marathon/ (git-ignored; curated copies go to bench/reports/marathon.md)."""

from __future__ import annotations

import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "marathon"
for path in (str(ROOT), str(ROOT / "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


def raise_fd_limit(want: int = 1 << 18) -> None:
    """Every listener costs one fd per worker: 10,000 service ports need more than the usual limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):  # not root: as far as the hard limit goes
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {cpu}, {len(os.sched_getaffinity(0))} CPUs usable, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average {load}"
    )


def command() -> str:
    return "python3 " + " ".join(shlex.quote(a) for a in sys.argv)


def report(name: str, title: str, lines: list[str]) -> Path:
    """Prints the report and writes it to bench/results/marathon/<name>-<UTC time>.md; returns the path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = "\n".join(
        [
            f"# {title}",
            "",
            f"- when: {stamp}",
            f"- machine: {machine()}",
            f"- command: `{command()}`",
            "",
            *lines,
            "",
        ]
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{stamp}.md"
    path.write_text(text)
    print(f"(written to {path})")
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
