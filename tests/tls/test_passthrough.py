"""TLS passthrough on the shared https listener: a connection whose ClientHello names a passthrough vhost
reaches that service's TLS backend untouched (the client sees the backend's certificate), beside vhosts
fastlb terminates on the same listener; a hello that trickles in, stops, is garbage, huge or names no one.
Real TLS clients (Python's ssl), real TLS backends (Python's ssl with certificates of the test CA)."""

from __future__ import annotations

import ssl
import time
import zlib

import pytest

from fastlb import spec
from fastlb.emulator.http_backends import HttpBackend
from tests.l7.conftest import Reader, connect, get, http_service

from .conftest import (
    TlsBackend,
    client_context,
    names_of,
    read_n,
    read_to_close,
    served_names,
    slow_handshake,
    tls_connect,
)


def _tcp(name: str, *addresses: str) -> spec.Service:
    return spec.Service(
        name=name, mode="tcp", backends=tuple(spec.Backend(id=f"{name}/{a}", address=a) for a in addresses)
    )


def _table(front: str, services: list[spec.Service], sni: list[tuple[str, str]],
           routes: list[spec.HttpRoute] = ()) -> spec.RouteTable:  # type: ignore[assignment]
    return spec.RouteTable(
        services=tuple(services),
        listeners=(spec.Listener(address=front, kind="vhost", tls=True),),
        http_routes=tuple(routes),
        sni_routes=tuple(spec.SniRoute(host=h, service=s) for h, s in sni),
    )


def _stats(dp, front):
    return dp.stats()["listeners"][front]


def _wait(dp, front, get_value, n=1):
    deadline = time.monotonic() + 5
    while get_value(_stats(dp, front)) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return get_value(_stats(dp, front))


def _pass_only(dataplane, ports, ca, handshake_ms=10000):
    """A DataPlane whose https listener passes db.example.com and *.kv.example.com through, with no certificate."""
    dp = dataplane()
    front = ports()
    dp.set_certificates([], handshake_ms=handshake_ms)
    return dp, front


def test_the_client_sees_the_backends_certificate_and_bytes_flow_untouched(dataplane, ports, ca):
    with TlsBackend(ca, "db", "db.example.com") as db, TlsBackend(ca, "kv", "*.kv.example.com") as kv:
        dp, front = _pass_only(dataplane, ports, ca)
        dp.publish(_table(front, [_tcp("db", db.address), _tcp("kv", kv.address)],
                          [("db.example.com", "db"), ("*.kv.example.com", "kv")]))
        with tls_connect(front, ca, "DB.example.com") as s:  # verified against the test CA: the backend's
            assert served_names(s) == ["db.example.com"]
            assert read_n(s, 3) == b"db:"
            body = bytes(range(256)) * 4096  # 1 MiB there and back, through the tcp pump
            s.sendall(body)
            echoed = read_n(s, len(body))
            assert zlib.crc32(echoed) == zlib.crc32(body)
        with tls_connect(front, ca, "a.kv.example.com") as s:
            assert served_names(s) == ["*.kv.example.com"] and read_n(s, 3) == b"kv:"
        # the hello arrived as the client wrote it (routed case-insensitively, forwarded unchanged)
        assert db.sni == ["DB.example.com"] and kv.sni == ["a.kv.example.com"]
        st = _stats(dp, front)
        assert st["passthrough"] == {"connections": 2, "unknown_sni": 0}
        assert st["tls"]["handshakes"] == 0  # fastlb terminated none
        assert dp.stats()["services"]["db"]["bytes_out"] > len(body)


def test_terminated_and_passthrough_vhosts_share_one_listener(dataplane, ports, ca):
    with TlsBackend(ca, "db", "db.example.com") as db, HttpBackend("www") as www:
        dp = dataplane()
        front = ports()
        dp.set_certificates([(ca.leaf("www.example.com"), ("www.example.com",))])
        dp.publish(_table(front, [_tcp("db", db.address), http_service("www", [www.address])],
                          [("db.example.com", "db")], [spec.HttpRoute(host="www.example.com", service="www")]))
        with tls_connect(front, ca, "www.example.com") as s:  # terminated by fastlb, routed by Host
            assert served_names(s) == ["www.example.com"]
            s.sendall(get("/x", host="www.example.com"))
            r = Reader(s).response()
            assert r.status == 200 and r.json()["backend"] == "www"
        with tls_connect(front, ca, "db.example.com") as s:  # passed through
            assert served_names(s) == ["db.example.com"] and read_n(s, 3) == b"db:"
        # a name no passthrough vhost has, or none: terminated with the default certificate
        for sni in ("other.example.com", None):
            with tls_connect(front, ca, sni, verify=False) as s:
                assert served_names(s) == ["www.example.com"]
        st = _stats(dp, front)
        assert st["passthrough"] == {"connections": 1, "unknown_sni": 0}
        assert _wait(dp, front, lambda s: s["tls"]["handshakes"], 3) == 3
        assert db.sni == ["db.example.com"]


@pytest.mark.parametrize("chunk", [1, 7])
def test_a_client_hello_split_across_segments(dataplane, ports, ca, chunk):
    with TlsBackend(ca, "db", "db.example.com") as db:
        dp, front = _pass_only(dataplane, ports, ca)
        dp.publish(_table(front, [_tcp("db", db.address)], [("db.example.com", "db")]))
        with connect(front) as c:
            obj = slow_handshake(c, client_context(ca), "db.example.com", chunk=chunk)
            assert names_of(obj.getpeercert(binary_form=True)) == ["db.example.com"]
        assert db.sni == ["db.example.com"]
        assert _stats(dp, front)["passthrough"]["connections"] == 1


