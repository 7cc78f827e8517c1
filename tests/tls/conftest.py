"""Fixtures of the TLS tests: a test CA made here, certificates it signs, and TLS clients (Python's ssl)
in front of a real DataPlane and real loopback backends."""

from __future__ import annotations

import datetime
import socket
import ssl
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fastlb import spec

TIMEOUT = 20.0


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCA:
    """A CA that signs leaf certificates (certificate + CA chain + key in one PEM, HAProxy's crt format)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fastlb test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def leaf(self, *names: str, cn: str | None = None, san: bool = True, days: float = 10) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or names[0])]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM) + self.pem + _pem_key(key)


@pytest.fixture(scope="session")
def ca() -> TestCA:
    return TestCA()


def client_context(ca: TestCA, *, verify: bool = True, maximum: ssl.TLSVersion | None = None,
                   alpn: list[str] | None = None, cert: str | None = None) -> ssl.SSLContext:
    """A client trusting <ca>; <alpn>: the protocols it offers (http/1.1 unless told); <cert>: a PEM file
    of the client certificate (and its key) it presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca.pem.decode())
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.set_alpn_protocols(alpn if alpn is not None else ["http/1.1"])
    if cert is not None:
        ctx.load_cert_chain(cert)
    return ctx


def tls_connect(address: str, ca: TestCA, sni: str | None, **kw: Any) -> ssl.SSLSocket:
    host, port = address.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    try:
        return client_context(ca, **kw).wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


def read_n(sock: socket.socket, n: int) -> bytes:
    """Exactly <n> bytes (the peer must not close before)."""
    got = b""
    while len(got) < n:
        data = sock.recv(n - len(got))
        assert data, got
        got += data
    return got


def read_to_close(sock: socket.socket) -> bytes:
    """What the server sent before it closed (it must close; a reset ends it too)."""
    got = b""
    try:
        while data := sock.recv(65536):
            got += data
    except ConnectionResetError:
        pass
    return got


def served_names(sock: ssl.SSLSocket) -> list[str]:
    """The DNS names of the certificate the server sent."""
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                .get_values_for_type(x509.DNSName))


def https_table(services: list[spec.Service], routes: list[spec.HttpRoute], https: str,
                http: str | None = None) -> spec.RouteTable:
    listeners = [spec.Listener(address=https, kind="vhost", tls=True)]
    if http is not None:
        listeners.append(spec.Listener(address=http, kind="vhost"))
    return spec.RouteTable(services=tuple(services), listeners=tuple(listeners), http_routes=tuple(routes))


class TlsBackend:
    """A TLS server with its own certificate (from the test CA) on loopback: what a passthrough service
    forwards to. Each connection is answered "<ident>:" and then every byte it sends, echoed; ``sni``
    holds the name each handshake asked for, so a test sees the ClientHello arrived untouched."""

    def __init__(self, ca: TestCA, ident: str, *names: str) -> None:
        import tempfile

        self.ident = ident
        self.sni: list[str | None] = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.NamedTemporaryFile(suffix=".pem") as f:
            f.write(ca.leaf(*names))
            f.flush()
            self.ctx.load_cert_chain(f.name)
        self.ctx.sni_callback = lambda obj, name, ctx: self.sni.append(name)  # type: ignore[assignment,misc,func-returns-value]
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self._threads: list[Any] = []

    def __enter__(self) -> TlsBackend:
        import threading

        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as s:
                s.sendall(self.ident.encode() + b":")
                while data := s.recv(65536):
                    s.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


def slow_handshake(sock: socket.socket, ctx: ssl.SSLContext, sni: str | None, chunk: int = 1) -> ssl.SSLObject:
    """A TLS handshake over <sock> whose ClientHello goes out <chunk> bytes per segment."""
    import time

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    first = True
    while True:
        try:
            obj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        data = outgoing.read()
        if first:
            for i in range(0, len(data), chunk):
                sock.sendall(data[i : i + chunk])
                time.sleep(0.0005)
            first = False
        elif data:
            sock.sendall(data)
        if done:
            return obj
        got = sock.recv(65536)
        if not got:
            raise ConnectionError("closed during the handshake")
        incoming.write(got)


def names_of(der: bytes | None) -> list[str]:
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                .get_values_for_type(x509.DNSName))
