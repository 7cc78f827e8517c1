"""Traefik's access labels through ``fastlb run`` and the real data plane: a source allow-list that
leaves the client out answers 403, one that lets it in serves it, basic auth asks for credentials,
and an app whose restriction fastlb cannot serve is left out, never served open."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import subprocess
from pathlib import Path

import pytest

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition
from fastlb.emulator.http_backends import HttpBackend

from .harness import TimedEmulator, running_fastlb

pytestmark = pytest.mark.timeout(120)

# crypt(3) SHA-512 of "s3cret"; htpasswd's Apache MD5 ($apr1$, made by OpenSSL as htpasswd -m does) and
# {SHA} (htpasswd -s) of "s3cret".
SHA512 = "$6$fastlbtestsalt1$I.xNS7t6y6pOFBlJ9/GwkcHc.lApBDe9NSAOCHihm3Z10asCTZrwr/Bmk44R1GFfLmU/MrdseQZIwVdRJ3QT3/"
APR1 = subprocess.run(["openssl", "passwd", "-apr1", "-salt", "e2esalt", "s3cret"], capture_output=True,
                      check=True).stdout.decode().strip()
SHA1 = "{SHA}" + base64.b64encode(hashlib.sha1(b"s3cret").digest()).decode()


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
        "htpasswd": {"traefik.frontend.auth.basic.users": f"md5:{APR1}, sha:{SHA1}"},
        "locked": {"traefik.frontend.auth.basic.users": "test:s3cret"},  # plain text: refused
    }
    tasks = {}
    for name, labels in apps.items():
        labels = {"traefik.tags": "external", "traefik.frontend.rule": f"Host:{name}.example.com", **labels}
        emu.add_app(app_definition(f"/{name}", [free_port()], labels=labels))
        ident = servers.start(name)
        tasks[name] = emu.add_task(f"/{name}", [ident.port], task_id=f"{name}.t1._app.1")
    args = ["--marathon", emu.url, "--http-port", str(vhost)]
    async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
        served = {tasks[n] for n in ("denied", "allowed", "private", "htpasswd")}
        await lb.wait_backends(lambda ids: ids == served, "the four apps fastlb can serve as labelled")
        assert await asyncio.to_thread(ask, vhost, "allowed.example.com") == (200, "allowed")
        assert (await asyncio.to_thread(ask, vhost, "denied.example.com"))[0] == 403
        assert (await asyncio.to_thread(ask, vhost, "private.example.com"))[0] == 401
        assert (await asyncio.to_thread(ask, vhost, "private.example.com", "alice", "wrong"))[0] == 401
        assert await asyncio.to_thread(ask, vhost, "private.example.com", "alice", "s3cret") == (200, "private")
        assert (await asyncio.to_thread(ask, vhost, "htpasswd.example.com"))[0] == 401
        for user in ("md5", "sha"):
            assert (await asyncio.to_thread(ask, vhost, "htpasswd.example.com", user, "s3cre"))[0] == 401
            assert await asyncio.to_thread(ask, vhost, "htpasswd.example.com", user, "s3cret") == (200, "htpasswd")
        assert (await asyncio.to_thread(ask, vhost, "locked.example.com"))[0] != 200
        assert servers.servers["denied"].accepted == 0 and servers.servers["locked"].accepted == 0
        errors = (await lb.stats())["app_errors"]["marathon"]
        assert set(errors) == {"/locked"}, errors
        assert "traefik.frontend.auth.basic.users" in errors["/locked"] and "plain-text" in errors["/locked"]


def ask_headers(port: int, host: str, extra: str = "") -> tuple[int, dict[str, list[str]]]:
    """One request from 127.0.0.1 to the vhost listener, to an HttpBackend: (status, the headers the
    backend got, by lower-case name; {} when fastlb answered itself)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    seen: dict[str, list[str]] = {}
    if status == 200:
        for name, value in json.loads(body)["headers"]:
            seen.setdefault(name.lower(), []).append(value)
    return status, seen