def _hello(sni: str | None) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_a_client_that_stops_mid_hello_is_freed_at_the_timeout(dataplane, ports, ca):
    with TlsBackend(ca, "db", "db.example.com") as db:
        dp, front = _pass_only(dataplane, ports, ca, handshake_ms=300)
        dp.publish(_table(front, [_tcp("db", db.address)], [("db.example.com", "db")]))
        hello = _hello("db.example.com")
        with connect(front) as silent, connect(front) as cut:
            cut.sendall(hello[: len(hello) // 2])
            t0 = time.monotonic()
            assert read_to_close(silent) == b"" and read_to_close(cut) == b""
            assert time.monotonic() - t0 < 10
        assert _wait(dp, front, lambda s: s["tls"]["failed"]["timeout"], 2) == 2
        assert db.sni == [] and dp.stats()["services"]["db"]["total"] == 0
        with tls_connect(front, ca, "db.example.com") as s:  # the listener still serves
            assert read_n(s, 3) == b"db:"


def _huge_hello() -> bytes:
    """A ClientHello of 20000 bytes (a padding extension), in two records: past what fastlb reads."""
    ext = b"\x00\x15" + (19900).to_bytes(2, "big") + b"\x00" * 19900
    body = b"\x03\x03" + b"\xab" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + len(ext).to_bytes(2, "big") + ext
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"".join(b"\x16\x03\x01" + len(p).to_bytes(2, "big") + p for p in (msg[:16000], msg[16000:]))


def test_garbage_and_a_huge_hello_are_closed(dataplane, ports, ca):
    with TlsBackend(ca, "db", "db.example.com") as db:
        dp, front = _pass_only(dataplane, ports, ca)
        dp.publish(_table(front, [_tcp("db", db.address)], [("db.example.com", "db")]))
        for n, junk in enumerate([get("/", host="db.example.com"), b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",
                                  _huge_hello()], start=1):
            with connect(front) as c:
                try:
                    c.sendall(junk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # closed before it was all sent
                assert read_to_close(c) == b""
            assert _wait(dp, front, lambda s: s["tls"]["failed"]["protocol"], n) == n
        assert db.sni == [] and dp.stats()["services"]["db"]["total"] == 0


def test_an_unknown_name_with_no_certificate_is_closed_and_counted(dataplane, ports, ca):
    with TlsBackend(ca, "db", "db.example.com") as db:
        dp, front = _pass_only(dataplane, ports, ca)
        dp.publish(_table(front, [_tcp("db", db.address)], [("db.example.com", "db")]))
        for sni in ("other.example.com", None):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                tls_connect(front, ca, sni, verify=False).close()
        assert _wait(dp, front, lambda s: s["passthrough"]["unknown_sni"], 2) == 2
        st = _stats(dp, front)
        assert st["refused"] == 2 and st["passthrough"]["connections"] == 0
        assert db.sni == []


def test_a_swap_routes_the_next_hello_by_the_new_vhosts(dataplane, ports, ca):
    with TlsBackend(ca, "one", "db.example.com") as one, TlsBackend(ca, "two", "db.example.com") as two:
        dp, front = _pass_only(dataplane, ports, ca)
        dp.publish(_table(front, [_tcp("db", one.address)], [("db.example.com", "db")]))
        with tls_connect(front, ca, "db.example.com") as s:
            assert read_n(s, 4) == b"one:"
            dp.publish(_table(front, [_tcp("db2", two.address)], [("db.example.com", "db2")]))
            s.sendall(b"still")  # an open passthrough connection keeps its backend
            assert read_n(s, 5) == b"still"
        with tls_connect(front, ca, "db.example.com") as s:
            assert read_n(s, 4) == b"two:"


def test_a_passthrough_service_must_be_tcp(dataplane, ports):
    dp = dataplane()
    dp.set_certificates([], handshake_ms=1000)
    front = ports()
    with pytest.raises(ValueError, match=r"sni_routes\[0\]: service 'www' is in http mode"):
        dp.publish(_table(front, [http_service("www", ["127.0.0.1:1"])], [("www.example.com", "www")]))
    with pytest.raises(ValueError, match=r"sni_routes\[0\]: no service named 'nope'"):
        dp.publish(_table(front, [_tcp("db", "127.0.0.1:1")], [("db.example.com", "nope")]))


def test_a_services_own_tls_port_never_passes_through(dataplane, ports, ca):
    """Passthrough vhosts belong to the shared https listener: on a service's own TLS port a ClientHello
    naming one is terminated there with the service's certificate, never forwarded to the other service."""
    with TlsBackend(ca, "db", "db.example.com") as db, HttpBackend("a") as a:
        dp = dataplane()
        front, own = ports(), ports()
        own_pem = ca.leaf("api.example.com")
        dp.set_certificates([(ca.leaf("default.test"), ("default.test",))],
                            listeners={own: [(own_pem, ("api.example.com",), {})]})
        table = _table(front, [_tcp("db", db.address), http_service("api", [a.address])], [("db.example.com", "db")])
        dp.publish(spec.RouteTable(
            services=table.services, sni_routes=table.sni_routes,
            listeners=(*table.listeners, spec.Listener(address=own, service="api", tls=True))))
        with tls_connect(own, ca, "db.example.com", verify=False) as s:
            assert served_names(s) == ["api.example.com"]  # terminated here, not the db backend's certificate
            s.sendall(get("/", host="api.example.com"))
            assert Reader(s).response().json()["backend"] == "a"
        with tls_connect(front, ca, "db.example.com") as s:  # the shared listener still passes it through
            assert served_names(s) == ["db.example.com"]
        assert db.sni == ["db.example.com"]
