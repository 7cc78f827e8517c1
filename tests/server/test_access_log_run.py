"""``fastlb run --access-log`` (and ``[log] access``) as users run it: a subprocess in front of a real
HTTP backend; the lines are read back from the file (or stdout), parsed and checked field by field, and
the file is reopened on SIGHUP and SIGUSR1 as log rotation needs."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastlb.emulator.backends import reserve_port
from fastlb.emulator.http_backends import HttpBackend

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


def wait_for(predicate, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def admin_get(admin: str, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{admin}{path}", timeout=TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ask(address: str, raw: bytes) -> tuple[int, bytes]:
    """Sends <raw> (a whole request that asks for the connection to close) and reads the answer."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n".encode()


def service_file(listen: str, backend: str, extra: str = "") -> str:
    return (
        f'{extra}[[services]]\nname = "web"\nlisten = "{listen}"\nmode = "http"\nbackends = ["{backend}"]\n'
    )


class Fastlb:
    def __init__(self, *args: str, stdout: int = subprocess.DEVNULL) -> None:
        self.admin = reserve_admin()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastlb", "run", "--admin", self.admin, "--workers", "2", *args],
            cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True,
        )
        wait_for(lambda: self.proc.poll() is not None or admin_get(self.admin, "/_health")[0] == 200, "fastlb")
        if self.proc.poll() is not None:
            raise AssertionError(self.proc.communicate())

    def generation(self) -> int:
        return json.loads(admin_get(self.admin, "/routes")[1])["generation"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == 0, err


def reserve_admin() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def log_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[HttpBackend, str, Path]]:
    with HttpBackend("be") as backend, reserve_port() as front:
        yield backend, front, tmp_path


def test_access_log_file_lines_field_by_field(world) -> None:
    backend, front, tmp = world
    cfg = tmp / "fastlb.toml"
    cfg.write_text(service_file(front, backend.address))
    log = tmp / "access.log"
    log.write_text("an older line\n")  # appended to, never truncated
    lb = Fastlb("--config", str(cfg), "--access-log", str(log))
    try:
        t0 = time.time()
        first, posted = get("/hello?x=1"), (
            b"POST /status/404 HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 10\r\n"
            b"Connection: close\r\n\r\n0123456789"
        )
        status, answer = ask(front, first)
        assert status == 200
        assert ask(front, posted) == (404, b"HTTP/1.1 404 X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        wait_for(lambda: len(log_lines(log)) == 2, "two log lines")
        t1 = time.time()
    finally:
        lb.stop()
    assert log.read_text().startswith("an older line\n")
    get_line, post_line = log_lines(log)
    for line in (get_line, post_line):
        assert set(line) == {
            "time", "client", "listener", "service", "backend", "method", "path", "status",
            "request_bytes", "response_bytes", "duration_us", "response_us",
        }
        assert t0 - 0.01 <= line["time"] <= t1 + 0.01
        assert line["client"].startswith("127.0.0.1:") and line["listener"] == front
        assert line["service"] == "web" and line["backend"] == f"web/{backend.address}"
        assert 0 <= line["response_us"] <= line["duration_us"] < 10_000_000
    # bytes both ways, as they went over the client's connection
    assert (get_line["request_bytes"], get_line["response_bytes"]) == (len(first), len(answer))
    assert (post_line["request_bytes"], post_line["response_bytes"]) == (len(posted), 58)
    assert (get_line["method"], get_line["path"], get_line["status"]) == ("GET", "/hello?x=1", 200)
    assert (post_line["method"], post_line["path"], post_line["status"]) == ("POST", "/status/404", 404)


def test_the_static_files_key_and_the_flag_over_it(world) -> None:
    backend, front, tmp = world
    from_file, from_flag = tmp / "file.log", tmp / "flag.log"
    cfg = tmp / "fastlb.toml"
    cfg.write_text(service_file(front, backend.address, extra=f'[log]\naccess = "{from_file}"\n\n'))
    lb = Fastlb("--config", str(cfg))
    try:
        ask(front, get("/from-file"))
        wait_for(lambda: len(log_lines(from_file)) == 1, "the line in [log] access")
    finally:
        lb.stop()
    lb = Fastlb("--config", str(cfg), "--access-log", str(from_flag))
    try:
        ask(front, get("/from-flag"))
        wait_for(lambda: len(log_lines(from_flag)) == 1, "the line in --access-log")
    finally:
        lb.stop()
    assert [x["path"] for x in log_lines(from_file)] == ["/from-file"]
    assert [x["path"] for x in log_lines(from_flag)] == ["/from-flag"]


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1])
def test_rotation_reopens_the_file(world, sig) -> None:
    backend, front, tmp = world
    cfg = tmp / "fastlb.toml"
    cfg.write_text(service_file(front, backend.address))
    log = tmp / "access.log"
    lb = Fastlb("--config", str(cfg), "--access-log", str(log))
    try:
        ask(front, get("/before"))
        wait_for(lambda: len(log_lines(log)) == 1, "the first line")
        log.rename(tmp / "access.log.1")  # what logrotate does
        ask(front, get("/between"))  # still goes to the renamed file: nothing reopened it yet
        wait_for(lambda: len(log_lines(tmp / "access.log.1")) == 2, "the line before the signal")
        generation = lb.generation()
        lb.proc.send_signal(sig)
        wait_for(lambda: log.exists(), "the file to be made again")
        wait_for(lambda: lb.generation() >= generation, "the resync")
        ask(front, get("/after"))
        wait_for(lambda: len(log_lines(log)) == 1, "the line after the signal")
    finally:
        lb.stop()
    assert [x["path"] for x in log_lines(tmp / "access.log.1")] == ["/before", "/between"]
    assert [x["path"] for x in log_lines(log)] == ["/after"]


def test_stdout(world) -> None:
    backend, front, tmp = world
    cfg = tmp / "fastlb.toml"
    cfg.write_text(service_file(front, backend.address))
    lb = Fastlb("--config", str(cfg), "--access-log", "-", stdout=subprocess.PIPE)
    try:
        assert lb.proc.stdout is not None
        out = lb.proc.stdout.fileno()
        ask(front, get("/to-stdout"))
        got = b""
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in got and time.monotonic() < deadline:
            if select.select([out], [], [], 0.1)[0]:
                got += os.read(out, 65536)
        line = json.loads(got.splitlines()[0])
        assert (line["path"], line["status"], line["service"]) == ("/to-stdout", 200, "web")
    finally:
        lb.stop()


def test_a_log_that_cannot_be_opened_stops_the_start(world) -> None:
    backend, front, tmp = world
    cfg = tmp / "fastlb.toml"
    cfg.write_text(service_file(front, backend.address))
    r = subprocess.run(
        [sys.executable, "-m", "fastlb", "run", "--config", str(cfg), "--admin", reserve_admin(),
         "--access-log", str(tmp / "no" / "such" / "dir.log")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 1 and "--access-log" in r.stderr and "No such file or directory" in r.stderr
    cfg.write_text(service_file(front, backend.address, extra=f'[log]\naccess = "{tmp / "no" / "x.log"}"\n\n'))
    r = subprocess.run(
        [sys.executable, "-m", "fastlb", "run", "--config", str(cfg), "--admin", reserve_admin()],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 1 and "log.access" in r.stderr