async def test_traefik_remove_header_keeps_the_credentials_from_the_backend(
    emu: TimedEmulator, tmp_path: Path
) -> None:
    vhost = free_port()
    creds = "Authorization: Basic " + base64.b64encode(b"alice:s3cret").decode() + "\r\n"
    apps = {
        "kept": {"traefik.frontend.auth.basic.users": f"alice:{APR1}"},
        "removed": {"traefik.frontend.auth.basic.users": f"alice:{APR1}", "traefik.frontend.auth.removeHeader": "true"},
    }
    with HttpBackend("kept") as kept, HttpBackend("removed") as removed:
        tasks = {}
        for name, backend in (("kept", kept), ("removed", removed)):
            labels = {"traefik.tags": "external", "traefik.frontend.rule": f"Host:{name}.example.com", **apps[name]}
            emu.add_app(app_definition(f"/{name}", [free_port()], labels=labels))
            port = int(backend.address.rsplit(":", 1)[1])
            tasks[name] = emu.add_task(f"/{name}", [port], task_id=f"{name}.t1._app.1")
        args = ["--marathon", emu.url, "--http-port", str(vhost)]
        async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
            await lb.wait_backends(lambda ids: ids == set(tasks.values()), "both apps")
            for name in apps:
                assert (await asyncio.to_thread(ask_headers, vhost, f"{name}.example.com"))[0] == 401
            status, seen = await asyncio.to_thread(ask_headers, vhost, "kept.example.com", creds)
            assert status == 200 and seen["authorization"] == [creds.split(": ", 1)[1].strip()]
            status, seen = await asyncio.to_thread(ask_headers, vhost, "removed.example.com", creds)
            assert status == 200 and "authorization" not in seen and seen["host"] == ["removed.example.com"]
            assert (await lb.stats())["app_errors"]["marathon"] == {}
        assert len(removed.requests) == 1 and len(kept.requests) == 1


async def test_traefik_use_x_forwarded_for_admits_a_listed_forwarded_address(
    emu: TimedEmulator, tmp_path: Path
) -> None:
    """Requests come from 127.0.0.1, outside 10.0.0.0/8: with useXForwardedFor an X-Forwarded-For
    address inside the range admits them, as in Traefik; without it they are refused whatever it says."""
    vhost = free_port()
    ranges = {"traefik.frontend.whiteList.sourceRange": "10.0.0.0/8"}
    apps = {"xff": {**ranges, "traefik.frontend.whiteList.useXForwardedFor": "true"}, "peer": ranges}
    with HttpBackend("xff") as xff, HttpBackend("peer") as peer:
        tasks = {}
        for name, backend in (("xff", xff), ("peer", peer)):
            labels = {"traefik.tags": "external", "traefik.frontend.rule": f"Host:{name}.example.com", **apps[name]}
            emu.add_app(app_definition(f"/{name}", [free_port()], labels=labels))
            port = int(backend.address.rsplit(":", 1)[1])
            tasks[name] = emu.add_task(f"/{name}", [port], task_id=f"{name}.t1._app.1")
        args = ["--marathon", emu.url, "--http-port", str(vhost)]
        async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
            await lb.wait_backends(lambda ids: ids == set(tasks.values()), "both apps")
            inside, outside = "X-Forwarded-For: 192.168.1.1, 10.2.3.4\r\n", "X-Forwarded-For: 192.168.1.1\r\n"
            status, seen = await asyncio.to_thread(ask_headers, vhost, "xff.example.com", inside)
            assert status == 200 and seen["x-forwarded-for"] == ["192.168.1.1, 10.2.3.4, 127.0.0.1"]
            assert (await asyncio.to_thread(ask_headers, vhost, "xff.example.com", outside))[0] == 403
            assert (await asyncio.to_thread(ask_headers, vhost, "xff.example.com"))[0] == 403
            assert (await asyncio.to_thread(ask_headers, vhost, "peer.example.com", inside))[0] == 403
            assert (await lb.stats())["app_errors"]["marathon"] == {}
        assert len(xff.requests) == 1 and len(peer.requests) == 0
