"""The Marathon API payloads (fastlb/emulator/fixtures/v2_apps_*.json): networking modes, Marathon 1.4
and 1.5+ formats, and Traefik-labelled apps.

Expected endpoints come from the reference's "expected resolution" notes
(traefik-bamboo-marathon.md §4): the agent and host port for host and bridge networking (never the
bridge IP), the container IP and container port for IP-per-task, discovery ports on 1.4.
"""

from __future__ import annotations

import json

import pytest

from fastlb import spec
from fastlb.marathon.state import MarathonOptions, MarathonState

from .conftest import marathon_json, marathon_payload

HOSTS = {f"agent-{i}.example.internal": f"10.0.1.1{i}" for i in range(1, 6)}


def table(fixture: str, **options) -> tuple[spec.RouteTable, MarathonState]:
    state = MarathonState(MarathonOptions(**options), HOSTS.get)
    state.replace_all(marathon_payload(fixture))
    return state.table(), state


def servers(t: spec.RouteTable) -> dict[str, list[tuple[str, str, str]]]:
    return {s.name: [(b.name, b.address, b.state) for b in s.backends] for s in t.services}


def test_host_networking_marathon_lb_model() -> None:
    """/shop/web carries HAPROXY_GROUP=external: marathon-lb's model; its traefik labels are not
    read (one model per app). Port 1 is http by its HTTP health check (portIndex 1)."""
    t, state = table("v2_apps_embed_tasks_host")
    assert servers(t) == {
        "shop_web_10000": [
            ("agent-1_example_internal_10_0_1_11_31012", "10.0.1.11:31012", "ready"),
            ("agent-2_example_internal_10_0_1_12_31544", "10.0.1.12:31544", "ready"),
            ("agent-3_example_internal_10_0_1_13_31201", "10.0.1.13:31201", "drain"),
        ],
        "shop_web_10001": [
            ("agent-1_example_internal_10_0_1_11_31013", "10.0.1.11:31013", "ready"),
            ("agent-2_example_internal_10_0_1_12_31545", "10.0.1.12:31545", "ready"),
            ("agent-3_example_internal_10_0_1_13_31202", "10.0.1.13:31202", "drain"),
        ],
    }
    assert [(s.mode, s.app_id) for s in t.services] == [("http", "/shop/web"), ("http", "")]
    check = t.services[1].backends[0].check
    assert check is not None
    got = (check.kind, check.path, check.interval_ms, check.timeout_ms, check.fall)
    assert got == ("http", "/health", 10000, 5000, 4)
    assert t.services[0].backends[0].check is None  # no check on port index 0
    assert [(r.host, r.service) for r in t.http_routes] == [("web.example.com", "shop_web_10000")]
    # agent-4 runs the task that is not ready yet and agent-5 a STAGING one: nothing to resolve.
    assert state.hostnames() == {f"agent-{i}.example.internal" for i in range(1, 4)}


def test_bridge_traefik_segments() -> None:
    t, state = table("v2_apps_embed_tasks_bridge", groups=("*",))
    # Segment "api": agent + host ports (never 172.17.x.x). Segment "metrics" is bound to the
    # "internal" entry point, which fastlb does not have: not routed. /shop/worker: enable=false.
    assert servers(t) == {
        "backend-shop-api-service-api": [
            ("10_0_1_11_31001", "10.0.1.11:31001", "ready"),
            ("10_0_1_12_31740", "10.0.1.12:31740", "ready"),
            ("10_0_1_13_31333", "10.0.1.13:31333", "ready"),  # TASK_UNREACHABLE: kept, as marathon-lb
        ]
    }
    (api,) = t.services
    assert api.mode == "http" and api.http.sticky and api.http.sticky_cookie == "api_affinity"
    assert {b.weight for b in api.backends} == {10}
    assert [(r.host, r.service, r.paths) for r in t.http_routes] == [
        ("api.example.com", "backend-shop-api-service-api", ("/v1",))
    ]
    # Traefik apps route on the vhost listeners only: http, and https beside it
    assert [(l.kind, l.tls) for l in t.listeners] == [("vhost", False), ("vhost", True)]
    assert any("circuit" in w for w in state.app_warnings()["/shop/api"])
    assert any("entry point" in w for w in state.app_warnings()["/shop/api"])


def test_bridge_traefik_with_health_check_drops_unhealthy() -> None:
    t, _ = table("v2_apps_embed_tasks_bridge", groups=("*",), health_check=True)
    assert [b.address for b in t.services[0].backends] == ["10.0.1.11:31001", "10.0.1.13:31333"]


def test_traefik_apps_follow_the_group_filter() -> None:
    """A Traefik app without traefik.tags is, like a marathon-lb app without a group, served only
    with --group '*'; traefik.tags names its groups."""
    t, _ = table("v2_apps_embed_tasks_bridge")
    assert t.services == ()
    doc = marathon_json("v2_apps_embed_tasks_bridge")
    doc["apps"][0]["labels"]["traefik.tags"] = "external,web"
    state = MarathonState(MarathonOptions(), HOSTS.get)
    state.replace_all(json.dumps(doc).encode())
    assert [s.name for s in state.table().services] == ["backend-shop-api-service-api"]


