"""Many certificates: a set keeps its certificates as PEM and parses each the first time SNI picks
it (the default one at once), once, whatever the worker; a later set shares what the sets serving
now have parsed (a change of one certificate reads that one); every certificate of a large set is
served for its names; one that cannot be read fails its handshakes only, counted as "certificate".
Real clients (Python's ssl)."""

from __future__ import annotations

import ssl

import pytest
from cryptography import x509

from fastlb import _core, spec
from fastlb.emulator.http_backends import HttpBackend
from tests.l7.conftest import Reader, get, http_service

from .conftest import https_table, served_names, tls_connect

N = 300


@pytest.fixture(scope="module")
def leaves(ca):
    return [ca.leaf(f"site{i}.example.com") for i in range(N)]


def _entries(leaves):
    return [(pem, (f"site{i}.example.com",)) for i, pem in enumerate(leaves)]


def test_every_certificate_of_a_large_set_serves_its_name(dataplane, ports, ca, leaves):
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        reads = _core.tls_reads()
        dp.set_certificates(_entries(leaves))
        assert _core.tls_reads() - reads == 1  # the default one; the others when first asked for
        routes = [spec.HttpRoute(host="*.example.com", service="a")]
        dp.publish(https_table([http_service("a", [a.address])], routes, front))
        asked = (0, 1, N // 2, N - 1, 7)
        for _ in range(3):  # each several times, on one worker or the other: parsed once
            for i in asked:
                host = f"site{i}.example.com"
                with tls_connect(front, ca, host) as s:
                    assert served_names(s) == [host]
                    s.sendall(get("/", host=host))
                    assert Reader(s).response().status == 200
        assert _core.tls_reads() - reads == len(asked)


def test_a_change_of_one_certificate_reads_that_one(dataplane, ports, ca, leaves):
    table = None
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        table = https_table([http_service("a", [a.address])], [spec.HttpRoute(host="*.example.com", service="a")],
                            front)
        dp.set_certificates(_entries(leaves))
        dp.publish(table)
        for i in range(10):
            with tls_connect(front, ca, f"site{i}.example.com"):
                pass
        changed = list(leaves)
        changed[5] = ca.leaf("site5.example.com")
        reads = _core.tls_reads()
        dp.set_certificates(_entries(changed))
        dp.publish(table)
        for i in range(10):  # nine shared from the set before, parsed already
            with tls_connect(front, ca, f"site{i}.example.com") as s:
                assert served_names(s) == [f"site{i}.example.com"]
                if i == 5:
                    got = x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number
                    assert got == x509.load_pem_x509_certificate(changed[5]).serial_number
        assert _core.tls_reads() - reads == 1
        # the same PEM twice in one set is parsed once; names and settings stay each entry's own
        reads = _core.tls_reads()
        dp.set_certificates([(changed[0], ("site0.example.com",)), (changed[0], ("other.test",))])
        assert _core.tls_reads() - reads == 0  # the set serving now has it


def test_a_certificate_that_cannot_be_read_fails_its_handshakes_only(dataplane, ports, ca, leaves):
    """The control plane checks every file before (certs.parse); should one still not parse here, its
    name's handshakes fail (counted as "certificate") and every other name is served."""
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        mismatched = leaves[1].split(b"-----BEGIN PRIVATE KEY-----")[0] + ca.leaf("x.test").split(
            b"-----END CERTIFICATE-----")[-1]
        dp.set_certificates([(leaves[0], ("site0.example.com",)), (mismatched, ("site1.example.com",)),
                             (leaves[2], ("site2.example.com",))])
        dp.publish(https_table([http_service("a", [a.address])],
                               [spec.HttpRoute(host="*.example.com", service="a")], front))
        for _ in range(2):
            with pytest.raises(ssl.SSLError):
                tls_connect(front, ca, "site1.example.com").close()
        with tls_connect(front, ca, "site2.example.com") as s:
            assert served_names(s) == ["site2.example.com"]
        failed = dp.stats()["listeners"][front]["tls"]["failed"]
        assert failed["certificate"] == 2 and sum(failed.values()) == 2
        # the default certificate is read at once: a bad one is refused with the set
        with pytest.raises(ValueError, match="certificate 0: the key does not match the certificate"):
            dp.set_certificates([(mismatched, ("site1.example.com",))])
