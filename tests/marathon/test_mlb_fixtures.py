"""Every marathon-lb fixture: the services, listeners, routes and servers its .md says.

The expectations below are written from tests/data/marathon-lb/*.md (what marathon-lb generates
for each payload), not from fastlb's output. One deliberate difference is spelled out where it
applies: a TASK_KILLING task is kept with state "drain" where marathon-lb drops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fastlb import spec
from fastlb.marathon import tasks
from fastlb.marathon.models import decode_app
from fastlb.marathon.state import MarathonOptions, MarathonState

from .conftest import mlb_payload


@dataclass(frozen=True)
class Srv:
    name: str
    address: str
    state: str = "ready"
    check: tuple | None = None  # (kind, path, interval_ms, timeout_ms, fall, port)


@dataclass(frozen=True)
class Svc:
    name: str
    mode: str
    servers: tuple[Srv, ...]
    balance: str = "roundrobin"
    app_id: str = ""
    listen: str | None = None  # defaults to 0.0.0.0:<port from the name>
    http: dict = field(default_factory=dict)  # HttpOptions fields that must hold


@dataclass(frozen=True)
class Case:
    fixture: str
    services: tuple[Svc, ...]
    routes: tuple[tuple[str, str, tuple[str, ...], int], ...] = ()
    options: dict = field(default_factory=dict)
    hosts: dict = field(default_factory=dict)
    id: str = ""


HC_2S = ("http", "/", 2000, 10000, 11, 0)  # inter 2s, fall 11, timeout check 10s, httpchk GET /
HC_3S = ("http", "/", 3000, 15000, 11, 0)
A1 = {"agent1": "1.1.1.1"}
NGINX_HC = Svc(
    "nginx_10000", "http", (Srv("agent1_1_1_1_1_1024", "1.1.1.1:1024", check=HC_2S),), app_id="/nginx"
)

CASES = [
    # simple-http-healthcheck.md: http by the HTTP check, app-id rule, one server; hc on or off alike.
    *[
        Case(
            "simple-http-healthcheck",
            (NGINX_HC,),
            options={"health_check": hc},
            hosts=A1,
            id=f"simple-hc-{hc}",
        )
        for hc in (False, True)
    ],
    # vhost.md: the same, plus the Host rule on :80.
    Case(
        "vhost",
        (NGINX_HC,),
        routes=(("test.example.com", "nginx_10000", (), 0),),
        hosts=A1,
    ),
    # multi-vhost-path.md: two hosts, one path, PATH lifts the weight to 1; agent1 is 192.0.2.1 here.
    Case(
        "multi-vhost-path",
        (
            Svc(
                "nginx_10000",
                "http",
                (Srv("agent1_192_0_2_1_1234", "192.0.2.1:1234", check=HC_2S),),
                app_id="/nginx",
            ),
        ),
        routes=(
            ("test.example.com", "nginx_10000", ("/some/path",), 1),
            ("test", "nginx_10000", ("/some/path",), 1),
        ),
        hosts={"agent1": "192.0.2.1"},
    ),
    # sticky-tcp.md: tcp (no vhost, no HTTP check), so no app-id rule; `check` with defaults.
    Case(
        "sticky-tcp",
        (
            Svc(
                "nginx_10000",
                "tcp",
                (Srv("agent1_1_1_1_1_1024", "1.1.1.1:1024", check=("tcp", "/", 2000, 1000, 3, 0)),),
            ),
        ),
        hosts=A1,
    ),
    # balance-leastconn.md
    Case(
        "balance-leastconn",
        (
            Svc(
                "nginx_10000",
                "http",
                (Srv("agent1_1_1_1_1_1024", "1.1.1.1:1024", check=HC_2S),),
                balance="leastconn",
                app_id="/nginx",
            ),
        ),
        hosts=A1,
    ),
    # multi-port-groups.md: port 0 is "internal" (its own group), port 1 "external" (the app's).
    Case(
        "multi-port-groups",
        (Svc("nginx_10001", "tcp", (Srv("agent1_1_1_1_1_1025", "1.1.1.1:1025"),)),),
        hosts=A1,
        id="groups-external",
    ),
    Case(
        "multi-port-groups",
        (Svc("nginx_10000", "tcp", (Srv("agent1_1_1_1_1_1024", "1.1.1.1:1024"),)),),
        options={"groups": ("internal",)},
        hosts=A1,
        id="groups-internal",
    ),
    Case(
        "multi-port-groups",
        (
            Svc("nginx_10000", "tcp", (Srv("agent1_1_1_1_1_1024", "1.1.1.1:1024"),)),
            Svc("nginx_10001", "tcp", (Srv("agent1_1_1_1_1_1025", "1.1.1.1:1025"),)),
        ),
        options={"groups": ("*",)},
        hosts=A1,
        id="groups-star",
    ),
    # healthcheck-port-index.md (hc on): port 0 is checked on the task's port of index 1.
    Case(
        "healthcheck-port-index",
        (
            Svc(
                "nginx_10000",
                "http",
                (Srv("agent1_192_0_2_1_1024", "192.0.2.1:1024", check=("http", "/", 2000, 10000, 11, 1025)),),
                app_id="/nginx",
            ),
            Svc(
                "nginx_10001",
                "http",
                (Srv("agent1_192_0_2_1_1025", "192.0.2.1:1025", check=HC_2S),),
            ),
        ),
        options={"health_check": True},
        hosts={"agent1": "192.0.2.1"},
    ),
    # ip-per-task.md: container IP + container port; the legacy app gets service port 10051.
    *[
        Case(
            "ip-per-task",
            (
                Svc(
                    "ippt_10010",
                    "http",
                    (Srv("10_0_0_11_9_0_1_5_80", "9.0.1.5:80"), Srv("10_0_0_12_9_0_2_7_80", "9.0.2.7:80")),
                    app_id="/ippt",
                ),
                Svc(
                    "ippt_10011",
                    "tcp",
                    (Srv("10_0_0_11_9_0_1_5_81", "9.0.1.5:81"), Srv("10_0_0_12_9_0_2_7_81", "9.0.2.7:81")),
                ),
                Svc(
                    "legacy-ippt_10051",
                    "http",
                    (Srv("10_0_0_13_9_0_3_9_8080", "9.0.3.9:8080"),),
                    app_id="/legacy-ippt",
                ),
            ),
            routes=(
                ("ippt.example.com", "ippt_10010", (), 0),
                ("legacy.example.com", "legacy-ippt_10051", (), 0),
            ),
            options={"health_check": hc},
            id=f"ippt-hc-{hc}",
        )
        for hc in (False, True)
    ],
    # ip-per-task.md: both range flags 0 disable assignment; the legacy app is then skipped.
    Case(
        "ip-per-task",
        (
            Svc(
                "ippt_10010",
                "http",
                (Srv("10_0_0_11_9_0_1_5_80", "9.0.1.5:80"), Srv("10_0_0_12_9_0_2_7_80", "9.0.2.7:80")),
                app_id="/ippt",
            ),
            Svc(
                "ippt_10011",
                "tcp",
                (Srv("10_0_0_11_9_0_1_5_81", "9.0.1.5:81"), Srv("10_0_0_12_9_0_2_7_81", "9.0.2.7:81")),
            ),
        ),
        routes=(("ippt.example.com", "ippt_10010", (), 0),),
        options={"min_serv_port_ip_per_task": 0, "max_serv_port_ip_per_task": 0},
        id="ippt-no-assign",
    ),
    # task-filtering.md. fastlb keeps task 5 (TASK_KILLING) as "drain" where marathon-lb drops it.
    Case(
        "task-filtering",
        (
            Svc(
                "filter_10020",
                "http",
                (
                    Srv("10_0_1_1_31001", "10.0.1.1:31001", check=HC_2S),
                    Srv("10_0_1_2_31002", "10.0.1.2:31002", check=HC_2S),
                    Srv("10_0_1_3_31003", "10.0.1.3:31003", check=HC_2S),
                    Srv("10_0_1_5_31005", "10.0.1.5:31005", "drain", check=HC_2S),
                    Srv("10_0_1_6_31006", "10.0.1.6:31006", check=HC_2S),
                    Srv("10_0_1_7_31007", "10.0.1.7:31007", check=HC_2S),
                ),
                app_id="/filter",
            ),
        ),
        id="filter-hc-off",
    ),
    Case(
        "task-filtering",
        (
            Svc(
                "filter_10020",
                "http",
                (
                    Srv("10_0_1_1_31001", "10.0.1.1:31001", check=HC_2S),
                    Srv("10_0_1_5_31005", "10.0.1.5:31005", "drain", check=HC_2S),
                    Srv("10_0_1_6_31006", "10.0.1.6:31006", check=HC_2S),
                ),
                app_id="/filter",
            ),
        ),
        options={"health_check": True},
        id="filter-hc-on",
    ),
    # strict-mode-auth-redirect.md
    Case(
        "strict-mode-auth-redirect",
        (
            Svc(
                "secure_10030",
                "http",
                (Srv("10_0_2_1_31100", "10.0.2.1:31100"),),
                app_id="/secure",
                http={"hsts": True, "redirect_to_https": True, "auth_realm": ""},
            ),
        ),
        routes=(("secure.example.com", "secure_10030", (), 0),),
        options={"strict_mode": True},
        id="strict",
    ),
    Case(
        "strict-mode-auth-redirect",
        (
            Svc(
                "private_10031",
                "http",
                (Srv("10_0_2_2_31101", "10.0.2.2:31101"),),
                app_id="/private",
                http={
                    "auth_realm": "myrealm",
                    "auth_users": (("alice", "$5$salt$hashedpassword"),),
                    "hsts": False,
                },
            ),
            Svc(
                "secure_10030",
                "http",
                (Srv("10_0_2_1_31100", "10.0.2.1:31100"),),
                app_id="/secure",
                http={"hsts": True, "redirect_to_https": True},
            ),
        ),
        routes=(
            ("private.example.com", "private_10031", (), 0),
            ("secure.example.com", "secure_10030", (), 0),
        ),
        id="not-strict",
    ),
    # repo-marathon15-bridge-vhost.md: agent IP + host port, never the bridge IP; hc on.
    Case(
        "repo-marathon15-bridge-vhost",
        (
            Svc(
                "pywebserver_10101",
                "http",
                (Srv("10_0_2_148_1565", "10.0.2.148:1565"),),
                app_id="/pywebserver",
            ),
        ),
        routes=(("myvhost.com", "pywebserver_10101", (), 0),),
        options={"health_check": True},
    ),
    # repo-zdd-deployment-group.md: blue and green merged as /nginx; one old task drained.
    Case(
        "repo-zdd-deployment-group",
        (
            Svc(
                "nginx_10000",
                "http",
                (
                    Srv("10_0_1_147_25724", "10.0.1.147:25724", check=HC_3S),
                    Srv("10_0_6_25_16916", "10.0.6.25:16916", check=HC_3S),
                    Srv("10_0_6_25_23336", "10.0.6.25:23336", check=HC_3S),
                    Srv("10_0_6_25_31184", "10.0.6.25:31184", "drain", check=HC_3S),
                ),
                app_id="/nginx",
            ),
        ),
        options={"health_check": True},
    ),
    # repo-v2-apps-zdd-green-marathon15.md: one app of a group, nothing drained. Its check is
    # MESOS_HTTP, which does not imply http mode (reference §3.12), so the check is a tcp one.
    Case(
        "repo-v2-apps-zdd-green-marathon15",
        (
            Svc(
                "nginx_10000",
                "tcp",
                (
                    Srv("10_0_6_25_16916", "10.0.6.25:16916", check=("tcp", "/", 3000, 15000, 11, 0)),
                    Srv("10_0_6_25_23336", "10.0.6.25:23336", check=("tcp", "/", 3000, 15000, 11, 0)),
                    Srv("10_0_6_25_31184", "10.0.6.25:31184", check=("tcp", "/", 3000, 15000, 11, 0)),
                ),
            ),
        ),
        options={"health_check": True},
    ),
]


def _state(case: Case) -> MarathonState:
    state = MarathonState(MarathonOptions(**case.options), case.hosts.get)
    state.replace_all(mlb_payload(case.fixture))
    return state


@pytest.mark.parametrize("case", CASES, ids=[c.id or c.fixture for c in CASES])
def test_fixture_table(case: Case) -> None:
    state = _state(case)
    table = state.table()
    assert state.app_errors() == {}
    assert [s.name for s in table.services] == [s.name for s in case.services]
    for want, got in zip(case.services, table.services):
        assert got.mode == want.mode
        assert got.balance == want.balance
        assert got.app_id == want.app_id
        servers = [(b.name, b.address, b.state) for b in got.backends]
        assert servers == [(s.name, s.address, s.state) for s in want.servers]
        for s, b in zip(want.servers, got.backends):
            if s.check is None:
                assert b.check is None
            else:
                c = b.check
                assert c is not None
                assert (c.kind, c.path, c.interval_ms, c.timeout_ms, c.fall, c.port) == s.check
        for key, value in want.http.items():
            assert getattr(got.http, key) == value, key
    service_listeners = {l.service: l.address for l in table.listeners if l.kind == "service"}
    assert service_listeners == {
        s.name: s.listen or "0.0.0.0:" + s.name.rsplit("_", 1)[1] for s in case.services
    }
    assert [(l.address, l.tls) for l in table.listeners if l.kind == "vhost"] == [
        ("0.0.0.0:80", False), ("0.0.0.0:443", True)
    ]
    http = any(s.mode == "http" for s in case.services)
    assert [l.address for l in table.listeners if l.kind == "appid"] == (["0.0.0.0:9091"] if http else [])
    assert [(r.host, r.service, r.paths, r.weight) for r in table.http_routes] == list(case.routes)


def test_backend_ids_are_task_ids_with_port_suffix() -> None:
    case = next(c for c in CASES if c.id == "groups-star")
    table = _state(case).table()
    ids = [b.id for s in table.services for b in s.backends]
    task = "nginx.aaaa0006-0000-11ea-0000-000000000001"
    assert ids == [task, task + "#1"]


def test_zdd_input_app_definition_alone_serves_nothing() -> None:
    """repo-zdd-input-app-definition.md: an app *definition* (zdd's input), no tasks yet: its
    bridge service port is 10000, and with no task there is no service (empty services vanish)."""
    payload = mlb_payload("repo-zdd-input-app-definition")
    app = decode_app(b'{"app": ' + payload + b"}")
    mode = tasks.networking_mode(app)
    assert mode == "container/bridge"
    assert tasks.declared_service_ports(app, mode) == [10000]
    state = MarathonState(MarathonOptions(), {}.get)
    state.replace_all(b'{"apps": [' + payload + b"]}")
    assert state.table().services == ()
    assert state.app_errors() == {}


def test_dont_bind_http_https_keeps_http_mode_but_no_vhost_routes() -> None:
    state = MarathonState(MarathonOptions(dont_bind_http_https=True), A1.get)
    state.replace_all(mlb_payload("vhost"))
    table = state.table()
    assert [s.mode for s in table.services] == ["http"]
    assert table.http_routes == ()
    assert [l.kind for l in table.listeners] == ["service", "appid"]


def test_disabled_shared_listeners() -> None:
    state = MarathonState(MarathonOptions(http_port=0, https_port=0, appid_port=0, bind_addr="127.0.0.1"), A1.get)
    state.replace_all(mlb_payload("vhost"))
    table = state.table()
    only = spec.Listener(address="127.0.0.1:10000", kind="service", service="nginx_10000")
    assert table.listeners == (only,)
    assert table.services[0].app_id == ""


def test_unresolved_host_drops_task_until_resolved() -> None:
    names: dict[str, str] = {}
    state = MarathonState(MarathonOptions(), names.get)
    state.replace_all(mlb_payload("simple-http-healthcheck"))
    assert state.hostnames() == frozenset({"agent1"})
    assert state.table().services == ()  # its only server is unknown: the service vanishes
    names["agent1"] = "1.1.1.1"  # the client's cache learns the name: the next table has it
    assert [b.address for b in state.table().services[0].backends] == ["1.1.1.1:1024"]


def test_health_cache_survives_results_vanishing() -> None:
    """After a Marathon leader failover results are absent: the last known one applies (PR #148)."""
    import json

    state = MarathonState(MarathonOptions(health_check=True), {}.get)
    doc = json.loads(mlb_payload("task-filtering"))
    state.replace_all(json.dumps(doc).encode())
    before = [b.name for b in state.table().services[0].backends]
    for task in doc["apps"][0]["tasks"]:
        task.pop("healthCheckResults", None)
    state.replace_all(json.dumps(doc).encode())
    assert [b.name for b in state.table().services[0].backends] == before


def test_hosts_of_unserved_apps_are_not_resolved() -> None:
    asked: list[str] = []

    def resolve(host: str) -> str | None:
        asked.append(host)
        return "1.1.1.1"

    state = MarathonState(MarathonOptions(groups=("internal",)), resolve)
    state.replace_all(mlb_payload("vhost"))
    assert state.table().services == () and asked == [] and state.hostnames() == frozenset()
