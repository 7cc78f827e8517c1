"""systemd: fastlb's own notify protocol (a datagram to $NOTIFY_SOCKET, abstract names included) heard
on a socket of the test's own, from the module and from a real ``fastlb run``; the unit file in
deploy/systemd, checked by ``systemd-analyze verify`` where it exists and key by key everywhere."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastlb import cli, sdnotify
from fastlb.emulator.demo import free_port

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "fastlb.service"


@pytest.fixture
def manager() -> Iterator[tuple[str, socket.socket]]:
    """A service manager's end: an abstract datagram socket, and its $NOTIFY_SOCKET value."""
    name = f"fastlb-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(15)
        yield "@" + name, sock


def messages(sock: socket.socket, until: str, limit: float = 15.0) -> list[dict[str, str]]:
    """Datagrams as dicts, up to and including the first that has the line <until>."""
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        data = sock.recv(4096).decode()
        fields = dict(line.split("=", 1) for line in data.split("\n"))
        got.append(fields)
        if until in data.split("\n"):
            return got
    raise AssertionError(f"no {until} in {got}")


def test_notifier_sends_to_a_path_and_an_abstract_name(tmp_path: Path, manager: tuple[str, socket.socket]) -> None:
    name, sock = manager
    n = sdnotify.Notifier.from_environ({"NOTIFY_SOCKET": name})
    assert n is not None and n.watchdog_s == 0 and n.interval == sdnotify.STATUS_INTERVAL_S
    assert n.ready("up")
    assert sock.recv(100) == b"READY=1\nSTATUS=up"
    n.close()
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        n = sdnotify.Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"})
        assert n is not None and n.watchdog_s == 3.0 and n.interval == 1.5
        assert n.watchdog() and n.stopping("bye")
        assert s.recv(100) == b"WATCHDOG=1"
        assert s.recv(100) == b"STOPPING=1\nSTATUS=bye"
        n.close()
    # Nowhere to send: False and one warning, never an exception.
    n = sdnotify.Notifier(path)
    assert n.status("x") is False
    n.close()


def test_no_notifier_without_notify_socket_and_the_watchdog_is_its_pid_s() -> None:
    assert sdnotify.Notifier.from_environ({}) is None
    assert sdnotify.Notifier.from_environ({"NOTIFY_SOCKET": "relative"}) is None
    n = sdnotify.Notifier.from_environ({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "100", "WATCHDOG_PID": "1"}, pid=2)
    assert n is not None and n.watchdog_s == 0
    n.close()


def test_fastlb_run_tells_the_manager_ready_reloading_watchdog_stopping(
    tmp_path: Path, manager: tuple[str, socket.socket]
) -> None:
    name, sock = manager
    port = free_port()
    f = tmp_path / "lb.toml"
    f.write_text(f'[[services]]\nname = "a"\nlisten = "127.0.0.1:{port}"\nbackends = ["127.0.0.1:1"]\n')
    env = {**os.environ, "NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastlb", "run", "--config", str(f), "--workers", "1",
         "--admin", f"127.0.0.1:{free_port()}", "--drain-timeout", "1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        (ready,) = messages(sock, "READY=1")
        assert ready["STATUS"].startswith("serving generation 1, 0 connections open, 0 accepted")
        assert "MAINPID" not in ready
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # it serves when it says so
            pass
        got = messages(sock, "WATCHDOG=1", limit=5)  # at half of 0.4 s
        assert got[-1] == {"WATCHDOG": "1"}
        proc.send_signal(signal.SIGHUP)
        got = messages(sock, "RELOADING=1")
        assert int(got[-1]["MONOTONIC_USEC"]) > 0
        got = messages(sock, "READY=1")
        assert got[-1]["STATUS"].startswith("serving generation ")
        proc.send_signal(signal.SIGTERM)
        got = messages(sock, "STOPPING=1")
        assert got[-1]["STATUS"].startswith("draining")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def unit_keys() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_the_unit_says_what_an_edge_node_needs() -> None:
    unit = unit_keys()
    svc = unit["Service"]
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["all"]
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert svc["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert int(svc["LimitNOFILE"][0]) >= 65536
    assert svc["User"] == ["fastlb"] and svc["ProtectSystem"] == ["strict"] and svc["NoNewPrivileges"] == ["yes"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # ExecStart is a fastlb command line: its flags parse, with the default arguments of the unit.
    words = shlex.split(svc["ExecStart"][0].replace("$FASTLB_ARGS", svc["Environment"][0].split("=", 1)[1]))
    assert words[0].endswith("/fastlb")
    args = cli.parser().parse_args(words[1:])
    assert args.command == "run" and args.config == "/etc/fastlb/fastlb.toml"
    assert args.upgrade_socket.startswith("/run/" + svc["RuntimeDirectory"][0] + "/")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart's program to exist: point it at one that does
    text = UNIT.read_text().replace("/usr/local/bin/fastlb", sys.executable)
    unit = tmp_path / "fastlb.service"
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
