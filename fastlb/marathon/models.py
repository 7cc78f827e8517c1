"""Marathon's wire payloads as frozen msgspec Structs: apps, tasks, health and readiness results,
deployments, and every event type of ``/v2/events``.

Only the fields fastlb reads are declared; every other field is ignored, so a newer Marathon that
adds fields decodes unchanged. Marathon (up to 1.4 in particular) writes explicit JSON ``null`` for
absent values, so every optional field accepts ``null`` and means "absent" by it. A missing
required field or a value of the wrong type fails with its path (``$.apps[3].tasks[0].id``).

The decoders are built once, at import.
"""

from __future__ import annotations

import msgspec

# Marathon's defaults for a health check field that is absent (Marathon 1.x, ``HealthCheck.scala``).
HC_DEFAULT_INTERVAL_S = 60
HC_DEFAULT_TIMEOUT_S = 20
HC_DEFAULT_MAX_FAILURES = 3


# Subclasses repeat frozen=True: msgspec inherits it at run time, but type checkers read each class's
# own keywords.
class Payload(msgspec.Struct, frozen=True, rename="camel", gc=False):
    """Base of every payload: frozen, camelCase on the wire, unknown fields ignored.

    Outside the cyclic GC (``gc=False``), with arrays as tuples: a full resync of a large cluster
    decodes millions of objects, and every full collection would walk them all for nothing.
    Nothing here can be part of a reference cycle: a payload is a tree of frozen Structs, tuples,
    strings and numbers (label dicts hold strings only), built once and never changed, so
    reference counting alone frees it. A tuple of untracked objects leaves the GC at its first
    collection; a list never would. Keep it so: a field that can hold a mutable or callable
    object would need its own ``gc=True`` Struct."""


# --- app definition -------------------------------------------------------------------------------


class PortDefinition(Payload, frozen=True):
    port: int | None = None
    name: str | None = None
    protocol: str | None = None
    labels: dict[str, str | None] | None = None


class PortMapping(Payload, frozen=True):
    container_port: int | None = None
    host_port: int | None = None
    service_port: int | None = None
    name: str | None = None
    protocol: str | None = None
    labels: dict[str, str | None] | None = None
    network_names: tuple[str, ...] | None = None


class Docker(Payload, frozen=True):
    network: str | None = None  # <= 1.4: HOST | BRIDGE | USER
    port_mappings: tuple[PortMapping, ...] | None = None  # <= 1.4


class Container(Payload, frozen=True):
    type: str | None = None
    docker: Docker | None = None
    port_mappings: tuple[PortMapping, ...] | None = None  # >= 1.5


class DiscoveryPort(Payload, frozen=True):
    number: int | None = None
    name: str | None = None
    protocol: str | None = None


class Discovery(Payload, frozen=True):
    ports: tuple[DiscoveryPort, ...] | None = None


class IpAddressSpec(Payload, frozen=True):
    """The app's ``ipAddress`` (<= 1.4 IP-per-task); its presence means container networking."""

    network_name: str | None = None
    discovery: Discovery | None = None


class Network(Payload, frozen=True):
    mode: str | None = None  # host | container/bridge | container
    name: str | None = None


class HealthCheckDef(Payload, frozen=True):
    protocol: str | None = None  # HTTP HTTPS TCP COMMAND MESOS_HTTP MESOS_HTTPS MESOS_TCP
    path: str | None = None
    port_index: int | None = None
    port: int | None = None
    interval_seconds: int | None = None
    timeout_seconds: int | None = None
    max_consecutive_failures: int | None = None
    grace_period_seconds: int | None = None


class ReadinessCheckDef(Payload, frozen=True):
    name: str | None = None
    protocol: str | None = None
    path: str | None = None
    port_name: str | None = None
    interval_seconds: int | None = None
    timeout_seconds: int | None = None


class VersionInfo(Payload, frozen=True):
    last_scaling_at: str | None = None
    last_config_change_at: str | None = None


class DeploymentRef(Payload, frozen=True):
    id: str = ""


# --- tasks and results ----------------------------------------------------------------------------


class IpAddress(Payload, frozen=True):
    ip_address: str | None = None
    protocol: str | None = None


class HealthResult(Payload, frozen=True):
    alive: bool | None = None
    consecutive_failures: int | None = None
    task_id: str | None = None
    instance_id: str | None = None


class ReadinessResult(Payload, frozen=True):
    task_id: str
    ready: bool = False
    name: str | None = None


class Task(Payload, frozen=True):
    id: str
    app_id: str | None = None
    host: str | None = None
    ip_addresses: tuple[IpAddress, ...] | None = None
    ports: tuple[int, ...] | None = None
    service_ports: tuple[int, ...] | None = None
    state: str | None = None  # absent state: kept, as marathon-lb does
    version: str | None = None
    started_at: str | None = None
    # None (absent or null) differs from []: absent means "unknown" (e.g. after a leader
    # failover) and falls back to the last result seen; [] means "no result yet".
    health_check_results: tuple[HealthResult, ...] | None = None


