"""Certificate sources: files, directories, marathon-lb's environment, [https] in the static file, a
self-signed one when none is given; a bad file is one clear error."""

from __future__ import annotations

import logging

import pytest

from fastlb import certs, config, server
from fastlb.controller import Controller


def test_file_directory_and_environment(tmp_path, ca):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.pem").write_bytes(ca.leaf("b.test", "*.b.test"))
    (tmp_path / "d" / "a.pem").write_bytes(ca.leaf("a.test"))
    (tmp_path / "d" / "notes.txt").write_text("not a certificate")
    (tmp_path / "one.pem").write_bytes(ca.leaf("one.test", cn="one.test", san=False))
    env = {"HAPROXY_SSL_CERT": ca.leaf("env.test").decode(), "HAPROXY_SSL_CERT7": ca.leaf("seven.test").decode()}
    found = certs.gather([str(tmp_path / "one.pem"), str(tmp_path / "d")], "--ssl-certs", env)
    assert [c.names for c in found] == [
        ("one.test",), ("a.test",), ("b.test", "*.b.test"), ("env.test",), ("seven.test",),
    ]
    assert found[3].source == "HAPROXY_SSL_CERT" and found[0].not_after.endswith("+00:00")


def test_bad_files_are_clear_errors(tmp_path, ca):
    one, two = ca.leaf("a.test"), ca.leaf("b.test")
    mixed = one[: one.index(b"-----BEGIN PRIVATE KEY-----")] + two[two.index(b"-----BEGIN PRIVATE KEY-----"):]
    (tmp_path / "mixed.pem").write_bytes(mixed)
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(certs.CertError) as e:
        certs.from_paths([str(tmp_path / "mixed.pem"), str(tmp_path / "junk.pem"), str(tmp_path / "gone.pem")], "x")
    assert e.value.problems == [
        f"x: {tmp_path}/mixed.pem: the private key does not match the certificate",
        f"x: {tmp_path}/junk.pem: no PEM certificate in it",
        f"x: {tmp_path}/gone.pem: No such file or directory",
    ]


def test_static_file_https_section(tmp_path, ca):
    (tmp_path / "site.pem").write_bytes(ca.leaf("www.example.com"))
    path = tmp_path / "f.toml"
    path.write_text(f"""
[https]
listen = "127.0.0.1:8443"
certs = ["{tmp_path}/site.pem"]
handshake_timeout = "3s"

[[services]]
name = "web"
vhosts = ["www.example.com"]
backends = [{{ address = "127.0.0.1:9" }}]
""")
    loaded = config.load(str(path))
    assert [(lst.address, lst.kind, lst.tls) for lst in loaded.table.listeners] == [("127.0.0.1:8443", "vhost", True)]
    assert [c.names for c in loaded.certs] == [("www.example.com",)] and loaded.handshake_timeout_ms == 3000
    (tmp_path / "site.pem").write_text("broken")
    assert config.check(str(path)) == [f"https.certs: {tmp_path}/site.pem: no PEM certificate in it"]


class _FakePlane:
    generation = 1

    def __init__(self) -> None:
        self.certs: list = []

    def set_certificates(self, found, handshake_ms=10000):
        self.certs.append((found, handshake_ms))


def test_self_signed_when_none_is_given(caplog):
    table = config.parse('[https]\nlisten = "127.0.0.1:8443"\n').table
    plane = _FakePlane()
    c = Controller(plane, {})  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="fastlb"):
        assert c._set_certificates(table)
    assert len(plane.certs) == 1 and plane.certs[0][0][0][1] == ()  # serves every name
    assert c.certs_served[0].source == "self-signed"
    assert any("self-signed" in r.getMessage() for r in caplog.records)
    assert not c._set_certificates(table)  # made once


def test_run_exits_1_on_a_bad_certificate(tmp_path, caplog):
    (tmp_path / "bad.pem").write_text("nope")
    options = server.RunOptions(config_path=None, ssl_certs=(str(tmp_path / "bad.pem"),))
    with caplog.at_level(logging.ERROR, logger="fastlb"):
        assert server.run(options) == 1
    assert any("bad.pem: no PEM certificate in it" in r.getMessage() for r in caplog.records)


def test_files_read_again_only_when_changed_and_keep_the_last_good(tmp_path, ca, monkeypatch):
    path = tmp_path / "a.pem"
    path.write_bytes(ca.leaf("a.test"))
    reads: list[str] = []
    real = certs._read
    monkeypatch.setattr(certs, "_read", lambda file, what: reads.append(file) or real(file, what))
    files = certs.Files()
    first, problems = files.load([str(path)], "x")
    assert problems == [] and files.load([str(path)], "x")[0] == first and len(reads) == 1  # unchanged: not read
    path.write_bytes(ca.leaf("a.test", "b.test"))  # another size
    second, problems = files.load([str(path)], "x")
    assert problems == [] and second[0].names == ("a.test", "b.test") and len(reads) == 2
    path.write_text("junk")
    kept, problems = files.load([str(path)], "x")
    assert kept == second and problems == [
        f"x: {path}: no PEM certificate in it; serving its last good certificate (until {second[0].not_after})"]
    assert files.load([str(path)], "x") == (kept, problems) and len(reads) == 3  # the bad file is not read again
    path.unlink()
    assert files.load([str(path)], "x")[0] == second
    fresh = certs.Files()
    assert fresh.load([str(path)], "x") == ([], [f"x: {path}: No such file or directory"])
