"""A Marathon task as a server: the app's networking (host, BRIDGE, IP-per-task container), a task's
ports by index, name or number, its address, the service ports marathon-lb assigns to IP-per-task
apps that declare none, its health check, and whether (and how) it is served. Pure.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable

from fastlb import spec
from fastlb.marathon.models import (
    HC_DEFAULT_INTERVAL_S,
    HC_DEFAULT_MAX_FAILURES,
    HC_DEFAULT_TIMEOUT_S,
    App,
    HealthCheckDef,
    PortMapping,
    Task,
)
from fastlb.marathon.options import BuildContext

# Mesos' task states as Marathon reports them, by what fastlb makes of a task in each: every state in
# exactly one set, declared here alone (the build's filter and the event handling both read them).
STARTING_STATES = frozenset({"TASK_STAGING", "TASK_STARTING"})  # not a server yet
KEPT_STATES = frozenset({"TASK_RUNNING", "TASK_LOST", "TASK_UNREACHABLE"})  # served
DRAINING_STATES = frozenset({"TASK_KILLING"})  # served, draining: no new connection
TERMINAL_STATES = frozenset(  # gone for good: its backends leave the table
    {
        "TASK_KILLED",
        "TASK_FAILED",
        "TASK_FINISHED",
        "TASK_GONE",
        "TASK_DROPPED",
        "TASK_ERROR",
        "TASK_GONE_BY_OPERATOR",
        "TASK_UNKNOWN",
    }
)
# marathon-lb's task filter (§3.6): these states never become servers. TASK_KILLING is the one
# fastlb keeps, draining; LOST and UNREACHABLE stay on purpose (Marathon may be wrong about them).
EXCLUDED_STATES = STARTING_STATES | TERMINAL_STATES
_HTTP_CHECKS = frozenset({"HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"})
_TCP_CHECKS = frozenset({"TCP", "MESOS_TCP"})
_SERVER_NAME = re.compile(r"[^a-zA-Z0-9-]")
# The same rule for ASCII names, as a bytes table: bytes.translate is several times faster than
# str.translate, and it runs once per backend per build.
_SERVER_NAME_BYTES = bytes(
    c if c < 128 and (chr(c).isalnum() or chr(c) == "-") else ord("_") for c in range(256)
)


# --- networking -----------------------------------------------------------------------------------


def networking_mode(app: App) -> str:
    """marathon-lb's detection: "host", "container/bridge" or "container" (IP-per-task)."""
    mode = "host"
    docker = app.container.docker if app.container else None
    if app.ip_address is not None or (docker is not None and docker.network == "USER"):
        mode = "container"
    elif docker is not None and docker.network == "BRIDGE":
        mode = "container/bridge"
    for net in app.networks or ():
        if net.mode:
            mode = net.mode  # the last entry wins, as in marathon-lb
    return mode


def port_mappings(app: App) -> list[PortMapping]:
    """docker.portMappings (<= 1.4) first, then container.portMappings (>= 1.5)."""
    if app.container is None:
        return []
    result: list[PortMapping] = []
    if app.container.docker is not None and app.container.docker.port_mappings:
        result.extend(app.container.docker.port_mappings)
    if app.container.port_mappings:
        result.extend(app.container.port_mappings)
    return result


def declared_service_ports(app: App, mode: str) -> list[int]:
    if mode in ("container", "container/bridge"):
        ports = [pm.service_port for pm in port_mappings(app) if pm.service_port is not None]
        if ports:
            return ports
    if app.port_definitions:
        return [pd.port for pd in app.port_definitions if pd.port is not None]
    return list(app.ports or ())


def port_protocols(app: App, mode: str) -> list[str | None]:
    """The protocol Marathon gives each port of ``service_ports``, in its order: "tcp", "udp",
    "udp,tcp"... (None where it gives none, which Marathon takes as tcp)."""
    if mode in ("container", "container/bridge"):
        mapped = [pm.protocol for pm in port_mappings(app) if pm.service_port is not None]
        if mapped:
            return mapped
    declared: list[str | None]
    if app.port_definitions:
        declared = [pd.protocol for pd in app.port_definitions if pd.port is not None]
    else:
        declared = [None] * len(app.ports or ())
    if declared or mode != "container":
        return declared
    # IP-per-task without declared service ports: the container ports, which get assigned ones
    if app.ip_address is not None and app.ip_address.discovery and app.ip_address.discovery.ports:
        return [p.protocol for p in app.ip_address.discovery.ports if p.number is not None]
    return [pm.protocol for pm in port_mappings(app) if pm.container_port is not None]


