"""Hot binary upgrade, as users run it: two real ``fastlb run`` processes hand the listening sockets
over while a client opens connections through them without pause."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from fastlb.emulator.backends import Echo, reserve_port, wait_until
from fastlb.emulator.http_backends import HttpBackend

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Fastlb:
    """``fastlb run`` in a subprocess; its log lines are collected as they come."""

    def __init__(self, *args: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastlb", "run", "--workers", "2", *args],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def logged(self, event: str) -> bool:
        return any(f" {event}" in line for line in self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(TIMEOUT)
            assert self.proc.stderr is not None
            self.proc.stderr.close()


def _echo_once(address: tuple[str, int], payload: bytes) -> None:
    with socket.create_connection(address, timeout=TIMEOUT) as c:
        c.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = c.recv(65536)
            if not chunk:
                raise EOFError(f"EOF after {len(got)} bytes")
            got += chunk
        assert got == payload


class _ClientLoop(threading.Thread):
    """Opens a connection, echoes through it and closes it, again and again; keeps every failure."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.done = 0
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                _echo_once(self.address, b"x%d" % self.done)
                self.done += 1
            except Exception as e:  # every kind counts: refused, reset, EOF, timeout
                self.errors.append(repr(e))


def test_a_new_process_takes_the_listeners_over_without_losing_a_connection(tmp_path: Path) -> None:
    with Echo() as echo, reserve_port() as front:
        host, port = front.rsplit(":", 1)
        address = (host, int(port))
        cfg = tmp_path / "fastlb.toml"
        cfg.write_text(f'[[services]]\nname = "s"\nlisten = "{front}"\nbackends = ["{echo.address}"]\n')
        sock_path = str(tmp_path / "upgrade.sock")
        admin = f"127.0.0.1:{_free_port()}"
        old = _Fastlb(
            "--config", str(cfg), "--admin", admin, "--upgrade-socket", sock_path, "--drain-timeout", "60"
        )
        new = None
        loop = _ClientLoop(address)
        try:
            assert wait_until(lambda: old.logged("serving") or old.proc.poll() is not None, TIMEOUT), (
                old.lines
            )
            assert old.proc.poll() is None, old.lines
            long = socket.create_connection(address, timeout=TIMEOUT)
            long.sendall(b"before")
            assert long.recv(64) == b"before"
            loop.start()
            assert wait_until(lambda: loop.done >= 20, TIMEOUT)

            new = _Fastlb(
                "--config", str(cfg), "--admin", admin, "--takeover", sock_path, "--upgrade-socket", sock_path
            )
            assert wait_until(lambda: old.logged("upgrade_handed_over"), TIMEOUT), old.lines + new.lines
            assert wait_until(lambda: new.logged("serving"), TIMEOUT), new.lines
            handed = loop.done
            assert wait_until(lambda: loop.done >= handed + 50, TIMEOUT)
            # The old process drains: the long connection keeps working until it ends.
            assert old.proc.poll() is None
            long.sendall(b"after")
            assert long.recv(64) == b"after"
            long.close()
            assert old.proc.wait(TIMEOUT) == 0, old.lines
            more = loop.done
            assert wait_until(lambda: loop.done >= more + 20, TIMEOUT)  # the new one serves alone
        finally:
            loop.halt.set()
            loop.join(TIMEOUT)
            old.stop()
            rc = new.stop() if new is not None else 0
        assert loop.errors == [], loop.errors[:5]
        assert rc == 0, new.lines if new is not None else None
        assert any("upgrade_taken_over" in line for line in new.lines)
        assert not os.path.exists(sock_path)  # the last one removed its socket


def test_a_new_process_that_fails_leaves_the_old_one_serving(tmp_path: Path) -> None:
    with Echo() as echo, reserve_port() as front:
        host, port = front.rsplit(":", 1)
        address = (host, int(port))
        cfg = tmp_path / "fastlb.toml"
        cfg.write_text(f'[[services]]\nname = "s"\nlisten = "{front}"\nbackends = ["{echo.address}"]\n')
        bad = tmp_path / "bad.toml"
        bad.write_text('[[services]]\nname = "s"\nlisten = "nowhere"\n')
        sock_path = str(tmp_path / "upgrade.sock")
        admin = f"127.0.0.1:{_free_port()}"
        old = _Fastlb("--config", str(cfg), "--admin", admin, "--upgrade-socket", sock_path)
        try:
            assert wait_until(lambda: old.logged("serving") or old.proc.poll() is not None, TIMEOUT), (
                old.lines
            )
            new = _Fastlb("--config", str(bad), "--admin", admin, "--takeover", sock_path)
            assert new.proc.wait(TIMEOUT) == 1, new.lines
            new.stop()
            assert wait_until(lambda: old.logged("upgrade_abandoned"), TIMEOUT), old.lines
            assert old.proc.poll() is None
            _echo_once(address, b"still served")
        finally:
            rc = old.stop()
        assert rc == 0, old.lines


def _sticky_get(address: tuple[str, int], cookie: str | None = None) -> tuple[str, str | None]:
    """One request; the backend that answered and the sticky cookie value set (None: none set)."""
    extra = f"Cookie: mesosphere_server_id={cookie}\r\n" if cookie else ""
    with socket.create_connection(address, timeout=TIMEOUT) as c:
        c.sendall(f"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode())
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:200]
    m = re.search(rb"\r\nSet-Cookie: mesosphere_server_id=([0-9a-f]+);", head)
    return json.loads(body)["backend"], m.group(1).decode() if m else None


def test_sticky_cookies_outlive_a_hot_upgrade(tmp_path: Path) -> None:
    """A cookie the old process issued takes the client to the same backend through the new one, with
    a secret given to both (and so, a fortiori, with the fixed default key)."""
    with HttpBackend("a") as a, HttpBackend("b") as b, reserve_port() as front:
        host, port = front.rsplit(":", 1)
        address = (host, int(port))
        cfg = tmp_path / "fastlb.toml"
        cfg.write_text(
            f'[[services]]\nname = "s"\nlisten = "{front}"\nmode = "http"\n'
            f'backends = ["{a.address}", "{b.address}"]\n[services.http]\nsticky = true\n'
        )
        secret = tmp_path / "secret"
        secret.write_text("upgrade secret\n")
        sock_path = str(tmp_path / "upgrade.sock")
        admin = f"127.0.0.1:{_free_port()}"
        common = ("--config", str(cfg), "--admin", admin, "--upgrade-socket", sock_path,
                  "--cookie-secret-file", str(secret))
        old = _Fastlb(*common)
        new = None
        try:
            assert wait_until(lambda: old.logged("serving") or old.proc.poll() is not None, TIMEOUT), old.lines
            cookies: dict[str, str] = {}
            for _ in range(10):
                name, value = _sticky_get(address)
                assert value is not None
                cookies[name] = value
            assert set(cookies) == {"a", "b"}
            new = _Fastlb(*common, "--takeover", sock_path)
            assert wait_until(lambda: old.logged("upgrade_handed_over"), TIMEOUT), old.lines + new.lines
            assert old.proc.wait(TIMEOUT) == 0, old.lines
            for name, value in cookies.items():
                for _ in range(3):
                    assert _sticky_get(address, value) == (name, None)
        finally:
            old.stop()
            rc = new.stop() if new is not None else 0
        assert rc == 0, new.lines if new is not None else None
