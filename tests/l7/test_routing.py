"""Routing each request on its own: per-port http services, Host (exact, wildcard, case, port) and
longest path prefix on vhost listeners, X-Marathon-App-Id on appid listeners, 503 when nothing matches."""

from __future__ import annotations

import contextlib

import pytest

from fastlb import spec
from fastlb.emulator.backends import Blackhole, wait_until
from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, port_table, request, timeouts


@pytest.fixture
def world(dataplane, ports):
    """Four backends, each its own service, behind one vhost and one appid listener."""
    with contextlib.ExitStack() as stack:
        bes = {n: stack.enter_context(HttpBackend(n)) for n in ("www", "api", "apiv2", "wild", "other")}
        services = tuple(http_service(n, [b.address], app_id=f"/team/{n}") for n, b in bes.items())
        routes = (
            spec.HttpRoute(host="api.example.com", service="apiv2", paths=("/v2/",), weight=1),
            spec.HttpRoute(host="api.example.com", service="api", paths=("/v2/old", "/v1"), weight=1),
            spec.HttpRoute(host="www.example.com", service="www"),
            spec.HttpRoute(host="api.example.com", service="other"),
            spec.HttpRoute(host="*.example.com", service="wild"),
            spec.HttpRoute(host="*.w.test", service="wild"),
            spec.HttpRoute(host="a.w.test", service="www"),
        )
        vhost, appid = ports(), ports()
        table = spec.RouteTable(
            services=services,
            listeners=(
                spec.Listener(address=vhost, kind="vhost"),
                spec.Listener(address=appid, kind="appid"),
            ),
            http_routes=routes,
        )
        dp = dataplane()
        dp.publish(table)
        yield vhost, appid, dp


def backend_for(address: str, raw: bytes) -> str:
    r = request(address, raw)
    assert r.status == 200, r
    return r.json()["backend"]


def test_host_exact_case_and_port_ignored(world):
    vhost, _, _ = world
    assert backend_for(vhost, get("/", "www.example.com")) == "www"
    assert backend_for(vhost, get("/", "WWW.example.com:80")) == "www"
    assert backend_for(vhost, get("/x", "API.Example.COM")) == "other"
    assert backend_for(vhost, get("/x", "api.example.com:8080")) == "other"
    assert backend_for(vhost, get("/x", "api.example.com.")) == "other"


def test_wildcard(world):
    vhost, _, _ = world
    assert backend_for(vhost, get("/", "a.b.example.com")) == "wild"
    # table order decides between a wildcard and an exact name listed after it
    assert backend_for(vhost, get("/", "a.w.test")) == "wild"
    r = request(vhost, get("/", "example.com"))  # the wildcard needs at least one more label
    assert r.status == 503


def test_longest_path_prefix_then_fallback(world):
    vhost, _, _ = world
    assert backend_for(vhost, get("/v2/users?q=1", "api.example.com")) == "apiv2"
    assert backend_for(vhost, get("/v1/x", "api.example.com")) == "api"
    assert backend_for(vhost, get("/v2/old", "api.example.com")) == "apiv2"  # table order: /v2/ first
    assert backend_for(vhost, get("/v3", "api.example.com")) == "other"
    assert backend_for(vhost, get("http://api.example.com/v1/abs", "api.example.com")) == "api"


def test_no_route_is_503(world):
    vhost, appid, _dp = world
    r = request(vhost, get("/", "nowhere.test"))
    assert r.status == 503 and r.header("Connection") == "close"
    assert b"503" in r.body
    r = request(appid, get("/", "x", "X-Marathon-App-Id: /team/nope\r\n"))
    assert r.status == 503
    r = request(appid, get("/", "x"))
    assert r.status == 503


def test_app_id(world):
    _, appid, _ = world
    assert backend_for(appid, get("/", "x", "X-Marathon-App-Id: /team/api\r\n")) == "api"
    assert backend_for(appid, get("/", "x", "X-Marathon-App-Id: /TEAM/WWW\r\n")) == "www"


def test_each_request_on_a_connection_is_routed_on_its_own(world):
    vhost, _, _ = world
    with connect(vhost) as c:
        rd = Reader(c)
        seen = []
        for host, path in [
            ("www.example.com", "/"),
            ("api.example.com", "/v1"),
            ("api.example.com", "/v2/"),
            ("api.example.com", "/z"),
            ("q.example.com", "/"),
        ] * 2:
            c.sendall(get(path, host))
            r = rd.response()
            assert r.status == 200
            seen.append(r.json()["backend"])
        assert seen == ["www", "api", "apiv2", "other", "wild"] * 2


def test_per_port_http_service(dataplane, ports):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        front = ports()
        svc = http_service("web", [a.address, b.address])
        dp = dataplane()
        dp.publish(spec.RouteTable(services=(svc,), listeners=(spec.Listener(address=front, service="web"),)))
        with connect(front) as c:
            rd = Reader(c)
            got = []
            for _ in range(4):
                c.sendall(get("/", "anything"))
                got.append(rd.response().json()["backend"])
        assert sorted(got) == ["a", "a", "b", "b"]  # round-robin per request, on one connection
        stats = dp.stats()
        assert stats["services"]["web"]["http"]["requests"] == 4
        assert stats["services"]["web"]["http"]["2xx"] == 4
        assert stats["backends"][a.address]["requests"] == 2


