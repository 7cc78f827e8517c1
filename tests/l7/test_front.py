"""A service's own header fields and redirects, served in the data plane (Traefik's frontend headers
and redirect labels): fields set on or removed from every request and response of a kept-alive
connection, Strict-Transport-Security, the redirect to https with its status, and the redirect of the
URLs a POSIX regex rewrites."""

from __future__ import annotations

import pytest

from fastlb import spec
from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, options, port_table, request
from .test_rewrites import HOST, headers_of, vhost_table


def test_request_fields_are_set_and_removed_on_every_request_of_a_connection(dataplane, ports):
    o = options(request_headers=(("X-Env", "prod"), ("X-Drop", ""), ("User-Agent", "fastlb-test")))
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=o), front))
        with connect(front) as c:
            rd = Reader(c)
            for i in range(3):  # kept alive: each request is edited, not only the first
                c.sendall(get(f"/{i}", host=HOST, extra="X-Env: dev\r\nX-Drop: secret\r\nx-drop: again\r\n"
                              "User-Agent: curl\r\nX-Keep: yes\r\n"))
                h = headers_of(rd.response().json())
                assert h["x-env"] == ["prod"]  # replaced, not added
                assert "x-drop" not in h  # an empty value removes every line of it
                assert h["user-agent"] == ["fastlb-test"]
                assert h["x-keep"] == ["yes"]  # the others as they came
                assert h["host"] == [HOST]
        assert len(a.requests) == 3


def test_a_request_without_the_field_gets_it(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=options(request_headers=(("X-Env", "prod"),))),
                              front))
        assert headers_of(request(front, get("/", host=HOST)).json())["x-env"] == ["prod"]


def test_forwarded_fields_a_service_sets_replace_fastlbs(dataplane, ports):
    o = options(request_headers=(("X-Forwarded-Proto", "https"),))
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=o), front))
        h = headers_of(request(front, get("/", host=HOST, extra="X-Forwarded-Proto: gopher\r\n")).json())
        assert h["x-forwarded-proto"] == ["https"]
        assert h["x-forwarded-port"] == [front.rsplit(":", 1)[1]]  # fastlb's own, still
        assert h["x-forwarded-for"] == ["127.0.0.1"]


def test_response_fields_are_set_and_removed(dataplane, ports):
    o = options(response_headers=(("Server", "fastlb"), ("X-Powered-By", ""), ("X-Frame-Options", "DENY")))
    backend_headers = (("Server", "backend/1.0"), ("X-Powered-By", "php"), ("X-Other", "kept"))
    with HttpBackend("a", extra_headers=backend_headers) as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], http=o), front))
        with connect(front) as c:
            rd = Reader(c)
            for _ in range(2):
                c.sendall(get("/", host=HOST))
                r = rd.response()
                assert r.status == 200
                assert r.headers_named("server") == ["fastlb"]
                assert r.headers_named("x-powered-by") == []
                assert r.headers_named("x-frame-options") == ["DENY"]
                assert r.headers_named("x-other") == ["kept"]
                assert r.json()["backend"] == "a"  # the body as it came


def test_sts_is_sent_on_plain_requests_only_when_forced(dataplane, ports):
    with HttpBackend("a", extra_headers=(("Strict-Transport-Security", "max-age=1"),)) as a:
        dp = dataplane()
        front = ports()
        forced = options(sts_seconds=315360000, sts_include_subdomains=True, sts_preload=True, sts_plain=True)
        dp.publish(port_table(http_service("web", [a.address], http=forced), front))
        r = request(front, get("/", host=HOST))
        assert r.headers_named("strict-transport-security") == ["max-age=315360000; includeSubDomains; preload"]
        # not forced: fastlb has no TLS listener, every request came in plain: the backend's own goes through
        dp.publish(port_table(http_service("web", [a.address], http=options(sts_seconds=60)), front))
        r = request(front, get("/", host=HOST))
        assert r.headers_named("strict-transport-security") == ["max-age=1"]


