"""Requests the parser refuses: each answered with its status by fastlb, the connection closed,
nothing of it forwarded, and the next client served as usual. Also slowloris (408), a backend that
never answers (504), and backends that refuse (503 after the retries)."""

from __future__ import annotations

import importlib.util
import pathlib
import socket
import time

import pytest

from fastlb import spec
from fastlb.emulator.backends import refused_address, wait_until
from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, port_table, request, timeouts

_spec = importlib.util.spec_from_file_location(
    "http1_request_cases", pathlib.Path(__file__).parents[1] / "http1" / "test_http1_request.py"
)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)
HOSTILE = _cases.HOSTILE


@pytest.fixture(scope="module")
def backend():
    with HttpBackend("victim") as b:
        yield b


@pytest.mark.parametrize("name,data,error,status", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_request_is_refused_and_nothing_reaches_the_backend(
    dataplane, ports, backend, name, data, error, status
):
    dp = dataplane()
    front = ports()
    dp.publish(port_table(http_service("web", [backend.address]), front))
    before, seen = backend.received, len(backend.requests)
    with connect(front) as c:
        c.sendall(data)
        rd = Reader(c)
        r = rd.response()
        assert r.status == status
        assert r.header("Connection") == "close"
        assert rd.at_eof()
    assert backend.received == before  # not one byte forwarded
    assert request(front, get("/next")).json()["path"] == "/next"  # and the next client is served
    assert backend.requests[seen:] == [("GET", "/next")]  # nothing else ever arrived


def test_huge_head_is_431(dataplane, ports, backend):
    dp = dataplane()
    front = ports()
    dp.publish(port_table(http_service("web", [backend.address]), front))
    before = backend.received
    filler = "".join(f"X-Fill-{i}: {'v' * 200}\r\n" for i in range(120))
    with connect(front) as c:
        try:
            c.sendall(get("/", extra=filler))
        except OSError:
            pass  # fastlb may close before taking it all
        r = Reader(c).response()
        assert r.status == 431
    assert backend.received == before


def test_long_target_is_414(dataplane, ports, backend):
    dp = dataplane()
    front = ports()
    dp.publish(port_table(http_service("web", [backend.address]), front))
    before = backend.received
    r = request(front, get("/" + "a" * 9000))
    assert r.status == 414
    assert backend.received == before


def test_slowloris_gets_408(dataplane, ports, backend):
    dp = dataplane()
    front = ports()
    dp.publish(
        port_table(http_service("web", [backend.address], timeouts=timeouts(http_request_ms=300)), front)
    )
    before = backend.received
    with connect(front) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ")
        start = time.monotonic()
        for _ in range(5):
            time.sleep(0.1)
            try:
                c.sendall(b"a")
            except OSError:
                break
        rd = Reader(c)
        r = rd.response()
        assert r.status == 408
        assert time.monotonic() - start < 10
        assert rd.at_eof()
    assert backend.received == before


def test_silent_connection_is_closed_without_answer(dataplane, ports, backend):
    dp = dataplane()
    front = ports()
    dp.publish(
        port_table(http_service("web", [backend.address], timeouts=timeouts(http_request_ms=200)), front)
    )
    with connect(front) as c:
        assert Reader(c).at_eof()


def test_backend_that_never_answers_gives_504(dataplane, ports):
    with HttpBackend("slow") as b:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [b.address], timeouts=timeouts(server_ms=300)), front))
        r = request(front, get("/never"))
        assert r.status == 504
        stats = dp.stats()
        assert stats["services"]["web"]["timeouts"] == 1
        assert stats["services"]["web"]["http"]["5xx"] == 1
        assert stats["services"]["web"]["http"]["own"] == 1


def test_refused_backends_give_503_after_retries(dataplane, ports):
    with refused_address() as dead1, refused_address() as dead2:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [dead1, dead2], retries=3), front))
        r = request(front, get("/"))
        assert r.status == 503
        stats = dp.stats()
        assert stats["services"]["web"]["connect_errors"] >= 2
        assert stats["services"]["web"]["no_backend"] == 1


def test_refused_backend_is_retried_elsewhere(dataplane, ports):
    with refused_address() as dead, HttpBackend("alive") as b:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [dead, b.address]), front))
        for _ in range(4):
            assert request(front, get("/")).json()["backend"] == "alive"


def test_no_backend_is_503(dataplane, ports):
    dp = dataplane()
    front = ports()
    dp.publish(port_table(http_service("web", []), front))
    assert request(front, get("/")).status == 503


def test_bad_response_head_is_502(dataplane, ports):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    address = f"127.0.0.1:{lsock.getsockname()[1]}"
    try:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [address]), front))
        with connect(front) as c:
            c.sendall(get("/"))
            s, _ = lsock.accept()
            with s:
                s.recv(65536)
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx")
                r = Reader(c).response()
                assert r.status == 502
    finally:
        lsock.close()
    assert wait_until(lambda: dp.active_connections() == 0)


def test_vhost_listener_with_no_http_service_answers_503(dataplane, ports):
    dp = dataplane()
    vhost = ports()
    dp.publish(spec.RouteTable(listeners=(spec.Listener(address=vhost, kind="vhost"),)))
    assert request(vhost, get("/")).status == 503