def test_new_table_routes_the_next_request_of_an_open_connection(dataplane, ports):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        vhost = ports()
        lst = (spec.Listener(address=vhost, kind="vhost"),)
        services = (http_service("a", [a.address]), http_service("b", [b.address]))
        dp = dataplane()
        dp.publish(
            spec.RouteTable(
                services=services, listeners=lst, http_routes=(spec.HttpRoute(host="h", service="a"),)
            )
        )
        with connect(vhost) as c:
            rd = Reader(c)
            c.sendall(get("/", "h"))
            assert rd.response().json()["backend"] == "a"
            dp.publish(
                spec.RouteTable(
                    services=services, listeners=lst, http_routes=(spec.HttpRoute(host="h", service="b"),)
                )
            )
            c.sendall(get("/", "h"))
            assert rd.response().json()["backend"] == "b"


def test_bad_routes_are_refused_with_their_path(dataplane, ports):
    dp = dataplane()
    vhost = ports()
    lst = (spec.Listener(address=vhost, kind="vhost"),)
    with pytest.raises(ValueError, match=r"http_routes\[0\]: no service named 'x'"):
        dp.publish(spec.RouteTable(listeners=lst, http_routes=(spec.HttpRoute(host="h", service="x"),)))
    svc = http_service("s", [])
    with pytest.raises(ValueError, match="path prefix"):
        dp.publish(
            spec.RouteTable(
                services=(svc,),
                listeners=lst,
                http_routes=(spec.HttpRoute(host="h", service="s", paths=("v1",)),),
            )
        )
    with pytest.raises(ValueError, match="allow_cidrs"):
        dp.publish(
            spec.RouteTable(
                services=(http_service("s", [], http=spec.HttpOptions(allow_cidrs=("10.0.0.0/33",))),),
                listeners=lst,
            )
        )


def test_service_maxconn_counts_requests_behind_a_vhost_listener(dataplane, ports):
    """Behind a listener that routes per request, a service's maxconn bounds its requests under way:
    past it a request waits for a slot up to the queue timeout, then fastlb answers 503 without
    reaching a backend; a finished request frees its slot for the next one waiting."""
    with HttpBackend("a") as a:
        vhost = ports()
        dp = dataplane()
        dp.publish(
            spec.RouteTable(
                services=(http_service("web", [a.address], maxconn=1, timeouts=timeouts(queue_ms=300)),),
                listeners=(spec.Listener(address=vhost, kind="vhost"),),
                http_routes=(spec.HttpRoute(host="web.example.com", service="web"),),
            )
        )
        with connect(vhost) as slow:
            slow.sendall(get("/slow/1500", "web.example.com"))
            assert wait_until(lambda: a.requests == [("GET", "/slow/1500")])
            assert dp.stats()["services"]["web"]["active"] == 1
            r = request(vhost, get("/second", "web.example.com"))
            assert r.status == 503
            assert a.requests == [("GET", "/slow/1500")]
            web = dp.stats()["services"]["web"]
            assert (web["queue_total"], web["queue_timeouts"], web["queued"]) == (1, 1, 0)
            assert web["queue_wait_ms"] >= 290
            assert Reader(slow).response().json()["path"] == "/slow/1500"
        assert wait_until(lambda: dp.stats()["services"]["web"]["active"] == 0)
        assert backend_for(vhost, get("/third", "web.example.com")) == "a"


def test_a_request_past_service_maxconn_is_served_once_a_slot_frees(dataplane, ports):
    with HttpBackend("a") as a:
        vhost = ports()
        dp = dataplane()
        dp.publish(
            spec.RouteTable(
                services=(http_service("web", [a.address], maxconn=1, timeouts=timeouts(queue_ms=5000)),),
                listeners=(spec.Listener(address=vhost, kind="vhost"),),
                http_routes=(spec.HttpRoute(host="web.example.com", service="web"),),
            )
        )
        with connect(vhost) as slow, connect(vhost) as second:
            slow.sendall(get("/slow/400", "web.example.com"))
            assert wait_until(lambda: a.requests == [("GET", "/slow/400")])
            second.sendall(get("/second", "web.example.com"))
            assert wait_until(lambda: dp.stats()["services"]["web"]["queued"] == 1)
            assert a.requests == [("GET", "/slow/400")]  # it waits, unsent
            assert Reader(second).response().json()["path"] == "/second"
            assert Reader(slow).response().json()["path"] == "/slow/400"
        web = dp.stats()["services"]["web"]
        assert (web["queue_total"], web["queue_timeouts"], web["queued_max"]) == (1, 0, 1)


def test_a_connect_timeout_is_one_connect_error_not_also_a_timeout(dataplane, ports):
    """errors = connect_errors + timeouts (and the CSV's econ, eresp) must not count it twice."""
    with Blackhole() as hole:
        dp = dataplane(workers=1)
        front = ports()
        svc = http_service("web", [hole.address], retries=0, timeouts=timeouts(connect_ms=300))
        dp.publish(port_table(svc, front))
        assert request(front, get("/")).status == 503
        web, be = dp.stats()["services"]["web"], dp.stats()["backends"][hole.address]
        assert (web["connect_errors"], web["timeouts"]) == (1, 0)
        assert (be["connect_errors"], be["timeouts"]) == (1, 0)
