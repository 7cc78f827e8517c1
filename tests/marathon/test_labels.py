"""Label semantics: marathon-lb's HAPROXY_*, Traefik's traefik.*, fastlb's FASTLB_*; errors stay
with their app; tables are deterministic."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import spec
from fastlb.marathon import labels as lbl
from fastlb.marathon import traefik_labels as tlbl
from fastlb.marathon.state import MarathonOptions, MarathonState

from .conftest import MARATHON, MLB, marathon_payload, mlb_payload


def app(
    app_id: str,
    port: int,
    labels: dict[str, str],
    *,
    host: str = "10.0.0.1",
    task_port: int = 31000,
    n: int = 1,
) -> dict:
    return {
        "id": app_id,
        "labels": {"HAPROXY_GROUP": "external", **labels},
        "portDefinitions": [{"port": port + i} for i in range(n)],
        "tasks": [
            {
                "id": app_id.strip("/").replace("/", "_") + ".t1",
                "host": host,
                "ports": [task_port + i for i in range(n)],
                "state": "TASK_RUNNING",
            }
        ],
    }


def state_of(*apps, **options) -> MarathonState:
    state = MarathonState(MarathonOptions(**options), {}.get)
    state.replace_all(json.dumps({"apps": list(apps)}).encode())
    return state


def test_string_to_bool_is_marathon_lbs() -> None:
    for v in ("true", "T", "yes", "Y", "TRUE"):
        assert lbl.string_to_bool(v)
    for v in ("1", "on", "false", "", "enabled"):
        assert not lbl.string_to_bool(v)


def test_port_labels_parsed() -> None:
    parsed = lbl.parse_haproxy_labels(
        {
            "HAPROXY_GROUP": "external, internal",
            "HAPROXY_0_VHOST": "A.example.com, b.example.com",
            "HAPROXY_0_PATH": "-i /api /v2",
            "HAPROXY_0_BACKEND_WEIGHT": "5",
            "HAPROXY_0_MODE": "HTTP",
            "HAPROXY_0_BALANCE": "maglev",
            "HAPROXY_0_AUTH": "realm:user:$6$x$y",
            "HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "10.0.0.0/8 192.168.1.1",
            "HAPROXY_0_BIND_ADDR": "127.0.0.1",
            "HAPROXY_1_GROUP": "internal",
            "HAPROXY_1_ENABLED": "no",
        }
    )
    assert parsed.errors == ()
    assert parsed.groups == ("external", "internal")
    p0 = parsed.port(0)
    assert p0.vhosts == ("a.example.com", "b.example.com")
    assert p0.paths == ("/api", "/v2")
    assert (p0.backend_weight, p0.mode, p0.balance, p0.bind_addr) == (5, "http", "maglev", "127.0.0.1")
    assert p0.auth == ("realm", "user", "$6$x$y")
    assert p0.allow_cidrs == ("10.0.0.0/8", "192.168.1.1/32")
    assert parsed.port(1).groups == ("internal",) and parsed.port(1).enabled is False
    assert any("-i" in w for w in parsed.warnings)


def test_template_overrides_warn_once_each_and_are_served() -> None:
    labels = {"HAPROXY_0_FRONTEND_HEAD": "", "HAPROXY_0_BACKEND_SERVER_OPTIONS": "  server {serverName}"}
    state = state_of(app("/t", 10000, labels))
    assert [s.name for s in state.table().services] == ["t_10000"]
    warnings = state.app_warnings()["/t"]
    assert len(warnings) == 2 and all("template" in w for w in warnings)


def test_haproxy_only_balance_falls_back_to_roundrobin_with_warning() -> None:
    state = state_of(app("/u", 10000, {"HAPROXY_0_BALANCE": "uri"}))
    assert state.table().services[0].balance == "roundrobin"
    assert "round-robin" in state.app_warnings()["/u"][0]


def test_bad_label_disables_only_that_app() -> None:
    good = app("/good", 10000, {"HAPROXY_0_MODE": "http"})
    bad_mode = app("/bad-mode", 10001, {"HAPROXY_0_MODE": "udp"}, host="10.0.0.2")
    bad_weight = app("/bad-weight", 10002, {"HAPROXY_0_BACKEND_WEIGHT": "heavy"}, host="10.0.0.3")
    bad_auth = app("/bad-auth", 10003, {"HAPROXY_0_AUTH": "realm:only"}, host="10.0.0.4")
    bad_balance = app("/bad-balance", 10004, {"HAPROXY_0_BALANCE": "fastest"}, host="10.0.0.5")
    bad_acl = app("/bad-acl", 10005, {"HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "10.0.0.0/33"})
    tls = app("/tls", 10006, {"HAPROXY_0_SSL_CERT": "/etc/ssl/x.pem"})
    state = state_of(good, bad_mode, bad_weight, bad_auth, bad_balance, bad_acl, tls)
    assert [s.name for s in state.table().services] == ["good_10000"]
    errors = state.app_errors()
    assert set(errors) == {"/bad-mode", "/bad-weight", "/bad-auth", "/bad-balance", "/bad-acl", "/tls"}
    assert "HAPROXY_0_MODE" in errors["/bad-mode"] and "udp" in errors["/bad-mode"]
    assert "HAPROXY_0_SSL_CERT" in errors["/tls"] and "No such file" in errors["/tls"]


def test_bad_label_of_an_app_we_do_not_serve_is_not_reported() -> None:
    other = app("/other", 10000, {"HAPROXY_GROUP": "internal", "HAPROXY_0_MODE": "udp"})
    assert state_of(other).app_errors() == {}


def test_port_conflict_first_app_by_id_keeps_the_port() -> None:
    state = state_of(app("/b", 10000, {}), app("/a", 10000, {}, host="10.0.0.9"))
    assert [s.name for s in state.table().services] == ["a_10000"]
    assert "0.0.0.0:10000" in state.app_errors()["/b"] and "/a" in state.app_errors()["/b"]


def test_port_conflict_with_shared_listener() -> None:
    state = state_of(app("/web", 80, {}), app("/ok", 10000, {}))
    assert [s.name for s in state.table().services] == ["ok_10000"]
    assert "vhost" in state.app_errors()["/web"]


def test_haproxy_port_and_bind_addr_override() -> None:
    state = state_of(app("/x", 10000, {"HAPROXY_0_PORT": "2000", "HAPROXY_0_BIND_ADDR": "::1"}))
    t = state.table()
    assert [s.name for s in t.services] == ["x_2000"]
    assert t.listeners[0] == spec.Listener(address="[::1]:2000", kind="service", service="x_2000")


def test_strict_mode_needs_enabled() -> None:
    apps = [app("/on", 10000, {"HAPROXY_0_ENABLED": "true"}), app("/off", 10001, {})]
    assert [s.name for s in state_of(*apps, strict_mode=True).table().services] == ["on_10000"]
    assert [s.name for s in state_of(*apps).table().services] == ["off_10001", "on_10000"]


def test_vhost_weight_ordering() -> None:
    """multi-vhost-path.md: weights 3/2/1/0 on the same vhost order the routes nginx3..nginx."""
    apps = [
        app(
            f"/nginx{i}" if i else "/nginx",
            10000 + i,
            {"HAPROXY_0_VHOST": "a.com", "HAPROXY_0_BACKEND_WEIGHT": str(i)},
        )
        for i in range(4)
    ]
    routes = state_of(*apps).table().http_routes
    assert [r.service for r in routes] == ["nginx3_10003", "nginx2_10002", "nginx1_10001", "nginx_10000"]


def test_fastlb_extensions() -> None:
    labels = {
        "HAPROXY_0_MODE": "http",
        "HAPROXY_0_STICKY": "true",
        "FASTLB_0_MAXCONN": "100",
        "FASTLB_0_BACKEND_MAXCONN": "10",
        "FASTLB_0_TIMEOUT_QUEUE": "5s",
        "FASTLB_0_RETRIES": "1",
        "FASTLB_0_WEIGHT": "7",
        "FASTLB_0_TIMEOUT_CONNECT": "500ms",
        "FASTLB_0_TIMEOUT_SERVER": "2m",
        "FASTLB_0_FORWARDED_HEADERS": "false",
        "FASTLB_0_STICKY_COOKIE": "srv",
    }
    (s,) = state_of(app("/f", 10000, labels)).table().services
    assert (s.maxconn, s.backend_maxconn, s.retries) == (100, 10, 1)
    assert (s.timeouts.connect_ms, s.timeouts.server_ms, s.timeouts.client_ms) == (500, 120000, 30000)
    assert s.timeouts.queue_ms == 5000
    assert s.http.sticky and s.http.sticky_cookie == "srv" and not s.http.forwarded_headers
    assert s.backends[0].weight == 7
    bad = state_of(app("/f", 10000, {"FASTLB_0_WEIGHT": "300"}))
    assert "FASTLB_0_WEIGHT" in bad.app_errors()["/f"]
    for label, value in (("FASTLB_0_BACKEND_MAXCONN", "-1"), ("FASTLB_0_TIMEOUT_QUEUE", "1200h")):
        bad = state_of(app("/f", 10000, {label: value}))
        assert label in bad.app_errors()["/f"] and not bad.table().services


def test_healthcheck_port_index_out_of_range_uses_own_port() -> None:
    a = app("/h", 10000, {"HAPROXY_0_BACKEND_HEALTHCHECK_PORT_INDEX": "3"})
    a["healthChecks"] = [{"protocol": "HTTP", "portIndex": 0, "path": "/ok"}]
    (s,) = state_of(a).table().services
    assert s.backends[0].check is not None and s.backends[0].check.port == 0
    assert s.backends[0].check.interval_ms == 60000  # Marathon's default interval


def test_explicit_health_check_port_applies_to_every_port() -> None:
    a = app("/h", 10000, {}, n=2)
    a["healthChecks"] = [{"protocol": "TCP", "port": 8080}]
    t = state_of(a).table()
    assert [b.check.port for s in t.services for b in s.backends if b.check] == [8080, 8080]


def test_mode_label_beats_http_health_check() -> None:
    a = app("/m", 10000, {"HAPROXY_0_MODE": "tcp"})
    a["healthChecks"] = [{"protocol": "HTTP", "portIndex": 0}]
    (s,) = state_of(a).table().services
    assert s.mode == "tcp" and s.app_id == "" and s.backends[0].check.kind == "tcp"


def test_app_id_rule_only_on_first_http_port() -> None:
    a = app("/two", 10000, {"HAPROXY_0_MODE": "http", "HAPROXY_1_MODE": "http"}, n=2)
    t = state_of(a).table()
    assert [(s.name, s.app_id) for s in t.services] == [("two_10000", "/two"), ("two_10001", "")]


def test_traefik_rule_parsing() -> None:
    rule, err = tlbl.parse_traefik_rule("Host:a.com,B.com;PathPrefix:/x,/y")
    assert err is None and rule == tlbl.TraefikRule(hosts=("a.com", "b.com"), paths=("/x", "/y"))
    for bad in ("PathPrefix:/x", "Host:a.com;Method:GET", "HostRegexp:{x:.*}", "garbage"):
        assert tlbl.parse_traefik_rule(bad)[0] is None


def test_traefik_default_rule_and_merging() -> None:
    a = {"id": "/grp/app",
         "labels": {"traefik.enable": "true", "traefik.tags": "external", "traefik.backend": "pool",
                    "traefik.domain": "example.com"},
         "portDefinitions": [{"port": 10000}],
         "tasks": [{"id": "grp_app.1", "host": "10.0.0.1", "ports": [31000], "state": "TASK_RUNNING"}]}
    b = {"id": "/grp/blue", "labels": {"traefik.tags": "external", "traefik.backend": "pool",
                                       "traefik.frontend.rule": "Host:blue.example.com"},
         "portDefinitions": [{"port": 10001}],
         "tasks": [{"id": "grp_blue.1", "host": "10.0.0.2", "ports": [32000], "state": "TASK_RUNNING"}]}
    t = state_of(a, b).table()
    (s,) = t.services
    assert s.name == "backendpool"  # Traefik: Normalize("backend" + label)
    assert [x.address for x in s.backends] == ["10.0.0.1:31000", "10.0.0.2:32000"]
    assert [r.host for r in t.http_routes] == ["grp-app.example.com"]  # the first app's rule


def test_traefik_port_name_and_index() -> None:
    doc = json.loads(marathon_payload("v2_apps_embed_tasks_bridge"))
    labels = doc["apps"][0]["labels"]
    labels.pop("traefik.metrics.frontend.entryPoints")
    labels.pop("traefik.metrics.portIndex")  # now selected by its name alone
    state = MarathonState(MarathonOptions(groups=("*",)), {}.get)
    state.replace_all(json.dumps(doc).encode())
    got = {s.name: [b.address for b in s.backends] for s in state.table().services}
    metrics = ["10.0.1.11:31002", "10.0.1.12:31741", "10.0.1.13:31334"]
    assert got["backend-shop-api-service-metrics"] == metrics


# --- determinism ----------------------------------------------------------------------------------

FIXTURES = [p for p in sorted(MLB.glob("*.json")) if "apps" in json.loads(p.read_bytes())] + [
    p for p in sorted(MARATHON.glob("v2_apps_*.json"))
]


def test_same_apps_any_order_same_bytes() -> None:
    rng = random.Random(7)
    hosts = {"agent1": "1.1.1.1", **{f"agent-{i}.example.internal": f"10.0.1.1{i}" for i in range(1, 6)}}
    for path in FIXTURES:
        doc = json.loads(path.read_bytes())
        for options in (MarathonOptions(), MarathonOptions(groups=("*",), health_check=True)):
            encoded = set()
            for _ in range(4):
                rng.shuffle(doc["apps"])
                for a in doc["apps"]:
                    rng.shuffle(a.get("tasks") or [])
                    a["labels"] = dict(sorted((a.get("labels") or {}).items(), key=lambda _: rng.random()))
                state = MarathonState(options, hosts.get)
                state.replace_all(json.dumps(doc).encode())
                encoded.add(spec.encode(state.table()))
            assert len(encoded) == 1, path.name


def test_group_merge_is_order_independent() -> None:
    doc = json.loads(mlb_payload("repo-zdd-deployment-group"))
    a = MarathonState(MarathonOptions(health_check=True), {}.get)
    a.replace_all(json.dumps(doc).encode())
    doc["apps"].reverse()
    b = MarathonState(MarathonOptions(health_check=True), {}.get)
    b.replace_all(json.dumps(doc).encode())
    assert spec.encode(a.table()) == spec.encode(b.table())


# --- properties -----------------------------------------------------------------------------------

_label_keys = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda n, k: f"HAPROXY_{n}_{k}",
        st.integers(0, 3),
        st.sampled_from(
            ["VHOST", "PATH", "MODE", "BALANCE", "PORT", "BIND_ADDR", "AUTH", "BACKEND_WEIGHT", "GROUP",
             "ENABLED", "STICKY", "BACKEND_HEALTHCHECK_PORT_INDEX", "BACKEND_NETWORK_ALLOWED_ACL",
             "FRONTEND_HEAD", "BIND_OPTIONS", "USERLIST_HEAD"]
        ),
    ),
    st.builds(lambda k: f"FASTLB_0_{k}", st.sampled_from(["WEIGHT", "TIMEOUT_CONNECT", "MAXCONN", "X"])),
    st.sampled_from(
        ["HAPROXY_GROUP", "HAPROXY_DEPLOYMENT_GROUP", "HAPROXY_DEPLOYMENT_STARTED_AT", "traefik.enable",
         "traefik.port", "traefik.portIndex", "traefik.frontend.rule", "traefik.a.frontend.rule",
         "traefik.a.port",
         "traefik.backend.healthcheck.interval", "traefik.weight", "traefik.tags", "traefik.backend",
         "traefik.frontend.auth.basic.users", "traefik.frontend.whiteList.sourceRange",
         "traefik.a.frontend.whiteList.sourceRange", "traefik.frontend.whiteList.useXForwardedFor",
         "traefik.frontend.headers.SSLRedirect", "traefik.frontend.headers.allowedHosts",
         "traefik.frontend.auth.forward.address", "traefik.frontend.redirect.entryPoint"]
    ),
)
_labels = st.dictionaries(_label_keys, st.text(max_size=40), max_size=8)


@settings(max_examples=200, deadline=None)
@given(_labels)
def test_label_parsing_never_raises(labels: dict[str, str]) -> None:
    h = lbl.parse_haproxy_labels(labels)
    t = tlbl.parse_traefik_labels(labels)
    assert isinstance(h.errors, tuple) and isinstance(t.errors, tuple)


@settings(max_examples=150, deadline=None)
@given(_labels)
def test_arbitrary_labels_only_affect_their_app(labels: dict[str, str]) -> None:
    """Whatever labels one app has, building never raises and the other app is served as before."""
    bystander = app("/bystander", 20000, {}, host="10.9.9.9")
    subject = app("/subject", 10000, {})
    subject["labels"] = {**labels, "HAPROXY_GROUP": labels.get("HAPROXY_GROUP", "external")}
    state = state_of(subject, bystander, groups=("*",))
    t = state.table()
    by = [s for s in t.services if s.name == "bystander_20000"]
    assert len(by) == 1 and [b.address for b in by[0].backends] == ["10.9.9.9:31000"]
    assert set(state.app_errors()) <= {"/subject"}
    spec.decode(spec.encode(t))  # the table is always a valid RouteTable


def test_deployment_group_hybrid_mode_reads_target_instances() -> None:
    """With NEW_INSTANCES (zdd's hybrid mode) the target is TARGET_INSTANCES: 1 healthy new task
    + 3 old instances - target 4 = 0 drainable, so nothing drains (target 1 would drain one)."""
    doc = json.loads(mlb_payload("repo-zdd-deployment-group"))
    for a in doc["apps"]:
        a["labels"]["HAPROXY_DEPLOYMENT_NEW_INSTANCES"] = "1"
        a["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"] = "4"
    state = MarathonState(MarathonOptions(health_check=True), {}.get)
    state.replace_all(json.dumps(doc).encode())
    (s,) = state.table().services
    assert [b.state for b in s.backends] == ["ready"] * 4
    for a in doc["apps"]:
        a["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"] = "2"  # 1 + 3 - 2 = 2 drainable, 1 healthy new
    state.replace_all(json.dumps(doc).encode())
    assert [b.name for b in state.table().services[0].backends if b.state == "drain"] == ["10_0_6_25_31184"]


def test_traefik_health_check_labels() -> None:
    a = {"id": "/hc", "labels": {"traefik.tags": "external", "traefik.frontend.rule": "Host:hc.example.com",
                                 "traefik.backend.healthcheck.path": "/health",
                                 "traefik.backend.healthcheck.port": "8081",
                                 "traefik.backend.healthcheck.interval": "2s"},
         "portDefinitions": [{"port": 10000}],
         "tasks": [{"id": "hc.1", "host": "10.0.0.1", "ports": [31000], "state": "TASK_RUNNING"}]}
    (s,) = state_of(a).table().services
    c = s.backends[0].check
    assert c is not None
    assert (c.kind, c.path, c.port, c.interval_ms, c.timeout_ms) == ("http", "/health", 8081, 2000, 2000)
    a["labels"]["traefik.backend.healthcheck.interval"] = "soon"
    assert "interval" in state_of(a).app_errors()["/hc"]


def test_values_with_control_characters_are_errors_not_crashes() -> None:
    bad = app("/ctl", 10000, {"HAPROXY_0_VHOST": "a.com\x00", "FASTLB_0_WEIGHT": "0\x1f"})
    errors = state_of(bad).app_errors()["/ctl"]
    assert "HAPROXY_0_VHOST" in errors and "FASTLB_0_WEIGHT" in errors
