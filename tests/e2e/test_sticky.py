"""Sticky cookies across a fleet and across restarts: two ``fastlb run`` processes following the same
Marathon emulator (one on 127.0.0.1, one on 127.0.0.2) in front of the same real backends. A cookie
that one issued takes the client to the same backend through the other, and through a restarted one;
with a secret, only fastlbs that share it agree."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition

from .harness import Fastlb, TimedEmulator, running_fastlb

pytestmark = pytest.mark.timeout(180)

COOKIE = "mesosphere_server_id"
NAMES = ("t1", "t2", "t3")


def get(ip: str, port: int, cookie: str | None = None) -> tuple[str, str | None]:
    """One request to <ip>:<port>; returns the name of the task that answered and the sticky cookie
    value the response set (None when it set none)."""
    extra = f"Cookie: {COOKIE}={cookie}\r\n" if cookie else ""
    with socket.create_connection((ip, port), timeout=10) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n{extra}\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:200]
    m = re.search(rb"\r\nSet-Cookie: " + COOKIE.encode() + rb"=([0-9a-f]+); path=/", head, re.IGNORECASE)
    return body.decode().strip(), m.group(1).decode() if m else None


async def issued(ip: str, port: int) -> dict[str, str]:
    """The cookie value the fastlb on <ip> gives each task, from requests without a cookie."""
    cookies: dict[str, str] = {}
    for _ in range(30):
        name, value = await asyncio.to_thread(get, ip, port)
        assert value is not None  # no cookie sent: one is set
        assert cookies.setdefault(name, value) == value  # always the same one for a task
        if len(cookies) == len(NAMES):
            return cookies
    raise AssertionError(f"not every task answered: {cookies}")


async def routes_back(ip: str, port: int, cookies: dict[str, str]) -> None:
    """Each cookie takes the client to its task through the fastlb on <ip>, which sets no new one."""
    for name, value in cookies.items():
        for _ in range(4):
            assert await asyncio.to_thread(get, ip, port, value) == (name, None)


async def until_serving(lb: Fastlb, ip: str, port: int) -> None:
    await lb.wait_backends(lambda ids: len(ids) == len(NAMES), "the three tasks")
    for _ in range(200):
        try:
            await asyncio.to_thread(get, ip, port)
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on {ip}:{port}")


def fleet_args(emu: TimedEmulator, ip: str, *extra: str) -> list[str]:
    return ["--marathon", emu.url, *extra, "--bind-addr", ip]


async def test_a_cookie_routes_the_same_through_every_fastlb_and_after_a_restart(
    emu: TimedEmulator, servers: IdentServers, tmp_path: Path
) -> None:
    port = free_port()
    labels = {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http", "HAPROXY_0_STICKY": "true"}
    emu.add_app(app_definition("/web", [port], labels=labels))
    for name in NAMES:
        ident = servers.start(name)
        emu.add_task("/web", [ident.port], task_id=f"web.{name}._app.1")

    async with running_fastlb(fleet_args(emu, "127.0.0.1"), tmp_path / "a.log") as a:
        await until_serving(a, "127.0.0.1", port)
        cookies = await issued("127.0.0.1", port)
        assert len(set(cookies.values())) == len(NAMES)
        async with running_fastlb(fleet_args(emu, "127.0.0.2"), tmp_path / "b.log") as b:
            await until_serving(b, "127.0.0.2", port)
            # a second instance, with no configuration shared but the app: same values, same routes
            assert await issued("127.0.0.2", port) == cookies
            await routes_back("127.0.0.2", port, cookies)
            await routes_back("127.0.0.1", port, cookies)
    # a restart: a new process gives the same values
    async with running_fastlb(fleet_args(emu, "127.0.0.1"), tmp_path / "a2.log") as a:
        await until_serving(a, "127.0.0.1", port)
        await routes_back("127.0.0.1", port, cookies)
        assert await issued("127.0.0.1", port) == cookies

    # A fleet sharing a secret: its values are its own, the same on each member.
    secret = tmp_path / "cookie-secret"
    secret.write_text("a secret shared by the fleet\n")
    with_secret = ("--cookie-secret-file", str(secret))
    async with (
        running_fastlb(fleet_args(emu, "127.0.0.1", *with_secret), tmp_path / "c.log") as c,
        running_fastlb(fleet_args(emu, "127.0.0.2", *with_secret), tmp_path / "d.log") as d,
    ):
        await until_serving(c, "127.0.0.1", port)
        await until_serving(d, "127.0.0.2", port)
        secret_cookies = await issued("127.0.0.1", port)
        assert set(secret_cookies.values()).isdisjoint(cookies.values())
        await routes_back("127.0.0.2", port, secret_cookies)
        # the default key's value means nothing to them: balanced, and a cookie of theirs set
        name, value = await asyncio.to_thread(get, "127.0.0.2", port, cookies["t1"])
        assert value == secret_cookies[name]
