"""Traefik's access labels through ``fastlb run`` and the real data plane: a source allow-list that
leaves the client out answers 403, one that lets it in serves it, basic auth asks for credentials,
and an app whose restriction fastlb cannot serve is left out, never served open."""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path

import pytest

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition

from .harness import TimedEmulator, running_fastlb

pytestmark = pytest.mark.timeout(120)

# crypt(3) SHA-512 of "s3cret"; an Apache MD5 ($apr1$) hash, which crypt(3) cannot check.
SHA512 = "$6$fastlbtestsalt1$I.xNS7t6y6pOFBlJ9/GwkcHc.lApBDe9NSAOCHihm3Z10asCTZrwr/Bmk44R1GFfLmU/MrdseQZIwVdRJ3QT3/"
APR1 = "$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"


def ask(port: int, host: str, user: str | None = None, password: str = "") -> tuple[int, str]:
    """One request from 127.0.0.1 to the vhost listener: (status, body)."""
    extra = b""
    if user is not None:
        extra = b"Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n" % (host.encode(), extra))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode().strip()


async def test_traefik_access_labels_are_served_or_the_app_is_left_out(
    emu: TimedEmulator, servers: IdentServers, tmp_path: Path
) -> None:
    vhost = free_port()
    apps = {
        "denied": {"traefik.frontend.whiteList.sourceRange": "10.0.0.0/8"},
        "allowed": {"traefik.frontend.whiteList.sourceRange": "10.0.0.0/8, 127.0.0.0/8"},
        "private": {"traefik.frontend.auth.basic.users": f"alice:{SHA512}"},
        "locked": {"traefik.frontend.auth.basic.users": f"test:{APR1}"},
    }
    tasks = {}
    for name, labels in apps.items():
        labels = {"traefik.tags": "external", "traefik.frontend.rule": f"Host:{name}.example.com", **labels}
        emu.add_app(app_definition(f"/{name}", [free_port()], labels=labels))
        ident = servers.start(name)
        tasks[name] = emu.add_task(f"/{name}", [ident.port], task_id=f"{name}.t1._app.1")
    args = ["--marathon", emu.url, "--http-port", str(vhost)]
    async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
        served = {tasks[n] for n in ("denied", "allowed", "private")}
        await lb.wait_backends(lambda ids: ids == served, "the three apps fastlb can serve as labelled")
        assert await asyncio.to_thread(ask, vhost, "allowed.example.com") == (200, "allowed")
        assert (await asyncio.to_thread(ask, vhost, "denied.example.com"))[0] == 403
        assert (await asyncio.to_thread(ask, vhost, "private.example.com"))[0] == 401
        assert (await asyncio.to_thread(ask, vhost, "private.example.com", "alice", "wrong"))[0] == 401
        assert await asyncio.to_thread(ask, vhost, "private.example.com", "alice", "s3cret") == (200, "private")
        assert (await asyncio.to_thread(ask, vhost, "locked.example.com"))[0] != 200
        assert servers.servers["denied"].accepted == 0 and servers.servers["locked"].accepted == 0
        errors = (await lb.stats())["app_errors"]["marathon"]
        assert set(errors) == {"/locked"}, errors
        assert "traefik.frontend.auth.basic.users" in errors["/locked"] and "$apr1$" in errors["/locked"]
