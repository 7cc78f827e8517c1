"""A static service's own TLS through ``fastlb run --config``: ``tls = { certs = [...] }`` terminates on
its ``listen`` with its certificate, and on ``[https]`` its vhosts get its certificate before the shared
one naming the same host; a certificate that cannot be used is a clear error of ``fastlb check``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography import x509

from fastlb import config
from fastlb.emulator.http_backends import HttpBackend
from tests.e2e.harness import running_fastlb
from tests.e2e.test_marathon_tls import ports, secure_serial

pytestmark = pytest.mark.timeout(120)


def pem_serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def static_file(tmp_path: Path, https: int, own_port: int, backend: str, **tls: str) -> Path:
    extra = "".join(f', {k} = "{v}"' for k, v in tls.items())
    path = tmp_path / "lb.toml"
    path.write_text(f"""
[https]
listen = "127.0.0.1:{https}"
certs = ["{tmp_path}/shared.pem"]

[[services]]
name = "api"
listen = "127.0.0.1:{own_port}"
mode = "http"
vhosts = ["api.example.com"]
tls = {{ certs = ["{tmp_path}/api.pem"]{extra} }}
backends = ["{backend}"]

[[services]]
name = "web"
vhosts = ["www.example.com"]
backends = ["{backend}"]
""")
    return path


async def test_static_service_tls(tmp_path: Path, ca) -> None:
    shared = ca.leaf("api.example.com", "www.example.com")
    own = ca.leaf("api.example.com")
    (tmp_path / "shared.pem").write_bytes(shared)
    (tmp_path / "api.pem").write_bytes(own)
    https, own_port = ports(2)
    with HttpBackend("be") as be:
        path = static_file(tmp_path, https, own_port, be.address)
        async with running_fastlb(["--config", str(path)], tmp_path / "fastlb.log") as lb:
            assert await asyncio.to_thread(secure_serial, https, ca, "api.example.com", "api.example.com") == (
                pem_serial(own), 200, "be")
            assert await asyncio.to_thread(secure_serial, https, ca, "www.example.com", "www.example.com") == (
                pem_serial(shared), 200, "be")
            assert await asyncio.to_thread(secure_serial, own_port, ca, "api.example.com", "api.example.com") == (
                pem_serial(own), 200, "be")
            listeners = (await lb.stats())["listeners"]
            tls = sorted(x["address"] for x in listeners if x.get("tls"))
            assert tls == sorted([f"127.0.0.1:{https}", f"127.0.0.1:{own_port}"])


def test_static_service_tls_errors(tmp_path: Path, ca) -> None:
    (tmp_path / "shared.pem").write_bytes(ca.leaf("default.test"))
    (tmp_path / "api.pem").write_text("broken")
    path = static_file(tmp_path, 8443, 8444, "127.0.0.1:9", min_version="TLSv1.1", ciphers="AES:'x'")
    assert config.check(str(path)) == [
        f"services[0].tls.certs: {tmp_path}/api.pem: no PEM certificate in it",
        "services[0].tls.min_version: 'TLSv1.1' is not TLSv1.2 or TLSv1.3",
        "services[0].tls.ciphers: \"AES:'x'\" is not an OpenSSL cipher list (names joined by ':')",
    ]
    path.write_text(path.read_text().replace('mode = "http"\nvhosts = ["api.example.com"]', 'mode = "tcp"'))
    (tmp_path / "api.pem").write_bytes(ca.leaf("api.example.com"))
    assert config.check(str(path)) == [  # a tcp-mode service terminates TLS too: its settings are checked the same
        "services[0].tls.min_version: 'TLSv1.1' is not TLSv1.2 or TLSv1.3",
        "services[0].tls.ciphers: \"AES:'x'\" is not an OpenSSL cipher list (names joined by ':')",
    ]


async def test_static_tcp_service_tls(tmp_path: Path, ca) -> None:
    """A mode = "tcp" service with tls = { certs = [...] }: TLS ends on its listen, its backends get the
    bytes in plaintext."""
    from fastlb.emulator.backends import Echo
    from tests.tls.conftest import tls_connect

    (tmp_path / "db.pem").write_bytes(ca.leaf("db.example.com"))
    (port,) = ports(1)
    with Echo() as be:
        path = tmp_path / "lb.toml"
        path.write_text(f"""
[[services]]
name = "db"
listen = "127.0.0.1:{port}"
mode = "tcp"
tls = {{ certs = ["{tmp_path}/db.pem"], alpn = ["x-db"] }}
backends = ["{be.address}"]
""")
        assert config.check(str(path)) == []
        async with running_fastlb(["--config", str(path)], tmp_path / "fastlb.log"):
            def echo() -> tuple[str | None, bytes]:
                with tls_connect(f"127.0.0.1:{port}", ca, "db.example.com", alpn=["x-db"]) as s:
                    s.sendall(b"ping\n")
                    data = b""
                    while len(data) < 5 and (chunk := s.recv(64)):
                        data += chunk
                    return s.selected_alpn_protocol(), data

            assert await asyncio.to_thread(echo) == ("x-db", b"ping\n")
            assert be.received == 5
