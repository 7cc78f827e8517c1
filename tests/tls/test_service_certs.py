"""A service's own certificates in the data plane (``set_certificates`` options and ``listeners``): on
the shared https listener SNI gives the service's certificate for its vhosts before any other; a
service's own TLS listener serves its certificates; a service's lowest version, ciphers and ALPN apply
to its handshakes only. Real TLS clients (Python's ssl), a test CA, real loopback backends."""

from __future__ import annotations

import ssl
import time

import pytest
from cryptography import x509

from fastlb import spec
from fastlb.emulator.http_backends import HttpBackend
from tests.l7.conftest import Reader, get, http_service

from .conftest import https_table, served_names, tls_connect


def serial(sock: ssl.SSLSocket) -> int:
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def _shared_with_service(dp, ca, a, b, front, **opts):
    shared_api = ca.leaf("api.example.com")  # a shared certificate naming the same host
    own = ca.leaf("api.example.com", "api2.example.com")
    dp.set_certificates([
        (ca.leaf("default.test"), ("default.test",)),
        (shared_api, ("api.example.com",)),
        (ca.leaf("*.example.com"), ("*.example.com",)),
        (own, ("api.example.com", "api2.example.com"), {"claims": ["api.example.com", "api2.example.com"], **opts}),
    ])
    services = [http_service("a", [a.address]), http_service("b", [b.address])]
    routes = [spec.HttpRoute(host="api.example.com", service="a"), spec.HttpRoute(host="api2.example.com", service="a"),
              spec.HttpRoute(host="*.example.com", service="b")]
    dp.publish(https_table(services, routes, front))
    return shared_api, own


def test_a_service_certificate_wins_sni_for_its_vhosts(dataplane, ports, ca):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        shared_api, own = _shared_with_service(dp, ca, a, b, front)
        for host in ("api.example.com", "api2.example.com"):
            with tls_connect(front, ca, host) as s:
                assert serial(s) == serial_of(own), host  # not the shared api.example.com one
                s.sendall(get("/", host=host))
                assert Reader(s).response().json()["backend"] == "a"
        with tls_connect(front, ca, "shop.example.com") as s:
            assert served_names(s) == ["*.example.com"]
        with tls_connect(front, ca, None, verify=False) as s:
            assert served_names(s) == ["default.test"]
        assert serial_of(shared_api) != serial_of(own)


def test_a_service_lowest_version_and_ciphers_apply_to_its_names_only(dataplane, ports, ca):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        _shared_with_service(dp, ca, a, b, front, min_version="TLSv1.3")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with tls_connect(front, ca, "api.example.com", maximum=ssl.TLSVersion.TLSv1_2):
                pass
        with tls_connect(front, ca, "shop.example.com", maximum=ssl.TLSVersion.TLSv1_2) as s:
            assert s.version() == "TLSv1.2"
        with tls_connect(front, ca, "api.example.com") as s:
            assert s.version() == "TLSv1.3"
        deadline = time.monotonic() + 5
        while dp.stats()["listeners"][front]["tls"]["failed"]["version"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dp.stats()["listeners"][front]["tls"]["failed"]["version"] == 1  # counted as a version refusal

        dp2 = dataplane()
        front2 = ports()
        _shared_with_service(dp2, ca, a, b, front2, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
        for host, want in (("api.example.com", "ECDHE-ECDSA-AES256-GCM-SHA384"),
                           ("shop.example.com", "ECDHE-ECDSA-AES128-GCM-SHA256")):
            with tls_connect(front2, ca, host, maximum=ssl.TLSVersion.TLSv1_2) as s:
                assert s.cipher()[0] == want, host

        dp3 = dataplane()
        front3 = ports()
        _shared_with_service(dp3, ca, a, b, front3, ciphersuites="TLS_CHACHA20_POLY1305_SHA256")
        for host, want in (("api.example.com", "TLS_CHACHA20_POLY1305_SHA256"),
                           ("shop.example.com", "TLS_AES_256_GCM_SHA384")):
            with tls_connect(front3, ca, host) as s:
                assert (s.version(), s.cipher()[0]) == ("TLSv1.3", want), host


def test_a_service_listener_serves_its_own_certificates(dataplane, ports, ca):
    with HttpBackend("a") as a:
        dp = dataplane()
        own_port, front = ports(), ports()
        own = ca.leaf("api.example.com")
        other = ca.leaf("other.example.com")
        shared = ca.leaf("default.test")
        dp.set_certificates([(shared, ("default.test",))], 10000, {
            own_port: [(own, ("api.example.com",), {"alpn": ["http/1.1"]}), (other, ("other.example.com",), {})],
        })
        svc = http_service("a", [a.address])
        table = spec.RouteTable(services=(svc,), listeners=(
            spec.Listener(address=own_port, service="a", tls=True),
            spec.Listener(address=front, kind="vhost", tls=True),
        ), http_routes=(spec.HttpRoute(host="api.example.com", service="a"),))
        dp.publish(table)
        for sni, want in ((None, own), ("api.example.com", own), ("other.example.com", other),
                          ("default.test", own)):
            with tls_connect(own_port, ca, sni, verify=False) as s:
                assert serial(s) == serial_of(want), sni
                s.sendall(get("/x", host="api.example.com"))
                if want is own:
                    r = Reader(s).response()
                    assert r.status == 200 and r.json()["backend"] == "a"
        with tls_connect(front, ca, "api.example.com", verify=False) as s:  # the shared listener: shared ones
            assert serial(s) == serial_of(shared)


def test_bad_options_are_refused_with_the_reason(dataplane, ca):
    dp = dataplane()
    pem = ca.leaf("a.test")
    for opts, words in (({"min_version": "TLSv1.1"}, "TLSv1.2 or TLSv1.3"), ({"ciphers": "NOPE-NOTHING"}, "cipher"),
                        ({"colour": "red"}, "unknown options")):
        with pytest.raises(ValueError, match=words):
            dp.set_certificates([(pem, ("a.test",), opts)])
