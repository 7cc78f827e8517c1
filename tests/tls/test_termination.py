"""TLS termination on the shared https listener: real TLS clients (Python's ssl), a test CA, real
loopback backends behind a DataPlane."""

from __future__ import annotations

import ssl
import time
import zlib

import pytest

from fastlb import spec
from fastlb.emulator.backends import wait_until
from fastlb.emulator.http_backends import HttpBackend
from tests.l7.conftest import Reader, connect, get, http_service, options

from .conftest import https_table, read_to_close, served_names, tls_connect


def _two_sites(dp, ca, a, b, front, **kw):
    dp.set_certificates([
        (ca.leaf("default.test"), ("default.test",)),
        (ca.leaf("www.example.com"), ("www.example.com",)),
        (ca.leaf("*.example.com"), ("*.example.com",)),
    ], **kw)
    services = [http_service("a", [a.address]), http_service("b", [b.address])]
    routes = [spec.HttpRoute(host="www.example.com", service="a"), spec.HttpRoute(host="*.example.com", service="b"),
              spec.HttpRoute(host="default.test", service="a")]
    dp.publish(https_table(services, routes, front))


def test_sni_picks_exact_then_wildcard_then_default(dataplane, ports, ca):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        _two_sites(dp, ca, a, b, front)
        with tls_connect(front, ca, "www.example.com") as s:  # verified against the test CA
            assert served_names(s) == ["www.example.com"]
            assert s.selected_alpn_protocol() == "http/1.1"
            assert s.version() in ("TLSv1.2", "TLSv1.3")
        with tls_connect(front, ca, "shop.example.com") as s:
            assert served_names(s) == ["*.example.com"]
        for sni in (None, "other.test", "a.b.example.com"):
            with tls_connect(front, ca, sni, verify=False) as s:
                assert served_names(s) == ["default.test"], sni
        # the server counts a handshake when the client's Finished arrives, which may be after the client's return
        assert wait_until(lambda: dp.stats()["listeners"][front]["tls"]["handshakes"] == 5), dp.stats()["listeners"]
        assert sum(dp.stats()["listeners"][front]["tls"]["failed"].values()) == 0


def test_requests_routed_by_host_with_forwarded_proto_https(dataplane, ports, ca):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        _two_sites(dp, ca, a, b, front)
        with tls_connect(front, ca, "shop.example.com") as s:
            s.sendall(get("/x", host="shop.example.com"))
            r = Reader(s).response()
        assert r.status == 200
        doc = r.json()
        assert doc["backend"] == "b" and doc["path"] == "/x"
        headers = {k.lower(): v for k, v in doc["headers"].items()} if isinstance(doc["headers"], dict) else {
            k.lower(): v for k, v in doc["headers"]}
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-forwarded-port"] == front.rsplit(":", 1)[1]


