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

from .harness import TimedEmulator, running_fastlb, until

pytestmark = pytest.mark.timeout(120)


def ports(n: int) -> list[int]:
    """<n> distinct free ports."""
    out: list[int] = []
    while len(out) < n:
        port = free_port()
        if port not in out:
            out.append(port)
    return out


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
    http, https = ports(2)
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
            served = web.accepted
            headers = {k.lower(): v for k, v in echo["headers"]}
            assert headers["x-forwarded-proto"] == "https" and headers["x-forwarded-port"] == str(https)
            # no SNI match: the default certificate (the first --ssl-certs), verified against the CA by name
            names, status, _ = await asyncio.to_thread(secure, https, ca, "default.test", "default.test")
            assert names == ["default.test"] and status == 503  # no app has that vhost
            # the http port sends its client to the https port
            status, fields = await asyncio.to_thread(plain, http, "web.example.com", "/a?b=1")
            assert status == 301 and fields["location"] == f"https://web.example.com:{https}/a?b=1"
            assert web.accepted == served  # the redirect reached no backend
            listeners = (await lb.stats())["listeners"]
            tls = [x for x in listeners if x.get("tls")] if isinstance(listeners, list) else [
                v for v in listeners.values() if v.get("tls")]
            assert len(tls) == 1 and tls[0]["tls"]["handshakes"] == 2


def serial(sock) -> int:
    from cryptography import x509

    return x509.load_der_x509_certificate(sock.getpeercert(binary_form=True)).serial_number


def pem_serial(pem: bytes) -> int:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem).serial_number


def secure_serial(port: int, ca: tlsconf.TestCA, sni: str | None, host: str) -> tuple[int, int, str]:
    """(the served certificate's serial, the status, the backend) of one request over TLS."""
    with tls_connect(f"127.0.0.1:{port}", ca, sni, verify=sni is not None) as s:
        got = serial(s)
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return got, status, json.loads(body)["backend"] if status == 200 else ""


