"""marathon-lb's rewrites, served in the data plane: a path prefix taken off the request target and the
Host set (HTTP_BACKEND_PROXYPASS_PATH), a prefix put back on Location answers (REVPROXY_PATH), and the
redirect of "/" (HTTP_BACKEND_REDIR). Every edit leaves the request's framing as it came."""

from __future__ import annotations

import contextlib
import json
import zlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import spec
from fastlb.emulator.http_backends import HttpBackend
from fastlb.marathon.state import MarathonOptions, MarathonState

from .conftest import Reader, connect, get, http_service, options, port_table, request

HOST = "app.example.com"


def headers_of(doc) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in doc["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def vhost_table(svc: spec.Service, front: str, vhost: str, hosts: tuple[str, ...] = (HOST,)) -> spec.RouteTable:
    """<svc> on its own listener <front> and, for <hosts>, on the vhost listener <vhost>."""
    return spec.RouteTable(
        services=(svc,),
        listeners=(spec.Listener(address=front, service=svc.name), spec.Listener(address=vhost, kind="vhost")),
        http_routes=tuple(spec.HttpRoute(host=h, service=svc.name) for h in hosts),
    )


# --- the path prefix ------------------------------------------------------------------------------

STRIPPED = [
    ("/api/x?q=1", "/x?q=1"),
    ("/api/", "/"),
    ("/api", "/"),  # never an empty target
    ("/api?q=/api/x", "/?q=/api/x"),
    ("/api//x", "//x"),
    ("/api/api/x", "/api/x"),  # once
    ("/apix", "/apix"),  # not at a segment boundary
    ("/API/x", "/API/x"),  # paths are compared with their case, as routes are
    ("/x/api/y", "/x/api/y"),
    ("/", "/"),
    ("/%2Fapi/x", "/%2Fapi/x"),
    ("http://app.example.com/api/x?y", "http://app.example.com/x?y"),  # absolute-form: its path
    ("http://app.example.com/api", "http://app.example.com/"),
    ("http://app.example.com/apix", "http://app.example.com/apix"),
]


@pytest.mark.parametrize("prefix", ["/api", "/api/"])
def test_the_prefix_comes_off_the_path_at_a_segment_boundary(dataplane, ports, prefix):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(strip_prefix=prefix)), front))
        with connect(front) as c:
            rd = Reader(c)
            for sent, forwarded in STRIPPED:
                c.sendall(get(sent, host=HOST))
                doc = rd.response().json()
                assert doc["path"] == forwarded, sent
                assert headers_of(doc)["host"] == [HOST]  # no set_host: the client's
            assert [p for _, p in a.requests] == [f for _, f in STRIPPED]


def test_bodies_and_pipelined_requests_keep_their_framing(dataplane, ports):
    """The target shrinks, the body does not move: Content-Length and chunked bodies arrive whole, and
    the request that follows on the connection is read where it starts."""
    body = bytes(range(256)) * 40
    chunked = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in (body[:1000], body[1000:])) + b"0\r\n\r\n"
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(strip_prefix="/api")), front))
        with connect(front) as c:
            rd = Reader(c)
            # three requests in one send: a sized body, a chunked one, and a plain GET
            c.sendall(
                f"POST /api/upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
                + f"PUT /api HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                + chunked
                + get("/api/last?x=1", host=HOST)
            )
            first, second, third = rd.response().json(), rd.response().json(), rd.response().json()
        assert (first["method"], first["path"], first["body_len"]) == ("POST", "/upload", len(body))
        assert first["body_crc"] == zlib.crc32(body)
        assert headers_of(first)["content-length"] == [str(len(body))]
        assert (second["method"], second["path"], second["body_len"]) == ("PUT", "/", len(body))
        assert second["body_crc"] == zlib.crc32(body)
        assert (third["method"], third["path"], third["seq"]) == ("GET", "/last?x=1", 3)


