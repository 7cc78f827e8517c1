"""Client certificates (HAProxy's ``verify required|optional`` with ``ca-file``): a certificate whose
handshakes ask for one verifies it against its CAs, on the shared https listener for the names SNI
gives it and on a service's own listener; a client without one, or with one another CA signed, is
refused (counted as client_certificate); names of other certificates are not asked. Real clients."""

from __future__ import annotations

import socket
import ssl
import tempfile

import pytest

from fastlb import spec
from fastlb.emulator.backends import wait_until
from fastlb.emulator.http_backends import HttpBackend
from tests.l7.conftest import Reader, get, http_service

from . import conftest as tlsconf
from .conftest import client_context, https_table

SECURE = "secure.example.com"
OPEN = "open.example.com"


@pytest.fixture(scope="module")
def clients() -> tlsconf.TestCA:
    return tlsconf.TestCA()  # the CA that signs client certificates


def _client(ca: tlsconf.TestCA, cert: bytes | None, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = client_context(ca)
    ctx.minimum_version = ctx.maximum_version = version
    if cert is not None:
        with tempfile.NamedTemporaryFile(suffix=".pem") as f:
            f.write(cert)
            f.flush()
            ctx.load_cert_chain(f.name)
    return ctx


def _status(front: str, ctx: ssl.SSLContext, host: str) -> int:
    """The status of one request, or raises ssl.SSLError / ConnectionError when the handshake fails
    (with TLS 1.3 the server's refusal arrives after the client's own handshake is over)."""
    h, port = front.rsplit(":", 1)
    raw = socket.create_connection((h, int(port)), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=host) as s:
        s.sendall(get("/", host=host))
        return Reader(s).response().status


def _site(dp, ca, clients, backend, front, mode: str) -> None:
    dp.set_certificates([
        (ca.leaf(OPEN), (OPEN,)),
        (ca.leaf(SECURE), (SECURE,), {"verify": mode, "ca": clients.pem}),
    ])
    routes = [spec.HttpRoute(host=OPEN, service="a"), spec.HttpRoute(host=SECURE, service="a")]
    dp.publish(https_table([http_service("a", [backend.address])], routes, front))


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=lambda v: v.name)
def test_required_client_certificates(dataplane, ports, ca, clients, version):
    stranger = tlsconf.TestCA()
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        _site(dp, ca, clients, a, front, "required")
        good = clients.leaf("alice")
        assert _status(front, _client(ca, good, version), SECURE) == 200
        for cert in (None, stranger.leaf("mallory")):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                _status(front, _client(ca, cert, version), SECURE)
        assert _status(front, _client(ca, None, version), OPEN) == 200  # not asked for other names
        assert wait_until(lambda: dp.stats()["listeners"][front]["tls"]["failed"]["client_certificate"] == 2), \
            dp.stats()["listeners"][front]["tls"]
        assert len(a.requests) == 2


def test_optional_client_certificates(dataplane, ports, ca, clients):
    stranger = tlsconf.TestCA()
    version = ssl.TLSVersion.TLSv1_3
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        _site(dp, ca, clients, a, front, "optional")
        assert _status(front, _client(ca, None, version), SECURE) == 200
        assert _status(front, _client(ca, clients.leaf("bob"), version), SECURE) == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):  # one sent must verify
            _status(front, _client(ca, stranger.leaf("mallory"), version), SECURE)


def test_a_service_listener_requires_client_certificates(dataplane, ports, ca, clients):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        shared, own = ports(), ports()
        dp.set_certificates([(ca.leaf(OPEN), (OPEN,))], listeners={
            own: [(ca.leaf(SECURE), (SECURE,), {"verify": "required", "ca": clients.pem})]})
        table = https_table([http_service("a", [a.address])], [spec.HttpRoute(host=OPEN, service="a")], shared)
        table = spec.RouteTable(services=table.services, http_routes=table.http_routes,
                                listeners=(*table.listeners, spec.Listener(address=own, service="a", tls=True)))
        dp.publish(table)
        version = ssl.TLSVersion.TLSv1_3
        assert _status(own, _client(ca, clients.leaf("carol"), version), SECURE) == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _status(own, _client(ca, None, version), SECURE)


def test_verify_needs_ca_certificates(dataplane, ca):
    dp = dataplane(workers=1)
    with pytest.raises(ValueError, match="certificate 0: no PEM CA certificate"):
        dp.set_certificates([(ca.leaf(SECURE), (SECURE,), {"verify": "required", "ca": b"nothing"})])
    with pytest.raises(ValueError, match="verify is optional or required"):
        dp.set_certificates([(ca.leaf(SECURE), (SECURE,), {"verify": "sometimes", "ca": ca.pem})])


def test_the_ca_file_is_read_again_only_when_it_changes(tmp_path, ca, clients, monkeypatch):
    """The controller asks for a service's CA file at each publish (certs.Files.ca): it is parsed
    once per change of the file, a missing one an error naming it."""
    from fastlb import certs

    path = tmp_path / "ca.pem"
    path.write_bytes(clients.pem)
    files = certs.Files()
    reads: list[str] = []
    real = certs.read_ca
    monkeypatch.setattr(certs, "read_ca", lambda p: (reads.append(p), real(p))[1])
    assert files.ca(str(path)) == clients.pem and files.ca(str(path)) == clients.pem
    assert reads == [str(path)]
    tmp = tmp_path / "ca.new"
    tmp.write_bytes(ca.pem)
    tmp.replace(path)
    assert files.ca(str(path)) == ca.pem and len(reads) == 2
    path.unlink()
    with pytest.raises(certs.CertError, match="No such file"):
        files.ca(str(path))
