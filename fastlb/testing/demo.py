"""``fastlb demo``: the Marathon emulator with sample apps, real loopback backends for their tasks, and
fastlb following the emulator, in one process, until Ctrl-C.

The sample apps cover what fastlb does with Marathon: a HOST app, a BRIDGE app and a container
(IP-per-task) app on their own service ports, a vhost app on the shared http port, and a tcp app.
Every task is a real ``IdentServers`` backend that answers each HTTP request with its task's name, so
that ``curl`` shows which task served it. The emulator's API is live: the printed lines say how to
add and kill tasks while fastlb follows.

``IdentServers`` is also what the end-to-end tests and the Marathon benchmarks use for backends: it
binds any loopback address (IP-per-task tasks have their own 127.0.0.x) and records when each backend
accepted its first connection (``time.monotonic``, a clock every process on the machine shares).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 65536


class Ident:
    """What one backend saw. Written by the servers' thread only; readers see plain ints and floats."""

    __slots__ = ("name", "host", "port", "accepted", "active", "requests", "first_accept", "server")

    def __init__(self, name: str, host: str, port: int, server: asyncio.AbstractServer) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.accepted = 0
        self.active = 0
        self.requests = 0
        self.first_accept: float | None = None  # time.monotonic() of the first accepted connection
        self.server = server

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class IdentServers:
    """HTTP/1.1 backends on loopback, all run by one thread with its own event loop. Each answers
    every request (keep-alive unless asked to close) with ``200`` and the body ``<name>\\n``.
    A context manager; ``close`` closes every listener and connection."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ident-servers", daemon=True)
        self._thread.start()
        self._writers: set[asyncio.StreamWriter] = set()
        self.servers: dict[str, Ident] = {}

    def __enter__(self) -> IdentServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(30)

    def start(self, name: str, host: str = "127.0.0.1", port: int = 0) -> Ident:
        """A backend named <name> listening on <host>:<port> (0: a free port). OSError if it cannot bind."""
        return self._call(self._start(name, host, port))  # type: ignore[no-any-return]

    def start_pair(self, names: Sequence[str], hosts: Sequence[str]) -> list[Ident]:
        """Backends on the same free port of each of <hosts> (IP-per-task: one container port, one IP
        per task). Tries other ports when one is taken on some host."""
        for _ in range(50):
            with socket.socket() as probe:
                probe.bind((hosts[0], 0))
                port = probe.getsockname()[1]
            started: list[Ident] = []
            try:
                for name, host in zip(names, hosts):
                    started.append(self.start(name, host, port))
            except OSError:
                for ident in started:
                    self.stop(ident.name)
                continue
            return started
        raise OSError("no port free on every host")

    def stop(self, name: str) -> None:
        """Closes the listener of <name> (its open connections carry on)."""
        ident = self.servers.pop(name)
        self._call(self._stop(ident))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self, name: str, host: str, port: int) -> Ident:
        holder: list[Ident] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(holder[0], reader, writer)

        server = await asyncio.start_server(handle, host, port, reuse_address=True, backlog=1024)
        bound = server.sockets[0].getsockname()
        ident = Ident(name, bound[0], bound[1], server)
        holder.append(ident)
        self.servers[name] = ident
        return ident

    async def _stop(self, ident: Ident) -> None:
        ident.server.close()
        await ident.server.wait_closed()

    async def _close(self) -> None:
        for ident in list(self.servers.values()):
            ident.server.close()
        for writer in list(self._writers):
            writer.close()
        for ident in list(self.servers.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ident.server.wait_closed(), 5)
        self.servers.clear()

    async def _serve(self, ident: Ident, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if ident.first_accept is None:
            ident.first_accept = time.monotonic()
        ident.accepted += 1
        ident.active += 1
        self._writers.add(writer)
        body = ident.name.encode() + b"\n"
        try:
            while True:
                try:
                    head = await reader.readuntil(_HEAD_END)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                ident.requests += 1
                lower = head.lower()
                close = b"connection: close" in lower or head.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0")
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s"
                    % (len(body), b"Connection: close\r\n" if close else b"", body)
                )
                await writer.drain()
                if close:
                    return
        except ConnectionError:
            return
        finally:
            ident.active -= 1
            self._writers.discard(writer)
            writer.close()


# -- the demo --------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def task(app_id: str, n: int, host: str, ports: Sequence[int], service_ports: Sequence[int],
         ip: str | None = None) -> dict[str, Any]:
    """A RUNNING task as ``/v2/apps?embed=apps.tasks`` lists it."""
    stamp = "2026-01-01T00:00:02.000Z"
    return {
        "appId": app_id,
        "host": host,
        "id": f"{app_id.strip('/').replace('/', '_')}.instance-{n:08d}-0000-4000-8000-000000000000._app.1",
        "ipAddresses": [{"ipAddress": ip or host, "protocol": "IPv4"}],
        "ports": list(ports),
        "servicePorts": list(service_ports),
        "slaveId": f"demo-agent-S{n}",
        "state": "TASK_RUNNING",
        "stagedAt": stamp,
        "startedAt": stamp,
        "version": "2026-01-01T00:00:00.000Z",
        "healthCheckResults": [],
    }


def sample_apps(servers: IdentServers, service_ports: dict[str, int]) -> list[dict[str, Any]]:
    """The demo's apps with their tasks, each task a backend started on <servers>.

    <service_ports>: "host", "bridge", "container", "vhost", "tcp" → the service port of that app."""
    from fastlb.testing.emulator import app_definition  # noqa: PLC0415 (aiohttp: only where it runs)

    apps: list[dict[str, Any]] = []

    def host_like(app_id: str, network: str, port: int, labels: dict[str, str], count: int) -> None:
        app = app_definition(app_id, [port], labels=labels, network=network, instances=count)
        tasks = []
        for n in range(1, count + 1):
            ident = servers.start(f"{app_id.strip('/')}#{n}")
            tasks.append(task(app["id"], len(apps) * 10 + n, "127.0.0.1", [ident.port], [port]))
        app["tasks"] = tasks
        apps.append(app)

    external = {"HAPROXY_GROUP": "external"}
    host_like("/demo/host", "host", service_ports["host"], {**external, "HAPROXY_0_MODE": "http"}, 2)
    host_like("/demo/bridge", "container/bridge", service_ports["bridge"], {**external, "HAPROXY_0_MODE": "http"}, 2)
    host_like(
        "/demo/web", "host", service_ports["vhost"],
        {**external, "HAPROXY_0_MODE": "http", "HAPROXY_0_VHOST": "web.localhost"}, 2,
    )
    host_like("/demo/tcp", "host", service_ports["tcp"], {**external, "HAPROXY_0_MODE": "tcp"}, 2)

    # IP-per-task: each task has its own loopback IP; the container port is the same for all.
    app = app_definition(
        "/demo/container", [service_ports["container"]], labels={**external, "HAPROXY_0_MODE": "http"},
        network="container", instances=2,
    )
    idents = servers.start_pair(["demo/container#1", "demo/container#2"], ["127.0.0.2", "127.0.0.3"])
    mapping = app["container"]["portMappings"][0]
    mapping["containerPort"] = idents[0].port
    mapping.pop("hostPort", None)
    app["networks"] = [{"mode": "container", "name": "demo-overlay"}]
    app["tasks"] = [
        task(app["id"], 40 + n, "127.0.0.1", [], [service_ports["container"]], ip=ident.host)
        for n, ident in enumerate(idents, 1)
    ]
    apps.append(app)
    return apps
