"""The ticket key file (HAProxy's tls-ticket-keys format) and the keys fastlb uses when it has none:
which keys open tickets and which seals, what a bad file says, rotation; and through ``fastlb run``,
two processes given one key file resuming each other's sessions, and the file read again on SIGHUP."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import ssl
from pathlib import Path

import pytest

from fastlb import config, tickets
from fastlb.emulator.http_backends import HttpBackend
from tests.e2e.harness import running_fastlb, until
from tests.e2e.test_marathon_tls import ports
from tests.l7.conftest import Reader, get

from . import conftest as tlsconf

HOST = "www.example.com"


def _line(key: bytes) -> str:
    return base64.b64encode(key).decode() + "\n"


def test_the_last_three_keys_open_and_the_one_before_the_last_seals(tmp_path: Path) -> None:
    keys = [os.urandom(80) for _ in range(5)]
    path = tmp_path / "keys"
    path.write_text("# rotated daily\n\n" + "".join(_line(k) for k in keys))
    assert tickets.read_key_file(str(path)) == (keys[2:], 1)
    path.write_text(_line(keys[0]) + _line(keys[1]))
    assert tickets.read_key_file(str(path)) == (keys[:2], 0)
    path.write_text(_line(keys[0]))
    assert tickets.read_key_file(str(path)) == ([keys[0]], 0)
    short = [os.urandom(48) for _ in range(3)]
    path.write_text("".join(_line(k) for k in short))
    assert tickets.read_key_file(str(path)) == (short, 1)


@pytest.mark.parametrize(("text", "words"), [
    ("", "no key in it"),
    ("# only a comment\n", "no key in it"),
    ("not base64!\n", ":1: not base64"),
    (_line(b"x" * 64), ":1: a key is 48 or 80 bytes"),
    (_line(b"x" * 80) + _line(b"y" * 48), ":2: 48 bytes where the first key has 80"),
])
def test_a_bad_key_file_says_what_and_where(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(tickets.KeyFileError, match=words) as e:
        tickets.read_key_file(str(path))
    assert str(path) in str(e.value)
    with pytest.raises(tickets.KeyFileError, match="No such file"):
        tickets.read_key_file(str(tmp_path / "missing"))


def test_random_keys_rotate_and_keep_the_two_before() -> None:
    now = [0.0]
    keys = tickets.TicketKeys(None, clock=lambda: now[0])
    assert keys.refresh() and len(keys.keys) == 1 and keys.enc == 0
    first = keys.keys[0]
    now[0] = tickets.ROTATE_S - 1
    assert not keys.refresh()
    seen = [first]
    for _ in range(3):
        now[0] += tickets.ROTATE_S
        assert keys.refresh()
        assert keys.enc == 0 and keys.keys[0] not in seen and keys.keys[1:] == seen[:2]
        seen.insert(0, keys.keys[0])
    assert len(keys.keys) == tickets.KEYS


def test_a_key_file_read_again_when_it_changes_and_its_last_good_keys_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    a, b = os.urandom(80), os.urandom(80)
    path.write_text(_line(a))
    keys = tickets.TicketKeys(str(path))
    assert keys.refresh() and keys.keys == [a]
    assert not keys.refresh()  # unchanged: not read again
    path.write_text(_line(a) + _line(b))
    assert keys.refresh() and keys.keys == [a, b] and keys.enc == 0
    path.write_text("garbage\n")
    assert not keys.refresh() and keys.keys == [a, b]
    assert keys.problem is not None and "not base64" in keys.problem
    path.unlink()
    assert not keys.refresh() and keys.keys == [a, b] and "No such file" in (keys.problem or "")
    path.write_text(_line(b))
    assert keys.refresh() and keys.keys == [b] and keys.problem is None


def test_the_static_file_checks_its_key_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(_line(os.urandom(80)))
    bad.write_text(_line(os.urandom(20)))
    base = '[https]\nlisten = "127.0.0.1:8443"\nticket_keys = "{}"\n'
    loaded = config.parse(base.format(good))
    assert loaded.ticket_keys == str(good)
    with pytest.raises(config.ConfigError) as e:
        config.parse(base.format(bad))
    assert f"https.ticket_keys: {bad}:1: a key is 48 or 80 bytes" in str(e.value)


def _resumed(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None) -> tuple[bool, ssl.SSLSession]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=HOST, session=session) as s:
        s.sendall(get("/", host=HOST))
        assert Reader(s).response().status == 200
        return s.session_reused, s.session


@pytest.mark.timeout(180)
async def test_two_fastlb_sharing_a_key_file_resume_each_others_sessions(
    tmp_path: Path, ca: tlsconf.TestCA
) -> None:
    keys = tmp_path / "ticket.keys"
    keys.write_text(_line(os.urandom(80)))
    site = tmp_path / "site.pem"
    site.write_bytes(ca.leaf(HOST))
    one_port, two_port = ports(2)
    with HttpBackend("be") as be:
        for name, port in (("one", one_port), ("two", two_port)):
            (tmp_path / f"{name}.toml").write_text(f"""
[https]
listen = "127.0.0.1:{port}"
certs = ["{site}"]
{'ticket_keys = "' + str(keys) + '"' if name == "one" else ""}

[[services]]
name = "web"
vhosts = ["{HOST}"]
backends = ["{be.address}"]
""")
        one_args = ["--config", str(tmp_path / "one.toml")]  # the file's [https] ticket_keys
        two_args = ["--config", str(tmp_path / "two.toml"), "--tls-ticket-keys", str(keys)]  # the flag
        async with running_fastlb(one_args, tmp_path / "one.log") as one, \
                running_fastlb(two_args, tmp_path / "two.log") as two:
            ctx = tlsconf.client_context(ca)  # one client context: Python resumes a session in its own only
            _, session = await asyncio.to_thread(_resumed, one_port, ctx, None)
            reused, session = await asyncio.to_thread(_resumed, two_port, ctx, session)
            assert reused
            # a new key appended on both: the one before it (the old one) still seals, the new one opens
            keys.write_text(keys.read_text() + _line(os.urandom(80)))
            for lb in (one, two):
                assert lb.proc is not None
                lb.proc.send_signal(signal.SIGHUP)
            for lb in (one, two):
                await until(lambda lb=lb: lb.log().count("tls_ticket_keys") >= 2, "the key file read again")
            reused, session = await asyncio.to_thread(_resumed, one_port, ctx, session)
            assert reused
            keys.write_text("broken\n")
            assert two.proc is not None
            two.proc.send_signal(signal.SIGHUP)
            await until(lambda: "tls_rejected" in two.log(), "the bad key file said")
            assert "not base64" in two.log() and "last good ticket keys" in two.log()
            reused, _ = await asyncio.to_thread(_resumed, two_port, ctx, session)
            assert reused  # the last good keys still serve
            stats = await two.stats()
            tls = next(x for x in stats["listeners"] if x["address"] == f"127.0.0.1:{two_port}")["tls"]
            assert tls["resumed"] >= 2
