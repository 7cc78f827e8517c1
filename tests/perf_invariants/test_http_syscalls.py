"""HTTP mode's syscalls per kept-alive request, counted rather than timed: ``strace -c`` on a running
``fastlb run`` while one client sends requests one after another on one connection. What the design
promises (docs/internals/http.md, "Syscalls per request"): one read and one write each way, no epoll_ctl,
and no read that finds nothing."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastlb.emulator.backends import reserve_port, wait_until
from fastlb.emulator.http_backends import HttpBackend

REQUESTS = 300
TRACED = "recvfrom,recvmsg,read,sendmsg,sendto,write,writev,epoll_ctl"

pytestmark = pytest.mark.timeout(120)


def connects(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
        return True
    return False


def roundtrip(c: socket.socket, path: str) -> None:
    c.sendall(f"GET {path} HTTP/1.1\r\nHost: web\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += c.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += c.recv(65536)
    assert head.startswith(b"HTTP/1.1 200") and len(body) == length


@contextlib.contextmanager
def fastlb(tmp_path: Path, backend: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with reserve_port() as front, reserve_port() as admin:
        config = tmp_path / "fastlb.toml"
        config.write_text(
            f'[admin]\nlisten = "{admin}"\n\n[[services]]\nname = "web"\nlisten = "{front}"\nmode = "http"\n'
            f'backends = ["{backend}"]\n'
        )
        log = (tmp_path / "fastlb.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastlb", "run", "--config", str(config), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            assert wait_until(lambda: connects(front), timeout=30), (tmp_path / "fastlb.log").read_text()
            yield proc, front
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


def strace_counts(path: Path) -> dict[str, tuple[int, int]]:
    """{syscall: (calls, errors)} from an ``strace -c`` summary."""
    out = {}
    for line in path.read_text().splitlines():
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(f) >= 5 and f[-1].isidentifier() and f[3].isdigit() and f[-1] != "total":
            out[f[-1]] = (int(f[3]), int(f[4]) if len(f) == 6 else 0)
    return out


def test_a_kept_alive_request_costs_one_read_and_one_write_each_way(tmp_path: Path) -> None:
    with HttpBackend("a") as backend, fastlb(tmp_path, backend.address) as (proc, front):
        host, port = front.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as c:
            for i in range(5):  # the first request opens the backend connection; then it is pooled
                roundtrip(c, f"/warm{i}")
            summary = tmp_path / "strace.txt"
            tracer = subprocess.Popen(
                ["strace", "-f", "-c", "-o", str(summary), "-e", f"trace={TRACED}", "-p", str(proc.pid)],
                stderr=subprocess.PIPE,
            )  # fmt: skip
            assert tracer.stderr is not None
            attached = b""
            while b"attached" not in attached:  # "Process N attached" once its threads are traced
                line = tracer.stderr.readline()
                assert line, "strace ended before attaching"
                attached += line
            for i in range(REQUESTS):
                roundtrip(c, f"/r{i}")
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=30)
            tracer.stderr.close()
    counts = strace_counts(summary)
    per = {name: calls / REQUESTS for name, (calls, _) in counts.items()}
    failed_reads = counts.get("recvfrom", (0, 0))[1]
    assert per.get("recvfrom", 0) <= 2.05, counts  # the request in, the response in
    assert per.get("sendmsg", 0) + per.get("sendto", 0) + per.get("writev", 0) <= 2.05, counts
    assert per.get("recvfrom", 0) >= 1.95, counts  # the trace did see the traffic
    assert failed_reads <= REQUESTS * 0.02, counts  # no read that finds nothing
    assert per.get("epoll_ctl", 0) <= 0.02, counts  # the backend connection goes back to the pool untouched
    assert backend.accepted == 1  # one backend connection carried every request
