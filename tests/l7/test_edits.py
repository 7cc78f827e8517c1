"""What fastlb adds to and takes from heads: X-Forwarded-*, HSTS, the https redirect, basic auth,
source allow-lists and the sticky cookie."""

from __future__ import annotations

import re

import pytest

from fastlb import spec
from fastlb._core import DEFAULT_COOKIE_KEY
from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, options, port_table, request


def headers_of(doc) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in doc["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def test_forwarded_headers(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        port = front.rsplit(":", 1)[1]
        h = headers_of(request(front, get("/")).json())
        assert h["x-forwarded-for"] == ["127.0.0.1"]
        assert h["x-forwarded-proto"] == ["http"]
        assert h["x-forwarded-port"] == [port]
        # appended to the client's own X-Forwarded-For; its -Proto and -Port replaced
        extra = (
            "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\nX-Keep: yes\r\n"
        )
        h = headers_of(request(front, get("/", extra=extra)).json())
        assert h["x-forwarded-for"] == ["10.0.0.1, 127.0.0.1"]
        assert h["x-forwarded-proto"] == ["http"]
        assert h["x-forwarded-port"] == [port]
        assert h["x-keep"] == ["yes"] and h["host"] == ["example.com"]


def test_fields_named_by_connection_are_not_forwarded(dataplane, ports):
    """RFC 9110 section 7.6.1: what Connection names is for this hop only, both ways."""
    hop = (("Connection", "X-Internal, Keep-Alive"), ("X-Internal", "secret"), ("Keep-Alive", "timeout=5"))
    with HttpBackend("a", extra_headers=hop) as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        extra = "Connection: keep-alive, X-Secret,te\r\nX-Secret: 1\r\nTE: trailers\r\nX-Keep: yes\r\n"
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(get("/", extra=extra))
            r = rd.response()
            h = headers_of(r.json())
            assert "x-secret" not in h and "te" not in h
            assert h["x-keep"] == ["yes"] and h["connection"] == ["keep-alive, X-Secret,te"]
            assert r.headers_named("X-Internal") == [] and r.headers_named("Keep-Alive") == []
            assert r.headers_named("Connection") == ["X-Internal, Keep-Alive"]
            # the connection is still good for the next request
            c.sendall(get("/next"))
            assert rd.response().json()["path"] == "/next"


def test_connection_cannot_unframe_or_unforward_a_request(dataplane, ports):
    """Fields that frame the message, and fastlb's own X-Forwarded-*, stay whatever Connection names."""
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        raw = (
            b"POST /b HTTP/1.1\r\nHost: x\r\nConnection: Content-Length, X-Forwarded-For, X-Forwarded-Proto\r\n"
            b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nContent-Length: 5\r\n\r\nhello"
        )
        doc = request(front, raw).json()
        h = headers_of(doc)
        assert doc["body_len"] == 5 and h["content-length"] == ["5"]
        assert h["x-forwarded-for"] == ["10.0.0.1, 127.0.0.1"] and h["x-forwarded-proto"] == ["http"]


def test_forwarded_headers_off(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(forwarded_headers=False)), front))
        h = headers_of(request(front, get("/", extra="X-Forwarded-For: 10.0.0.1\r\n")).json())
        assert h["x-forwarded-for"] == ["10.0.0.1"]
        assert "x-forwarded-proto" not in h


def test_hsts(dataplane, ports):
    with HttpBackend("a", extra_headers=(("Strict-Transport-Security", "max-age=1"),)) as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(hsts=True)), front))
        with connect(front) as c:
            rd = Reader(c)
            for path in ("/", "/chunked/100", "/status/204"):
                c.sendall(get(path))
                r = rd.response()
                assert r.headers_named("Strict-Transport-Security") == ["max-age=15768000"]


def vhost_table(vhost: str, svc: spec.Service) -> spec.RouteTable:
    return spec.RouteTable(
        services=(svc,),
        listeners=(spec.Listener(address=vhost, kind="vhost"),),
        http_routes=(spec.HttpRoute(host="secure.example.com", service=svc.name),),
    )


