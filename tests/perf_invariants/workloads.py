"""Deterministic Marathon workloads for the output-identity tests: every fixture payload, a mixed
cluster that reaches every branch of the build that a payload can (each networking mode, health
checks, vhosts, blue/green groups, Traefik apps, port clashes, task states, host names and IP
literals of every kind), and the resync benchmark's 10,000-app cluster.

``digests()`` reduces what the Marathon provider hands out for each workload to a SHA-256:
``spec.encode`` of the table, the app errors and warnings, the backend ids per task, the host
lookups, and the controller's merge of the table with a static one. ``golden.json`` holds the
digests of the build as it was before its speed-ups; running this module writes them anew
(``python3 -m tests.perf_invariants.workloads``), which is only ever right for a change that is
meant to change the output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import msgspec

from fastlb import spec
from fastlb.marathon.state import MarathonOptions, MarathonState
from fastlb.merge import merge_tables

# Named "<folder>/<stem>" as golden.json names them: marathon-lb's test payloads, and Marathon's API
# payloads that the package ships for the emulator (not the demo's own apps).
FIXTURE_DIRS = {
    "marathon-lb": (Path(__file__).resolve().parent.parent / "data" / "marathon-lb", "*.json"),
    "marathon": (Path(str(resources.files("fastlb.emulator").joinpath("fixtures"))), "v2_*.json"),
}
GOLDEN = Path(__file__).resolve().parent / "golden.json"
STAMP = "2026-01-01T00:00:00.000Z"
LATER = "2026-01-02T00:00:00.000Z"

OPTION_SETS: dict[str, MarathonOptions] = {
    "default": MarathonOptions(),
    "all-groups-hc": MarathonOptions(groups=("*",), health_check=True),
    "strict-no-http": MarathonOptions(strict_mode=True, http_port=0, appid_port=0, bind_addr="127.0.0.1"),
    "no-ip-per-task-range": MarathonOptions(
        groups=("*",), min_serv_port_ip_per_task=0, max_serv_port_ip_per_task=0, respect_readiness=False
    ),
}


def resolver(host: str) -> str | None:
    """A stable stand-in for the client's DNS cache: most names resolve, some not yet, and a few
    to addresses that are not canonical (a resolver may hand those back)."""
    h = int(hashlib.sha1(host.encode()).hexdigest()[:8], 16)
    if h % 11 == 0:
        return None
    if h % 13 == 0:
        return f"::ffff:10.{h % 7}.0.{h % 250}"
    return f"10.{h % 200}.{(h >> 8) % 250}.{(h >> 16) % 250}"


def fixture_payloads() -> Iterator[tuple[str, bytes]]:
    """Every fixture that is a /v2/apps body (``{"apps": [...]}``)."""
    found = [(f"{name}/{p.name}", name, p) for name, (d, glob) in FIXTURE_DIRS.items() for p in d.glob(glob)]
    for _, folder, path in sorted(found):
        raw = path.read_bytes()
        try:
            body = json.loads(raw)
        except ValueError:
            continue
        if isinstance(body, dict) and isinstance(body.get("apps"), list):
            yield f"{folder}/{path.stem}", raw


# Task hosts: canonical IPv4 (the common case), IPv4 that only looks like one, IPv6, host names.
_HOSTS = (
    "10.1.2.3",
    "10.1.2.4",
    "192.168.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "010.1.2.3",
    "10.1.2.256",
    "10.1.2",
    "::1",
    "fd00::0001",
    "FD00::2",
    "::ffff:10.0.0.9",
    "agent-1.example.com",
    "agent-2.example.com",
    "Agent_3.example.com",
    "agent-4",
    "",
)
_STATES = (
    "TASK_RUNNING",
    "TASK_RUNNING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_STAGING",
    "TASK_LOST",
    "TASK_UNREACHABLE",
    "TASK_FINISHED",
    None,
)


# Hosts that need no lookup: IP literals (and none).
_LITERAL_HOSTS = ("10.1.2.3", "10.1.2.4", "192.168.0.1", "0.0.0.0", "::1", "fd00::0001", "FD00::2", "")


def _task(
    rng: random.Random, app_id: str, n: int, nports: int, ip_per_task: bool, plain: bool = False
) -> dict:
    host = rng.choice(_LITERAL_HOSTS if plain else _HOSTS)
    task: dict = {
        "id": f"{app_id.strip('/').replace('/', '_')}.instance-{n:04d}._app.1",
        "appId": app_id,
        "host": host,
        "ports": [] if ip_per_task else [31000 + rng.randrange(2000) for _ in range(nports)],
        "version": rng.choice((STAMP, LATER)),
        "startedAt": STAMP,
    }
    state = rng.choice(_STATES)
    if state is not None:
        task["state"] = state
    if ip_per_task or rng.random() < 0.5:
        task["ipAddresses"] = [
            {"ipAddress": f"172.16.{rng.randrange(4)}.{rng.randrange(256)}", "protocol": "IPv4"}
            for _ in range(rng.choice((1, 1, 2)))
        ]
    roll = rng.random()
    if roll < 0.3:
        task["healthCheckResults"] = [{"alive": rng.random() < 0.8, "taskId": task["id"]}]
    elif roll < 0.4:
        task["healthCheckResults"] = []
    return task


def mixed_payload(apps: int, seed: int, plain: bool = False) -> bytes:
    """A cluster of <apps> apps of every kind the build distinguishes, reproducible by <seed>.
    <plain>: marathon-lb apps only (no Traefik app, no blue/green group, no assigned service
    port) on IP literals: a cluster whose tables can be patched app by app."""
    rng = random.Random(seed)
    out = []
    for a in range(apps):
        app_id = f"/mix/{'grp/' if a % 5 == 0 else ''}app{a:04d}"
        kinds = ["host", "host", "bridge", "ip-per-task"]
        if not plain:
            kinds += ["legacy-usr", "traefik"]
        kind = rng.choice(kinds)
        nports = rng.choice((1, 1, 2, 3))
        # A few service ports are shared on purpose: the app first by id keeps the address.
        base = 10000 + (a * 3 if rng.random() < 0.95 else rng.randrange(30))
        labels: dict = {}
        if rng.random() < 0.9:
            labels["HAPROXY_GROUP"] = rng.choice(("external", "external", "internal", "external,internal"))
        if rng.random() < 0.3:
            labels["HAPROXY_0_VHOST"] = rng.choice(
                ("a.example.com", "b.example.com,C.example.com", "*.wild.example")
            )
        if rng.random() < 0.15:
            labels["HAPROXY_0_PATH"] = rng.choice(("/api", "/a /b", "-i /x"))
        if rng.random() < 0.2:
            labels["HAPROXY_0_MODE"] = rng.choice(("tcp", "http", "udp"))
        if rng.random() < 0.1:
            labels["HAPROXY_0_BALANCE"] = rng.choice(("leastconn", "maglev", "source", "uri", "bogus"))
        if rng.random() < 0.1:
            labels["HAPROXY_0_STICKY"] = "true"
        if rng.random() < 0.1:
            labels["HAPROXY_1_ENABLED"] = rng.choice(("true", "false"))
        if rng.random() < 0.1:
            labels["HAPROXY_0_BACKEND_WEIGHT"] = str(rng.randrange(5))
        if rng.random() < 0.1:
            labels["FASTLB_0_TIMEOUT_CONNECT"] = rng.choice(("500ms", "5s", "x"))
        if rng.random() < 0.1:
            labels["FASTLB_0_WEIGHT"] = str(rng.randrange(300))
        if rng.random() < 0.05:
            labels["HAPROXY_0_BIND_ADDR"] = "127.0.0.2"
        if rng.random() < 0.05:
            labels["HAPROXY_1_BACKEND_HEALTHCHECK_PORT_INDEX"] = "0"
        if rng.random() < 0.05:
            labels["HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL"] = "10.0.0.0/8 192.168.1.1"
        if a % 40 in (1, 2) and not plain:
            labels["HAPROXY_DEPLOYMENT_GROUP"] = f"bg{a // 40}"
            labels["HAPROXY_DEPLOYMENT_STARTED_AT"] = STAMP if a % 40 == 1 else LATER
            labels["HAPROXY_0_PORT"] = str(9000 + a // 40)
        if kind == "traefik":
            labels = {"traefik.frontend.rule": f"Host:t{a}.example.com", "traefik.tags": "external"}
            if rng.random() < 0.3:
                labels["traefik.backend"] = "shared"
            if rng.random() < 0.2:
                labels["traefik.web.port"] = str(8080)
            kind = "host"
        app: dict = {
            "id": app_id,
            "instances": rng.randrange(6),
            "labels": labels,
            "version": LATER,
            "versionInfo": {"lastScalingAt": rng.choice((STAMP, LATER)), "lastConfigChangeAt": STAMP},
            "deployments": [],
            "readinessCheckResults": [],
        }
        if kind == "host":
            app["networks"] = [{"mode": "host"}]
            app["portDefinitions"] = [
                {"port": base + i, "name": f"p{i}", "protocol": "tcp"} for i in range(nports)
            ]
        elif kind == "bridge":
            app["networks"] = [{"mode": "container/bridge"}]
            app["container"] = {
                "type": "DOCKER",
                "portMappings": [
                    {"containerPort": 80 + i, "hostPort": 0, "servicePort": base + i, "name": f"m{i}"}
                    for i in range(nports)
                ],
            }
        elif kind == "ip-per-task":
            app["networks"] = [{"mode": "container", "name": "dcos"}]
            mappings = [{"containerPort": 8000 + i, "name": f"c{i}"} for i in range(nports)]
            if plain or rng.random() < 0.5:
                for i, m in enumerate(mappings):
                    m["servicePort"] = base + i
            app["container"] = {"type": "DOCKER", "portMappings": mappings}
        else:  # Marathon <= 1.4: docker.network USER and ipAddress.discovery
            app["container"] = {"type": "DOCKER", "docker": {"network": "USER"}}
            app["ipAddress"] = {
                "networkName": "dcos",
                "discovery": {
                    "ports": [{"number": 7000 + i, "name": f"d{i}", "protocol": "tcp"} for i in range(nports)]
                },
            }
        if rng.random() < 0.4:
            app["healthChecks"] = [
                {
                    "protocol": rng.choice(("HTTP", "TCP", "MESOS_HTTP", "COMMAND")),
                    "path": "/health",
                    "portIndex": rng.randrange(nports),
                    "intervalSeconds": rng.choice((None, 5, 30)),
                    "maxConsecutiveFailures": rng.choice((None, 0, 3)),
                }
            ]
        if rng.random() < 0.1:
            app["readinessChecks"] = [{"name": "ready", "protocol": "HTTP", "path": "/ready"}]
            app["deployments"] = [{"id": f"d{a}"}]
        ip_per_task = kind in ("ip-per-task", "legacy-usr")
        app["tasks"] = [_task(rng, app_id, t, nports, ip_per_task, plain) for t in range(rng.randrange(7))]
        if app.get("readinessChecks") and app["tasks"]:
            app["readinessCheckResults"] = [{"taskId": app["tasks"][0]["id"], "ready": rng.random() < 0.5}]
        out.append(app)
    rng.shuffle(out)  # Marathon's order must not matter
    return json.dumps({"apps": out}).encode()


def bench_payload(apps: int, tasks: int = 5, base_port: int = 20000) -> bytes:
    """The resync benchmark's cluster (bench/marathon/resync.py imports it from here): HOST apps,
    one service port each, <tasks> tasks on IP literals, every other app http, with the fields
    Marathon sends that fastlb decodes past (resources, counts, agents)."""
    out = []
    for a in range(apps):
        app_id = f"/bench/app{a:05d}"
        port = base_port + a
        out.append(
            {
                "id": app_id,
                "cmd": "sleep 1000",
                "cpus": 0.1,
                "mem": 32,
                "disk": 0,
                "instances": tasks,
                "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "tcp" if a % 2 else "http"},
                "healthChecks": [],
                "readinessChecks": [],
                "networks": [{"mode": "host"}],
                "portDefinitions": [{"port": port, "name": "p0", "protocol": "tcp", "labels": {}}],
                "version": STAMP,
                "versionInfo": {"lastScalingAt": STAMP, "lastConfigChangeAt": STAMP},
                "tasksStaged": 0,
                "tasksRunning": tasks,
                "tasksHealthy": 0,
                "tasksUnhealthy": 0,
                "deployments": [],
                "tasks": [
                    {
                        "appId": app_id,
                        "host": f"10.{a % 250}.{t}.{(a // 250) % 250}",
                        "id": f"bench_app{a:05d}.instance-{a:05d}-{t:04d}._app.1",
                        "ipAddresses": [
                            {"ipAddress": f"10.{a % 250}.{t}.{(a // 250) % 250}", "protocol": "IPv4"}
                        ],
                        "ports": [31000 + t],
                        "servicePorts": [port],
                        "slaveId": f"agent-{t}",
                        "state": "TASK_RUNNING",
                        "stagedAt": STAMP,
                        "startedAt": STAMP,
                        "version": STAMP,
                        "healthCheckResults": [],
                    }
                    for t in range(tasks)
                ],
                "readinessCheckResults": [],
            }
        )
    return json.dumps({"apps": out}).encode()


def events_for(body: bytes, seed: int) -> list[tuple[str, bytes]]:
    """Task events on the apps of <body>: new tasks, kills, drains, health flips, app removals."""
    rng = random.Random(seed)
    apps = json.loads(body)["apps"]
    rng.shuffle(apps)
    events: list[tuple[str, bytes]] = []
    for app in apps[:40]:
        tasks = app.get("tasks") or []
        choice = rng.randrange(6)
        if choice == 0 or not tasks:
            ev = {
                "eventType": "status_update_event",
                "timestamp": LATER,
                "taskId": f"{app['id'].strip('/').replace('/', '_')}.instance-new{rng.randrange(99)}._app.1",
                "taskStatus": "TASK_RUNNING",
                "appId": app["id"],
                "host": rng.choice(_HOSTS[:4] + _HOSTS[12:14]),
                "ipAddresses": [{"ipAddress": "172.16.9.9", "protocol": "IPv4"}],
                "ports": [32000 + i for i in range(3)],
                "version": LATER,
            }
        elif choice in (1, 2):
            ev = {
                "eventType": "status_update_event",
                "timestamp": LATER,
                "taskId": rng.choice(tasks)["id"],
                "taskStatus": ("TASK_KILLING", "TASK_KILLED")[choice - 1],
                "appId": app["id"],
            }
        elif choice == 3:
            ev = {
                "eventType": "health_status_changed_event",
                "timestamp": LATER,
                "appId": app["id"],
                "taskId": rng.choice(tasks)["id"],
                "alive": rng.random() < 0.5,
            }
        elif choice == 4:
            ev = {"eventType": "app_terminated_event", "timestamp": LATER, "appId": app["id"]}
        else:
            ev = {
                "eventType": "unhealthy_task_kill_event",
                "timestamp": LATER,
                "appId": app["id"],
                "taskId": rng.choice(tasks)["id"],
            }
        events.append((ev["eventType"], json.dumps(ev).encode()))
    return events


def digest(state: MarathonState) -> str:
    """SHA-256 of everything the provider hands out after a build."""
    h = hashlib.sha256()
    h.update(spec.encode(state.table()))
    h.update(msgspec.json.encode([state.app_errors(), state.app_warnings(), sorted(state.hostnames())]))
    built = state._build()  # the backend ids per task and the answers the build used
    h.update(msgspec.json.encode([dict(built.backends_by_task), built.lookups], order="sorted"))
    # What the controller makes of it, next to a static table that claims some of its ports.
    merged, errors = merge_tables([("static", _STATIC), ("marathon", built.table)])
    h.update(spec.encode(merged))
    h.update(msgspec.json.encode(errors))
    return h.hexdigest()


_STATIC = spec.RouteTable(
    services=(spec.Service(name="static-a"), spec.Service(name="static-b")),
    listeners=(
        spec.Listener(address="0.0.0.0:10003", kind="service", service="static-a"),
        spec.Listener(address="127.0.0.1:10050", kind="service", service="static-b"),
        spec.Listener(address="0.0.0.0:80", kind="vhost"),
    ),
)


def workloads() -> Iterator[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """(name, /v2/apps body, events applied after it, one digest each)."""
    for name, body in fixture_payloads():
        yield f"fixture:{name}", body, []
    for seed in (1, 2, 3):
        body = mixed_payload(400, seed)
        yield f"mixed-400-seed{seed}", body, events_for(body, seed)


BENCH_APPS = 10000


def run(
    body: bytes,
    events: list[tuple[str, bytes]],
    options: MarathonOptions,
    resolve: Callable[[str], str | None],
) -> list[str]:
    """The digest after the resync, then after each event (the incremental path)."""
    state = MarathonState(options, resolve)
    state.replace_all(body)
    out = [digest(state)]
    for event_type, data in events:
        state.apply_event(event_type, data)
        out.append(digest(state))
    return out


def digests() -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, body, events in workloads():
        for opt_name, options in OPTION_SETS.items():
            result[f"{name}|{opt_name}"] = run(body, events, options, resolver)
    body = bench_payload(BENCH_APPS)
    bench_options = MarathonOptions(bind_addr="127.0.77.1", http_port=0, https_port=0, appid_port=0)
    result[f"bench-{BENCH_APPS}"] = run(body, events_for(body, 7)[:5], bench_options, lambda host: host)
    return result


if __name__ == "__main__":
    logging.getLogger("fastlb.marathon").setLevel(logging.CRITICAL)  # bad apps are the point here
    GOLDEN.write_text(json.dumps(digests(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
