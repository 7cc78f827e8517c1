"""SIGTERM (and a table swap that drops a listener) in HTTP mode, against ``fastlb run`` and a real
HTTP/1.1 backend, with clients that keep their connections alive: every request sent is answered,
each response from the drain on says ``Connection: close`` and its connection closes after it, an
idle kept-alive connection is closed at once (one holding bytes of a request is answered first), and
the process exits as soon as nothing is in flight, long before the drain deadline."""

from __future__ import annotations

import http.client
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastlb.emulator.backends import reserve_port
from fastlb.emulator.http_backends import HttpBackend

from .test_end_to_end import ROOT, Fastlb, free_port, get, wait_for

DEADLINE = 20.0  # the --drain-timeout Fastlb runs with
SOON = 8.0  # well before the deadline: what the drain must have done by then
SLOW_MS = 1500  # a slow request is in flight at the signal


def http_file(listen: str, backend: str) -> str:
    return (
        f'[[services]]\nname = "web"\nlisten = "{listen}"\nmode = "http"\nbackends = ["{backend}"]\n'
        '[services.timeouts]\nhttp_keepalive = "60s"\n'  # only the drain closes an idle connection
    )


class Client(threading.Thread):
    """A well-behaved HTTP/1.1 client in a loop on one kept-alive connection (http.client): it honours
    ``Connection: close``, reuses a connection only while the server has not closed it (what a client
    pool checks before reusing one), and sends again, once, on a new connection, an idempotent request
    that a reused connection lost before any byte of an answer came (RFC 9112 section 9.3.1). It stops
    when a new connection is refused: fastlb no longer accepts, and a real client goes to another
    instance."""

    def __init__(self, port: int, name: str, slow: bool = False) -> None:
        super().__init__(name=name, daemon=True)
        self.port = port
        self.slow = slow
        self.answers: list[tuple[float, str, int, list[str]]] = []  # (sent at, path, status, Connection values)
        self.cut: list[tuple[str, bool]] = []  # (path, on a reused connection): closed before any answer
        self.unanswered: list[tuple[str, str]] = []  # (path, error): failed in any other way
        self.refused = 0
        self.stop_at: float | None = None

    def path(self, n: int) -> str:
        return f"/slow/{SLOW_MS}/{self.name}/{n}" if self.slow else f"/{self.name}/{n}"

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        reused = False
        n = 0
        retry: str | None = None
        while self.stop_at is None or time.monotonic() < self.stop_at:
            if conn is not None and conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
                conn.close()  # closed by the server while idle: not reused
                conn = None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                reused = False
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    self.refused += 1
                    return
            if retry is not None:
                path, retry = retry, None
            else:
                n += 1
                path = self.path(n)
            sent = time.monotonic()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                conn = None
                self.cut.append((path, reused))
                if reused:
                    retry = path
                continue
            except (OSError, http.client.HTTPException) as e:
                self.unanswered.append((path, repr(e)))
                conn.close()
                conn = None
                continue
            reused = True
            self.answers.append((sent, path, resp.status, resp.headers.get_all("Connection") or []))
            if resp.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


@pytest.fixture
def backend() -> Iterator[HttpBackend]:
    # as nginx answers an HTTP/1.1 client: "Connection: keep-alive"
    with HttpBackend("b", extra_headers=(("Connection", "keep-alive"),)) as b:
        yield b


def _start(tmp_path: Path, listen: str, backend: HttpBackend) -> tuple[Fastlb, Path]:
    f = tmp_path / "lb.toml"
    f.write_text(http_file(listen, backend.address))
    return Fastlb(f, free_port()), f


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def _idle(port: int) -> socket.socket:
    """A connection that has had one answer (kept alive) and sends nothing more."""
    s = socket.create_connection(("127.0.0.1", port), timeout=SOON)
    s.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b'"seq"' not in got:
        got += s.recv(65536)
    return s