def test_the_https_redirect_takes_its_status(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front, vhost = ports(), ports()
        svc = http_service("web", [a.address], http=options(redirect_to_https=True, redirect_to_https_code=302))
        dp.publish(vhost_table(svc, front, vhost))
        r = request(vhost, get("/a/b?c=1", host=f"{HOST}:8080"))
        assert r.status == 302
        assert r.header("location") == f"https://{HOST}/a/b?c=1"
        assert a.requests == []


REGEX_CASES = [
    # (regex, replacement, request path, host, Location or None: served)
    ("^http://([^/]+)/old/(.*)$", "https://$1/new/$2", "/old/x?y=1", HOST, f"https://{HOST}/new/x?y=1"),
    ("^http://([^/]+)/old/(.*)$", "https://${1}/new/$2", "/other", HOST, None),  # no match: served
    ("/x", "/y", "/x/c/x", HOST, f"http://{HOST}/y/c/y"),  # every match, as Go's ReplaceAllString
    ("^http://([^/:]+):8080(.*)", "https://$1$2", "/p", f"{HOST}:8080", f"https://{HOST}/p"),
    ("^http://(.*)$", "http://$1", "/same", HOST, None),  # the same URL: served
    ("x*", "-", "/ab", "h", "-h-t-t-p-:-/-/-h-/-a-b-"),  # empty matches, as Go
    ("^(http)://([^/]*)(/.*)$", "$$${1}s://$2$3$9", "/z", HOST, f"$https://{HOST}/z"),  # $$, a group it lacks
]


@pytest.mark.parametrize(("regex", "replacement", "path", "host", "location"), REGEX_CASES)
def test_the_regex_redirect_rewrites_the_url(dataplane, ports, regex, replacement, path, host, location):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        o = options(redirect_regex=regex, redirect_replacement=replacement)
        dp.publish(port_table(http_service("web", [a.address], http=o), front))
        r = request(front, get(path, host=host))
        if location is None:
            assert r.status == 200 and a.requests == [("GET", path)]
        else:
            assert (r.status, r.header("location")) == (302, location)
            assert a.requests == []


def test_a_permanent_regex_redirect_is_a_301(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        o = options(redirect_regex="^http://(.*)", redirect_replacement="https://$1", redirect_regex_code=301)
        dp.publish(port_table(http_service("web", [a.address], http=o), front))
        r = request(front, get("/x", host=HOST))
        assert (r.status, r.header("location")) == (301, f"https://{HOST}/x")


@pytest.mark.parametrize(
    ("http", "words"),
    [
        ({"redirect_regex": "^http://(", "redirect_replacement": "x"}, "not a POSIX extended regular expression"),
        ({"redirect_regex": r"^http://(\d+)", "redirect_replacement": "x"}, "Go (RE2) syntax"),
        ({"redirect_regex": "(?i)x", "redirect_replacement": "x"}, "Go (RE2) syntax"),
        ({"redirect_regex": "x", "redirect_replacement": "$1a"}, "replacement"),
        ({"redirect_replacement": "x"}, "no redirect_regex"),
        ({"request_headers": (("X-A", "a\r\nInjected: 1"),)}, "line break"),
        ({"request_headers": (("X-A", "a\0"),)}, "control character"),
        ({"request_headers": (("X A", "a"),)}, "not a header field name"),
        ({"request_headers": (("Content-Length", "0"),)}, "fastlb's own"),
        ({"request_headers": (("Host", "x"),)}, "fastlb's own"),
        ({"response_headers": (("Transfer-Encoding", "chunked"),)}, "fastlb's own"),
        ({"response_headers": (("X-A", "1"), ("x-a", "2"))}, "set twice"),
        ({"sts_seconds": 60, "hsts": True}, "hsts"),
        ({"redirect_to_https_code": 307}, "301 or 302"),
    ],
)
def test_the_data_plane_refuses_what_it_would_not_serve_as_written(dataplane, ports, http, words):
    dp = dataplane()
    table = port_table(http_service("web", ["127.0.0.1:9"], http=spec.HttpOptions(**http)), ports())
    with pytest.raises(ValueError, match="http\\.") as e:
        dp.publish(table)
    assert words in str(e.value)
