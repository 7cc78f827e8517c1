"""TLS on Marathon's shared https listener through ``fastlb run`` following the emulator: the app's
``HAPROXY_0_VHOST`` is served over TLS with the certificate SNI picks among ``--ssl-certs``, and
``HAPROXY_0_REDIRECT_TO_HTTPS`` sends the http port's client to the https port."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from fastlb.emulator.demo import free_port
from fastlb.emulator.emulator import app_definition
from fastlb.emulator.http_backends import HttpBackend
from tests.tls import conftest as tlsconf
from tests.tls.conftest import served_names, tls_connect

from .harness import TimedEmulator, running_fastlb

pytestmark = pytest.mark.timeout(120)


def plain(port: int, host: str, path: str = "/") -> tuple[int, dict[str, str]]:
    """One plain request to the http vhost listener: (status, response fields by lower-case name)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    return int(head[0].split(" ", 2)[1]), fields


def secure(port: int, ca: tlsconf.TestCA, sni: str, host: str, path: str = "/") -> tuple[list[str], int, dict]:
    """One request over TLS to the https listener: (the certificate's names, status, the backend's echo)."""
    with tls_connect(f"127.0.0.1:{port}", ca, sni) as s:
        names = served_names(s)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return names, int(head.split(b" ", 2)[1]), json.loads(body) if head.startswith(b"HTTP/1.1 200") else {}


async def test_marathon_vhost_over_tls_with_sni_and_redirect(emu: TimedEmulator, tmp_path: Path) -> None:
    ca = tlsconf.TestCA()
    (tmp_path / "default.pem").write_bytes(ca.leaf("default.test"))
    (tmp_path / "web.pem").write_bytes(ca.leaf("web.example.com"))
    http, https = free_port(), free_port()
    labels = {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http", "HAPROXY_0_VHOST": "web.example.com",
              "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}
    with HttpBackend("web") as web:
        emu.add_app(app_definition("/web", [free_port()], labels=labels))
        task = emu.add_task("/web", [int(web.address.rsplit(":", 1)[1])])
        args = ["--marathon", emu.url, "--http-port", str(http), "--https-port", str(https),
                "--ssl-certs", f"{tmp_path / 'default.pem'},{tmp_path / 'web.pem'}"]
        async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
            await lb.wait_backends(lambda ids: ids == {task}, "the app")
            names, status, echo = await asyncio.to_thread(secure, https, ca, "web.example.com", "web.example.com", "/a")
            assert names == ["web.example.com"] and status == 200
            assert echo["backend"] == "web" and echo["path"] == "/a"
            headers = {k.lower(): v for k, v in echo["headers"]}
            assert headers["x-forwarded-proto"] == "https" and headers["x-forwarded-port"] == str(https)
            # no SNI match: the default certificate (the first --ssl-certs), verified against the CA by name
            names, status, _ = await asyncio.to_thread(secure, https, ca, "default.test", "default.test")
            assert names == ["default.test"] and status == 503  # no app has that vhost
            # the http port sends its client to the https port
            status, fields = await asyncio.to_thread(plain, http, "web.example.com", "/a?b=1")
            assert status == 301 and fields["location"] == f"https://web.example.com:{https}/a?b=1"
            assert web.requests == [("GET", "/a")]
            listeners = (await lb.stats())["listeners"]
            tls = [x for x in listeners if x.get("tls")] if isinstance(listeners, list) else [
                v for v in listeners.values() if v.get("tls")]
            assert len(tls) == 1 and tls[0]["tls"]["handshakes"] == 2