def test_container_networking() -> None:
    t, state = table("v2_apps_embed_tasks_container", groups=("*",))
    # search: container IP (the first, IPv4) + traefik.port 9200; the agent is only in the name.
    assert servers(t) == {
        "backend-shop-search": [
            ("10_0_1_21_9_0_2_15_9200", "9.0.2.15:9200", "ready"),
            ("10_0_1_22_9_0_3_4_9200", "9.0.3.4:9200", "ready"),
        ]
    }
    routes = [(r.host, r.service) for r in t.http_routes]
    assert routes == [("search.example.internal", "backend-shop-search")]
    # grpc asks for h2c to its backends: fastlb cannot, so that app alone is left out, loudly.
    assert set(state.app_errors()) == {"/shop/grpc"}
    assert "h2c" in state.app_errors()["/shop/grpc"]
    assert state.hostnames() == frozenset()  # IP-per-task never resolves the agent


def test_container_two_networks_picks_the_mapping_network() -> None:
    """grpc over HTTP/1.1: the endpoint is the container IP on the mapping's network
    (overlay-a, the first IP) and the container port, not the host port Traefik would use."""
    doc = marathon_json("v2_apps_embed_tasks_container")
    grpc = doc["apps"][1]
    del grpc["labels"]["traefik.protocol"]
    del grpc["labels"]["traefik.ipAddressIdx"]
    state = MarathonState(MarathonOptions(groups=("*",)), HOSTS.get)
    state.replace_all(json.dumps(doc).encode())
    got = servers(state.table())["backend-shop-grpc"]
    assert got == [("10_0_1_23_9_0_4_7_50051", "9.0.4.7:50051", "ready")]
    # Naming overlay-b instead picks the second IP.
    grpc["container"]["portMappings"][0]["networkNames"] = ["overlay-b"]
    state.replace_all(json.dumps(doc).encode())
    assert servers(state.table())["backend-shop-grpc"][0][1] == "9.1.4.7:50051"


def test_container_marathon_lb_model() -> None:
    """The same IP-per-task app through HAPROXY labels: a service per port mapping, container
    IP + container port, named after the mapping's service port."""
    doc = marathon_json("v2_apps_embed_tasks_container")
    search = doc["apps"][0]
    search["labels"] = {"HAPROXY_GROUP": "external"}
    state = MarathonState(MarathonOptions(), HOSTS.get)
    state.replace_all(json.dumps({"apps": [search]}).encode())
    assert servers(state.table()) == {
        "shop_search_10200": [
            ("10_0_1_21_9_0_2_15_9200", "9.0.2.15:9200", "ready"),
            ("10_0_1_22_9_0_3_4_9200", "9.0.3.4:9200", "ready"),
        ],
        "shop_search_10201": [
            ("10_0_1_21_9_0_2_15_9300", "9.0.2.15:9300", "ready"),
            ("10_0_1_22_9_0_3_4_9300", "9.0.3.4:9300", "ready"),
        ],
    }
    # MESOS_HTTP does not make the port http (marathon-lb §3.12).
    assert [s.mode for s in state.table().services] == ["tcp", "tcp"]


def test_legacy_1_4_formats() -> None:
    t, state = table("v2_apps_legacy_1_4_ip_per_task_and_bridge", groups=("*",))
    assert servers(t) == {
        "legacy_bridge_10401": [("10_0_2_32_31402", "10.0.2.32:31402", "ready")],
        "backend-legacy-ippt": [("10_0_2_31_192_168_155_9_80", "192.168.155.9:80", "ready")],
    }
    assert state.app_errors() == {}


def test_legacy_ip_per_task_marathon_lb_model_uses_discovery_ports() -> None:
    doc = marathon_json("v2_apps_legacy_1_4_ip_per_task_and_bridge")
    ippt = doc["apps"][0]
    ippt["labels"] = {"HAPROXY_GROUP": "external"}
    state = MarathonState(MarathonOptions(), {}.get)
    state.replace_all(json.dumps({"apps": [ippt]}).encode())
    want = [("10_0_2_31_192_168_155_9_80", "192.168.155.9:80", "ready")]
    assert servers(state.table()) == {"legacy_ippt_10400": want}


def test_framework_name_skips_self() -> None:
    t, _ = table("v2_apps_embed_tasks_host", framework_name="shop/web")
    assert t.services == ()


@pytest.mark.parametrize("fixture", ["v2_apps_embed_tasks_bridge", "v2_apps_embed_tasks_container"])
def test_worker_without_tasks_is_absent(fixture: str) -> None:
    t, _ = table(fixture, groups=("*",))
    assert all("worker" not in s.name for s in t.services)
