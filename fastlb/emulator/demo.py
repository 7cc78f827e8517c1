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
import socket
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 65536  # a request head longer than this closes the connection


class Ident:
    """What one backend saw. Written by the servers' thread only; readers see plain ints and floats."""

    __slots__ = ("accepted", "active", "first_accept", "host", "name", "port", "requests", "server")

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

    def start_same_port(self, names: Sequence[str], hosts: Sequence[str]) -> list[Ident]:
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

        server = await asyncio.start_server(
            handle, host, port, reuse_address=True, backlog=1024, limit=_MAX_HEAD
        )
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


def task(
    app_id: str, n: int, host: str, ports: Sequence[int], service_ports: Sequence[int], ip: str | None = None
) -> dict[str, Any]:
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
    from fastlb.emulator.emulator import app_definition

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
    host_like(
        "/demo/bridge", "container/bridge", service_ports["bridge"], {**external, "HAPROXY_0_MODE": "http"}, 2
    )
    host_like(
        "/demo/web",
        "host",
        service_ports["vhost"],
        {**external, "HAPROXY_0_MODE": "http", "HAPROXY_0_VHOST": "web.localhost"},
        2,
    )
    host_like("/demo/tcp", "host", service_ports["tcp"], {**external, "HAPROXY_0_MODE": "tcp"}, 2)

    # IP-per-task: each task has its own loopback IP; the container port is the same for all.
    app = app_definition(
        "/demo/container",
        [service_ports["container"]],
        labels={**external, "HAPROXY_0_MODE": "http"},
        network="container",
        instances=2,
    )
    idents = servers.start_same_port(["demo/container#1", "demo/container#2"], ["127.0.0.2", "127.0.0.3"])
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


