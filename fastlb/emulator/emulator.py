"""A Marathon emulator: the part of Marathon's HTTP API and event stream that load balancers read.

It answers in Marathon's own formats (1.8+ output; see docs/internals/marathon-sse.md):
- ``GET /v2/apps``: ``embed`` is repeated (``embed=apps.tasks&embed=apps.readiness``); one value holding a
  comma is one unknown embed, ignored, as Marathon does. ``tasks`` implies ``deployments``; ``counts`` and
  ``deployments`` are always added. ``id=`` keeps the apps whose id contains the value.
- ``GET /v2/apps/<id>``: ``{"app": ...}`` with tasks, counts and deployments; 404 ``{"message": ...}``.
- ``GET /v2/deployments``, ``GET /v2/leader``, ``GET /ping``.
- The write calls of zdd and of most deploy tools, each answered at once and carried out by a
  deployment that runs on its own (``deployments`` lists it meanwhile), with the events Marathon emits:
  ``POST /v2/apps`` (201 + the app, ``Location``; 409 for an id in use, 422 for a service port in
  use; a service port 0 gets a free one from 10000), ``PUT /v2/apps/<id>`` (fields given replace
  theirs: ``{"instances": N}`` scales; 200 ``{"version", "deploymentId"}``; 201 + the app when it
  creates one; 409 while a deployment holds the app, unless ``?force=true``),
  ``POST /v2/tasks/delete`` (body ``{"ids": [...]}``; with ``?scale=true`` the apps shrink and the
  answer is ``{"version", "deploymentId"}``, else the tasks are replaced and the answer is
  ``{"tasks": [...]}``) and ``DELETE /v2/apps/<id>`` (200 ``{"version", "deploymentId"}``; the app
  is gone at once, its tasks are killed, then ``app_terminated_event``). A task is started by
  ``launcher(app, task_id)``, which returns its host ports (a test starts a real backend there; the
  default makes up ports that nothing listens on), and ``on_task_end(task)`` is told of each task the
  API ended. Tasks go STAGING then RUNNING, and KILLING then KILLED (``kill_delay`` seconds apart).
- ``GET /v2/events``: 405 unless one Accept value is exactly ``text/event-stream``; else 200
  ``text/event-stream;charset=utf-8`` with ``Connection: close`` and no chunking, ``event_stream_attached``
  first (sent to every subscriber), a bare CRLF heartbeat every ``heartbeat_interval`` seconds, the
  ``event_type`` filter, and each event framed ``event: X\\r\\ndata: {...}\\r\\n\\r\\n``.

A Python API changes apps and tasks and emits the events Marathon would (status_update_event,
instance_changed_event, api_post_event, app_terminated_event, deployment_*), and injects faults:
standby mode (302 to the leader for the stream, API proxied like Marathon's standbys), HTTP errors on
demand, dropped streams, stalled streams (no heartbeat, no event), raw bytes (garbage) and basic auth.

Run alone: ``python -m fastlb.emulator.emulator --port 8080 --apps FILE`` (FILE: ``{"apps": [...]}``
with tasks embedded, as ``GET /v2/apps?embed=apps.tasks`` answers; default: the packaged demo apps).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import ClientSession, web

log = logging.getLogger("fastlb.emulator.emulator")

KNOWN_EMBEDS = {"tasks", "deployments", "readiness", "counts", "lastTaskFailure", "taskStats", "failures"}
TERMINAL_STATES = {
    "TASK_KILLED",
    "TASK_FAILED",
    "TASK_FINISHED",
    "TASK_ERROR",
    "TASK_GONE",
    "TASK_DROPPED",
    "TASK_LOST",
}
CONDITIONS = {
    "TASK_STAGING": "Staging",
    "TASK_STARTING": "Starting",
    "TASK_RUNNING": "Running",
    "TASK_KILLING": "Killing",
    "TASK_KILLED": "Killed",
    "TASK_FAILED": "Failed",
    "TASK_FINISHED": "Finished",
    "TASK_ERROR": "Error",
    "TASK_UNREACHABLE": "Unreachable",
    "TASK_GONE": "Gone",
    "TASK_DROPPED": "Dropped",
    "TASK_UNKNOWN": "Unknown",
    "TASK_LOST": "Unreachable",
}
_DROP = object()
SERVICE_PORTS = range(10000, 20001)  # where Marathon picks service ports for a 0 (its default range)

# <launcher>(app, task id) -> the host ports of a new task; <on_task_end>(task) after the API ended one.
Launcher = Callable[[dict[str, Any], str], Sequence[int]]
TaskEnded = Callable[[dict[str, Any]], None]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_fixture(name: str) -> Any:
    """A JSON file packaged in ``fastlb/emulator/fixtures``."""
    return json.loads(resources.files("fastlb.emulator").joinpath("fixtures", name).read_text("utf-8"))


def app_definition(
    app_id: str,
    service_ports: Sequence[int] = (10000,),
    *,
    labels: dict[str, str] | None = None,
    network: str = "host",
    instances: int = 1,
    port_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A Marathon 1.5+ app definition as ``/v2/apps`` returns it (without the embedded fields).

    ``network``: "host" (portDefinitions) or "container/bridge" (container.portMappings)."""
    names = list(port_names) if port_names else [f"p{i}" for i in range(len(service_ports))]
    version = now_iso()
    app: dict[str, Any] = {
        "id": "/" + app_id.strip("/"),
        "cmd": "sleep 1000",
        "cpus": 0.1,
        "mem": 32,
        "disk": 0,
        "instances": instances,
        "labels": dict(labels if labels is not None else {"HAPROXY_GROUP": "external"}),
        "healthChecks": [],
        "readinessChecks": [],
        "networks": [{"mode": network}],
        "requirePorts": False,
        "upgradeStrategy": {"maximumOverCapacity": 1, "minimumHealthCapacity": 1},
        "version": version,
        "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": version},
    }
    if network == "host":
        app["portDefinitions"] = [
            {"port": p, "name": n, "protocol": "tcp", "labels": {}} for p, n in zip(service_ports, names)
        ]
    else:
        app["container"] = {
            "type": "DOCKER",
            "docker": {"image": "example/app:1", "forcePullImage": False, "parameters": []},
            "volumes": [],
            "portMappings": [
                {
                    "containerPort": 8080 + i,
                    "hostPort": 0,
                    "servicePort": p,
                    "name": n,
                    "protocol": "tcp",
                    "labels": {},
                }
                for i, (p, n) in enumerate(zip(service_ports, names))
            ],
        }
    return app


