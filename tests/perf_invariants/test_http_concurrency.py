"""HTTP mode at edge concurrency, counted rather than timed: a real ``fastlb run`` (one worker) in
front of nginx, loaded by wrk with many kept-alive clients.

What the pool promises (docs/internals/http.md): it follows demand, so a backend that serves N requests
at once keeps N connections and no request pays for a connect once they are open; and a request costs
the same syscalls whether 32 or 256 clients share the backend."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from fastlb.emulator import nginx as nginx_server

from .test_http_syscalls import fastlb, strace_counts

WRK = shutil.which("wrk") or "/usr/bin/wrk"

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not nginx_server.available() or not Path(WRK).exists(), reason="needs nginx and wrk (make deps)"
    ),
]


def wrk(front: str, clients: int, seconds: int) -> int:
    """Runs wrk (one thread, <clients> kept-alive connections) and returns the requests it completed;
    fails on any error it reports."""
    out = subprocess.run(
        [WRK, "-t1", f"-c{clients}", f"-d{seconds}s", f"http://{front}/ok"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    m = re.search(r"(\d+) requests in", out)
    assert m is not None, out
    assert "Socket errors" not in out and "Non-2xx" not in out, out
    return int(m.group(1))


def traced_syscalls_per_request(tmp_path: Path, pid: int, front: str, clients: int) -> tuple[float, dict]:
    """Every syscall of the proxy per request while wrk runs with <clients>, under ``strace -c -f``;
    the backend pool is warmed by an untraced run just before."""
    wrk(front, clients, 1)
    summary = tmp_path / f"strace-{clients}.txt"
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(summary), "-p", str(pid)], stderr=subprocess.PIPE)
    assert tracer.stderr is not None
    attached = b""
    while b"attached" not in attached:
        line = tracer.stderr.readline()
        assert line, "strace ended before attaching"
        attached += line
    requests = wrk(front, clients, 3)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)
    tracer.stderr.close()
    counts = strace_counts(summary)
    calls = sum(c for c, _ in counts.values())
    return calls / requests, counts


def test_256_clients_through_one_backend_reuse_its_connections(tmp_path: Path) -> None:
    with (
        nginx_server.Nginx(tmp_path / "nginx", keepalive_requests=1_000_000, worker_connections=4096) as backend,
        fastlb(tmp_path, backend.address) as (_, front),
    ):
        before = backend.accepts()
        requests = wrk(front, 256, 4)
        opened = backend.accepts() - before - 1  # the second status read counts itself
    assert requests >= 20_000, f"only {requests} requests: the load did not run"
    # Each of the 256 clients may need a backend connection at once: 256 opened in all, none per request.
    assert opened / requests <= 0.01, f"{opened} backend connections opened for {requests} requests"


def test_a_request_costs_the_same_syscalls_at_32_and_256_clients(tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("needs strace (make deps)")
    with (
        nginx_server.Nginx(tmp_path / "nginx", keepalive_requests=1_000_000, worker_connections=4096) as backend,
        fastlb(tmp_path, backend.address) as (proc, front),
    ):
        at32, counts32 = traced_syscalls_per_request(tmp_path, proc.pid, front, 32)
        at256, counts256 = traced_syscalls_per_request(tmp_path, proc.pid, front, 256)
    assert at32 < 8, counts32  # the trace saw the traffic and the 32-client figure is sane
    assert at256 <= at32 * 1.10, f"32 clients: {at32:.2f} per request {counts32}; 256: {at256:.2f} {counts256}"
