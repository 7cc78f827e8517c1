"""Processes the benchmark starts, and the promise that every one of them is gone when it ends.

Each child runs in its own session (its own process group), so stopping it also stops what it forked
(nginx's worker). A ``Supervisor`` is a context manager: leaving it, by return, exception, Ctrl-C or
SIGTERM, stops every child it still holds (SIGTERM to the group, SIGKILL after a grace period).
Readiness is read from the kernel (a socket in LISTEN on the port, over sock_diag), never by connecting:
a probe connection would show up in a proxy's counters and confuse iperf3's server.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel calls free now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening_ports() -> set[int]:
    """Local TCP ports with a socket in LISTEN state, IPv4 and IPv6.

    Asked of the kernel over sock_diag netlink, which walks only the listening sockets: reading
    /proc/net/tcp instead walks every socket, and after a connection-rate run leaves 100k sockets in
    TIME_WAIT that takes seconds."""
    try:
        return _listening_ports_netlink()
    except OSError:
        return _listening_ports_proc()


_NETLINK_INET_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10


def _listening_ports_netlink() -> set[int]:
    ports: set[int] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_INET_DIAG) as nl:
        for family in (socket.AF_INET, socket.AF_INET6):
            # inet_diag_req_v2: family, protocol, ext, pad, states; then an all-zero inet_diag_sockid
            req = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN) + bytes(48)
            nl.send(struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0) + req)
            done = False
            while not done:
                data = nl.recv(65536)
                off = 0
                while off + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, off)
                    if kind == _NLMSG_DONE:
                        done = True
                        break
                    if kind == _NLMSG_ERROR:
                        raise OSError("sock_diag: netlink error")
                    # inet_diag_msg: family, state, timer, retrans, then sockid (sport big-endian first)
                    if data[off + 17] == _TCP_LISTEN:
                        ports.add(struct.unpack_from("!H", data, off + 20)[0])
                    off += (length + 3) & ~3
                if length == 0:
                    break
    return ports


def _listening_ports_proc() -> set[int]:
    ports: set[int] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[3] == "0A":
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fd_count(pid: int) -> int:
    """Open files of a process (all threads share one table)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class RssSampler:
    """Reads a process's RSS every <interval> seconds in a thread while a load runs, so that the RSS at
    the end of the measured window is known even though the load's connections close as it ends."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            try:
                self.samples.append((time.monotonic(), rss_kib(self.pid)))
            except OSError:
                return
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss_at(samples: list[tuple[float, int]], t_end: float) -> int | None:
    """The last RSS sample taken at or before <t_end> (None if there is none)."""
    before = [kib for t, kib in samples if t <= t_end]
    return before[-1] if before else None


# Signals that stop a benchmark (Ctrl-C, SIGTERM, SIGHUP) unwind it by exception. While a child is
# being started, the exception is held back until the child is on the list of children to stop (an
# exception raised inside Popen() would leave a running child that nobody knows of), and while the
# children are being stopped, until they all are.
_held: list[int] = []
_holding = 0


def stop_signal(signum: int, frame: object) -> None:
    """Signal handler: raises KeyboardInterrupt (SIGINT) or SystemExit, unless a start is in progress."""
    if _holding:
        _held.append(signum)
        return
    _raise_for(signum)


def install_stop_signals() -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop_signal)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextmanager
def _signals_held() -> Iterator[None]:
    global _holding
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if _holding == 0 and _held:
            signum = _held[0]
            _held.clear()
            _raise_for(signum)


class ProcessFailed(RuntimeError):
    """A child exited early or never became ready; the message carries the tail of its log."""


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Supervisor:
    """Owns every long-lived child of one benchmark session."""

    logdir: Path
    children: list[Child] = field(default_factory=list)

    def __enter__(self) -> Supervisor:
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        install_stop_signals()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        for s, h in self._old.items():
            signal.signal(s, h)

    def start(self, name: str, argv: list[str], cpu: int | str | None = None,
              env: dict[str, str] | None = None) -> Child:
        """Starts argv (under ``taskset -c cpu`` when cpu, a CPU or a list like "0,1", is given); output goes
        to <logdir>/<name>.log."""
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = self.logdir / f"{name}.log"
        with _signals_held(), open(log, "wb") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=env,
            )
            child = Child(name, argv, proc, log)
            self.children.append(child)
        return child

    def wait_listening(self, child: Child, port: int, timeout: float = 15.0) -> None:
        """Returns once something listens on <port>; raises ProcessFailed if <child> dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise ProcessFailed(f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}")
            if port in listening_ports():
                return
            time.sleep(0.02)
        raise ProcessFailed(f"{child.name} did not listen on port {port} within {timeout}s:\n{child.log_tail()}")

    def stop(self, child: Child, grace: float = 5.0) -> int | None:
        """SIGTERM to the child's process group, SIGKILL after <grace>; returns the exit status."""
        if child in self.children:
            self.children.remove(child)
        if child.alive():
            _signal_group(child.proc, signal.SIGTERM)
            try:
                child.proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait()
        # The leader may be gone while a forked worker lingers in its group.
        _signal_group(child.proc, signal.SIGKILL)
        return child.proc.returncode

    def stop_all(self) -> None:
        with _signals_held():  # a second Ctrl-C must not cut the cleanup short
            for child in list(reversed(self.children)):
                self.stop(child, grace=3.0)


def run_to_end(argv: list[str], timeout: float, cpu: int | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a load generator to completion in its own group; the group is killed if time runs out."""
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv
    try:
        with _signals_held():
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True, env=env,
            )
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        _signal_group(proc, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _signal_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

