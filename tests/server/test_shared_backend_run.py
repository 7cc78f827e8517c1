"""One backend address behind two static services (an L4 and an L7 listener in front of the same app),
as users write it: each service's backend is its own (``<service>/<address>``: its own state, health and
counters) unless both give it the same explicit ``id``, which shares its state on purpose. A real fastlb
in front of a real HTTP backend."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastlb.emulator.backends import reserve_port
from fastlb.emulator.http_backends import HttpBackend

from .test_access_log_run import ROOT, TIMEOUT, Fastlb, admin_get, get, wait_for


def two_services(l4: str, l7: str, backend: str, id_line: str = "") -> str:
    entry = f'{{ address = "{backend}"{id_line} }}'
    return (
        f'[[services]]\nname = "l4"\nlisten = "{l4}"\nmode = "tcp"\nbackends = [{entry}]\n\n'
        f'[[services]]\nname = "l7"\nlisten = "{l7}"\nmode = "http"\nbackends = [{entry}]\n'
    )


def answer(address: str) -> bytes:
    """A GET through <address>: the whole answer, b"" when fastlb closed without one."""
    host, port = address.rsplit(":", 1)
    data = b""
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as conn:
        conn.sendall(get("/x"))
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def forwarded(address: str) -> bool:
    data = answer(address)
    return data.startswith(b"HTTP/1.1 200 ") and b'"backend": "be"' in data.replace(b'":"', b'": "')


def set_state(admin: str, backend_id: str, state: str) -> int:
    req = urllib.request.Request(
        f"http://{admin}/backends/{backend_id}/state", data=json.dumps({"state": state}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return r.status


def backend_rows(admin: str) -> dict[str, list[tuple[str, str]]]:
    """Service name -> its backends' (id, state) in /stats."""
    stats = json.loads(admin_get(admin, "/stats")[1])
    return {s["name"]: [(b["id"], b["state"]) for b in s["backends"]] for s in stats["services"]}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[HttpBackend, str, str, Path]]:
    with HttpBackend("be") as backend, reserve_port() as l4, reserve_port() as l7:
        yield backend, l4, l7, tmp_path


def test_the_same_address_in_an_l4_and_an_l7_service_serves_both_each_with_its_own_state(world) -> None:
    backend, l4, l7, tmp = world
    cfg = tmp / "fastlb.toml"
    cfg.write_text(two_services(l4, l7, backend.address))
    check = subprocess.run([sys.executable, "-m", "fastlb", "check", "--config", str(cfg)], cwd=ROOT,
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert check.returncode == 0, check.stdout + check.stderr
    lb = Fastlb("--config", str(cfg))
    try:
        assert forwarded(l4) and forwarded(l7)
        rows = backend_rows(lb.admin)
        assert rows == {"l4": [(f"l4/{backend.address}", "ready")], "l7": [(f"l7/{backend.address}", "ready")]}
        csv = admin_get(lb.admin, "/stats.csv")[1].decode().splitlines()
        assert any(line.startswith(f"l4,{backend.address},") for line in csv)
        assert any(line.startswith(f"l7,{backend.address},") for line in csv)

        assert set_state(lb.admin, f"l7/{backend.address}", "maint") == 200
        assert backend_rows(lb.admin)["l4"] == [(f"l4/{backend.address}", "ready")]
        wait_for(lambda: answer(l7).startswith(b"HTTP/1.1 503 "), "the L7 service without its backend")
        assert forwarded(l4)  # the L4 service's backend is another one
    finally:
        lb.stop()


def test_an_explicit_id_in_both_services_shares_the_backends_state(world) -> None:
    backend, l4, l7, tmp = world
    cfg = tmp / "fastlb.toml"
    cfg.write_text(two_services(l4, l7, backend.address, ', id = "app-1"'))
    lb = Fastlb("--config", str(cfg))
    try:
        assert forwarded(l4) and forwarded(l7)
        assert backend_rows(lb.admin) == {"l4": [("app-1", "ready")], "l7": [("app-1", "ready")]}

        assert set_state(lb.admin, "app-1", "maint") == 200
        assert backend_rows(lb.admin) == {"l4": [("app-1", "maint")], "l7": [("app-1", "maint")]}
        wait_for(lambda: answer(l7).startswith(b"HTTP/1.1 503 "), "the L7 service without its backend")
        wait_for(lambda: answer(l4) == b"", "the L4 service without its backend")
    finally:
        lb.stop()
