"""``fastlb routes --marathon`` and ``fastlb run --marathon`` as users run them, against the Marathon
emulator run as a program: the table printed is deterministic, and the app is served."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastlb import spec
from fastlb.emulator.backends import WhoAmI, reserve_port
from fastlb.emulator.emulator import MarathonEmulator, app_definition

from server.test_end_to_end import ROOT, TIMEOUT, free_port, get, wait_for


@pytest.fixture
def marathon(tmp_path: Path) -> Iterator[tuple[str, int, WhoAmI]]:
    """The emulator serving one app whose task is a live backend; yields (url, service port, backend)."""
    with WhoAmI("task-1") as backend, reserve_port() as reserved:
        service_port = int(reserved.rsplit(":", 1)[1])
        emu = MarathonEmulator()
        emu.add_app(app_definition("/svc", [service_port]))
        emu.add_task("/svc", [int(backend.address.rsplit(":", 1)[1])], task_id="svc.task-1", emit=False)
        apps = tmp_path / "apps.json"
        apps.write_text(json.dumps({"apps": [emu.app_info("/svc", {"tasks"})]}))
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastlb.emulator.emulator", "--port", str(port), "--apps", str(apps),
             "--heartbeat", "1"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: proc.poll() is not None or _answers(port), "the emulator")
            assert proc.poll() is None
            yield url, service_port, backend
        finally:
            proc.terminate()
            proc.wait(timeout=TIMEOUT)


def _answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


MARATHON_FLAGS = [
    "--group", "*", "--bind-addr", "127.0.0.1", "--http-port", "0", "--https-port", "0", "--appid-port", "0"
]


def test_routes_from_marathon_is_deterministic(marathon: tuple[str, int, WhoAmI]) -> None:
    url, service_port, backend = marathon
    outs = [
        subprocess.run(
            [sys.executable, "-m", "fastlb", "routes", "--marathon", url, *MARATHON_FLAGS],
            cwd=ROOT, capture_output=True, timeout=TIMEOUT * 2,
        )
        for _ in range(2)
    ]
    assert [o.returncode for o in outs] == [0, 0], outs[0].stderr
    assert outs[0].stdout == outs[1].stdout
    table = spec.decode(outs[0].stdout.strip())
    assert [(x.address, x.service) for x in table.listeners] == [(f"127.0.0.1:{service_port}", f"svc_{service_port}")]
    assert [(b.id, b.address) for b in table.services[0].backends] == [("svc.task-1", backend.address)]


def test_run_serves_marathon_apps_and_stops_on_sigterm(marathon: tuple[str, int, WhoAmI]) -> None:
    url, service_port, _ = marathon
    admin = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastlb", "run", "--marathon", url, *MARATHON_FLAGS, "--admin", f"127.0.0.1:{admin}",
         "--workers", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: proc.poll() is not None or get(admin, "/_health")[0] == 200, "the first Marathon table")
        assert proc.poll() is None
        with socket.create_connection(("127.0.0.1", service_port), timeout=TIMEOUT) as conn:
            conn.settimeout(TIMEOUT)
            assert conn.recv(64).startswith(b"task-1")
        stats = json.loads(get(admin, "/stats")[1])
        assert stats["providers"]["marathon"]["synced"] is True and stats["app_errors"] == {"marathon": {}}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)
