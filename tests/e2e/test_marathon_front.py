"""Traefik's frontend header and redirect labels through ``fastlb run`` and the real data plane: the
backend sees the request fields the app sets (and not those it removes), the client sees the response
fields, Strict-Transport-Security only where forced, the redirects' status and Location, and an app
whose header value or regex fastlb refuses is left out while the others are served."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path

import pytest

from fastlb.emulator.demo import free_port
from fastlb.emulator.emulator import app_definition
from fastlb.emulator.http_backends import HttpBackend

from .harness import TimedEmulator, running_fastlb

pytestmark = pytest.mark.timeout(120)
T = "traefik.frontend."


def ask(port: int, host: str, path: str = "/", extra: str = "") -> tuple[int, dict[str, list[str]], bytes]:
    """One request to the vhost listener: (status, response fields by lower-case name, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split(" ", 2)[1]), fields, body


def seen(body: bytes) -> dict[str, list[str]]:
    """The request fields the backend got (HttpBackend echoes them)."""
    out: dict[str, list[str]] = {}
    for name, value in json.loads(body)["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


async def test_traefik_header_and_redirect_labels_are_served(emu: TimedEmulator, tmp_path: Path) -> None:
    vhost = free_port()
    apps = {
        "headers": {
            T + "headers.customRequestHeaders": "X-Env:prod||X-Secret:",
            T + "headers.customResponseHeaders": "Server:fastlb||X-Powered-By:",
            T + "headers.STSSeconds": "600",  # not forced: plain HTTP, so no header
        },
        "sts": {T + "headers.STSSeconds": "31536000", T + "headers.STSIncludeSubdomains": "true",
                T + "headers.forceSTSHeader": "true"},
        "https": {T + "redirect.entryPoint": "https"},
        "moved": {T + "redirect.entryPoint": "https", T + "redirect.permanent": "true"},
        "regex": {T + "redirect.regex": "^http://([^/]+)/old/(.*)$", T + "redirect.replacement": "https://$1/new/$2"},
        "badvalue": {T + "headers.customRequestHeaders": "X-A:ok\r\nInjected: 1"},
        "badregex": {T + "redirect.regex": "^http://(", T + "redirect.replacement": "https://$1"},
        "goregex": {T + "redirect.regex": r"^http://(\d+)", T + "redirect.replacement": "x"},
        "loop": {T + "redirect.entryPoint": "http"},
    }
    with contextlib.ExitStack() as stack:
        tasks = {}
        backends = {}
        for name, labels in apps.items():
            labels = {"traefik.tags": "external", "traefik.frontend.rule": f"Host:{name}.example.com", **labels}
            emu.add_app(app_definition(f"/{name}", [free_port()], labels=labels))
            backends[name] = stack.enter_context(
                HttpBackend(name, extra_headers=(("Server", "backend"), ("X-Powered-By", "php"),
                                                 ("Strict-Transport-Security", "max-age=1")))
            )
            port = int(backends[name].address.rsplit(":", 1)[1])
            tasks[name] = emu.add_task(f"/{name}", [port], task_id=f"{name}.t1._app.1")
        args = ["--marathon", emu.url, "--http-port", str(vhost)]
        async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
            served = {tasks[n] for n in ("headers", "sts", "https", "moved", "regex")}
            await lb.wait_backends(lambda ids: ids == served, "the apps fastlb can serve as labelled")

            # the fields set and removed, both ways
            status, fields, body = await asyncio.to_thread(
                ask, vhost, "headers.example.com", extra="X-Env: dev\r\nX-Secret: s3cret\r\nX-Other: 1\r\n")
            assert status == 200
            got = seen(body)
            assert got["x-env"] == ["prod"] and "x-secret" not in got and got["x-other"] == ["1"]
            assert fields["server"] == ["fastlb"] and "x-powered-by" not in fields
            assert fields["strict-transport-security"] == ["max-age=1"]  # the backend's: not over TLS, not forced

            # STS forced: fastlb's replaces the backend's
            status, fields, _ = await asyncio.to_thread(ask, vhost, "sts.example.com")
            assert status == 200
            assert fields["strict-transport-security"] == ["max-age=31536000; includeSubDomains"]

            # redirects: the entry point (302, 301 permanent), the regex with its groups, or served
            status, fields, _ = await asyncio.to_thread(ask, vhost, "https.example.com", "/a?b=1")
            assert (status, fields["location"]) == (302, ["https://https.example.com/a?b=1"])
            status, fields, _ = await asyncio.to_thread(ask, vhost, "moved.example.com", "/a")
            assert (status, fields["location"]) == (301, ["https://moved.example.com/a"])
            status, fields, _ = await asyncio.to_thread(ask, vhost, "regex.example.com", "/old/x?y=1")
            assert (status, fields["location"]) == (302, ["https://regex.example.com/new/x?y=1"])
            status, _, body = await asyncio.to_thread(ask, vhost, "regex.example.com", "/other")
            assert status == 200 and json.loads(body)["path"] == "/other"
            assert backends["https"].requests == [] and backends["moved"].requests == []
            assert backends["regex"].requests == [("GET", "/other")]

            # refused apps: left out with their reason, the others served
            errors = (await lb.stats())["app_errors"]["marathon"]
            assert set(errors) == {"/badvalue", "/badregex", "/goregex", "/loop"}, errors
            assert "customRequestHeaders" in errors["/badvalue"] and "line break" in errors["/badvalue"]
            assert "redirect.regex" in errors["/badregex"] and "POSIX" in errors["/badregex"]
            assert "Go (RE2)" in errors["/goregex"]
            assert "redirect.entryPoint" in errors["/loop"] and "loop" in errors["/loop"]
            for name in ("badvalue", "badregex", "goregex", "loop"):
                assert (await asyncio.to_thread(ask, vhost, f"{name}.example.com"))[0] == 503
                assert backends[name].accepted == 0