def test_set_host_replaces_the_host_or_adds_one(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front, vhost = ports(), ports()
        svc = http_service("web", [a.address], http=options(strip_prefix="/api", set_host="backend.internal:8080"))
        dp.publish(vhost_table(svc, front, vhost))
        # routed by the client's Host, forwarded with the set one
        doc = request(vhost, get("/api/x", host="APP.example.com")).json()
        assert doc["path"] == "/x" and headers_of(doc)["host"] == ["backend.internal:8080"]
        doc = request(front, get("/y", host="whatever")).json()
        assert doc["path"] == "/y" and headers_of(doc)["host"] == ["backend.internal:8080"]
        # an HTTP/1.0 request without Host gets one
        doc = request(front, b"GET /api/z HTTP/1.0\r\nX-A: 1\r\n\r\n").json()
        assert doc["path"] == "/z" and headers_of(doc)["host"] == ["backend.internal:8080"]
        assert headers_of(doc)["x-a"] == ["1"]
        # an empty Host is replaced too
        doc = request(front, b"GET /api/e HTTP/1.1\r\nHost:\r\n\r\n").json()
        assert doc["path"] == "/e" and headers_of(doc)["host"] == ["backend.internal:8080"]


def test_the_rewrites_go_with_the_other_edits(dataplane, ports):
    """Strip, Host, the sticky cookie's cut, X-Forwarded-* and a field named by Connection, in one head."""
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        o = options(strip_prefix="/api", set_host="b.internal", sticky=True)
        dp.publish(port_table(http_service("web", [a.address], http=o), front))
        extra = (
            "Cookie: a=1; mesosphere_server_id=x; b=2\r\nConnection: X-Hop\r\nX-Hop: 1\r\n"
            "X-Forwarded-Proto: https\r\n"
        )
        doc = request(front, get("/api/q", host=HOST, extra=extra)).json()
        h = headers_of(doc)
        assert doc["path"] == "/q" and h["host"] == ["b.internal"]
        assert h["cookie"] == ["a=1; b=2"] and "x-hop" not in h
        assert h["x-forwarded-proto"] == ["http"] and h["x-forwarded-for"] == ["127.0.0.1"]


# --- Location -------------------------------------------------------------------------------------

LOCATIONS = [
    ("/login", "/api/login"),
    ("/", "/api/"),
    ("/login?next=/x", "/api/login?next=/x"),
    (f"http://{HOST}/x", f"http://{HOST}/api/x"),
    ("HTTPS://App.Example.com:8443/x", "HTTPS://App.Example.com:8443/api/x"),
    ("http://b.internal/y", "http://b.internal/api/y"),  # the set Host names the service too
    ("http://other.example.com/x", "http://other.example.com/x"),  # another host
    ("//other.example.com/x", "//other.example.com/x"),  # another host, scheme-relative
    (f"http://user@{HOST}/x", f"http://user@{HOST}/x"),  # userinfo: left alone
    (f"http://{HOST}", f"http://{HOST}"),  # no path
    (f"http://{HOST}?x", f"http://{HOST}?x"),
    ("login", "login"),  # relative: resolved against the client's own path
    ("ftp://app.example.com/x", "ftp://app.example.com/x"),
]


@pytest.mark.parametrize(("given", "sent"), LOCATIONS)
def test_location_gets_the_prefix_when_it_names_the_service(dataplane, ports, given, sent):
    with HttpBackend("a", extra_headers=(("Location", given),)) as a:
        dp = dataplane()
        front, vhost = ports(), ports()
        o = options(strip_prefix="/api", location_prefix="/api/", set_host="b.internal", hosts=(HOST,))
        dp.publish(vhost_table(http_service("web", [a.address], http=o), front, vhost))
        with connect(vhost) as c:
            rd = Reader(c)
            c.sendall(get("/api/status/302", host=HOST))
            r = rd.response()
            assert r.status == 302 and r.headers_named("Location") == [sent] and r.body == b"ok"
            # the connection goes on: the head's new length did not unframe the body
            c.sendall(get("/api/next", host=HOST))
            r = rd.response()
            assert r.json()["path"] == "/next" and r.headers_named("Location") == [sent]


def test_location_is_left_alone_without_the_option(dataplane, ports):
    with HttpBackend("a", extra_headers=(("Location", "/login"),)) as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(strip_prefix="/api")), front))
        assert request(front, get("/api/x")).headers_named("Location") == ["/login"]


def test_every_location_field_and_none_named_by_connection_is_cut(dataplane, ports):
    extra = (("Location", "/a"), ("Connection", "Location"), ("Location", "/b"))
    with HttpBackend("a", extra_headers=extra) as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(location_prefix="/p")), front))
        r = request(front, get("/x"))
        assert r.status == 200 and r.json()["path"] == "/x"
        assert r.headers_named("Location") == ["/p/a", "/p/b"]


# --- the redirect of "/" --------------------------------------------------------------------------