def test_redirect_to_https(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        vhost = ports()
        dp.publish(vhost_table(vhost, http_service("web", [a.address], http=options(redirect_to_https=True))))
        r = request(vhost, get("/p/q?x=1", "secure.example.com:80"))
        assert r.status == 301
        assert r.header("Location") == "https://secure.example.com/p/q?x=1"
        assert a.received == 0


# crypt(3) hashes, as marathon-lb's HAPROXY_{n}_AUTH carries them (SHA-512 and SHA-256 crypt);
# ALICE's password is "s3cret", BOB's "pw".
ALICE = "$6$fastlbtestsalt1$I.xNS7t6y6pOFBlJ9/GwkcHc.lApBDe9NSAOCHihm3Z10asCTZrwr/Bmk44R1GFfLmU/MrdseQZIwVdRJ3QT3/"
BOB = "$5$fastlbtestsalt2$UeULDc5wzWpsFGf4gKJ7pNCIOq/lco/KasBKodmeJqB"


def test_basic_auth(dataplane, ports):
    import base64

    def auth(user: str, pw: str) -> str:
        return "Authorization: Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode() + "\r\n"

    with HttpBackend("a") as a:
        dp = dataplane()
        vhost = ports()
        opts = options(auth_realm="zone", auth_users=(("alice", ALICE), ("bob", BOB)))
        dp.publish(vhost_table(vhost, http_service("web", [a.address], http=opts)))
        r = request(vhost, get("/", "secure.example.com"))
        assert r.status == 401 and r.header("WWW-Authenticate") == 'Basic realm="zone"'
        assert request(vhost, get("/", "secure.example.com", auth("alice", "wrong"))).status == 401
        assert request(vhost, get("/", "secure.example.com", auth("carol", "s3cret"))).status == 401
        assert request(vhost, get("/", "secure.example.com", "Authorization: Bearer abc\r\n")).status == 401
        assert a.received == 0
        with connect(vhost) as c:
            rd = Reader(c)
            for user, pw in [("alice", "s3cret"), ("bob", "pw"), ("alice", "s3cret")]:
                c.sendall(get("/", "secure.example.com", auth(user, pw)))
                assert rd.response().status == 200


def test_allow_list(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front, front2 = ports(), ports()
        deny = http_service("deny", [a.address], http=options(allow_cidrs=("10.0.0.0/8", "::1/128")))
        allow = http_service("allow", [a.address], http=options(allow_cidrs=("10.0.0.0/8", "127.0.0.0/8")))
        dp.publish(
            spec.RouteTable(
                services=(deny, allow),
                listeners=(
                    spec.Listener(address=front, service="deny"),
                    spec.Listener(address=front2, service="allow"),
                ),
            )
        )
        assert request(front, get("/")).status == 403
        assert a.received == 0
        assert request(front2, get("/")).status == 200


def sticky_cookie(r) -> str | None:
    for v in r.headers_named("Set-Cookie"):
        m = re.fullmatch(r"mesosphere_server_id=([0-9a-f]+); path=/", v)
        if m:
            return m.group(1)
    return None


def test_sticky_cookie(dataplane, ports):
    with HttpBackend("a") as a, HttpBackend("b") as b, HttpBackend("c") as c3:
        addrs = [a.address, b.address, c3.address]
        svc = http_service("web", addrs, http=options(sticky=True))
        dp = dataplane()
        front = ports()
        dp.publish(port_table(svc, front))
        r = request(front, get("/"))
        cookie = sticky_cookie(r)
        assert cookie is not None and r.header("Cache-Control") == "private"
        first = r.json()["backend"]
        for addr in addrs:  # the value says nothing of the backend's address
            host, port = addr.split(":")
            assert host not in cookie and port not in cookie
        # the same backend every time, no new cookie, and the backend never sees fastlb's cookie
        for _ in range(6):
            r = request(front, get("/", extra=f"Cookie: a=1; mesosphere_server_id={cookie}; b=2\r\n"))
            assert r.json()["backend"] == first
            assert sticky_cookie(r) is None
            assert headers_of(r.json())["cookie"] == ["a=1; b=2"]
        r = request(front, get("/", extra=f"Cookie: mesosphere_server_id={cookie}\r\n"))
        assert r.json()["backend"] == first and "cookie" not in headers_of(r.json())
        # drained: balancing resumes and a new cookie names the new backend
        dp.set_backend_state(dict(zip("abc", addrs))[first], "drain")
        r = request(front, get("/", extra=f"Cookie: mesosphere_server_id={cookie}\r\n"))
        assert r.json()["backend"] != first
        new = sticky_cookie(r)
        assert new is not None and new != cookie
        r = request(front, get("/", extra=f"Cookie: mesosphere_server_id={new}\r\n"))
        assert sticky_cookie(r) is None
        # a stale or forged value is replaced
        r = request(front, get("/", extra="Cookie: mesosphere_server_id=0123456789abcdef\r\n"))
        assert sticky_cookie(r) is not None


def test_sticky_cookie_value_is_stable_for_a_key(dataplane, ports):
    """A backend's value depends on its identity and the key only: two data planes with no key (the
    fixed default) agree, as do two with the same secret; another secret gives another value."""
    with HttpBackend("a") as a:
        values = []
        for key in (None, None, DEFAULT_COOKIE_KEY, b"fleet-secret", b"fleet-secret", b"other-secret"):
            dp = dataplane() if key is None else dataplane(cookie_key=key)
            front = ports()
            dp.publish(port_table(http_service("web", [a.address], http=options(sticky=True)), front))
            values.append(sticky_cookie(request(front, get("/"))))
            dp.stop()
        assert None not in values
        assert values[0] == values[1] == values[2]
        assert values[3] == values[4]
        assert len({values[0], values[3], values[5]}) == 3


@pytest.mark.parametrize("bad", ["bad name", "", "c" * 129])
def test_bad_cookie_name_is_refused(dataplane, ports, bad):
    dp = dataplane()
    with pytest.raises(ValueError, match="sticky_cookie"):
        dp.publish(port_table(http_service("web", [], http=options(sticky=True, sticky_cookie=bad)), ports()))


def test_sticky_cookie_of_a_backend_gone_from_the_table(dataplane, ports):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(sticky=True)), front))
        cookie = sticky_cookie(request(front, get("/")))
        dp.publish(port_table(http_service("web", [b.address], http=options(sticky=True)), front))
        r = request(front, get("/", extra=f"Cookie: mesosphere_server_id={cookie}\r\n"))
        assert r.json()["backend"] == "b"
        assert sticky_cookie(r) not in (None, cookie)