def has_tcp(protocol: str | None) -> bool:
    """Whether a port of <protocol> has a TCP side to serve: "tcp", "udp,tcp", "tcp,udp" or none
    given do; "udp" alone does not."""
    if not protocol:
        return True
    return "tcp" in {p.strip().lower() for p in protocol.split(",")}

def container_ports(app: App) -> list[int]:
    """The ports of an IP-per-task app's containers: discovery ports (<= 1.4), else mappings."""
    if app.ip_address is not None and app.ip_address.discovery and app.ip_address.discovery.ports:
        return [p.number for p in app.ip_address.discovery.ports if p.number is not None]
    return [pm.container_port for pm in port_mappings(app) if pm.container_port is not None]


def port_names(app: App, mode: str) -> list[str | None]:
    """Port names, in the order of ``task_ports``' result."""
    if mode == "container":
        if app.ip_address is not None and app.ip_address.discovery and app.ip_address.discovery.ports:
            return [p.name for p in app.ip_address.discovery.ports if p.number is not None]
        return [pm.name for pm in port_mappings(app) if pm.container_port is not None]
    if mode == "container/bridge" and port_mappings(app):
        return [pm.name for pm in port_mappings(app)]
    return [pd.name for pd in app.port_definitions or ()]


def task_ports(app: App, task: Task, mode: str) -> list[int]:
    """marathon-lb's ``get_task_ip_and_ports``, the port half."""
    if mode == "container":
        return container_ports(app)
    if task.ports:
        return list(task.ports)
    if app.port_definitions:
        return [pd.port for pd in app.port_definitions if pd.port is not None]
    if mode == "container/bridge":
        return [pm.container_port for pm in port_mappings(app) if pm.container_port is not None]
    return []


# An IPv4 address exactly as ``str(ipaddress.ip_address(...))`` writes it: four decimal octets in
# 0..255, no leading zeros, ASCII digits only. Such a text is its own canonical form.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def _ip_literal(text: str) -> str | None:
    """``text`` as a canonical IP address string, or None when it is not an IP literal. Task
    addresses are nearly always canonical IPv4 already: those skip ``ipaddress``, the costliest step
    of a build."""
    if _CANONICAL_IPV4.fullmatch(text) is not None:
        return text
    return _ip_literal_slow(text)


