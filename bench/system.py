"""The machine under test: what it is, how it is tuned for the run, and how busy each CPU was.

Tuning for a loopback benchmark on a small VM (ephemeral ports, TIME_WAIT reuse, accept backlogs, open
files). A sysctl is written only when it is writable, every attempt is recorded, and ``Tuning.restore``
puts back what was there before.
"""

from __future__ import annotations

import platform
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

WANTED_SYSCTLS = {
    "net.ipv4.ip_local_port_range": "1024 65535",
    "net.ipv4.tcp_tw_reuse": "1",
    "net.core.somaxconn": "65535",
    "net.ipv4.tcp_max_syn_backlog": "65535",
}
# Read and recorded, never written.
NOTED_SYSCTLS = ("fs.pipe-user-pages-soft", "fs.pipe-max-size", "net.ipv4.tcp_fin_timeout")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str | None:
    try:
        return " ".join(_sysctl_path(name).read_text().split())
    except OSError:
        return None


@dataclass
class Tuning:
    applied: list[dict[str, str | None]] = field(default_factory=list)
    nofile: tuple[int, int] = (0, 0)
    _restore: dict[str, str] = field(default_factory=dict)

    def apply(self, write: bool = True) -> None:
        for name, want in WANTED_SYSCTLS.items():
            before = read_sysctl(name)
            entry: dict[str, str | None] = {"name": name, "before": before, "wanted": want, "after": before}
            if not write:
                entry["result"] = "not written (--no-sysctl)"
            elif before is None:
                entry["result"] = "absent"
            elif before == want:
                entry["result"] = "already set"
            else:
                try:
                    _sysctl_path(name).write_text(want + "\n")
                    self._restore[name] = before
                    entry["after"] = read_sysctl(name)
                    entry["result"] = "set"
                except OSError as e:
                    entry["result"] = f"not writable ({e.strerror})"
            self.applied.append(entry)
        for name in NOTED_SYSCTLS:
            self.applied.append({"name": name, "before": read_sysctl(name), "wanted": None,
                                 "after": read_sysctl(name), "result": "recorded"})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        for target in (1048576, hard):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max(target, soft), max(target, hard)))
                break
            except (ValueError, OSError):
                continue
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)

    def restore(self) -> None:
        for name, value in self._restore.items():
            try:
                _sysctl_path(name).write_text(value + "\n")
            except OSError:
                pass
        self._restore.clear()


def _first_line(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return f"{argv[0]}: not installed"
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{argv[0]}: {e}"
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0] if text else ""


def source_revision(repo: Path) -> str:
    """The fastlb commit measured, with "+dirty" when the working tree differs from it."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


def machine_info() -> dict[str, str]:
    lscpu = {}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            key, _, value = line.partition(":")
            lscpu[key.strip()] = value.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    smt = Path("/sys/devices/system/cpu/smt/active")
    return {
        "cpu_model": lscpu.get("Model name", "?"),
        "hypervisor": lscpu.get("Hypervisor vendor", "none"),
        "threads_per_core": lscpu.get("Thread(s) per core", "?"),
        "smt_active": smt.read_text().strip() if smt.exists() else "?",
        "nproc": str(len(_cpu_lines(Path("/proc/stat").read_text()))),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "haproxy": _first_line(["haproxy", "-vv"]),
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]),
        "iperf3": _first_line(["iperf3", "-v"]),
    }


def _cpu_lines(text: str) -> dict[str, list[int]]:
    out = {}
    for line in text.splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            out[name] = [int(v) for v in vals]
    return out


class CpuSample:
    """A /proc/stat snapshot; ``since`` gives busy and steal percentages per CPU over an interval."""

    def __init__(self) -> None:
        self.cpus = _cpu_lines(Path("/proc/stat").read_text())

    def since(self, earlier: CpuSample) -> dict[str, dict[str, float]]:
        out = {}
        for name, now in self.cpus.items():
            then = earlier.cpus.get(name)
            if then is None:
                continue
            d = [a - b for a, b in zip(now, then)]
            total = sum(d[:8]) or 1  # user nice system idle iowait irq softirq steal
            idle = d[3] + d[4]
            out[name] = {
                "busy_pct": round(100.0 * (total - idle) / total, 1),
                "steal_pct": round(100.0 * d[7] / total, 2),
            }
        return out