class App(Payload, frozen=True):
    """One app of ``/v2/apps``; ``label_map()`` is its labels without nulls."""

    id: str
    labels: dict[str, str | None] | None = None  # a null value is an absent label
    instances: int | None = None
    version: str | None = None
    version_info: VersionInfo | None = None
    container: Container | None = None
    networks: tuple[Network, ...] | None = None
    port_definitions: tuple[PortDefinition, ...] | None = None
    ports: tuple[int, ...] | None = None  # <= 1.4 service ports
    ip_address: IpAddressSpec | None = None
    require_ports: bool | None = None
    health_checks: tuple[HealthCheckDef, ...] | None = None
    readiness_checks: tuple[ReadinessCheckDef, ...] | None = None
    deployments: tuple[DeploymentRef, ...] | None = None
    readiness_check_results: tuple[ReadinessResult, ...] | None = None
    tasks: tuple[Task, ...] | None = None

    def label_map(self) -> dict[str, str]:
        return {k: v for k, v in (self.labels or {}).items() if v is not None}


class AppList(Payload, frozen=True):
    apps: tuple[App, ...]


class AppEnvelope(Payload, frozen=True):
    app: App


# --- deployments ----------------------------------------------------------------------------------


class DeploymentAction(Payload, frozen=True):
    action: str | None = None
    app: str | None = None
    readiness_check_results: tuple[ReadinessResult, ...] | None = None


class DeploymentStep(Payload, frozen=True):
    actions: tuple[DeploymentAction, ...] | None = None


class Deployment(Payload, frozen=True):
    id: str
    version: str | None = None
    affected_apps: tuple[str, ...] | None = None
    current_actions: tuple[DeploymentAction, ...] | None = None
    steps: tuple[DeploymentStep, ...] | None = None


class DeploymentPlan(Payload, frozen=True):
    id: str | None = None
    steps: tuple[DeploymentStep, ...] | None = None
    version: str | None = None


# --- events (``/v2/events`` data payloads, tagged by ``eventType``) -------------------------------


class Event(Payload, tag_field="eventType", frozen=True):
    timestamp: str | None = None


class StatusUpdateEvent(Event, tag="status_update_event", frozen=True):
    task_id: str = ""
    task_status: str = ""
    app_id: str = ""
    host: str | None = None
    ip_addresses: tuple[IpAddress, ...] | None = None
    ports: tuple[int, ...] | None = None
    version: str | None = None
    slave_id: str | None = None
    message: str | None = None


class InstanceChangedEvent(Event, tag="instance_changed_event", frozen=True):
    instance_id: str = ""
    condition: str = ""
    run_spec_id: str = ""
    host: str | None = None
    run_spec_version: str | None = None


class InstanceHealthChangedEvent(Event, tag="instance_health_changed_event", frozen=True):
    instance_id: str = ""
    run_spec_id: str = ""
    healthy: bool | None = None


class HealthStatusChangedEvent(Event, tag="health_status_changed_event", frozen=True):
    app_id: str = ""
    instance_id: str | None = None
    task_id: str | None = None  # before 1.4
    alive: bool | None = None
    version: str | None = None


class FailedHealthCheckEvent(Event, tag="failed_health_check_event", frozen=True):
    app_id: str = ""
    task_id: str | None = None
    health_check: HealthCheckDef | None = None


class UnhealthyInstanceKillEvent(Event, tag="unhealthy_instance_kill_event", frozen=True):
    app_id: str = ""
    task_id: str | None = None
    instance_id: str | None = None
    reason: str | None = None


class UnhealthyTaskKillEvent(Event, tag="unhealthy_task_kill_event", frozen=True):
    app_id: str = ""
    task_id: str | None = None
    reason: str | None = None


class AddHealthCheckEvent(Event, tag="add_health_check_event", frozen=True):
    app_id: str = ""
    health_check: HealthCheckDef | None = None


class RemoveHealthCheckEvent(Event, tag="remove_health_check_event", frozen=True):
    app_id: str = ""


class ApiPostEvent(Event, tag="api_post_event", frozen=True):
    client_ip: str | None = None
    uri: str | None = None
    app_definition: AppDefinitionRef | None = None


class AppDefinitionRef(Payload, frozen=True):
    id: str | None = None


class AppTerminatedEvent(Event, tag="app_terminated_event", frozen=True):
    app_id: str = ""


class DeploymentInfoEvent(Event, tag="deployment_info", frozen=True):
    plan: DeploymentPlan | None = None
    current_step: DeploymentStep | None = None


class DeploymentStepSuccessEvent(Event, tag="deployment_step_success", frozen=True):
    plan: DeploymentPlan | None = None
    current_step: DeploymentStep | None = None