@functools.lru_cache(maxsize=1 << 16)
def _ip_literal_slow(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def task_ip(task: Task, mode: str, resolve: Callable[[str], str | None], ip_index: int = 0) -> str | None:
    """marathon-lb's ``get_task_ip_and_ports``, the address half: the container's IP for
    IP-per-task apps, else the agent's host name resolved (the bridge IP is never routable)."""
    if mode == "container":
        addrs = [a.ip_address for a in task.ip_addresses or () if a.ip_address]
        if ip_index >= len(addrs):
            return None
        return _ip_literal(addrs[ip_index])
    if not task.host:
        return None
    literal = _ip_literal(task.host)
    if literal is not None:
        return literal
    resolved = resolve(task.host)
    return _ip_literal(resolved) if resolved else None


def server_name(host: str, ip: str, port: int) -> str:
    """marathon-lb's server name: ``<host>_<ip>_<port>``, or ``<ip>_<port>`` when the host is the IP."""
    raw = f"{ip}_{port}" if host == ip else f"{host}_{ip}_{port}"
    if raw.isascii():
        return raw.encode().translate(_SERVER_NAME_BYTES).decode()
    return _SERVER_NAME.sub("_", raw)


def join_address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def backend_id(task_id: str, port_index: int | None, port: int = 0) -> str:
    """A backend's identity: the task id for the task's first port, ``<task id>#<n>`` for port n,
    so each (task, port) pair keeps its own connections, health and counters; ``<task id>@<port>``
    for a port that is none of the task's (Traefik's literal ``traefik.port``)."""
    if port_index is None:
        return f"{task_id}@{port}"
    return task_id if port_index == 0 else f"{task_id}#{port_index}"


def task_of_backend(backend: str) -> str:
    """The task id a Marathon backend id names (task ids hold neither '#' nor '@')."""
    return backend.partition("#")[0].partition("@")[0]


def service_name(app_id: str, port: int) -> str:
    return f"{app_id[1:] if app_id.startswith('/') else app_id}".replace("/", "_") + f"_{port}"


# --- IP-per-task service-port assignment ----------------------------------------------------------


class ServicePortAssigner:
    """marathon-lb's assignment of service ports to IP-per-task apps that declare none: a port
    hashed from (app id, container port) into [min, max], re-hashed up to 50 times on a clash,
    then the first free port. Deterministic for the same app set; built anew for every table."""

    _REHASHES = 50

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.enabled = 0 < lo <= hi
        self._used: set[int] = set()
        self._by_key: dict[tuple[str, int], int | None] = {}

    def assign(self, app_id: str, container_port: int) -> int | None:
        key = (app_id, container_port)
        if key not in self._by_key:
            self._by_key[key] = self._new(app_id, container_port)
        return self._by_key[key]

    def _new(self, app_id: str, container_port: int) -> int | None:
        span = self.hi - self.lo + 1
        for attempt in range(self._REHASHES):
            digest = hashlib.sha1(f"{app_id}-{container_port}-{attempt}".encode()).hexdigest()
            port = self.lo + int(digest[:8], 16) % span
            if port not in self._used:
                self._used.add(port)
                return port
        for port in range(self.lo, self.hi + 1):
            if port not in self._used:
                self._used.add(port)
                return port
        return None


_NO_ASSIGNER = ServicePortAssigner(0, 0)  # for apps that declare their service ports


def service_ports(app: App, mode: str, assigner: ServicePortAssigner) -> list[int | None]:
    ports: list[int | None] = list(declared_service_ports(app, mode))
    if not ports and mode == "container" and app.tasks and assigner.enabled:
        ports = [assigner.assign(app.id, p) for p in container_ports(app)]
    return ports


# --- health checks and task filters ---------------------------------------------------------------


def health_check_for(app: App, index: int) -> HealthCheckDef | None:
    """marathon-lb's ``get_health_check``: the first check with an explicit port (it applies to
    every port), else the first whose portIndex is ``index``."""
    checks = app.health_checks or ()
    for hc in checks:
        if hc.port:
            return hc
    for hc in checks:
        if hc.port_index == index:
            return hc
    return None


def spec_check(hc: HealthCheckDef, mode: str, port: int, rise: int | None) -> spec.HealthCheck:
    interval = hc.interval_seconds if hc.interval_seconds is not None else HC_DEFAULT_INTERVAL_S
    timeout = hc.timeout_seconds if hc.timeout_seconds is not None else HC_DEFAULT_TIMEOUT_S
    failures = (
        hc.max_consecutive_failures if hc.max_consecutive_failures is not None else HC_DEFAULT_MAX_FAILURES
    )
    http = mode == "http" and (hc.protocol or "HTTP") not in _TCP_CHECKS
    return spec.HealthCheck(
        kind="http" if http else "tcp",
        path=(hc.path or "/") if http else "/",
        port=port,
        interval_ms=max(1, interval) * 1000,
        timeout_ms=max(1, timeout) * 1000,
        fall=failures + 1,
        rise=rise if rise is not None else spec.HealthCheck().rise,
    )


def task_state(
    app: App, task: Task, ctx: BuildContext, draining: frozenset[str], gated: bool | None = None
) -> spec.AdminState | None:
    """The admin state a task is served with, or None when it is not served. <gated>:
    ``ctx.gated(app)``, when the caller has it already."""
    if not task.host:
        return None  # an old Marathon bug: a task with no host
    if task.state in EXCLUDED_STATES:
        return None
    if task.state in DRAINING_STATES:
        return "drain"
    if ctx.options.health_check and app.health_checks:
        if not ctx.alive.get(task.id, False):
            return None
    if (ctx.gated(app) if gated is None else gated) and not ctx.ready(app, task):
        return None
    return "drain" if task.id in draining else "ready"
