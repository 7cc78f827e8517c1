"""Certificates swapped while fastlb serves (``fastlb run``): SIGHUP and ``/_mlb_signal/hup`` read again
the certificate files that changed, and new handshakes get the new certificate at once while open
connections carry on with theirs; a file that turns unparsable or expired keeps the last good
certificate serving, with one error line."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fastlb.emulator.http_backends import HttpBackend
from tests.e2e.harness import running_fastlb, until
from tests.e2e.test_marathon_tls import ports
from tests.l7.conftest import Reader, get

from . import conftest as tlsconf
from .conftest import tls_connect

pytestmark = pytest.mark.timeout(180)
HOST = "www.example.com"


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def expired_leaf(ca: tlsconf.TestCA, name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=20)).not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + ca.pem + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def replace(path: Path, data: bytes) -> None:
    """Writes <path> anew as a deploy tool does: another file renamed over it."""
    tmp = path.with_suffix(".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Clients:
    """Threads that each make TLS connections in a loop, one request each, verified against the CA:
    the certificate serials they were served, in order, and every failure."""

    def __init__(self, port: int, ca: tlsconf.TestCA, threads: int = 4) -> None:
        self.port, self.ca = port, ca
        self.serials: list[int] = []
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(30)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                with tls_connect(f"127.0.0.1:{self.port}", self.ca, HOST) as s:
                    der = s.getpeercert(binary_form=True)
                    s.sendall(get("/", host=HOST).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
                    status = Reader(s).response().status
                serial = x509.load_der_x509_certificate(der).serial_number
                with self.lock:
                    if status != 200:
                        self.failures.append(f"status {status}")
                    self.serials.append(serial)
            except Exception as e:  # every failure counts, whatever it is
                with self.lock:
                    self.failures.append(repr(e))

    def seen(self, serial: int) -> bool:
        with self.lock:
            return serial in self.serials


async def test_swap_under_load_then_bad_files_keep_the_last_good(tmp_path: Path, ca: tlsconf.TestCA) -> None:
    site = tmp_path / "site.pem"
    old, new = ca.leaf(HOST), ca.leaf(HOST)
    site.write_bytes(old)
    https, = ports(1)
    with HttpBackend("be") as be:
        (tmp_path / "lb.toml").write_text(f"""
[https]
listen = "127.0.0.1:{https}"

[[services]]
name = "web"
vhosts = ["{HOST}"]
backends = ["{be.address}"]
""")
        args = ["--config", str(tmp_path / "lb.toml"), "--ssl-certs", str(site)]
        async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
            kept = await asyncio.to_thread(tls_connect, f"127.0.0.1:{https}", ca, HOST)  # open across the swap
            try:
                with Clients(https, ca) as clients:
                    await until(lambda: clients.seen(serial_of(old)), "requests served with the first certificate")
                    replace(site, new)
                    assert lb.proc is not None
                    lb.proc.send_signal(signal.SIGHUP)
                    await until(lambda: clients.seen(serial_of(new)), "the new certificate")
                    n = len(clients.serials)
                    await until(lambda: len(clients.serials) > n + 20, "more requests after the swap")
                assert clients.failures == []
                first_new = clients.serials.index(serial_of(new))
                assert set(clients.serials[:first_new]) == {serial_of(old)}
                # after the publish every new handshake has the new one (the threads' connections at the
                # moment of the swap excepted: at most one each)
                assert clients.serials[first_new + len(clients.threads):].count(serial_of(old)) == 0

                # the connection opened before the swap carries on, with its certificate
                kept.sendall(get("/after", host=HOST))
                assert Reader(kept).response().status == 200
                assert x509.load_der_x509_certificate(kept.getpeercert(binary_form=True)).serial_number == serial_of(
                    old)
            finally:
                kept.close()

            # a broken file, then an expired one: the last good keeps serving, one error line each
            for bad, words in ((b"not a certificate", "no PEM certificate"), (expired_leaf(ca, HOST), "expired")):
                replace(site, bad)
                for _ in range(2):
                    assert lb.session is not None
                    async with lb.session.get(lb.admin + "/_mlb_signal/hup") as r:
                        assert r.status == 200
                await asyncio.sleep(0.3)
                with tls_connect(f"127.0.0.1:{https}", ca, HOST) as s:
                    got = x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number
                assert got == serial_of(new)
                lines = [x for x in lb.log().splitlines() if "tls_rejected" in x and words in x]
                assert len(lines) == 1, lb.log()
                assert str(site) in lines[0] and "last good" in lines[0]
            stats = await lb.stats()
            assert [c["source"] for c in stats["certificates"]] == [f"--ssl-certs: {site}"]
            not_after = datetime.datetime.fromisoformat(stats["certificates"][0]["not_after"])
            assert not_after == x509.load_pem_x509_certificate(new).not_valid_after_utc
