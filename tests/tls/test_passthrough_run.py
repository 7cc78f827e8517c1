"""`fastlb run` with a passthrough-only [https] listener, as users run it (a subprocess): no certificate is
made up, a name it passes through reaches the TLS backend, any other is closed, and /stats and /metrics
count both."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from fastlb.emulator.backends import reserve_port
from tests.server.test_end_to_end import Fastlb, free_port, get, wait_for

from .conftest import TlsBackend, served_names, tls_connect
from support import promtext


def test_run_passes_through_and_counts(tmp_path: Path, ca) -> None:
    with TlsBackend(ca, "db", "db.example.com") as db, reserve_port() as https:
        f = tmp_path / "lb.toml"
        f.write_text(f'''
[https]
listen = "{https}"
handshake_timeout = "2s"

[[services]]
name = "db"
vhosts = ["db.example.com"]
tls = {{ passthrough = true }}
backends = ["{db.address}"]
''')
        lb = Fastlb(f, free_port())
        try:
            with tls_connect(https, ca, "db.example.com") as s:
                assert served_names(s) == ["db.example.com"]
                s.sendall(b"x")
                got = b""
                while len(got) < 4:
                    got += s.recv(4)
                assert got == b"db:x"
            with pytest.raises((ssl.SSLError, ConnectionError)):
                tls_connect(https, ca, "other.example.com", verify=False).close()

            def listener() -> dict:
                return next(x for x in lb.stats()["listeners"] if x["address"] == https)

            wait_for(lambda: listener()["passthrough"]["unknown_sni"] == 1, "the unknown name counted")
            assert listener()["passthrough"] == {"connections": 1, "unknown_sni": 1}
            assert lb.stats()["certificates"] == []  # passthrough only: none made up
            status, text = get(lb.admin, "/metrics")
            assert status == 200
            families = promtext.parse(text.decode())
            counted = families["fastlb_tls_passthrough_connections_total"]
            counted += families["fastlb_tls_passthrough_unknown_sni_total"]
            samples = {name: value for name, labels, value in counted if labels == {"listener": https}}
            assert samples == {"fastlb_tls_passthrough_connections_total": 1,
                               "fastlb_tls_passthrough_unknown_sni_total": 1}
        finally:
            lb.proc.terminate()
            _, err = lb.proc.communicate(timeout=30)
        assert "self-signed" not in err