class DeploymentStepFailureEvent(Event, tag="deployment_step_failure", frozen=True):
    plan: DeploymentPlan | None = None
    current_step: DeploymentStep | None = None


class DeploymentSuccessEvent(Event, tag="deployment_success", frozen=True):
    id: str | None = None
    plan: DeploymentPlan | None = None


class DeploymentFailedEvent(Event, tag="deployment_failed", frozen=True):
    id: str | None = None
    plan: DeploymentPlan | None = None
    reason: str | None = None


class GroupChangeSuccessEvent(Event, tag="group_change_success", frozen=True):
    group_id: str | None = None
    version: str | None = None


class GroupChangeFailedEvent(Event, tag="group_change_failed", frozen=True):
    group_id: str | None = None
    version: str | None = None
    reason: str | None = None


class UnknownInstanceTerminatedEvent(Event, tag="unknown_instance_terminated_event", frozen=True):
    instance_id: str = ""
    run_spec_id: str = ""
    condition: str | None = None


class EventStreamAttachedEvent(Event, tag="event_stream_attached", frozen=True):
    remote_address: str | None = None


class EventStreamDetachedEvent(Event, tag="event_stream_detached", frozen=True):
    remote_address: str | None = None


class SubscribeEvent(Event, tag="subscribe_event", frozen=True):
    client_ip: str | None = None
    callback_url: str | None = None


class UnsubscribeEvent(Event, tag="unsubscribe_event", frozen=True):
    client_ip: str | None = None
    callback_url: str | None = None


class SchedulerRegisteredEvent(Event, tag="scheduler_registered_event", frozen=True):
    framework_id: str | None = None
    master: str | None = None


class SchedulerReregisteredEvent(Event, tag="scheduler_reregistered_event", frozen=True):
    master: str | None = None


class SchedulerDisconnectedEvent(Event, tag="scheduler_disconnected_event", frozen=True):
    pass


class FrameworkMessageEvent(Event, tag="framework_message_event", frozen=True):
    executor_id: str | None = None
    slave_id: str | None = None


class PodCreatedEvent(Event, tag="pod_created_event", frozen=True):
    uri: str | None = None


class PodUpdatedEvent(Event, tag="pod_updated_event", frozen=True):
    uri: str | None = None


class PodDeletedEvent(Event, tag="pod_deleted_event", frozen=True):
    uri: str | None = None


AnyEvent = (
    StatusUpdateEvent
    | InstanceChangedEvent
    | InstanceHealthChangedEvent
    | HealthStatusChangedEvent
    | FailedHealthCheckEvent
    | UnhealthyInstanceKillEvent
    | UnhealthyTaskKillEvent
    | AddHealthCheckEvent
    | RemoveHealthCheckEvent
    | ApiPostEvent
    | AppTerminatedEvent
    | DeploymentInfoEvent
    | DeploymentStepSuccessEvent
    | DeploymentStepFailureEvent
    | DeploymentSuccessEvent
    | DeploymentFailedEvent
    | GroupChangeSuccessEvent
    | GroupChangeFailedEvent
    | UnknownInstanceTerminatedEvent
    | EventStreamAttachedEvent
    | EventStreamDetachedEvent
    | SubscribeEvent
    | UnsubscribeEvent
    | SchedulerRegisteredEvent
    | SchedulerReregisteredEvent
    | SchedulerDisconnectedEvent
    | FrameworkMessageEvent
    | PodCreatedEvent
    | PodUpdatedEvent
    | PodDeletedEvent
)

# eventType -> Struct, for decoding a payload whose type the SSE ``event:`` line already names.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in AnyEvent.__args__  # type: ignore[attr-defined]
}

_app_list_decoder = msgspec.json.Decoder(AppList)
_app_decoder = msgspec.json.Decoder(AppEnvelope)
_deployments_decoder = msgspec.json.Decoder(list[Deployment])
_event_decoders: dict[str, msgspec.json.Decoder] = {
    name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()
}


def decode_apps(payload: bytes) -> list[App]:
    """Body of ``GET /v2/apps?embed=apps.tasks...``. Raises ValueError naming the bad field's path."""
    return list(_app_list_decoder.decode(payload).apps)


def decode_app(payload: bytes) -> App:
    """Body of ``GET /v2/apps/<id>`` (``{"app": {...}}``)."""
    return _app_decoder.decode(payload).app


def decode_deployments(payload: bytes) -> list[Deployment]:
    """Body of ``GET /v2/deployments``."""
    return _deployments_decoder.decode(payload)


def decode_event(event_type: str, data: bytes) -> Event | None:
    """The ``data:`` of one SSE event of type ``event_type``; None for a type fastlb does not know.

    The payload's own ``eventType`` must agree with ``event_type`` (msgspec checks the tag)."""
    decoder = _event_decoders.get(event_type)
    if decoder is None:
        return None
    return decoder.decode(data)  # type: ignore[no-any-return]