async def test_marathon_ssl_cert_per_app(emu: TimedEmulator, tmp_path: Path) -> None:
    """HAPROXY_0_SSL_CERT: the app's certificate for its vhost on the shared https listener (before a
    shared certificate naming the same host) and TLS on its own service port; an app whose certificate
    cannot be read is left out alone."""
    ca = tlsconf.TestCA()
    shared = ca.leaf("api.example.com", "default.test")
    own = ca.leaf("api.example.com")
    (tmp_path / "shared.pem").write_bytes(shared)
    (tmp_path / "api.pem").write_bytes(own)
    (tmp_path / "junk.pem").write_text("not a certificate")
    https, api_port, web_port, bad_port = ports(4)
    with HttpBackend("api") as api, HttpBackend("web") as web, HttpBackend("bad") as bad:
        emu.add_app(app_definition("/api", [api_port], labels={
            "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "api.example.com",
            "HAPROXY_0_SSL_CERT": str(tmp_path / "api.pem"), "HAPROXY_0_BIND_OPTIONS": "alpn http/1.1 v4v6"}))
        emu.add_app(app_definition("/web", [web_port], labels={
            "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "default.test"}))
        emu.add_app(app_definition("/bad", [bad_port], labels={
            "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "bad.example.com",
            "HAPROXY_0_SSL_CERT": str(tmp_path / "junk.pem")}))
        tasks = {name: emu.add_task(f"/{name}", [int(b.address.rsplit(":", 1)[1])])
                 for name, b in (("api", api), ("web", web), ("bad", bad))}
        args = ["--marathon", emu.url, "--https-port", str(https), "--ssl-certs", str(tmp_path / "shared.pem")]
        async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
            await lb.wait_backends(lambda ids: ids == {tasks["api"], tasks["web"]}, "the apps fastlb can serve")
            got = await asyncio.to_thread(secure_serial, https, ca, "api.example.com", "api.example.com")
            assert got == (pem_serial(own), 200, "api")
            got = await asyncio.to_thread(secure_serial, https, ca, "default.test", "default.test")
            assert got == (pem_serial(shared), 200, "web")
            got = await asyncio.to_thread(secure_serial, api_port, ca, None, "api.example.com")  # its own port
            assert got == (pem_serial(own), 200, "api")
            stats = await lb.stats()
            errors = stats["app_errors"]["marathon"]
            assert set(errors) == {"/bad"} and "HAPROXY_0_SSL_CERT" in errors["/bad"]
            assert "no PEM certificate" in errors["/bad"]
            assert "v4v6" in (tmp_path / "fastlb.log").read_text()  # the option fastlb does not serve: a warning
            sources = {c["source"]: c["names"] for c in stats["certificates"]}
            assert sources[f"service api_{api_port}: {tmp_path / 'api.pem'}"] == ["api.example.com"]
            assert sources[f"--ssl-certs: {tmp_path / 'shared.pem'}"] == ["api.example.com", "default.test"]
            with pytest.raises(OSError):  # the port speaks TLS only
                await asyncio.to_thread(plain, api_port, "api.example.com")

            # the label changed to another file: new handshakes get that certificate
            renewed = ca.leaf("api.example.com")
            (tmp_path / "api2.pem").write_bytes(renewed)
            labels = dict(emu.apps["/api"]["labels"], HAPROXY_0_SSL_CERT=str(tmp_path / "api2.pem"))
            emu.update_app("/api", labels=labels)

            async def renewed_served() -> bool:
                got = await asyncio.to_thread(secure_serial, https, ca, "api.example.com", "api.example.com")
                return got == (pem_serial(renewed), 200, "api")

            await until(renewed_served, "the certificate of the changed label")
            got = await asyncio.to_thread(secure_serial, api_port, ca, None, "api.example.com")
            assert got == (pem_serial(renewed), 200, "api")


def tls_echo(port: int, ca: tlsconf.TestCA, sni: str, payload: bytes) -> tuple[str | None, bytes]:
    """(the ALPN protocol chosen, what came back) of a TLS client that reads a greeting line, sends
    <payload> and reads it echoed."""
    with tls_connect(f"127.0.0.1:{port}", ca, sni) as s:
        data = b""
        while b"\n" not in data and (chunk := s.recv(65536)):
            data += chunk
        s.sendall(payload)
        want = len(data) + len(payload)
        while len(data) < want and (chunk := s.recv(65536)):
            data += chunk
        return s.selected_alpn_protocol(), data


def plain_bytes(port: int, payload: bytes) -> bytes:
    """What a plaintext client of <port> gets back until the close (a reset counts as nothing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        return tlsconf.read_to_close(s)


async def test_marathon_ssl_cert_on_a_tcp_port(emu: TimedEmulator, tmp_path: Path) -> None:
    """HAPROXY_0_SSL_CERT on a port served in tcp mode (no VHOST): fastlb terminates TLS on the service
    port and forwards the plaintext to the tasks as bytes, naming no ALPN protocol; plaintext sent to
    the port never reaches them."""
    from fastlb.emulator.backends import WhoAmI

    ca = tlsconf.TestCA()
    (tmp_path / "db.pem").write_bytes(ca.leaf("db.example.com"))
    (db_port,) = ports(1)
    with WhoAmI("db-task") as be:
        emu.add_app(app_definition("/db", [db_port], labels={
            "HAPROXY_GROUP": "external", "HAPROXY_0_SSL_CERT": str(tmp_path / "db.pem")}))
        task = emu.add_task("/db", [int(be.address.rsplit(":", 1)[1])])
        args = ["--marathon", emu.url, "--https-port", "0"]
        async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
            await lb.wait_backends(lambda ids: ids == {task}, "the tcp app")
            alpn, data = await asyncio.to_thread(tls_echo, db_port, ca, "db.example.com", b"SELECT 1;\n")
            assert alpn is None
            assert data == b"db-task\nSELECT 1;\n"
            assert be.received == len(b"SELECT 1;\n")  # the plaintext
            stats = await lb.stats()
            assert not stats["app_errors"]["marathon"]
            (service,) = [s for s in stats["services"] if s["name"].startswith("db_")]
            assert service["mode"] == "tcp"
            (listener,) = [x for x in stats["listeners"] if x["address"].endswith(f":{db_port}")]
            assert listener["tls"]["handshakes"] == 1
            got = await asyncio.to_thread(plain_bytes, db_port, b"SELECT 2;\n")
            assert b"db-task" not in got and be.received == len(b"SELECT 1;\n")
            assert be.accepted == 1
