"""What fastlb knows of Marathon, and the routes it implies: a pure, synchronous model.

The Marathon client (asyncio, elsewhere) feeds it snapshots (``replace_all``, ``put_app``,
``set_deployments``) and events (``apply_event``), and publishes ``table()`` whenever an effect
says it changed. Events are applied as deltas at once, marathon-lb's full refetch being the
fallback: a task Marathon starts killing is drained before anything is fetched, one that died is
removed, and whatever an event cannot say by itself (new labels, health, deployments) comes back
as app ids to re-fetch.

Two states given the same snapshots produce byte-identical ``spec.encode(table())``.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from fastlb import logs, spec
from fastlb.marathon import build, models
from fastlb.marathon.incremental import BuildMemo
from fastlb.marathon.models import App, Task
from fastlb.marathon.options import BuildContext, BuildResult, MarathonOptions
from fastlb.marathon.tasks import DRAINING_STATES, KEPT_STATES, TERMINAL_STATES

__all__ = ["EventEffect", "MarathonOptions", "MarathonState"]

log = logging.getLogger("fastlb.marathon")

# instance_changed_event's condition -> the task state it stands for (Marathon's Condition.scala).
_CONDITION_STATE = {
    "Running": "TASK_RUNNING",
    "Killing": "TASK_KILLING",
    "Killed": "TASK_KILLED",
    "Failed": "TASK_FAILED",
    "Finished": "TASK_FINISHED",
    "Gone": "TASK_GONE",
    "Dropped": "TASK_DROPPED",
    "Error": "TASK_ERROR",
    "Unknown": "TASK_UNKNOWN",
    "GoneByOperator": "TASK_GONE_BY_OPERATOR",
    "Unreachable": "TASK_UNREACHABLE",
    "UnreachableInactive": "TASK_UNREACHABLE",
}


@dataclass(frozen=True)
class EventEffect:
    """What the client must do after one event."""

    changed: bool = False  # the table may differ: rebuild and publish
    refetch: frozenset[str] = frozenset()  # app ids to re-fetch with GET /v2/apps/<id>
    resync: bool = False  # a full GET /v2/apps is needed
    drain: tuple[str, ...] = ()  # backend ids to set to "drain" in the data plane at once
    remove: tuple[str, ...] = ()  # backend ids that are gone
    poll_deployments: bool = False  # a deployment with readiness checks is active: poll /v2/deployments


NO_EFFECT = EventEffect()


def instance_of(task_id: str) -> str:
    """The instance id of a task id: ``app.instance-<uuid>._app.<n>`` (1.8+) -> ``app.instance-<uuid>``;
    older task ids are their own instance id."""
    cut = task_id.find("._app.")
    return task_id[:cut] if cut >= 0 else task_id


class MarathonState:
    def __init__(self, options: MarathonOptions, resolve: Callable[[str], str | None]) -> None:
        """``resolve(host)`` looks a host name up in a cache the client fills (IPv4 or None); it
        must not block. A task whose host does not resolve is left out until it does."""
        self._options = options
        self._resolve = resolve
        self._apps: dict[str, App] = {}
        self._deploying: set[str] = set()  # apps with readiness checks and a deployment in progress
        # Apps put, replaced or removed (None) since the last build; None when all may have changed.
        self._replaced: dict[str, App | None] | None = None
        # The last Marathon health per task: results vanish after a leader failover, and serving
        # from the last known ones keeps backends from emptying (marathon-lb PR #148).
        self._alive: dict[str, bool] = {}
        self._deploy_ready: dict[str, bool] = {}  # task id -> result from /v2/deployments
        self._once_ready: set[str] = set()  # readiness only gates entry: once ready, always ready
        self._built: BuildResult | None = None  # None: the state changed since
        # The last table handed out, even if stale: the data plane serves it, so the backend ids
        # an event drains or removes are looked up there, without a rebuild per event.
        self._served: BuildResult | None = None
        self._reported: set[tuple[str, str]] = set()
        self._memo = BuildMemo()

    # --- snapshots --------------------------------------------------------------------------------

    def replace_all(self, payload: bytes) -> None:
        """Body of ``GET /v2/apps?embed=apps.tasks&embed=apps.readiness``. On garbage raises
        ValueError naming the bad field, and the state is unchanged."""
        try:
            apps = models.decode_apps(payload)
        except msgspec.DecodeError as e:
            raise ValueError(f"GET /v2/apps: {e}") from e
        self._apps = {app.id: app for app in apps}
        self._replaced = None
        self._deploying = {app.id for app in apps if app.deployments and app.readiness_checks}
        for app in apps:
            self._ingest(app)
        live = {t.id for app in apps for t in app.tasks or ()}
        self._prune(live)
        self._built = None

    def put_app(self, payload: bytes) -> None:
        """Body of ``GET /v2/apps/<id>`` (``{"app": {...}}``); same error rule as ``replace_all``."""
        try:
            app = models.decode_app(payload)
        except msgspec.DecodeError as e:
            raise ValueError(f"GET /v2/apps/<id>: {e}") from e
        old = self._apps.get(app.id)
        if app.readiness_check_results is None and old is not None:
            # /v2/apps/<id> does not embed readiness unless asked: keep what we knew.
            app = msgspec.structs.replace(app, readiness_check_results=old.readiness_check_results)
        self._apps[app.id] = app
        self._note(app.id, app)
        if app.deployments and app.readiness_checks:
            self._deploying.add(app.id)
        else:
            self._deploying.discard(app.id)
        self._ingest(app)
        if old is not None:
            gone = {t.id for t in old.tasks or ()} - {t.id for t in app.tasks or ()}
            self._forget(gone)
        self._built = None

    def remove_app(self, app_id: str) -> None:
        app = self._apps.pop(app_id, None)
        self._deploying.discard(app_id)
        if app is not None:
            self._note(app_id, None)
            self._forget({t.id for t in app.tasks or ()})
            self._built = None

    def set_deployments(self, payload: bytes) -> None:
        """Body of ``GET /v2/deployments``: the readiness results of deployments in progress."""
        try:
            deployments = models.decode_deployments(payload)
        except msgspec.DecodeError as e:
            raise ValueError(f"GET /v2/deployments: {e}") from e
        results: dict[str, bool] = {}
        for deployment in deployments:
            for action in deployment.current_actions or ():
                for result in action.readiness_check_results or ():
                    results[result.task_id] = results.get(result.task_id, False) or result.ready
        self._deploy_ready = results
        self._once_ready.update(t for t, ready in results.items() if ready)
        self._built = None

    def _note(self, app_id: str, app: App | None) -> None:
        if self._replaced is not None:
            self._replaced[app_id] = app

    def _ingest(self, app: App) -> None:
        alive = self._alive
        for task in app.tasks or ():
            results = task.health_check_results
            if results is not None:
                alive[task.id] = any([r.alive for r in results]) if results else False
        for result in app.readiness_check_results or ():
            if result.ready:
                self._once_ready.add(result.task_id)

    def _prune(self, live: set[str]) -> None:
        for cache in (self._alive, self._deploy_ready):
            for task_id in [t for t in cache if t not in live]:
                del cache[task_id]
        self._once_ready &= live

    def _forget(self, task_ids: set[str]) -> None:
        for task_id in task_ids:
            self._alive.pop(task_id, None)
            self._deploy_ready.pop(task_id, None)
            self._once_ready.discard(task_id)

    # --- readiness --------------------------------------------------------------------------------

    def _gated(self, app: App) -> bool:
        """False when ``_ready`` is True for every task of <app>: it depends on the app alone."""
        return self._options.respect_readiness and bool(app.readiness_checks) and bool(app.deployments)

    def _ready(self, app: App, task: Task) -> bool:
        """Readiness gates a task only while a deployment of an app with readiness checks is
        active. A task with a result follows it; one without is ready only if it runs an older
        version of the app (the deployment is replacing it, not starting it). No clock is read,
        so the answer is the same on every fastlb instance."""
        if not self._options.respect_readiness or task.id in self._once_ready:
            return True
        if not app.readiness_checks or not app.deployments:
            return True
        results = [r.ready for r in app.readiness_check_results or () if r.task_id == task.id]
        if task.id in self._deploy_ready:
            results.append(self._deploy_ready[task.id])
        if results:
            return any(results)
        return task.version is not None and app.version is not None and task.version != app.version

    def needs_deployment_poll(self) -> bool:
        """True while some app has a deployment in progress and readiness checks: Marathon sends
        no event for readiness results, so ``/v2/deployments`` must be polled."""
        return bool(self._deploying)

    # --- the table --------------------------------------------------------------------------------

    def _build(self) -> BuildResult:
        # A host name resolved since the last build (the client fills its cache on its own
        # time) makes that build stale.
        if self._built is not None and any(
            self._resolve(host) != answer for host, answer in self._built.lookups.items()
        ):
            self._built = None
        if self._built is None:
            ctx = BuildContext(
                options=self._options,
                resolve=self._resolve,
                alive=self._alive,
                ready=self._ready,
                gated=self._gated,
            )
            self._built = build.build_table(self._apps.values(), ctx, self._memo, self._replaced)
            self._replaced = {}
            self._report(self._built)
        self._served = self._built
        return self._built

    def _report(self, result: BuildResult) -> None:
        """Logs each app error and label warning once, not on every rebuild."""
        for app_id, why in result.errors.items():
            if (app_id, why) not in self._reported:
                self._reported.add((app_id, why))
                logs.event(logging.ERROR, logs.APP_NOT_SERVED, logger=log, app=app_id, error=why)
        for app_id, notes in result.warnings.items():
            for note in notes:
                if (app_id, note) not in self._reported:
                    self._reported.add((app_id, note))
                    logs.event(logging.WARNING, logs.APP_WARNING, logger=log, app=app_id, warning=note)

    def table(self) -> spec.RouteTable:
        """The routes now: same state, byte-identical ``spec.encode``."""
        return self._build().table

    def app_errors(self) -> dict[str, str]:
        """App id -> why it is not served (bad label, impossible or conflicting port...)."""
        return dict(self._build().errors)

    def app_warnings(self) -> dict[str, tuple[str, ...]]:
        """App id -> labels accepted but ignored or served approximately."""
        return dict(self._build().warnings)

    def backend_ids(self, task_id: str) -> tuple[str, ...]:
        """The backend ids of a task in the current table (one per served port)."""
        return self._build().backends_by_task.get(task_id, ())

    def warm(self) -> None:
        """Makes the task index of the table last handed out, which its first task event would
        otherwise make (O(the tasks) once after a whole build, a copy after an incremental one): the
        provider calls it once the table is handed over, out of the events' path."""
        if self._served is not None:
            len(self._served.backends_by_task)

    def _served_ids(self, task_id: str) -> tuple[str, ...]:
        """The backend ids of a task in the last table handed out (none before the first)."""
        return self._served.backends_by_task.get(task_id, ()) if self._served is not None else ()

    def hostnames(self) -> frozenset[str]:
        """Host names whose tasks the table would serve once resolved: those of tasks that pass
        every other filter, in apps this LB serves (IP literals and IP-per-task need none)."""
        return frozenset(self._build().lookups)

    def apps(self) -> Mapping[str, App]:
        """Read-only view, app id -> the app as Marathon last described it (tasks included), for
        /stats and the dashboard. Apps outside the served groups are included."""
        return types.MappingProxyType(dict(sorted(self._apps.items())))

    # --- events -----------------------------------------------------------------------------------

    def apply_event(self, event_type: str, data: bytes) -> EventEffect:
        """Applies one SSE event. Never raises: bad data is logged with its path and changes nothing."""
        try:
            event = models.decode_event(event_type, data)
        except msgspec.DecodeError as e:
            logs.event(logging.WARNING, logs.MARATHON_EVENT_SKIPPED, logger=log, type=event_type, error=e)
            return NO_EFFECT
        if event is None:
            return NO_EFFECT  # an event type fastlb does not know
        try:
            return self._apply(event)
        except Exception:  # the contract: an event never takes the provider down
            logs.event(
                logging.ERROR, logs.MARATHON_EVENT_SKIPPED, logger=log,
                exc_info=True, type=event_type, error="could not be applied",
            )
            return NO_EFFECT

    def _apply(self, ev: models.Event) -> EventEffect:
        if isinstance(ev, models.StatusUpdateEvent):
            return self._on_task_status(ev.app_id, ev.task_id, ev.task_status, ev)
        if isinstance(ev, models.InstanceChangedEvent):
            return self._on_instance(ev.run_spec_id, ev.instance_id, _CONDITION_STATE.get(ev.condition))
        if isinstance(ev, models.UnknownInstanceTerminatedEvent):
            return self._on_instance(ev.run_spec_id, ev.instance_id, "TASK_GONE")
        if isinstance(ev, (models.UnhealthyInstanceKillEvent, models.UnhealthyTaskKillEvent)):
            # Marathon is about to kill it: stop sending it new connections now.
            if ev.task_id:
                return self._on_task_status(ev.app_id, ev.task_id, "TASK_KILLING", None)
            return NO_EFFECT
        if isinstance(ev, models.HealthStatusChangedEvent):
            return self._on_health(ev.app_id, ev.instance_id or ev.task_id, ev.alive)
        if isinstance(ev, models.InstanceHealthChangedEvent):
            return self._on_health(ev.run_spec_id, ev.instance_id, ev.healthy)
        if isinstance(ev, (models.AddHealthCheckEvent, models.RemoveHealthCheckEvent)):
            return EventEffect(refetch=frozenset({ev.app_id}) if ev.app_id else frozenset())
        if isinstance(ev, models.AppTerminatedEvent):
            return self._on_app_gone(ev.app_id)
        if isinstance(ev, models.ApiPostEvent):
            app_id = ev.app_definition.id if ev.app_definition and ev.app_definition.id else None
            if app_id is None and ev.uri and ev.uri.startswith("/v2/apps/"):
                app_id = "/" + ev.uri[len("/v2/apps/") :].split("?", 1)[0].strip("/")
            if app_id is None:
                return EventEffect(resync=True)
            return EventEffect(refetch=frozenset({app_id if app_id.startswith("/") else "/" + app_id}))
        if isinstance(
            ev,
            (
                models.DeploymentInfoEvent,
                models.DeploymentStepSuccessEvent,
                models.DeploymentStepFailureEvent,
            ),
        ):
            apps = _plan_apps(ev.plan) | _step_apps(ev.current_step)
            poll = self.needs_deployment_poll() or any(
                a not in self._apps or bool(self._apps[a].readiness_checks) for a in apps
            )
            return EventEffect(refetch=frozenset(apps), poll_deployments=poll)
        if isinstance(ev, (models.DeploymentSuccessEvent, models.DeploymentFailedEvent)):
            return EventEffect(refetch=frozenset(_plan_apps(ev.plan)))
        if isinstance(ev, (models.SchedulerRegisteredEvent, models.SchedulerReregisteredEvent)):
            return EventEffect(resync=True)  # a Marathon or Mesos failover: start from a snapshot
        # event_stream_attached/detached reach every subscriber, not just us: the client resyncs
        # on its own (re)connect. Group changes come with deployment events naming the apps.
        return NO_EFFECT

    def _replace_task(self, app: App, task: Task | None, task_id: str) -> None:
        tasks = [t for t in app.tasks or () if t.id != task_id]
        if task is not None:
            tasks.append(task)
        self._apps[app.id] = msgspec.structs.replace(app, tasks=tuple(tasks))
        self._note(app.id, self._apps[app.id])
        self._built = None

    def _on_task_status(
        self, app_id: str, task_id: str, status: str, ev: models.StatusUpdateEvent | None
    ) -> EventEffect:
        app = self._apps.get(app_id)
        if app is None or not task_id:
            # A task of an app we do not know: only a running one matters, and its app is needed.
            if app_id and status in KEPT_STATES:
                return EventEffect(refetch=frozenset({app_id}))
            return NO_EFFECT
        before = self._served_ids(task_id)
        old = next((t for t in app.tasks or () if t.id == task_id), None)
        if status in TERMINAL_STATES:
            if old is None:
                return NO_EFFECT
            self._replace_task(app, None, task_id)
            self._forget({task_id})
            return EventEffect(changed=bool(before), remove=before)
        if old is None and ev is None:
            return NO_EFFECT
        if old is not None:
            task = msgspec.structs.replace(old, state=status)
            if ev is not None:
                # What the snapshot said wins; the event only fills in what it did not know.
                task = msgspec.structs.replace(
                    task,
                    host=old.host or ev.host,
                    ip_addresses=old.ip_addresses or ev.ip_addresses,
                    ports=old.ports or ev.ports,
                    version=old.version or ev.version,
                )
        else:
            assert ev is not None
            task = Task(
                id=task_id,
                app_id=app_id,
                host=ev.host,
                ip_addresses=ev.ip_addresses,
                ports=ev.ports,
                state=status,
                version=ev.version,
                started_at=ev.timestamp if status == "TASK_RUNNING" else None,
            )
        if task == old:
            return NO_EFFECT
        self._replace_task(app, task, task_id)
        if status in DRAINING_STATES:
            return EventEffect(changed=bool(before), drain=before)
        if status in KEPT_STATES:
            return EventEffect(changed=True, poll_deployments=self.needs_deployment_poll())
        # Staging, starting, or a state fastlb does not know: it changes the table only if the
        # task was served before.
        return EventEffect(changed=bool(before))

    def _on_instance(self, app_id: str, instance_id: str, state: str | None) -> EventEffect:
        app = self._apps.get(app_id)
        if state is None or not instance_id:
            return NO_EFFECT
        if app is None:
            return EventEffect(refetch=frozenset({app_id})) if state in KEPT_STATES else NO_EFFECT
        tasks = [t.id for t in app.tasks or () if instance_of(t.id) == instance_id]
        if not tasks:
            # instance_changed_event carries no ports: a new running instance must be fetched.
            return EventEffect(refetch=frozenset({app_id})) if state == "TASK_RUNNING" else NO_EFFECT
        if state in KEPT_STATES:
            return NO_EFFECT  # status_update_event carries the details; nothing to undo here
        effects = [self._on_task_status(app_id, t, state, None) for t in sorted(tasks)]
        return EventEffect(
            changed=any(e.changed for e in effects),
            drain=tuple(b for e in effects for b in e.drain),
            remove=tuple(b for e in effects for b in e.remove),
        )

    def _on_health(self, app_id: str, instance_id: str | None, alive: bool | None) -> EventEffect:
        """Marathon health matters only with --health-check. The new result is applied at once
        and the app re-fetched for the rest (results of other checks, counts)."""
        if not self._options.health_check or not app_id:
            return NO_EFFECT
        app = self._apps.get(app_id)
        changed = False
        if app is not None and instance_id and alive is not None:
            for task in app.tasks or ():
                if task.id == instance_id or instance_of(task.id) == instance_of(instance_id):
                    if self._alive.get(task.id) != alive:
                        self._alive[task.id] = alive
                        changed = True
            if changed:
                self._built = None
        return EventEffect(changed=changed, refetch=frozenset({app_id}))

    def _on_app_gone(self, app_id: str) -> EventEffect:
        app = self._apps.get(app_id)
        if app is None:
            return NO_EFFECT
        tasks = sorted(t.id for t in app.tasks or ())
        removed = tuple(b for t in tasks for b in self._served_ids(t))
        self.remove_app(app_id)
        return EventEffect(changed=True, remove=removed)


def _plan_apps(plan: models.DeploymentPlan | None) -> set[str]:
    if plan is None:
        return set()
    return {a.app for step in plan.steps or () for a in step.actions or () if a.app}


def _step_apps(step: models.DeploymentStep | None) -> set[str]:
    if step is None:
        return set()
    return {a.app for a in step.actions or () if a.app}