def test_host_outside_the_certificate_is_421(dataplane, ports, ca):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        _two_sites(dp, ca, a, b, front)
        with tls_connect(front, ca, "www.example.com") as s:
            s.sendall(get("/", host="default.test"))  # routable, but not a name of this connection's certificate
            r = Reader(s).response()
        assert r.status == 421
        assert a.received == 0 and b.received == 0
        with tls_connect(front, ca, "shop.example.com") as s:  # the wildcard certificate covers another label
            s.sendall(get("/", host="other.example.com:443"))
            assert Reader(s).response().status == 200


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_10_and_11_are_refused(dataplane, ports, ca, version):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        _two_sites(dp, ca, a, b, front)
        try:
            s = tls_connect(front, ca, "www.example.com", maximum=version)
        except (ssl.SSLError, ConnectionError) as e:
            err: Exception | None = e
        else:
            s.close()
            err = None
        assert err is not None, f"{version.name} was accepted"
        deadline = time.monotonic() + 5
        while dp.stats()["listeners"][front]["tls"]["failed"]["version"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dp.stats()["listeners"][front]["tls"]["failed"]["version"] == 1


def test_keep_alive_and_a_megabyte_both_ways(dataplane, ports, ca):
    body = bytes(range(256)) * 4096  # 1 MiB
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        _two_sites(dp, ca, a, b, front)
        with tls_connect(front, ca, "www.example.com") as s:
            reader = Reader(s)
            seen = []
            for i in range(3):
                s.sendall(get(f"/{i}", host="www.example.com"))
                doc = reader.response().json()
                seen.append((doc["conn"], doc["seq"]))
            assert len({c for c, _ in seen}) == 1 and [q for _, q in seen] == [1, 2, 3]
            s.sendall(b"POST /up HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            doc = reader.response().json()
            assert doc["body_len"] == len(body) and doc["body_crc"] == zlib.crc32(body)
            s.sendall(get(f"/big/{len(body)}", host="www.example.com"))
            r = reader.response()
            assert r.status == 200 and len(r.body) == len(body)


def test_redirect_to_https_lands_on_the_https_port(dataplane, ports, ca):
    with HttpBackend("a") as a:
        dp = dataplane()
        https, http = ports(), ports()
        dp.set_certificates([(ca.leaf("www.example.com"), ("www.example.com",))])
        svc = http_service("a", [a.address], http=options(redirect_to_https=True))
        dp.publish(https_table([svc], [spec.HttpRoute(host="www.example.com", service="a")], https, http))
        with connect(http) as c:
            c.sendall(get("/p?q=1", host="www.example.com"))
            r = Reader(c).response()
        port = https.rsplit(":", 1)[1]
        assert r.status == 301 and r.header("Location") == f"https://www.example.com:{port}/p?q=1"
        with tls_connect(https, ca, "www.example.com") as s:  # where it points answers
            s.sendall(get("/p?q=1", host="www.example.com"))
            r = Reader(s).response()
        assert r.status == 200 and r.json()["path"] == "/p?q=1"


def _wait_failed(dp, front, reason, n=1):
    deadline = time.monotonic() + 5
    while dp.stats()["listeners"][front]["tls"]["failed"][reason] < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return dp.stats()["listeners"][front]["tls"]["failed"][reason]


def test_plain_http_on_the_tls_port_is_closed(dataplane, ports, ca):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        _two_sites(dp, ca, a, b, front)
        with connect(front) as c:
            c.sendall(get("/", host="www.example.com"))
            got = read_to_close(c)
        assert got == b"" or got.startswith(b"HTTP/1.1 400 ")
        assert _wait_failed(dp, front, "http") == 1
        with connect(front) as c:
            c.sendall(b"\x16\x03\x01\xff\xff" + b"\x00" * 64 + b"garbage" * 100)
            assert not read_to_close(c).startswith(b"HTTP")
        assert _wait_failed(dp, front, "protocol") == 1
        assert a.received == 0 and b.received == 0


def test_a_stalled_or_truncated_handshake_is_dropped_at_the_timeout(dataplane, ports, ca):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        _two_sites(dp, ca, a, b, front, handshake_ms=300)
        # a real ClientHello, cut in the middle
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="www.example.com")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        with connect(front) as silent, connect(front) as cut:
            cut.sendall(hello[: len(hello) // 2])
            t0 = time.monotonic()
            assert read_to_close(silent) == b"" and read_to_close(cut) == b""
            assert time.monotonic() - t0 < 10
        assert _wait_failed(dp, front, "timeout", 2) == 2
        with tls_connect(front, ca, "www.example.com") as s:  # the listener still serves
            s.sendall(get("/", host="www.example.com"))
            assert Reader(s).response().status == 200


def test_a_certificate_whose_key_does_not_match_is_refused(dataplane, ca):
    dp = dataplane()
    one, two = ca.leaf("a.test"), ca.leaf("b.test")
    cert_only = one[: one.index(b"-----BEGIN PRIVATE KEY-----")]
    other_key = two[two.index(b"-----BEGIN PRIVATE KEY-----"):]
    with pytest.raises(ValueError, match="certificate 0: .*key does not match"):
        dp.set_certificates([(cert_only + other_key, ("a.test",))])
    with pytest.raises(ValueError, match="certificate 0: no PEM private key"):
        dp.set_certificates([(cert_only, ("a.test",))])


def test_a_tls_listener_needs_certificates(dataplane, ports):
    dp = dataplane()
    with pytest.raises(ValueError, match="needs certificates"):
        dp.publish(https_table([http_service("a", ["127.0.0.1:1"])], [], ports()))
