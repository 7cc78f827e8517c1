"""TLS terminated on a tcp-mode service's own listener (HAProxy's ``mode tcp`` with ``bind ssl``): the
handshake first, then a backend is picked and the plaintext flows both ways as bytes. Real TLS clients
(Python's ssl), a test CA, real loopback backends behind a DataPlane."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
import zlib

import pytest

from fastlb import spec
from fastlb.emulator.backends import Echo, Sink, WhoAmI, refused_address, wait_until

from . import conftest as tlsconf
from .conftest import TIMEOUT, read_n, read_to_close, served_names, tls_connect

pytestmark = pytest.mark.timeout(60)


def tcp_service(name: str, backends: list[str], **kw: object) -> spec.Service:
    return spec.Service(name=name, mode="tcp", backends=tuple(spec.Backend(id=b, address=b) for b in backends),
                        **kw)  # type: ignore[arg-type]


def serve(dp, ca, front: str, backends: list[str], *, certs=None, opts=None, handshake_ms: int = 10000, **kw):
    """A tcp service on <front> terminating TLS with its own certificates (no ALPN, as the control plane
    gives a tcp-mode service unless told)."""
    opts = {"alpn": []} if opts is None else opts
    certs = certs or [ca.leaf("db.example.com")]
    names = [("db.example.com",)] + [("other.example.com",)] * (len(certs) - 1)
    dp.set_certificates([], handshake_ms, listeners={front: [(pem, n, opts) for pem, n in zip(certs, names)]})
    svc = tcp_service("db", backends, **kw)
    dp.publish(spec.RouteTable(services=(svc,), listeners=(spec.Listener(address=front, service="db", tls=True),)))


def tls_counters(dp, front: str) -> dict:
    return dp.stats()["listeners"][front]["tls"]


def exchange(s: ssl.SSLSocket, data: bytes) -> bytes:
    """Sends <data> and reads as many bytes back at the same time, from one thread (an SSL object is
    not for two threads at once)."""
    s.setblocking(False)
    sent, got = 0, bytearray()
    deadline = time.monotonic() + TIMEOUT
    while len(got) < len(data) and time.monotonic() < deadline:
        wait_w = [s] if sent < len(data) else []
        readable, writable, _ = select.select([s], wait_w, [], 1.0)
        if writable or s.pending():
            try:
                sent += s.send(data[sent:sent + 65536]) if sent < len(data) else 0
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        if readable or s.pending():
            try:
                chunk = s.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            if not chunk:
                break
            got += chunk
    return bytes(got)


def test_the_backend_speaks_plaintext_behind_the_handshake(dataplane, ports, ca):
    with WhoAmI("db-1") as be:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [be.address])
        with tls_connect(front, ca, "db.example.com") as s:
            assert served_names(s) == ["db.example.com"]
            assert s.selected_alpn_protocol() is None  # offered http/1.1: a tcp port names no protocol
            assert read_n(s, 5) == b"db-1\n"  # a server that speaks first, after the handshake
            s.sendall(b"PING 1\r\n")
            assert read_n(s, 8) == b"PING 1\r\n"
        assert wait_until(lambda: be.received == 8)  # decrypted: the backend got the bytes themselves
        assert wait_until(lambda: be.active == 0)  # the client's end reached the backend
        stats = dp.stats()
        assert tls_counters(dp, front)["handshakes"] == 1
        assert stats["services"]["db"]["total"] == 1


def test_megabytes_both_ways_at_once(dataplane, ports, ca):
    """8 MiB echoed through TLS while it is still being sent: both pumps under backpressure, records read
    in part by a full buffer (bytes the transport holds that epoll cannot report)."""
    data = bytes(range(256)) * (8 * 4096)
    with Echo() as be:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [be.address])
        with tls_connect(front, ca, "db.example.com") as s:
            got = exchange(s, data)
        assert len(got) == len(data) and zlib.crc32(got) == zlib.crc32(data)


def test_the_clients_end_reaches_the_backend_after_its_bytes(dataplane, ports, ca):
    """close_notify (or a bare FIN) ends the stream: the backend reads every byte, then its FIN."""
    data = b"x" * 300_000
    with Sink() as be:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [be.address])
        for n, unwrap in enumerate((True, False), 1):
            with tls_connect(front, ca, "db.example.com") as s:
                s.sendall(data)
                if unwrap:
                    # close_notify first; the client refuses the Sink's answer that follows it
                    with contextlib.suppress(ssl.SSLError):
                        s.unwrap().close()
                else:
                    # a FIN alone (a close would send a reset: the session tickets are still unread)
                    s.shutdown(socket.SHUT_WR)
                assert wait_until(lambda n=n: len(be.finished) == n), be.finished
        assert be.finished == [(len(data), zlib.crc32(data))] * 2


def test_close_notify_both_ways(dataplane, ports, ca):
    """The client's close_notify reaches the backend as a FIN, and the backend's FIN comes back as
    fastlb's close_notify: a clean TLS close on both ends."""
    with Echo() as be:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [be.address])
        with tls_connect(front, ca, "db.example.com") as s:
            s.sendall(b"bye")
            assert read_n(s, 3) == b"bye"
            raw = s.unwrap()  # waits for fastlb's close_notify (raises on a bare FIN or a timeout)
            assert raw.recv(1) == b""
            raw.close()
        assert wait_until(lambda: be.active == 0 and dp.stats()["services"]["db"]["active"] == 0)