def service_ports_of(app: dict[str, Any]) -> list[int]:
    """An app's service ports, from its portDefinitions, else its container's port mappings."""
    if app.get("portDefinitions"):
        return [int(d.get("port") or 0) for d in app["portDefinitions"]]
    container = app.get("container") or {}
    mappings = container.get("portMappings") or (container.get("docker") or {}).get("portMappings") or []
    return [int(m.get("servicePort") or 0) for m in mappings]


class _CloseDelimitedResponse(web.StreamResponse):
    # Marathon's (Jetty's) event stream is neither chunked nor sized: the body ends when the socket
    # closes. aiohttp chunks every unsized HTTP/1.1 body unless the length check is off, as its own
    # WebSocketResponse does.
    _length_check = False


class _Subscriber:
    __slots__ = ("queue", "types", "remote")

    def __init__(self, types: frozenset[str], remote: str) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.types = types
        self.remote = remote


class MarathonEmulator:
    """One Marathon member. ``await start()`` binds it (port 0: any free port) and returns its URL."""

    def __init__(
        self,
        apps: Iterable[dict[str, Any]] | None = None,
        *,
        heartbeat_interval: float = 10.0,
        leader_url: str | None = None,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.apps: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self.readiness: dict[str, list[dict[str, Any]]] = {}  # app id → readinessCheckResults
        self.deployments: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path?query, headers)
        self.url = ""
        self.standby_of: str | None = leader_url
        self.fail_status: int | None = None
        self.fail_events = True
        self.stalled = False
        self.snapshot_delay = 0.0  # /v2/apps: seconds between taking the snapshot and sending it
        self.credentials: str | None = None  # "Basic ..." expected, when auth is required
        self.streams_opened = 0
        self.launcher: Launcher = self._made_up_ports
        self.on_task_end: TaskEnded | None = None
        self.launch_delay = 0.0  # seconds between a deployment's start and its first task
        self.kill_delay = 0.0  # seconds a killed task stays KILLING
        self._subscribers: set[_Subscriber] = set()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._seq = 0
        self._next_host_port = 31000
        self._work: set[asyncio.Task[None]] = set()
        for app in apps or ():
            self.load_app(app)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Listen on ``host:port`` (https with ``ssl_context``); returns the base URL."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/ping", self._ping)
        app.router.add_get("/v2/leader", self._leader)
        app.router.add_get("/v2/apps", self._apps)
        app.router.add_get("/v2/apps/{app_id:.+}", self._app)
        app.router.add_post("/v2/apps", self._post_app)
        app.router.add_put("/v2/apps/{app_id:.+}", self._put_app)
        app.router.add_delete("/v2/apps/{app_id:.+}", self._delete_app)
        app.router.add_post("/v2/tasks/delete", self._delete_tasks)
        app.router.add_get("/v2/deployments", self._deployments)
        app.router.add_get("/v2/events", self._events)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]  # the port bound when 0 was asked
        bound_host, bound_port = sock.getsockname()[:2]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{bound_host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        for work in list(self._work):
            work.cancel()
        await asyncio.gather(*self._work, return_exceptions=True)
        self.drop_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> MarathonEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults ---------------------------------------------------------------------------------

    def set_standby(self, leader_url: str | None) -> None:
        """Behave as a standby of ``leader_url`` (None: be the leader again)."""
        self.standby_of = leader_url.rstrip("/") if leader_url else None

    def fail_with(self, status: int | None, *, events: bool = True) -> None:
        """Answer every request (and the stream too when ``events``) with ``status``; None: stop."""
        self.fail_status = status
        self.fail_events = events

    def require_basic_auth(self, user: str | None, password: str = "") -> None:
        """Answer 401 to any request without these credentials (None: no auth)."""
        if user is None:
            self.credentials = None
        else:
            self.credentials = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def require_token(self, token: str | None) -> None:
        """Answer 401 unless ``Authorization: token=<token>`` (DC/OS ACS tokens) is sent."""
        self.credentials = None if token is None else f"token={token}"

    def delay_snapshots(self, seconds: float) -> None:
        """Make ``GET /v2/apps`` take its snapshot at once and send it ``seconds`` later, so that
        changes made meanwhile are newer than the snapshot the client receives."""
        self.snapshot_delay = seconds

    def drop_streams(self) -> None:
        """Close every open event stream now, as a leader that goes away does."""
        for sub in self._subscribers:
            sub.queue.put_nowait(_DROP)

    def stall_streams(self, stalled: bool = True) -> None:
        """Keep the streams open but send nothing on them, heartbeats included (a half-open link)."""
        self.stalled = stalled

    @property
    def open_streams(self) -> int:
        return len(self._subscribers)

    # -- events ---------------------------------------------------------------------------------

    def emit(self, event_type: str, data: dict[str, Any] | bytes | str) -> None:
        """Send one event to every stream whose filter takes ``event_type``. A dict gains
        ``eventType`` and ``timestamp`` when it lacks them; bytes or str go out as the data verbatim."""
        if isinstance(data, dict):
            data = {**data}
            data.setdefault("eventType", event_type)
            data.setdefault("timestamp", now_iso())
            payload = json.dumps(data, separators=(",", ":")).encode()
        elif isinstance(data, str):
            payload = data.encode()
        else:
            payload = data
        frame = b"event: " + event_type.encode() + b"\r\ndata: " + payload + b"\r\n\r\n"
        for sub in self._subscribers:
            if not sub.types or event_type in sub.types:
                sub.queue.put_nowait(frame)

    def emit_raw(self, raw: bytes) -> None:
        """Write ``raw`` to every stream as it is, framing included (or not)."""
        for sub in self._subscribers:
            sub.queue.put_nowait(raw)

    # -- apps and tasks -------------------------------------------------------------------------

    def load_app(self, app: dict[str, Any]) -> None:
        """Take an app as ``/v2/apps?embed=apps.tasks`` returns it, tasks included; no event."""
        app = copy.deepcopy(app)
        tasks = app.pop("tasks", None) or []
        readiness = app.pop("readinessCheckResults", None) or []
        for key in ("deployments", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy"):
            app.pop(key, None)
        app_id = app["id"]
        self.apps[app_id] = app
        self.tasks[app_id] = {t["id"]: t for t in tasks}
        self.readiness[app_id] = readiness

    def load_apps(self, payload: dict[str, Any] | bytes | str) -> None:
        doc: dict[str, Any] = payload if isinstance(payload, dict) else json.loads(payload)
        for app in doc["apps"]:
            self.load_app(app)

    def add_app(self, app: dict[str, Any]) -> None:
        """Create or replace an app (tasks as given in ``app["tasks"]``); emits api_post_event."""
        self.load_app(app)
        app_id = app["id"]
        self.emit(
            "api_post_event",
            {"clientIp": "127.0.0.1", "uri": "/v2/apps" + app_id, "appDefinition": self.apps[app_id]},
        )

    def update_app(self, app_id: str, **fields: Any) -> None:
        """Change fields of an app (``labels=...``, ``portDefinitions=...``); emits api_post_event."""
        app = self.apps[app_id]
        app.update(copy.deepcopy(fields))
        app["version"] = now_iso()
        app["versionInfo"] = {"lastScalingAt": app["version"], "lastConfigChangeAt": app["version"]}
        self.emit(
            "api_post_event",
            {"clientIp": "127.0.0.1", "uri": "/v2/apps" + app_id, "appDefinition": app},
        )

    def remove_app(self, app_id: str) -> None:
        """Delete an app and its tasks; emits app_terminated_event."""
        self.apps.pop(app_id, None)
        self.tasks.pop(app_id, None)
        self.readiness.pop(app_id, None)
        self.emit("app_terminated_event", {"appId": app_id})

    def add_task(
        self,
        app_id: str,
        ports: Sequence[int],
        *,
        host: str = "127.0.0.1",
        state: str = "TASK_RUNNING",
        task_id: str | None = None,
        ip: str | None = None,
        emit: bool = True,
    ) -> str:
        """Start a task of ``app_id`` on ``host:ports``; emits its status_update_event and
        instance_changed_event (``emit=False``: a change the stream never tells of). Returns its id."""
        app = self.apps[app_id]
        if task_id is None:
            task_id = f"{app_id.strip('/').replace('/', '_')}.instance-{uuid.uuid4()}._app.1"
        stamp = now_iso()
        self._seq += 1
        service_ports = service_ports_of(app)
        task: dict[str, Any] = {
            "appId": app_id,
            "host": host,
            "id": task_id,
            "ipAddresses": [{"ipAddress": ip or host, "protocol": "IPv4"}],
            "ports": list(ports),
            "servicePorts": service_ports,
            "slaveId": f"emulator-agent-S{self._seq}",
            "state": state,
            "stagedAt": stamp,
            "version": app["version"],
            "healthCheckResults": [],
        }
        if state in ("TASK_RUNNING", "TASK_KILLING"):
            task["startedAt"] = stamp
        self.tasks[app_id][task_id] = task
        if emit:
            self._emit_task(task)
        return task_id

    def set_task_state(self, task_id: str, state: str, *, emit: bool = True) -> None:
        """Move a task to ``state`` (a terminal one removes it from the listing); emits the events."""
        app_id, task = self._find_task(task_id)
        task["state"] = state
        if state == "TASK_RUNNING":
            task.setdefault("startedAt", now_iso())
        if state in TERMINAL_STATES:
            del self.tasks[app_id][task_id]
        if emit:
            self._emit_task(task)

    def set_task_health(self, task_id: str, alive: bool) -> None:
        """Record a Marathon health result for the task; emits health_status_changed_event."""
        app_id, task = self._find_task(task_id)
        instance_id = task_id.split("._app.")[0]
        task["healthCheckResults"] = [
            {"alive": alive, "consecutiveFailures": 0 if alive else 3, "instanceId": instance_id}
        ]
        self.emit(
            "health_status_changed_event",
            {"appId": app_id, "instanceId": instance_id, "version": task["version"], "alive": alive},
        )

    def set_readiness(self, task_id: str, ready: bool) -> None:
        """A readiness result (no event: Marathon has none for readiness)."""
        app_id, _ = self._find_task(task_id)
        results = [r for r in self.readiness[app_id] if r["taskId"] != task_id]
        results.append({"name": "readinessCheck", "taskId": task_id, "ready": ready})
        self.readiness[app_id] = results

    def start_deployment(self, app_ids: Sequence[str], action: str = "RestartApplication") -> str:
        """Open a deployment over ``app_ids``; emits deployment_info. Returns its id."""
        dep_id = str(uuid.uuid4())
        actions = [{"action": action, "app": a} for a in app_ids]
        self.deployments.append(
            {
                "id": dep_id,
                "version": now_iso(),
                "affectedApps": list(app_ids),
                "affectedPods": [],
                "steps": [{"actions": actions}],
                "currentActions": actions,
                "currentStep": 1,
                "totalSteps": 1,
            }
        )
        plan = {"id": dep_id, "steps": [{"actions": actions}], "version": now_iso()}
        self.emit("deployment_info", {"plan": plan, "currentStep": {"actions": actions}})
        return dep_id

    def finish_deployment(self, dep_id: str, *, success: bool = True) -> None:
        """Close a deployment; emits deployment_success or deployment_failed."""
        dep = next(d for d in self.deployments if d["id"] == dep_id)
        self.deployments.remove(dep)
        plan = {"id": dep_id, "steps": dep["steps"], "version": dep["version"]}
        if success:
            self.emit("deployment_success", {"id": dep_id, "plan": plan})
        else:
            self.emit("deployment_failed", {"id": dep_id, "plan": plan, "reason": "failed by the emulator"})

    def _find_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        for app_id, tasks in self.tasks.items():
            if task_id in tasks:
                return app_id, tasks[task_id]
        raise KeyError(task_id)

    def _emit_task(self, task: dict[str, Any]) -> None:
        stamp = now_iso()
        self.emit(
            "status_update_event",
            {
                "slaveId": task["slaveId"],
                "taskId": task["id"],
                "taskStatus": task["state"],
                "message": "",
                "appId": task["appId"],
                "host": task["host"],
                "ipAddresses": task["ipAddresses"],
                "ports": task["ports"],
                "version": task["version"],
                "timestamp": stamp,
            },
        )
        self.emit(
            "instance_changed_event",
            {
                "instanceId": task["id"].split("._app.")[0],
                "condition": CONDITIONS.get(task["state"], "Unknown"),
                "runSpecId": task["appId"],
                "agentId": task["slaveId"],
                "host": task["host"],
                "runSpecVersion": task["version"],
                "timestamp": stamp,
            },
        )

    # -- what the write API does: deployments ---------------------------------------------------

    def _made_up_ports(self, app: dict[str, Any], task_id: str) -> list[int]:
        """The default launcher: host ports in Mesos' range that no backend listens on."""
        ports = []
        for _ in service_ports_of(app) or [0]:
            ports.append(self._next_host_port)
            self._next_host_port += 1
        return ports

    def _used_service_ports(self, but: str | None = None) -> dict[int, str]:
        return {p: app_id for app_id, app in self.apps.items() if app_id != but for p in service_ports_of(app) if p}

    def _assign_service_ports(self, app: dict[str, Any]) -> str | None:
        """Marathon's rule: a service port is unique among apps; 0 picks a free one. Returns why the
        app is refused, or None (ports assigned in place)."""
        used = self._used_service_ports(but=app["id"])
        entries = app.get("portDefinitions") or app.get("container", {}).get("portMappings") or []
        key = "port" if app.get("portDefinitions") else "servicePort"
        for entry in entries:
            port = int(entry.get(key) or 0)
            if port and port in used:
                return f"Requested service port {port} conflicts with a service port in use by app {used[port]}"
            if not port:
                port = next(p for p in SERVICE_PORTS if p not in used)
                entry[key] = port
            used[port] = app["id"]
        return None

    def _begin(self, app_ids: Sequence[str], action: str) -> dict[str, Any]:
        dep_id = self.start_deployment(app_ids, action)
        return next(d for d in self.deployments if d["id"] == dep_id)

    def _run(self, dep: dict[str, Any], work: Callable[[], Awaitable[None]]) -> None:
        """Carries <work>() out on its own, then closes deployment <dep>."""

        async def run() -> None:
            try:
                if self.launch_delay:
                    await asyncio.sleep(self.launch_delay)
                await work()
            finally:
                if dep in self.deployments:
                    self.finish_deployment(dep["id"])

        task = asyncio.get_running_loop().create_task(run())
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    def _version(self, app: dict[str, Any], *, scaled: bool, changed: bool) -> None:
        app["version"] = now_iso()
        info = dict(app.get("versionInfo") or {})
        if scaled:
            info["lastScalingAt"] = app["version"]
        if changed or "lastConfigChangeAt" not in info:
            info["lastConfigChangeAt"] = app["version"]
        info.setdefault("lastScalingAt", app["version"])
        app["versionInfo"] = info

    async def _reconcile(self, app_id: str) -> None:
        """Starts or kills tasks until the app runs its ``instances`` (the newest go first)."""
        app = self.apps.get(app_id)
        if app is None:
            return
        want = int(app.get("instances", 1))
        live = [t for t in self.tasks.get(app_id, {}).values() if t["state"] not in ("TASK_KILLING",)]
        for _ in range(len(live), want):
            task_id = f"{app_id.strip('/').replace('/', '_')}.instance-{uuid.uuid4()}._app.1"
            ports = list(self.launcher(app, task_id))
            self.add_task(app_id, ports, task_id=task_id, state="TASK_STAGING")
            await asyncio.sleep(0)
            self.set_task_state(task_id, "TASK_RUNNING")
        extra = sorted(live, key=lambda t: t["stagedAt"])[want:] if len(live) > want else []
        await self._kill([t["id"] for t in extra])

    async def _kill(self, task_ids: Sequence[str]) -> None:
        """KILLING, then KILLED ``kill_delay`` later; ``on_task_end`` hears of each."""
        killing = []
        for task_id in task_ids:
            try:
                self.set_task_state(task_id, "TASK_KILLING")
            except KeyError:
                continue
            killing.append(task_id)
        if killing and self.kill_delay:
            await asyncio.sleep(self.kill_delay)
        for task_id in killing:
            try:
                _, task = self._find_task(task_id)
            except KeyError:
                continue
            self.set_task_state(task_id, "TASK_KILLED")
            if self.on_task_end is not None:
                self.on_task_end(task)

    # -- rendering ------------------------------------------------------------------------------

    def app_info(self, app_id: str, embeds: set[str]) -> dict[str, Any]:
        app = dict(self.apps[app_id])
        tasks = list(self.tasks.get(app_id, {}).values())
        app["tasksStaged"] = sum(t["state"] == "TASK_STAGING" for t in tasks)
        app["tasksRunning"] = sum(t["state"] == "TASK_RUNNING" for t in tasks)
        app["tasksHealthy"] = sum(
            bool(t["healthCheckResults"]) and all(r["alive"] for r in t["healthCheckResults"]) for t in tasks
        )
        app["tasksUnhealthy"] = sum(any(not r["alive"] for r in t["healthCheckResults"]) for t in tasks)
        app["deployments"] = [{"id": d["id"]} for d in self.deployments if app_id in d["affectedApps"]]
        if "readiness" in embeds:
            app["readinessCheckResults"] = list(self.readiness.get(app_id, []))
        if "tasks" in embeds:
            app["tasks"] = tasks
        return app

    # -- HTTP -----------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        if self.credentials is not None and request.headers.get("Authorization") != self.credentials:
            return web.json_response(
                {"message": "Invalid username or password."},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Mesosphere Marathon"'},
            )
        is_events = request.path == "/v2/events"
        if self.fail_status is not None and (self.fail_events or not is_events):
            return web.json_response({"message": "emulated failure"}, status=self.fail_status)
        if self.standby_of is not None:
            if is_events:
                raise web.HTTPFound(self.standby_of + request.path_qs)
            if request.path.startswith("/v2/") and request.path != "/v2/leader":
                return await self._proxy(request)
        return await handler(request)

    async def _proxy(self, request: web.Request) -> web.Response:
        # Marathon's standbys forward API calls to the leader and mark the answer X-Marathon-Via.
        if self._session is None:
            self._session = ClientSession()
        assert self.standby_of is not None
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("accept", "authorization", "content-type")
        }
        body = await request.read()
        async with self._session.request(
            request.method, self.standby_of + request.path_qs, headers=headers, data=body or None
        ) as upstream:
            body = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=body,
                content_type=upstream.content_type,
                headers={"X-Marathon-Via": self.url.split("://", 1)[-1]},
            )

    def _leader_header(self) -> dict[str, str]:
        leader = self.standby_of or self.url
        return {"X-Marathon-Leader": leader}

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def _leader(self, request: web.Request) -> web.Response:
        leader = (self.standby_of or self.url).split("://", 1)[-1]
        return web.json_response({"leader": leader})

    @staticmethod
    def _embeds(request: web.Request) -> set[str]:
        embeds = set()
        for value in request.query.getall("embed", []):
            name = value
            for prefix in ("group.apps.", "apps.", "app."):
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    break
            if name in KNOWN_EMBEDS:
                embeds.add(name)
            else:
                log.info("unknown embed %r ignored", value)  # "a,b" lands here, as in Marathon
        if "tasks" in embeds:
            embeds.add("deployments")
        return embeds | {"counts", "deployments"}

    async def _apps(self, request: web.Request) -> web.Response:
        embeds = self._embeds(request)
        wanted = request.query.get("id")
        apps = [
            self.app_info(app_id, embeds)
            for app_id in sorted(self.apps)
            if wanted is None or wanted in app_id
        ]
        body = json.dumps({"apps": apps})  # the snapshot is taken now, whatever the delay
        if self.snapshot_delay:
            await asyncio.sleep(self.snapshot_delay)
        return web.Response(text=body, content_type="application/json", headers=self._leader_header())

    async def _app(self, request: web.Request) -> web.Response:
        app_id = "/" + request.match_info["app_id"].strip("/")
        if app_id not in self.apps:
            return web.json_response({"message": f"App '{app_id}' does not exist"}, status=404)
        return web.json_response(
            {"app": self.app_info(app_id, {"tasks", "counts", "deployments", "lastTaskFailure"})},
            headers=self._leader_header(),
        )

    @staticmethod
    async def _body(request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError:
            return None

    @staticmethod
    def _invalid(path: str, error: str) -> web.Response:
        return web.json_response(
            {"message": "Object is not valid", "details": [{"path": path, "errors": [error]}]}, status=422
        )

    def _locked(self, app_id: str) -> web.Response | None:
        holding = [{"id": d["id"]} for d in self.deployments if app_id in d["affectedApps"]]
        if not holding:
            return None
        return web.json_response(
            {
                "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
                "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
                "deployments": holding,
            },
            status=409,
        )

    def _create(self, body: dict[str, Any]) -> web.Response:
        app_id = "/" + str(body["id"]).strip("/")
        app = copy.deepcopy(body)
        app["id"] = app_id
        for key in ("tasks", "deployments", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy"):
            app.pop(key, None)
        app.setdefault("instances", 1)
        app.setdefault("labels", {})
        app.setdefault("healthChecks", [])
        app.setdefault("readinessChecks", [])
        if not app.get("container") and "portDefinitions" not in app:
            app["portDefinitions"] = [{"port": p, "protocol": "tcp", "labels": {}} for p in app.pop("ports", [0])]
        why = self._assign_service_ports(app)
        if why is not None:
            return self._invalid("/", why)
        self._version(app, scaled=True, changed=True)
        self.apps[app_id] = app
        self.tasks[app_id] = {}
        self.readiness[app_id] = []
        self.emit("api_post_event", {"clientIp": "127.0.0.1", "uri": "/v2/apps", "appDefinition": app})
        dep = self._begin([app_id], "StartApplication")
        self._run(dep, lambda: self._reconcile(app_id))
        return web.json_response(
            self.app_info(app_id, set()), status=201, headers={"Location": f"{self.url}/v2/apps{app_id}"}
        )

    async def _post_app(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict) or not body.get("id"):
            return self._invalid("/id", "error.path.missing")
        app_id = "/" + str(body["id"]).strip("/")
        if app_id in self.apps:
            return web.json_response({"message": f"An app with id [{app_id}] already exists."}, status=409)
        return self._create(body)

    async def _put_app(self, request: web.Request) -> web.Response:
        app_id = "/" + request.match_info["app_id"].strip("/")
        body = await self._body(request)
        if not isinstance(body, dict):
            return self._invalid("/", "error.expected.jsobject")
        if app_id not in self.apps:
            return self._create({**body, "id": app_id})
        if request.query.get("force") != "true" and (locked := self._locked(app_id)) is not None:
            return locked
        app = self.apps[app_id]
        before = copy.deepcopy(app)
        for key, value in body.items():
            if key not in ("id", "version", "versionInfo"):
                app[key] = copy.deepcopy(value)
        why = self._assign_service_ports(app)
        if why is not None:
            self.apps[app_id] = before
            return self._invalid("/", why)
        scaled = app.get("instances") != before.get("instances")
        changed = any(app.get(k) != before.get(k) for k in set(app) | set(before) if k != "instances")
        self._version(app, scaled=scaled, changed=changed)
        self.emit(
            "api_post_event", {"clientIp": "127.0.0.1", "uri": "/v2/apps" + app_id, "appDefinition": app}
        )
        dep = self._begin([app_id], "ScaleApplication" if scaled and not changed else "RestartApplication")
        self._run(dep, lambda: self._reconcile(app_id))
        return web.json_response({"version": app["version"], "deploymentId": dep["id"]})

    async def _delete_app(self, request: web.Request) -> web.Response:
        app_id = "/" + request.match_info["app_id"].strip("/")
        if app_id not in self.apps:
            return web.json_response({"message": f"App '{app_id}' does not exist"}, status=404)
        dep = self._begin([app_id], "StopApplication")
        del self.apps[app_id]  # gone from the API at once; its tasks are killed by the deployment
        self.readiness.pop(app_id, None)

        async def stop() -> None:
            await self._kill(list(self.tasks.get(app_id, {})))
            self.tasks.pop(app_id, None)
            self.emit("app_terminated_event", {"appId": app_id})

        self._run(dep, stop)
        return web.json_response({"version": now_iso(), "deploymentId": dep["id"]})

    async def _delete_tasks(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return self._invalid("/ids", "error.expected.jsarray")
        found: dict[str, list[str]] = {}
        killed = []
        for task_id in ids:
            try:
                app_id, task = self._find_task(task_id)
            except KeyError:
                continue  # unknown ids are left out, as Marathon does
            found.setdefault(app_id, []).append(task_id)
            killed.append(copy.deepcopy(task))
        scale = request.query.get("scale") == "true"
        if scale:
            for app_id, task_ids in found.items():
                app = self.apps.get(app_id)
                if app is not None:
                    app["instances"] = max(0, int(app.get("instances", 1)) - len(task_ids))
                    self._version(app, scaled=True, changed=False)
        dep = self._begin(sorted(found), "ScaleApplication" if scale else "RestartApplication")

        async def kill() -> None:
            await self._kill([t["id"] for t in killed])
            for app_id in found:
                await self._reconcile(app_id)  # without scale, Marathon starts replacements

        self._run(dep, kill)
        if scale:
            return web.json_response({"version": now_iso(), "deploymentId": dep["id"]})
        return web.json_response({"tasks": killed})

    async def _deployments(self, request: web.Request) -> web.Response:
        deployments = []
        for dep in self.deployments:
            dep = copy.deepcopy(dep)
            for action in dep["currentActions"]:
                action["readinessCheckResults"] = list(self.readiness.get(action["app"], []))
            deployments.append(dep)
        return web.json_response(deployments, headers=self._leader_header())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        # Jetty compares each Accept header whole (no list or parameter parsing); anything else falls
        # through to the servlet default, a 405.
        if "text/event-stream" not in [v.strip() for v in request.headers.getall("Accept", [])]:
            return web.Response(status=405, text="HTTP method GET is not supported by this URL")
        types = frozenset(request.query.getall("event_type", []))
        resp = _CloseDelimitedResponse(
            status=200,
            headers={"Content-Type": "text/event-stream;charset=utf-8", "Connection": "close"},
        )
        resp.force_close()
        await resp.prepare(request)
        sub = _Subscriber(types, request.remote or "")
        self._subscribers.add(sub)
        self.streams_opened += 1
        self.emit("event_stream_attached", {"remoteAddress": sub.remote})
        try:
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), self.heartbeat_interval)
                except TimeoutError:
                    item = b"\r\n"
                # What is queued goes out in one write, as Jetty's buffered output does.
                batch: list[bytes] = []
                while item is not _DROP:
                    assert isinstance(item, bytes)
                    batch.append(item)
                    if sub.queue.empty():
                        break
                    item = sub.queue.get_nowait()
                if batch and not self.stalled:
                    await resp.write(b"".join(batch))
                if item is _DROP:
                    break
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self._subscribers.discard(sub)
        self.emit("event_stream_detached", {"remoteAddress": sub.remote})
        return resp


async def _serve(args: argparse.Namespace) -> None:
    emulator = MarathonEmulator(heartbeat_interval=args.heartbeat)
    if args.apps:
        with open(args.apps, "rb") as f:
            emulator.load_apps(f.read())
    else:
        emulator.load_apps(load_fixture("demo_apps.json"))
    url = await emulator.start(args.host, args.port)
    print(f"Marathon emulator at {url} with {len(emulator.apps)} apps", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fastlb.emulator.emulator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--apps", help='JSON file {"apps": [...]} with tasks embedded')
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds between stream heartbeats")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