def test_root_is_redirected_on_the_services_vhosts(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front, vhost = ports(), ports()
        svc = http_service("web", [a.address], http=options(redirect_root="/app/home?x=1", hosts=(HOST,)))
        dp.publish(vhost_table(svc, front, vhost, hosts=(HOST, "*.wild.example.com")))
        for where, host in ((vhost, HOST), (vhost, "APP.example.com:80"), (front, HOST), (front, f"{HOST}.")):
            for target in ("/", "/?q=1", f"http://{HOST}/"):
                r = request(where, get(target, host=host))
                assert r.status == 301, (where, host, target)
                assert r.headers_named("Location") == ["/app/home?x=1"]
                assert r.header("Connection") == "close"
        assert a.received == 0
        # another path, or "/" for a host that is not one of the service's exact vhosts, goes on
        assert request(vhost, get("/x", host=HOST)).json()["path"] == "/x"
        assert request(vhost, get("/", host="a.wild.example.com")).json()["path"] == "/"
        assert request(front, get("/", host="10.0.0.1:8080")).json()["path"] == "/"
        assert request(front, b"GET / HTTP/1.0\r\n\r\n").json()["path"] == "/"
        assert request(front, b"OPTIONS * HTTP/1.1\r\nHost: app.example.com\r\n\r\n").status == 200


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_root_redirect_code_and_a_service_without_vhosts(dataplane, ports, code):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        o = options(redirect_root="https://www.example.com/start", redirect_root_code=code)
        dp.publish(port_table(http_service("web", [a.address], http=o), front))
        # no vhosts: "/" of any host
        for host in ("x.example.com", "10.1.2.3"):
            r = request(front, get("/", host=host))
            assert r.status == code and r.headers_named("Location") == ["https://www.example.com/start"]
        assert request(front, get("/a")).status == 200
        st = dp.stats()["services"]["web"]["http"]
        assert st["3xx"] == 2 and st["own"] == 2


def test_the_allow_list_and_auth_come_before_the_redirect(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        o = options(redirect_root="/app", allow_cidrs=("10.0.0.0/8",))
        dp.publish(port_table(http_service("web", [a.address], http=o), front))
        assert request(front, get("/")).status == 403


# --- what the data plane refuses ------------------------------------------------------------------

BAD = [
    ({"strip_prefix": "api"}, "strip_prefix"),
    ({"strip_prefix": "/"}, "strip_prefix"),
    ({"strip_prefix": "/a b"}, "strip_prefix"),
    ({"strip_prefix": "/a?b"}, "strip_prefix"),
    ({"location_prefix": "x/"}, "location_prefix"),
    ({"location_prefix": "/a\r\nX: 1"}, "location_prefix"),
    ({"set_host": "a b"}, "set_host"),
    ({"set_host": "a\r\nX-Evil: 1"}, "set_host"),
    ({"redirect_root": "/x", "hosts": ("a b",)}, "hosts"),
    ({"redirect_root": "/x\r\nSet-Cookie: a=b"}, "redirect_root"),
    ({"redirect_root": "/a b"}, "redirect_root"),
    ({"redirect_root": "/x", "redirect_root_code": 200}, "redirect_root_code"),
]


@pytest.mark.parametrize(("kw", "key"), BAD)
def test_a_value_that_could_break_a_head_is_refused(dataplane, ports, kw, key):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        good = port_table(http_service("web", [a.address]), front)
        dp.publish(good)
        with pytest.raises(ValueError, match=key):
            dp.publish(port_table(http_service("web", [a.address], http=options(**kw)), front))
        # the table serving before stays
        assert request(front, get("/x")).json()["path"] == "/x"


def test_rewrites_follow_a_table_swap(dataplane, ports):
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(HttpBackend("a"))
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(strip_prefix="/v1")), front))
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(get("/v1/x"))
            assert rd.response().json()["path"] == "/x"
            dp.publish(port_table(http_service("web", [a.address], http=options(strip_prefix="/v2")), front))
            # the next request on the same connection is routed with the new table
            c.sendall(get("/v1/x"))
            assert rd.response().json()["path"] == "/v1/x"
            c.sendall(get("/v2/x"))
            assert rd.response().json()["path"] == "/x"


# --- what the Marathon labels hand the data plane ------------------------------------------------

_LABEL_VALUES = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(lambda t: "/" + t),
)


def test_whatever_the_labels_say_the_data_plane_takes_the_table(dataplane):
    """A label value the data plane would refuse must refuse its app instead: a table the data plane
    refuses keeps every other app's change from being served."""
    dp = dataplane(workers=1)

    @settings(max_examples=150, deadline=None)
    @given(
        vhost=st.sampled_from(["", "a.example.com", "*.w.example.com", "*.w.example.com,B.example.com:81"]),
        proxypass=_LABEL_VALUES,
        revproxy=_LABEL_VALUES,
        redir=_LABEL_VALUES,
    )
    def check(vhost, proxypass, revproxy, redir):
        labels = {
            "HAPROXY_GROUP": "external",
            "HAPROXY_0_MODE": "http",
            "HAPROXY_0_VHOST": vhost,
            "HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH": proxypass,
            "HAPROXY_0_HTTP_BACKEND_REVPROXY_PATH": revproxy,
            "HAPROXY_0_HTTP_BACKEND_REDIR": redir,
        }
        apps = [
            {"id": "/web", "labels": labels, "portDefinitions": [{"port": 10000}],
             "tasks": [{"id": "web.1", "host": "127.0.0.1", "ports": [1], "state": "TASK_RUNNING"}]},
        ]
        state = MarathonState(MarathonOptions(), {}.get)
        state.replace_all(json.dumps({"apps": apps}).encode())
        table = msgspec.structs.replace(state.table(), listeners=())
        if "/web" in state.app_errors():
            assert table.services == ()
        dp.publish(table)  # raises ValueError on a value it refuses

    check()