def _eof_within(s: socket.socket, timeout: float) -> bool:
    """True when the peer closes <s> cleanly (EOF, not a reset) within <timeout> seconds."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        return False


def test_sigterm_closes_kept_alive_connections_and_loses_no_request(tmp_path: Path, backend: HttpBackend) -> None:
    with reserve_port() as listen:
        port = int(listen.rsplit(":", 1)[1])
        lb, _ = _start(tmp_path, listen, backend)
        try:
            idle = [_idle(port) for _ in range(3)]
            # A client that has sent part of its next request head: it is answered, not cut.
            partial = socket.create_connection(("127.0.0.1", port), timeout=SOON)
            partial.sendall(b"GET /partial HTTP/1.1\r\nHo")
            clients = [Client(port, f"fast{i}") for i in range(6)]
            clients += [Client(port, f"slow{i}", slow=True) for i in range(3)]
            for c in clients:
                c.start()
            wait_for(lambda: backend.in_flight == 3 and all(c.answers for c in clients[:6]), "every client under way")
            signalled = time.monotonic()
            lb.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: _refused(port), "fastlb to stop accepting")
            stopped_accepting = time.monotonic()

            for s in idle:  # closed at once, cleanly, long before the deadline
                assert _eof_within(s, SOON)
                s.close()
            partial.sendall(b"st: x\r\n\r\n")
            raw = b""
            while chunk := partial.recv(65536):
                raw += chunk
            partial.close()
            head = raw.partition(b"\r\n\r\n")[0].decode().lower().split("\r\n")
            assert head[0].startswith("http/1.1 200") and "connection: close" in head, raw[:300]
            assert "connection: keep-alive" not in head

            for c in clients:
                c.stop_at = signalled + SOON
            for c in clients:
                c.join(SOON + 5)
            assert not any(c.is_alive() for c in clients), "clients still served keep-alive past the signal"
            assert lb.proc.wait(timeout=SOON) == 0
            exited = time.monotonic()
        finally:
            if lb.proc.poll() is None:
                lb.proc.kill()
            err = lb.proc.communicate(timeout=30)[1]

    assert [u for c in clients for u in c.unanswered] == []
    answered = {path for c in clients for _, path, _, _ in c.answers}
    seen = {path for _, path in backend.requests if path.startswith(("/fast", "/slow"))}
    assert seen <= answered, seen - answered  # every request a backend saw was answered
    # A request cut before any answer never reached a backend: sent on an idle connection as it closed
    # (sent again on a new one), or on a new connection the kernel took as the listener closed.
    cut = {path for c in clients for path, _ in c.cut}
    assert not cut & seen, cut & seen
    assert all(status == 200 for c in clients for _, _, status, _ in c.answers)
    for c in clients:
        # each ended on a connection closed after an answer (announced, or idle) and a refused new one
        assert c.refused >= 1
        after = [(path, conn) for sent, path, _, conn in c.answers if sent >= stopped_accepting or c.slow]
        # every answer from the drain on (and the slow ones in flight at the signal) says close, once
        assert all(conn == ["close"] for _, conn in after), after
    slow_sent_before = [path for c in clients if c.slow for sent, path, _, _ in c.answers if sent < signalled]
    assert len(slow_sent_before) >= 3  # the requests in flight at the signal were answered
    assert exited - signalled < DEADLINE / 2, "the process waited for the drain deadline"
    assert "drain deadline" not in err, err[-2000:]


def test_a_listener_dropped_by_a_reload_drains_its_kept_alive_connections(tmp_path: Path, backend: HttpBackend) -> None:
    with reserve_port() as old, reserve_port() as new:
        old_port = int(old.rsplit(":", 1)[1])
        new_port = int(new.rsplit(":", 1)[1])
        lb, f = _start(tmp_path, old, backend)
        try:
            idle = _idle(old_port)
            busy = http.client.HTTPConnection("127.0.0.1", old_port, timeout=30)
            busy.request("GET", "/")
            busy.getresponse().read()
            busy.request("GET", f"/slow/{SLOW_MS}/busy")
            wait_for(lambda: backend.in_flight == 1, "the slow request at the backend")
            generation = lb.generation()
            f.write_text(http_file(new, backend.address))
            lb.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: lb.generation() > generation, "the new table")

            assert _eof_within(idle, SOON)
            idle.close()
            resp = busy.getresponse()
            resp.read()
            assert resp.status == 200 and resp.headers.get_all("Connection") == ["close"] and resp.will_close
            busy.close()

            # the listener the table keeps is left alone
            kept = http.client.HTTPConnection("127.0.0.1", new_port, timeout=30)
            for _ in range(2):
                kept.request("GET", "/kept")
                r = kept.getresponse()
                r.read()
                assert r.status == 200 and r.headers.get_all("Connection") == ["keep-alive"]
            kept.close()
            assert lb.proc.poll() is None
        finally:
            lb.proc.send_signal(signal.SIGTERM)
            try:
                lb.proc.wait(timeout=30)
            finally:
                if lb.proc.poll() is None:
                    lb.proc.kill()
                lb.proc.communicate(timeout=30)


def test_a_hot_upgrade_hands_kept_alive_clients_over_without_losing_a_request(
    tmp_path: Path, backend: HttpBackend
) -> None:
    with reserve_port() as listen:
        port = int(listen.rsplit(":", 1)[1])
        f = tmp_path / "lb.toml"
        f.write_text(http_file(listen, backend.address))
        sock = str(tmp_path / "upgrade.sock")
        admin = free_port()
        common = [sys.executable, "-m", "fastlb", "run", "--config", str(f), "--admin", f"127.0.0.1:{admin}",
                  "--workers", "2", "--drain-timeout", str(DEADLINE)]
        old = subprocess.Popen([*common, "--upgrade-socket", sock], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        new = None
        clients = [Client(port, f"fast{i}") for i in range(4)]
        clients += [Client(port, f"slow{i}", slow=True) for i in range(2)]
        try:
            wait_for(lambda: get(admin, "/_health")[0] == 200, "the old process to serve")
            idle = _idle(port)
            for c in clients:
                c.start()
            wait_for(lambda: backend.in_flight == 2 and all(c.answers for c in clients[:4]), "every client under way")
            new = subprocess.Popen([*common, "--takeover", sock], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            handed = time.monotonic()
            assert _eof_within(idle, SOON + 10)  # the old process closes its idle connection once it drains
            idle.close()
            assert old.wait(timeout=SOON + 10) == 0  # once its slow requests are answered
            drained = time.monotonic()
            wait_for(lambda: all(c.answers and c.answers[-1][0] > drained for c in clients), "the new process to serve")
        finally:
            for c in clients:
                c.stop_at = time.monotonic()
            for c in clients:
                c.join(SOON)
            for p in (old, new):
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()

    assert [u for c in clients for u in c.unanswered] == []
    answered = {path for c in clients for _, path, _, _ in c.answers}
    assert {path for c in clients for path, _ in c.cut} <= answered  # sent again to the new process
    seen = {path for _, path in backend.requests if path.startswith(("/fast", "/slow"))}
    assert seen <= answered, seen - answered
    assert drained - handed < DEADLINE / 2, "the old process waited for the drain deadline"