class Demo:
    """The running demo: the emulator, the backends, fastlb's controller, and a small HTTP API that
    changes the emulator's tasks (what Marathon's own API would do), all on one event loop."""

    RESTART_GRACE = 1.0  # seconds between a task's KILLING and its KILLED, as a task stopping gracefully

    def __init__(self, servers: IdentServers, emulator: Any) -> None:
        self.servers = servers
        self.emulator = emulator
        self.names: dict[str, str] = {}  # task id → backend name
        self.serial = 100
        self._tasks: set[asyncio.Task[None]] = set()

    def adopt(self, apps: Sequence[dict[str, Any]]) -> None:
        """Learns the backend name of each task of <apps> (as ``sample_apps`` made them)."""
        for app in apps:
            names = sorted(n for n in self.servers.servers if n.startswith(app["id"][1:] + "#"))
            for t, name in zip(app["tasks"], names):
                self.names[t["id"]] = name

    def start_task(self, app_id: str) -> str:
        """A new backend and its task, RUNNING at once (status_update_event)."""
        app = self.emulator.apps[app_id]
        self.serial += 1
        name = f"{app_id.strip('/')}#{self.serial}"
        if app.get("networks", [{}])[0].get("mode") == "container":
            port = app["container"]["portMappings"][0]["containerPort"]
            host = ""
            for n in range(4, 250):
                try:
                    ident = self.servers.start(name, f"127.0.0.{n}", port)
                except OSError:
                    continue
                host = ident.host
                break
            if not host:
                raise OSError("no loopback address free for the container port")
            task_id = self.emulator.add_task(app_id, [], host="127.0.0.1", ip=host)
        else:
            ident = self.servers.start(name)
            task_id = self.emulator.add_task(app_id, [ident.port])
        self.names[task_id] = name
        return task_id

    async def kill_task(self, task_id: str) -> None:
        """KILLING (fastlb drains it), then after a grace the backend stops and TASK_KILLED follows."""
        self.emulator.set_task_state(task_id, "TASK_KILLING")
        await asyncio.sleep(self.RESTART_GRACE)
        name = self.names.pop(task_id, None)
        if name is not None and name in self.servers.servers:
            self.servers.stop(name)
        self.emulator.set_task_state(task_id, "TASK_KILLED")

    async def restart_app(self, app_id: str) -> None:
        """A rolling restart: one new task, then one old task killed, until every task is new."""
        for old in list(self.emulator.tasks.get(app_id, {})):
            self.start_task(app_id)
            await self.kill_task(old)

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def web_app(self) -> Any:
        from aiohttp import web

        def app_id_of(request: web.Request) -> str:
            app_id = "/" + request.match_info["app"].strip("/")
            if app_id not in self.emulator.apps:
                raise web.HTTPNotFound(text=f"no app {app_id}\n")
            return app_id

        async def index(request: web.Request) -> web.Response:
            lines = []
            for app_id in sorted(self.emulator.apps):
                for task_id, t in self.emulator.tasks.get(app_id, {}).items():
                    lines.append(f"{app_id} {task_id} {t['state']} {self.names.get(task_id, '?')}")
            return web.Response(text="\n".join(lines) + "\n")

        async def scale_up(request: web.Request) -> web.Response:
            return web.Response(text=self.start_task(app_id_of(request)) + "\n")

        async def restart(request: web.Request) -> web.Response:
            app_id = app_id_of(request)
            self.background(self.restart_app(app_id))
            return web.Response(text=f"rolling restart of {app_id} started\n")

        async def kill(request: web.Request) -> web.Response:
            task_id = request.match_info["task"]
            if task_id not in self.names:
                raise web.HTTPNotFound(text=f"no task {task_id}\n")
            self.background(self.kill_task(task_id))
            return web.Response(text=f"killing {task_id}\n")

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_post("/apps/{app:.+}/tasks", scale_up)
        app.router.add_post("/apps/{app:.+}/restart", restart)
        app.router.add_post("/tasks/{task}/kill", kill)
        return app

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _instructions(ports: dict[str, int], emulator_url: str, admin: str, control_url: str) -> str:
    def try_(command: str, comment: str) -> str:
        return f"  {command.ljust(52)} # {comment}"

    service = "http://127.0.0.1:{}/".format
    vhost = try_(f"curl -H 'Host: web.localhost' {service(ports['http'])}", "the vhost app by Host")
    lines = [
        "",
        "fastlb demo: fastlb is following a Marathon emulator; every answer names the task that served it.",
        "",
        "Try:",
        try_(f"curl {service(ports['host'])}", "/demo/host: HOST networking"),
        try_(f"curl {service(ports['bridge'])}", "/demo/bridge: BRIDGE networking"),
        try_(f"curl {service(ports['container'])}", "/demo/container: IP-per-task (127.0.0.2, .3)"),
        try_(f"curl {service(ports['vhost'])}", "/demo/web: a vhost app, on its service port"),
        vhost,
        try_(f"curl {service(ports['tcp'])}", "/demo/tcp: tcp mode, bytes passed through"),
        "",
        "Change Marathon's tasks (fastlb follows its event stream):",
        try_(f"curl {control_url}/", "tasks and their states"),
        try_(f"curl -X POST {control_url}/apps/demo/host/tasks", "one more task"),
        try_(f"curl -X POST {control_url}/apps/demo/host/restart", "a rolling restart"),
        try_(f"curl -X POST {control_url}/tasks/TASK_ID/kill", "KILLING (drained), then KILLED"),
        "",
        "fastlb's admin API:",
        try_(f"open http://{admin}/", "the dashboard"),
        try_(f"curl http://{admin}/stats", "services, backends, counters"),
        try_(f"curl http://{admin}/routes", "the table now serving"),
        try_(f"curl {emulator_url}/v2/apps?embed=apps.tasks", "the emulator, as Marathon answers"),
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


async def run_demo(workers: int = 2) -> int:
    from aiohttp import web

    from fastlb import server
    from fastlb.emulator.emulator import MarathonEmulator
    from fastlb.marathon.args import MarathonArgs

    ports = {k: free_port() for k in ("host", "bridge", "container", "vhost", "tcp", "http")}
    admin = f"127.0.0.1:{free_port()}"
    with IdentServers() as servers:
        apps = sample_apps(servers, ports)
        emulator = MarathonEmulator(apps)
        emulator_url = await emulator.start()
        demo = Demo(servers, emulator)
        demo.adopt(apps)
        runner = web.AppRunner(demo.web_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        control_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            marathon = MarathonArgs(
                urls=(emulator_url,),
                groups=("external",),
                bind_addr="127.0.0.1",
                http_port=ports["http"],
                https_port=0,
                appid_port=0,
            )
            options = server.RunOptions(marathon=marathon, workers=workers, admin=admin, drain_timeout=2.0)
            try:
                controller, admin_address, token = server.build(options)
            except server.StartError as e:
                print(f"fastlb demo: {e}", file=sys.stderr)
                return 1
            serving = asyncio.ensure_future(server.serve(controller, admin_address, token))
            deadline = time.monotonic() + 30
            while controller.dataplane.generation < 1 and not serving.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if serving.done():
                return serving.result()
            if controller.dataplane.generation < 1:
                print("fastlb demo: fastlb did not serve the emulator's apps within 30 s", file=sys.stderr)
                controller.request_stop()
                await serving
                return 1
            print(
                _instructions(ports, emulator_url, admin_address, f"http://127.0.0.1:{control_port}"),
                flush=True,
            )
            return await serving
        finally:
            await demo.close()
            await runner.cleanup()
            await emulator.stop()


def main() -> int:
    """``fastlb demo``: runs until SIGINT or SIGTERM, then cleans up; returns the exit status."""
    from fastlb import logs

    logs.setup("info")
    logging.getLogger("fastlb.marathon").setLevel(logging.WARNING)
    try:
        import uvloop

        return uvloop.run(run_demo())
    except ImportError:
        return asyncio.run(run_demo())
