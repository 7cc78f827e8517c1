"""Session resumption: tickets sealed with keys every worker shares (a client's next connection lands
on any worker's SO_REUSEPORT socket), TLS 1.2 and 1.3, rotated keys, keys shared by several data
planes (a fleet behind ECMP), and the resumed handshakes counted. Real clients (Python's ssl)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess

import pytest

from fastlb import spec
from fastlb.emulator.backends import wait_until
from fastlb.emulator.http_backends import HttpBackend
from tests.l7.conftest import Reader, get, http_service

from .conftest import client_context, https_table

HOST = "www.example.com"
VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def _site(dp, ca, backend, front) -> None:
    dp.set_certificates([(ca.leaf(HOST), (HOST,))])
    dp.publish(https_table([http_service("a", [backend.address])], [spec.HttpRoute(host=HOST, service="a")], front))


def _request(front: str, ctx: ssl.SSLContext, session: ssl.SSLSession | None) -> tuple[bool, ssl.SSLSession]:
    """One request on a new connection offering <session>: whether it was resumed, and the session to
    offer next (read after the response: TLS 1.3 tickets come after the handshake)."""
    host, port = front.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=HOST, session=session) as s:
        s.sendall(get("/", host=HOST))
        assert Reader(s).response().status == 200
        return s.session_reused, s.session


def _context(ca, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = client_context(ca)
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_sessions_resume_on_every_worker(dataplane, ports, ca, version):
    """Two workers, a new connection (a new source port, so either worker's socket) each time: every
    one after the first resumes, with the session of the one before it."""
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        _site(dp, ca, a, front)
        ctx = _context(ca, version)
        reused, session = _request(front, ctx, None)
        assert not reused
        for _ in range(24):
            reused, session = _request(front, ctx, session)
            assert reused
        tls = dp.stats()["listeners"][front]["tls"]
        assert wait_until(lambda: dp.stats()["listeners"][front]["tls"]["handshakes"] == 25), tls
        assert dp.stats()["listeners"][front]["tls"]["resumed"] == 24
        assert sum(tls["failed"].values()) == 0


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_rotation_keeps_the_older_keys_opening_their_tickets(dataplane, ports, ca, version):
    a_key, b_key, c_key = (os.urandom(80) for _ in range(3))
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        _site(dp, ca, a, front)
        dp.set_ticket_keys([a_key])
        ctx = _context(ca, version)
        _, sealed_by_a = _request(front, ctx, None)
        dp.set_ticket_keys([b_key, a_key], enc=0)  # b seals now; a still opens what it sealed
        reused, sealed_by_b = _request(front, ctx, sealed_by_a)
        assert reused
        dp.set_ticket_keys([c_key, b_key])  # a is gone: its ticket is a full handshake
        reused, _ = _request(front, ctx, sealed_by_a)
        assert not reused
        reused, _ = _request(front, ctx, sealed_by_b)
        assert reused
        dp.set_ticket_keys([])  # no keys: no ticket taken
        assert _request(front, ctx, sealed_by_b)[0] is False


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_data_planes_sharing_keys_resume_each_others_sessions(dataplane, ports, ca, version):
    """Two fastlb nodes with the same keys (the key file's): a session begun on one resumes on the
    other; a node with keys of its own makes a full handshake."""
    keys = [os.urandom(80), os.urandom(80)]
    with HttpBackend("a") as a:
        one, two, other = dataplane(workers=1), dataplane(workers=2), dataplane(workers=1)
        fronts = [ports(), ports(), ports()]
        leaf = (ca.leaf(HOST), (HOST,))
        for dp, front in zip((one, two, other), fronts, strict=True):
            dp.set_certificates([leaf])
            dp.publish(https_table([http_service("a", [a.address])], [spec.HttpRoute(host=HOST, service="a")],
                                   front))
        one.set_ticket_keys(keys, enc=0)
        two.set_ticket_keys(keys, enc=0)
        ctx = _context(ca, version)
        _, session = _request(fronts[0], ctx, None)
        reused, session = _request(fronts[1], ctx, session)
        assert reused
        assert _request(fronts[2], ctx, session)[0] is False


def test_a_ticket_sealed_with_48_byte_keys_resumes(dataplane, ports, ca):
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        _site(dp, ca, a, front)
        dp.set_ticket_keys([os.urandom(48)])
        ctx = _context(ca, ssl.TLSVersion.TLSv1_3)
        _, session = _request(front, ctx, None)
        assert _request(front, ctx, session)[0]


def test_keys_that_are_not_keys_are_refused_and_change_nothing(dataplane, ports, ca):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        _site(dp, ca, a, front)
        ctx = _context(ca, ssl.TLSVersion.TLSv1_3)
        _, session = _request(front, ctx, None)
        for keys, enc in (([b"x" * 79], 0), ([os.urandom(80), os.urandom(48)], 0), ([os.urandom(80)] * 4, 0),
                          ([os.urandom(80)], 1)):
            with pytest.raises(ValueError, match="ticket keys"):
                dp.set_ticket_keys(keys, enc)
        assert _request(front, ctx, session)[0]


@pytest.mark.parametrize("flag", ["-tls1_3", "-tls1_2"])
def test_openssl_resumes_every_connection_and_gets_a_new_ticket(dataplane, ports, ca, tmp_path, flag):
    """Each s_client run offers the session the run before it saved, on a new connection (either
    worker): every one after the first resumes. In TLS 1.3 a resumed handshake also brings a new
    ticket: OpenSSL's client (wrk, curl, ...) uses a TLS 1.3 ticket once and keeps the session of the
    connection, so without one every other connection would be a full handshake."""
    from .test_cli_clients import CLIENT_ENV, OPENSSL

    assert OPENSSL is not None, "openssl is needed (Debian: openssl; .ci/install-deps installs it)"
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        _site(dp, ca, a, front)
        cafile, session = tmp_path / "ca.pem", tmp_path / "session.pem"
        cafile.write_bytes(ca.pem)
        reused, tickets = [], []
        for k in range(8):
            args = [OPENSSL, "s_client", "-ign_eof", "-msg", "-connect", front, "-servername", HOST, flag,
                    "-CAfile", str(cafile), "-verify_return_error", "-sess_out", str(session)]
            if k:
                args += ["-sess_in", str(session)]
            r = subprocess.run(args, input=b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % HOST.encode(),
                               capture_output=True, timeout=30, env=CLIENT_ENV)
            out = r.stdout.decode(errors="replace")
            assert "HTTP/1.1 200" in out, out
            reused.append("Reused," in out)
            tickets.append(out.count("NewSessionTicket"))
        assert reused == [False] + [True] * 7
        if flag == "-tls1_3":
            assert all(tickets), tickets
