"""The SNI choice as common TLS clients see it: ``openssl s_client -servername`` and ``curl --resolve``
against the shared https listener of a DataPlane, which serves shared certificates and a service's own
(claiming its vhosts, with its lowest version TLS 1.3), each verified against the test CA."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from fastlb.emulator.http_backends import HttpBackend

from .test_service_certs import _shared_with_service, serial_of

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
# The clients are not fastlb: no sanitizer runtime preloaded into them (make asan preloads one).
CLIENT_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def s_client(port: str, cafile: Path, *args: str) -> tuple[int, str]:
    """openssl s_client's exit status and output for one handshake to 127.0.0.1:<port>."""
    assert OPENSSL is not None
    r = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(cafile), "-verify_return_error",
         *args], input="", capture_output=True, text=True, timeout=30, env=CLIENT_ENV,
    )
    return r.returncode, r.stdout + r.stderr


def served_serial(out: str) -> int:
    pem = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
    assert pem is not None, out
    return x509.load_pem_x509_certificate(pem.group(0).encode()).serial_number


def curl(host: str, port: str, cafile: Path, *args: str) -> tuple[int, str]:
    """curl's exit status and body for https://<host>:<port>/ resolved to 127.0.0.1."""
    assert CURL is not None
    r = subprocess.run(
        [CURL, "-sS", "--max-time", "20", "--resolve", f"{host}:{port}:127.0.0.1", "--cacert", str(cafile), *args,
         f"https://{host}:{port}/via-curl"], capture_output=True, text=True, timeout=30, env=CLIENT_ENV,
    )
    return r.returncode, r.stdout + r.stderr


@pytest.fixture
def site(dataplane, ports, ca, tmp_path):
    if OPENSSL is None or CURL is None:
        pytest.skip("openssl and curl are needed (Debian: openssl, curl; .ci/install-deps installs them)")
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(ca.pem)
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        shared_api, own = _shared_with_service(dp, ca, a, b, front, min_version="TLSv1.3")
        yield front.rsplit(":", 1)[1], cafile, shared_api, own


def test_openssl_s_client_servername(site):
    port, cafile, shared_api, own = site
    rc, out = s_client(port, cafile, "-servername", "api.example.com")
    assert rc == 0 and "Verify return code: 0 (ok)" in out, out
    assert served_serial(out) == serial_of(own)  # the service's, not the shared one naming the same host
    rc, out = s_client(port, cafile, "-servername", "shop.example.com")
    assert rc == 0 and "Verify return code: 0 (ok)" in out, out
    assert "*.example.com" in out
    rc, out = s_client(port, cafile, "-noservername")
    assert rc == 0 and "CN = default.test" in out, out
    # the service's lowest version: TLS 1.2 is refused for its names, not for the others
    rc, out = s_client(port, cafile, "-servername", "api.example.com", "-tls1_2")
    assert rc != 0 and "alert protocol version" in out, out
    rc, out = s_client(port, cafile, "-servername", "shop.example.com", "-tls1_2")
    assert rc == 0 and "TLSv1.2" in out, out
    assert serial_of(shared_api) != serial_of(own)


def test_curl_resolve(site):
    port, cafile, _, _ = site
    for host, backend in (("api.example.com", "a"), ("api2.example.com", "a"), ("shop.example.com", "b")):
        rc, out = curl(host, port, cafile)
        assert rc == 0, out
        doc = json.loads(out)
        assert doc["backend"] == backend and doc["path"] == "/via-curl"
    rc, out = curl("other.test", port, cafile)  # the default certificate does not name it: curl says so
    assert rc == 60 and "other.test" in out, out
    rc, out = curl("api.example.com", port, cafile, "--tls-max", "1.2")
    assert rc == 35, out  # a handshake failure: the service asks for TLS 1.3
