"""Marathon ports whose protocol is udp alone get no TCP listener: fastlb serves TCP. "udp,tcp" and
"tcp,udp" serve their TCP side. The other ports of the app keep their index, which marathon-lb's
HAPROXY_{n}_* labels and the backend ids (``<task id>#<n>``) go by, and each skipped port is one
line in the app's warnings and in the log.

The payloads are the Marathon API fixtures of tests/data/marathon/ (host, bridge and IP-per-task
networking), with the protocols changed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from fastlb import spec
from fastlb.marathon import build
from fastlb.marathon.state import MarathonOptions, MarathonState

from .conftest import marathon_json

HOSTS = {f"agent-{i}.example.internal": f"10.0.1.1{i}" for i in range(1, 6)}


def _state(apps: list[dict[str, Any]], **options: Any) -> MarathonState:
    state = MarathonState(MarathonOptions(**options), HOSTS.get)
    state.replace_all(json.dumps({"apps": apps}).encode())
    return state


def _web(protocols: tuple[str | None, ...], labels: dict[str, str] | None = None) -> dict[str, Any]:
    """/shop/web (host networking) with one port per protocol: service ports 10000, 10001..., task
    ports 31012, 31013... on agent-1."""
    app = next(a for a in marathon_json("v2_apps_embed_tasks_host")["apps"] if a["id"] == "/shop/web")
    app["labels"] = {"HAPROXY_GROUP": "external", **(labels or {})}
    app["healthChecks"] = []
    app["portDefinitions"] = [
        {"port": 10000 + i, "name": f"p{i}", **({"protocol": p} if p is not None else {})}
        for i, p in enumerate(protocols)
    ]
    task = app["tasks"][0]
    task["ports"] = [31012 + i for i in range(len(protocols))]
    task.pop("healthCheckResults", None)
    task["host"] = "10.0.1.11"  # an address: a task event patches the last table (no host name asked)
    app["tasks"] = [task]
    return app


def _served(table: spec.RouteTable) -> dict[str, list[tuple[str, str]]]:
    return {s.name: [(b.id, b.address) for b in s.backends] for s in table.services}


def test_udp_port_of_host_networking_gets_no_listener_and_the_others_keep_their_index() -> None:
    labels = {"HAPROXY_2_BALANCE": "leastconn", "HAPROXY_2_VHOST": "web.example.com"}
    state = _state([_web(("tcp", "udp", "tcp"), labels)])
    table = state.table()
    task = marathon_json("v2_apps_embed_tasks_host")["apps"][0]["tasks"][0]["id"]
    assert _served(table) == {
        "shop_web_10000": [(task, "10.0.1.11:31012")],
        "shop_web_10002": [(task + "#2", "10.0.1.11:31014")],  # index 2, the third task port
    }
    assert [x.address for x in table.listeners if x.kind == "service"] == ["0.0.0.0:10000", "0.0.0.0:10002"]
    third = table.services[1]
    assert (third.balance, third.mode) == ("leastconn", "http")  # HAPROXY_2_* went to index 2
    assert [(r.host, r.service) for r in table.http_routes] == [("web.example.com", "shop_web_10002")]
    assert state.app_errors() == {}
    assert state.app_warnings() == {"/shop/web": ("port index 1 (udp): not served, fastlb serves TCP only",)}


@pytest.mark.parametrize("protocol", ["udp,tcp", "tcp,udp", "TCP", None])
def test_a_port_with_a_tcp_side_is_served(protocol: str | None) -> None:
    state = _state([_web((protocol, "udp"))])
    assert list(_served(state.table())) == ["shop_web_10000"]
    assert state.app_warnings() == {"/shop/web": ("port index 1 (udp): not served, fastlb serves TCP only",)}


def test_every_port_udp_serves_nothing_and_says_each() -> None:
    state = _state([_web(("udp", "udp"))])
    assert state.table().services == () and state.table().listeners[0].kind == "vhost"
    assert state.app_warnings()["/shop/web"] == (
        "port index 0 (udp): not served, fastlb serves TCP only",
        "port index 1 (udp): not served, fastlb serves TCP only",
    )


def test_a_udp_port_this_lb_would_not_serve_anyway_is_not_reported() -> None:
    state = _state([_web(("tcp", "udp"), {"HAPROXY_1_GROUP": "internal"})])
    assert list(_served(state.table())) == ["shop_web_10000"]
    assert state.app_warnings() == {}


def test_udp_port_mapping_of_bridge_networking() -> None:
    """/shop/api: portMappings (container/bridge); the agent's host ports, the service port's index."""
    app = next(a for a in marathon_json("v2_apps_embed_tasks_bridge")["apps"] if a["id"] == "/shop/api")
    app["labels"] = {"HAPROXY_GROUP": "external", "HAPROXY_1_MODE": "http"}
    app["container"]["portMappings"][0]["protocol"] = "udp"
    state = _state([app])
    table = state.table()
    assert [(s.name, s.mode) for s in table.services] == [("shop_api_10102", "http")]
    assert [b.address for b in table.services[0].backends] == ["10.0.1.11:31002", "10.0.1.12:31741", "10.0.1.13:31334"]
    assert all(b.id.endswith("#1") for b in table.services[0].backends)
    assert state.app_warnings() == {"/shop/api": ("port index 0 (udp): not served, fastlb serves TCP only",)}


def test_udp_port_mapping_of_ip_per_task_networking() -> None:
    """/shop/search: IP-per-task, the container's address and port."""
    app = next(a for a in marathon_json("v2_apps_embed_tasks_container")["apps"] if a["id"] == "/shop/search")
    app["labels"] = {"HAPROXY_GROUP": "external"}
    app["container"]["portMappings"][0]["protocol"] = "udp"
    state = _state([app])
    assert [(s.name, [b.address for b in s.backends]) for s in state.table().services] == [
        ("shop_search_10201", ["9.0.2.15:9300", "9.0.3.4:9300"])
    ]
    assert state.app_warnings() == {"/shop/search": ("port index 0 (udp): not served, fastlb serves TCP only",)}


def test_a_skipped_port_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastlb.marathon"):
        state = _state([_web(("udp", "tcp"))])
        state.table()
        state.replace_all(json.dumps({"apps": [_web(("udp", "tcp"))]}).encode())
        state.table()
    lines = [r.getMessage() for r in caplog.records if "udp" in r.getMessage()]
    assert lines == ['app_warning app=/shop/web warning="port index 0 (udp): not served, fastlb serves TCP only"']


def test_a_task_event_keeps_the_warning_and_the_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    """The patched table of a task event (the memo's fast path) says and serves what a whole build
    does."""
    patched: list[bool] = []
    real_patch = build._patch

    def counting_patch(*args: Any) -> Any:
        result = real_patch(*args)
        patched.append(result is not None)
        return result

    monkeypatch.setattr(build, "_patch", counting_patch)
    app = _web(("udp", "tcp"))
    state = _state([app])
    before = state.table()
    task = dict(app["tasks"][0], id=app["tasks"][0]["id"] + "-b", host="10.0.1.12")
    state.replace_all(json.dumps({"apps": [dict(app, tasks=[app["tasks"][0], task])]}).encode())
    after = state.table()
    assert patched == [True]
    assert [s.name for s in before.services] == [s.name for s in after.services] == ["shop_web_10001"]
    assert [b.address for b in after.services[0].backends] == ["10.0.1.11:31013", "10.0.1.12:31013"]
    assert state.app_warnings() == {"/shop/web": ("port index 0 (udp): not served, fastlb serves TCP only",)}