def test_sni_picks_the_services_certificate(dataplane, ports, ca):
    with Echo() as be:
        dp = dataplane()
        front = ports()
        first, other = ca.leaf("db.example.com"), ca.leaf("other.example.com")
        serve(dp, ca, front, [be.address], certs=[first, other])
        for sni, names in (("other.example.com", ["other.example.com"]), ("db.example.com", ["db.example.com"]),
                           (None, ["db.example.com"])):
            with tls_connect(front, ca, sni, verify=sni is not None) as s:
                assert served_names(s) == names
                s.sendall(b"hello")
                assert read_n(s, 5) == b"hello"


def test_alpn_when_the_service_names_protocols(dataplane, ports, ca):
    with Echo() as be:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [be.address], opts={"alpn": ["x-db", "h2"]})
        with tls_connect(front, ca, "db.example.com", alpn=["h2", "x-db"]) as s:
            assert s.selected_alpn_protocol() == "x-db"  # the server's order


def test_no_backend_is_opened_before_the_handshake_is_over(dataplane, ports, ca):
    """A silent client is dropped at the handshake timeout, garbage and TLS 1.1 at once; none of them
    costs a backend connection."""
    with Echo() as be:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [be.address], handshake_ms=300)
        host, port = front.rsplit(":", 1)
        silent = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        garbage = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        garbage.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
        try:
            tls_connect(front, ca, "db.example.com", maximum=ssl.TLSVersion.TLSv1_1).close()
            raise AssertionError("TLS 1.1 was accepted")
        except (ssl.SSLError, ConnectionError):
            pass
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed by fastlb
        waited = time.monotonic() - started
        answer = read_to_close(garbage)  # a reset: closed with the rest of the garbage unread
        assert answer[:1] in (b"", b"\x15"), answer  # an alert at most, then the close
        silent.close()
        garbage.close()
        assert 0.1 < waited < 5, waited
        failed = tls_counters(dp, front)["failed"]
        assert wait_until(lambda: tls_counters(dp, front)["failed"]["timeout"] == 1), failed
        failed = tls_counters(dp, front)["failed"]
        assert failed["version"] == 1 and failed["protocol"] == 1, failed
        assert be.accepted == 0
        assert dp.stats()["backends"][be.address]["total"] == 0
        with tls_connect(front, ca, "db.example.com") as s:  # and the port still serves
            s.sendall(b"ok")
            assert read_n(s, 2) == b"ok"


def test_no_backend_to_go_to_closes_after_the_handshake(dataplane, ports, ca):
    with refused_address() as gone:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [gone], retries=1)
        with tls_connect(front, ca, "db.example.com") as s:
            s.sendall(b"anyone?")
            try:
                assert s.recv(1) == b""
            except (ssl.SSLError, ConnectionError):
                pass  # closed without close_notify: some clients call that an error
        assert wait_until(lambda: dp.stats()["services"]["db"]["no_backend"] == 1)


def test_a_client_certificate_required_on_a_tcp_port(dataplane, ports, ca, tmp_path):
    clients = tlsconf.TestCA()  # signs the client certificates
    with Echo() as be:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [be.address], opts={"alpn": [], "verify": "required", "ca": clients.pem})
        (tmp_path / "client.pem").write_bytes(clients.leaf("client.test"))
        with tls_connect(front, ca, "db.example.com", cert=str(tmp_path / "client.pem")) as s:
            s.sendall(b"let me in")
            assert read_n(s, 9) == b"let me in"
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with tls_connect(front, ca, "db.example.com") as s:  # none: refused (1.3: at the first read)
                s.sendall(b"x")
                if not s.recv(1):
                    raise ConnectionError("closed")
        assert wait_until(lambda: tls_counters(dp, front)["failed"]["client_certificate"] == 1)
        assert be.accepted == 1


def test_connections_at_once_and_the_tls_objects_freed(dataplane, ports, ca):
    from fastlb import _core

    with Echo() as be:
        dp = dataplane()
        front = ports()
        serve(dp, ca, front, [be.address])
        contexts = _core.live_counts()["tls"]  # the set's own (one context per worker)
        socks = [tls_connect(front, ca, "db.example.com") for _ in range(40)]
        for i, s in enumerate(socks):
            s.sendall(b"%04d" % i)
        assert _core.live_counts()["tls"] == contexts + 40  # one SSL per connection
        for i, s in enumerate(socks):
            assert read_n(s, 4) == b"%04d" % i
            s.close()
        assert wait_until(lambda: dp.stats()["services"]["db"]["active"] == 0)
        assert wait_until(lambda: _core.live_counts()["tls"] == contexts), _core.live_counts()
