"""A minimal MarathonState with the same interface as fastlb.marathon.state, for the client tests.

It keeps the semantics the provider relies on and nothing of the label model: one tcp service per app
(named by app id), one backend per TASK_RUNNING task (id = task id, address = resolved host:ports[0]),
a TASK_KILLING task kept as a draining backend. The provider is tested against it so that its tests do
not depend on the label model; test_state_integration.py runs the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from fastlb import spec

TERMINAL = {"TASK_KILLED", "TASK_FAILED", "TASK_FINISHED", "TASK_ERROR", "TASK_GONE", "TASK_DROPPED", "TASK_LOST"}


class Task(msgspec.Struct):
    id: str
    host: str
    state: str
    ports: list[int] = []


class App(msgspec.Struct):
    id: str
    tasks: list[Task] = []


class Apps(msgspec.Struct):
    apps: list[App]


class OneApp(msgspec.Struct):
    app: App


class StatusUpdate(msgspec.Struct):
    taskId: str
    appId: str
    taskStatus: str
    host: str
    ports: list[int] = []


class AppEvent(msgspec.Struct):
    appId: str


class Deployment(msgspec.Struct):
    id: str


@dataclass(frozen=True)
class EventEffect:
    changed: bool = False
    refetch: frozenset[str] = frozenset()
    resync: bool = False
    drain: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    poll_deployments: bool = False


@dataclass
class SimpleState:
    options: object
    resolve: Callable[[str], str | None]
    apps: dict[str, dict[str, Task]] = field(default_factory=dict)
    deployments: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    events_seen: list[str] = field(default_factory=list)

    def replace_all(self, payload: bytes) -> None:
        try:
            apps = msgspec.json.decode(payload, type=Apps)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ValueError(str(e)) from None
        self.apps = {a.id: {t.id: t for t in a.tasks} for a in apps.apps}

    def put_app(self, payload: bytes) -> None:
        try:
            app = msgspec.json.decode(payload, type=OneApp).app
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ValueError(str(e)) from None
        self.apps[app.id] = {t.id: t for t in app.tasks}

    def remove_app(self, app_id: str) -> None:
        self.apps.pop(app_id, None)

    def set_deployments(self, payload: bytes) -> None:
        try:
            self.deployments = len(msgspec.json.decode(payload, type=list[Deployment]))
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ValueError(str(e)) from None

    def apply_event(self, event_type: str, data: bytes) -> EventEffect:
        self.events_seen.append(event_type)
        try:
            if event_type == "status_update_event":
                ev = msgspec.json.decode(data, type=StatusUpdate)
                tasks = self.apps.setdefault(ev.appId, {})
                refetch = frozenset({ev.appId})
                if ev.taskStatus in TERMINAL:
                    tasks.pop(ev.taskId, None)
                    return EventEffect(changed=True, remove=(ev.taskId,), refetch=refetch)
                tasks[ev.taskId] = Task(ev.taskId, ev.host, ev.taskStatus, ev.ports)
                drain = (ev.taskId,) if ev.taskStatus == "TASK_KILLING" else ()
                return EventEffect(changed=True, drain=drain, refetch=refetch)
            if event_type == "api_post_event":
                return EventEffect(refetch=frozenset({msgspec.json.decode(data, type=_Post).appDefinition.id}))
            if event_type == "app_terminated_event":
                app_id = msgspec.json.decode(data, type=AppEvent).appId
                self.apps.pop(app_id, None)
                return EventEffect(changed=True)
            if event_type == "deployment_info":
                return EventEffect(poll_deployments=True)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.errors[f"event {event_type}"] = str(e)
        return EventEffect()

    def table(self) -> spec.RouteTable:
        services = []
        for app_id in sorted(self.apps):
            backends = []
            for task in sorted(self.apps[app_id].values(), key=lambda t: t.id):
                if task.state not in ("TASK_RUNNING", "TASK_KILLING") or not task.ports:
                    continue
                ip = self.resolve(task.host)
                if ip is None:
                    continue
                state = "drain" if task.state == "TASK_KILLING" else "ready"
                backends.append(spec.Backend(id=task.id, address=f"{ip}:{task.ports[0]}", state=state))
            services.append(spec.Service(name=app_id, backends=tuple(backends), app_id=app_id))
        return spec.RouteTable(services=tuple(services))

    def app_errors(self) -> dict[str, str]:
        return dict(self.errors)

    def hostnames(self) -> frozenset[str]:
        return frozenset(t.host for tasks in self.apps.values() for t in tasks.values())


class _Def(msgspec.Struct):
    id: str


class _Post(msgspec.Struct):
    appDefinition: _Def
