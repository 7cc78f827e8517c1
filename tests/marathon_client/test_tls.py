"""TLS to Marathon is verified: against --marathon-ca-cert when given, never turned off."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fastlb.emulator.emulator import MarathonEmulator

from .harness import Recorder, make_provider, running, wait_until, web_app


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "marathon.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "marathon.pem", tmp_path / "marathon.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_tls_with_ca_cert_and_refused_without(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    emulator = MarathonEmulator(heartbeat_interval=0.2)
    emulator.load_app(web_app())
    task = emulator.add_task("/web", [31001], emit=False)
    url = await emulator.start(ssl_context=context)
    try:
        assert url.startswith("https://")
        rec = Recorder([emulator])
        provider = make_provider([url])  # no CA given: the system store does not know this cert
        async with running(provider, rec):
            await wait_until(lambda: provider.status().resync_failures >= 1, "a refused handshake")
            assert rec.tables == []
            assert "certificate" in (provider.status().last_resync_error or "").lower()
        rec = Recorder([emulator])
        provider = make_provider([url], ca_cert=str(cert))
        async with running(provider, rec):
            await rec.wait_backends({task})
            assert provider.status().connected
    finally:
        await emulator.stop()
