"""``fastlb run`` as users run it (a subprocess) with the real data plane in front of real loopback
backends: SIGHUP swaps a route without cutting an open connection, a bad file keeps the last good
table, SIGTERM drains an open connection and exits 0, and the admin API reports what it serves."""

from __future__ import annotations

import csv
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastlb.emulator.backends import reserve_port

from support import promtext

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


class Backend:
    """A loopback TCP server that answers every chunk it receives with <tag> + the chunk."""

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(self.tag + data)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(conn: socket.socket, data: bytes, expect_len: int) -> bytes:
    conn.sendall(data)
    got = b""
    while len(got) < expect_len:
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    conn.settimeout(TIMEOUT)
    return conn


def get(admin: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}", timeout=TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(predicate, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def service_file(listen: int, backend: str) -> str:
    return f'[[services]]\nname = "echo"\nlisten = "127.0.0.1:{listen}"\nbackends = ["{backend}"]\n'


class Fastlb:
    def __init__(self, config: Path, admin: int) -> None:
        self.admin = admin
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastlb", "run", "--config", str(config), "--admin", f"127.0.0.1:{admin}",
             "--workers", "2", "--drain-timeout", "20"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        wait_for(lambda: self.proc.poll() is not None or get(admin, "/_health")[0] == 200, "fastlb to serve")
        assert self.proc.poll() is None, self.proc.communicate()

    def generation(self) -> int:
        return json.loads(get(self.admin, "/routes")[1])["generation"]

    def stats(self) -> dict:
        return json.loads(get(self.admin, "/stats")[1])


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    a, b = Backend(b"A:"), Backend(b"B:")
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def started(tmp_path: Path, backends: tuple[Backend, Backend]) -> Iterator[tuple[Fastlb, Path, int]]:
    with reserve_port() as listen:
        yield from _started(tmp_path, backends, int(listen.rsplit(":", 1)[1]))


def _started(tmp_path: Path, backends: tuple[Backend, Backend], port: int) -> Iterator[tuple[Fastlb, Path, int]]:
    admin = free_port()
    f = tmp_path / "lb.toml"
    f.write_text(service_file(port, backends[0].address))
    lb = Fastlb(f, admin)
    yield lb, f, port
    if lb.proc.poll() is None:
        lb.proc.kill()
    lb.proc.communicate(timeout=TIMEOUT)


def test_sighup_swaps_without_cutting_and_a_bad_file_keeps_serving(
    started: tuple[Fastlb, Path, int], backends: tuple[Backend, Backend]
) -> None:
    lb, f, port = started
    a, b = backends
    old = connect(port)
    assert ask(old, b"one", 5) == b"A:one"
    generation = lb.generation()

    f.write_text(service_file(port, b.address))
    lb.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: lb.generation() > generation, "the new table")
    with connect(port) as new:
        assert ask(new, b"two", 5) == b"B:two"
    assert ask(old, b"three", 7) == b"A:three"  # the open connection still goes where it went

    f.write_text(service_file(port, "10.0.0.1"))  # not ip:port
    lb.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: lb.stats()["providers"]["static"]["rejected"] == 1, "the bad file to be refused")
    with connect(port) as again:
        assert ask(again, b"four", 6) == b"B:four"
    assert lb.stats()["providers"]["static"]["last_problems"] == ['services[0].backends[0]: "10.0.0.1" is not ip:port']
    old.close()


def test_admin_reports_the_real_data_plane(
    started: tuple[Fastlb, Path, int], backends: tuple[Backend, Backend]
) -> None:
    lb, f, port = started
    a, _ = backends
    with connect(port) as conn:
        assert ask(conn, b"hello", 7) == b"A:hello"
        wait_for(lambda: lb.stats()["services"][0]["backends"][0]["active"] == 1, "one open connection in /stats")
        status, text = get(lb.admin, "/stats.csv")
        rows = list(csv.reader(io.StringIO(text.decode())))
        header = rows[0]
        assert header[0] == "# pxname" and header[1] == "svname"
        server = [r for r in rows[1:] if r[0] == "echo" and r[1] == a.address][0]
        assert server[header.index("status")] == "UP" and server[header.index("scur")] == "1"
        status, text = get(lb.admin, "/metrics")
        families = promtext.parse(text.decode())
        labels = {"service": "echo", "backend": f"echo/{a.address}", "address": a.address}
        assert ("fastlb_backend_connections_active", labels, 1.0) in families["fastlb_backend_connections_active"]
    status, body = get(lb.admin, "/_haproxy_getpids")
    assert body.decode().strip() == str(lb.proc.pid)


def test_sigterm_drains_an_open_connection_then_exits_0(
    started: tuple[Fastlb, Path, int], backends: tuple[Backend, Backend]
) -> None:
    lb, f, port = started
    conn = connect(port)
    assert ask(conn, b"x", 3) == b"A:x"
    lb.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: get(lb.admin, "/_health")[0] == 503, "fastlb to say it is draining")
    # No new connection is accepted, the open one carries on.
    with pytest.raises(OSError):
        connect(port).close()
    assert ask(conn, b"still", 7) == b"A:still"
    assert lb.proc.poll() is None
    conn.close()
    assert lb.proc.wait(timeout=TIMEOUT) == 0
    out, err = lb.proc.communicate(timeout=TIMEOUT)
    assert "draining" in err and "stopped" in err
