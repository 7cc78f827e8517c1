"""``fastlb run`` under a small open-files limit (``prlimit``), as systemd's default soft limit of
1,024 would have it: the soft limit is raised to the hard one, maxconn is sized to fit, and clients
beyond what fits wait in the listen backlog (none is accepted and closed without a byte) while the
admin API keeps answering and says why."""

from __future__ import annotations

import json
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastlb.emulator.backends import reserve_port

from .test_end_to_end import ROOT, TIMEOUT, Backend, free_port, get, service_file, wait_for
from support import promtext

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux's prlimit")

CLIENTS = 300  # more than fit in 256 descriptors


class LimitedFastlb:
    """``fastlb run --workers 2`` under ``prlimit --nofile=<soft>:<hard>``; its log lines kept."""

    def __init__(self, config: Path, soft: int, hard: int) -> None:
        self.admin = free_port()
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["prlimit", f"--nofile={soft}:{hard}", sys.executable, "-m", "fastlb", "run", "--config", str(config),
             "--admin", f"127.0.0.1:{self.admin}", "--workers", "2"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(lambda: self.proc.poll() is not None or get(self.admin, "/_health")[0] == 200, "fastlb to serve")
        assert self.proc.poll() is None, "".join(self.lines)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def logged(self, event: str) -> list[str]:
        return [line for line in list(self.lines) if f" {event} " in line]

    def field(self, event: str, key: str) -> int:
        m = re.search(rf" {key}=(\d+)", self.logged(event)[0])
        assert m is not None
        return int(m.group(1))

    def stats(self) -> dict:
        status, body = get(self.admin, "/stats")
        assert status == 200
        return json.loads(body)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = Backend(b"A:")
    yield b
    b.close()


def open_clients(port: int, n: int) -> list[socket.socket]:
    """<n> clients connected (the kernel's backlog takes what fastlb has not accepted), each having
    sent one byte."""
    clients = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        c.sendall(b"x")
        clients.append(c)
    return clients


def serve_all(clients: list[socket.socket]) -> None:
    """Reads each client's answer as it comes and closes that client, which lets the next ones in;
    fails on a client closed or reset without its answer."""
    waiting = set(clients)
    while waiting:
        ready, _, _ = select.select(list(waiting), [], [], TIMEOUT)
        assert ready, f"{len(waiting)} clients got no answer"
        for c in ready:
            try:
                got = c.recv(16)
            except OSError as e:
                raise AssertionError(f"a client was reset unserved: {e}") from e
            assert got == b"A:x", f"a client was closed without a byte ({got!r})"
            c.close()
            waiting.discard(c)


def test_maxconn_fits_the_limit_and_the_rest_waits_in_the_backlog(tmp_path: Path, backend: Backend) -> None:
    with reserve_port() as listen:
        port = int(listen.rsplit(":", 1)[1])
        f = tmp_path / "lb.toml"
        f.write_text(service_file(port, backend.address))
        lb = LimitedFastlb(f, 256, 256)
        clients: list[socket.socket] = []
        try:
            maxconn = lb.field("engine_sized", "maxconn")
            assert 0 < maxconn < CLIENTS // 2 and lb.field("engine_sized", "nofile") == 256
            assert not lb.logged("maxconn_over_limit")
            clients = open_clients(port, CLIENTS)
            wait_for(lambda: lb.stats()["active"] == maxconn, "maxconn connections open")
            stats = lb.stats()  # the admin API answers while the data plane is at its limit
            assert stats["accepts"]["held_maxconn"] >= 1 and stats["accepts"]["nofile"] == 256
            serve_all(clients)
            assert lb.stats()["total"] == CLIENTS
        finally:
            for c in clients:
                c.close()
            lb.close()


def test_the_soft_limit_is_raised_to_the_hard_one(tmp_path: Path, backend: Backend) -> None:
    with reserve_port() as listen:
        f = tmp_path / "lb.toml"
        f.write_text(service_file(int(listen.rsplit(":", 1)[1]), backend.address))
        lb = LimitedFastlb(f, 256, 2048)
        try:
            assert lb.field("nofile_raised", "soft") == 2048 and lb.field("nofile_raised", "was") == 256
            assert lb.field("engine_sized", "nofile") == 2048
            assert lb.stats()["accepts"]["nofile"] == 2048
        finally:
            lb.close()


def test_out_of_descriptors_is_logged_counted_and_the_admin_answers(tmp_path: Path, backend: Backend) -> None:
    # An explicit maxconn above what fits: warned about at start; the data plane stops at its share of
    # descriptors (fd_max), and whoever is past it waits in the backlog.
    with reserve_port() as listen:
        port = int(listen.rsplit(":", 1)[1])
        f = tmp_path / "lb.toml"
        f.write_text("[engine]\nmaxconn = 100000\n" + service_file(port, backend.address))
        lb = LimitedFastlb(f, 256, 256)
        clients: list[socket.socket] = []
        try:
            assert lb.field("maxconn_over_limit", "maxconn") == 100000
            assert lb.field("maxconn_over_limit", "fits") < CLIENTS
            clients = open_clients(port, CLIENTS)
            wait_for(lambda: lb.stats()["accepts"]["held_fds"] >= 1, "accepting held back at fd_max")
            assert lb.stats()["active"] < CLIENTS
            wait_for(lambda: bool(lb.logged("fd_exhausted")), "the fd_exhausted line")
            assert lb.field("fd_exhausted", "held") >= 1 and lb.field("fd_exhausted", "nofile") == 256
            status, text = get(lb.admin, "/metrics")
            assert status == 200
            family = promtext.parse(text.decode())["fastlb_accepts_held_total"]
            held = {labels["reason"]: value for _, labels, value in family}
            assert held["fds"] >= 1
            serve_all(clients)
        finally:
            for c in clients:
                c.close()
            lb.close()
