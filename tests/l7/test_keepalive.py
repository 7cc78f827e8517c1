"""Keep-alive on both sides: many requests per client connection, backend connections reused from
the worker's pool, pipelining answered in order, Connection: close and HTTP/1.0 honoured."""

from __future__ import annotations

import socket
import time

from fastlb.emulator.backends import wait_until
from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, port_table, request, timeouts


def test_many_requests_one_client_connection_one_backend_connection(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        with connect(front) as c:
            rd = Reader(c)
            for i in range(50):
                c.sendall(get(f"/n{i}"))
                r = rd.response()
                assert r.status == 200 and r.json()["path"] == f"/n{i}"
                assert r.json()["seq"] == i + 1  # the same backend connection each time
        assert a.accepted == 1


def test_backend_connection_reused_across_client_connections(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        for _ in range(10):
            r = request(front, get("/"))
            assert r.status == 200
        assert a.accepted == 1
        assert dp.stats()["backends"][a.address]["requests"] == 10


def test_backend_closing_a_pooled_connection_is_survived(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        assert request(front, get("/")).status == 200
        a.close()  # drops every connection, the pooled one too
    with HttpBackend("b") as b:
        # same service, new backend: a request still gets through, and nothing is left open
        dp.publish(port_table(http_service("web", [b.address]), front))
        assert request(front, get("/")).json()["backend"] == "b"


def test_pipelined_requests_answered_in_order(dataplane, ports):
    with HttpBackend("a") as a, HttpBackend("b") as b:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address, b.address]), front))
        with connect(front) as c:
            batch = b"".join(get(f"/p{i}") for i in range(20))
            batch += b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            batch += get("/slow/200") + get("/last")
            c.sendall(batch)
            rd = Reader(c)
            paths = [rd.response().json()["path"] for _ in range(23)]
        assert paths == [f"/p{i}" for i in range(20)] + ["/body", "/slow/200", "/last"]


def test_connection_close_is_honoured(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        with connect(front) as c:
            c.sendall(get("/", extra="Connection: close\r\n") + get("/never-read"))
            rd = Reader(c)
            assert rd.response().status == 200
            assert rd.at_eof()
        assert ("GET", "/never-read") not in a.requests


def test_a_clients_connection_close_stays_on_its_hop(dataplane, ports):
    """Clients that each send one request with "Connection: close" (HTTP/1.1): each is answered with
    Connection: close and closed, while the backend never sees the field and its one connection serves
    them all from the pool (RFC 9110 section 7.6.1; HAProxy's keep-alive on the server side)."""
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        for i in range(10):
            with connect(front) as c:
                c.sendall(get(f"/c{i}", extra="Connection: close\r\n"))
                rd = Reader(c)
                r = rd.response()
                assert r.status == 200 and r.header("Connection") == "close"
                headers = {k.lower() for k, _ in r.json()["headers"]}
                assert "connection" not in headers
                assert r.json()["seq"] == i + 1  # the same backend connection each time
                assert rd.at_eof()
        assert a.accepted == 1
        # an upgrade, or a field named hop-by-hop, keeps its Connection as it came
        r = request(front, get("/x", extra="Connection: close, X-Trace\r\nX-Trace: 1\r\n"))
        assert r.status == 200 and dict(r.json()["headers"]).get("Connection") == "close, X-Trace"


def test_http10(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        with connect(front) as c:
            c.sendall(b"GET /old HTTP/1.0\r\n\r\n")
            rd = Reader(c)
            assert rd.response().json()["path"] == "/old"
            assert rd.at_eof()
        with connect(front) as c:
            rd = Reader(c)
            for i in range(3):
                c.sendall(f"GET /ka{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
                assert rd.response().json()["path"] == f"/ka{i}"


def test_keepalive_idle_timeout_closes(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(
            port_table(http_service("web", [a.address], timeouts=timeouts(http_keepalive_ms=200)), front)
        )
        with connect(front) as c:
            c.sendall(get("/"))
            rd = Reader(c)
            assert rd.response().status == 200
            assert rd.at_eof()  # closed silently after 200 ms idle
        assert wait_until(lambda: dp.active_connections() == 0)


def test_client_half_close_after_request_still_gets_the_answer(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        with connect(front) as c:
            c.sendall(get("/slow/100"))
            c.shutdown(socket.SHUT_WR)
            rd = Reader(c)
            assert rd.response().json()["path"] == "/slow/100"
            assert rd.at_eof()


def test_a_long_pipeline_in_one_send(dataplane, ports):
    # far more requests than one wakeup works through: the rest must still be answered
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        with connect(front) as c:
            c.sendall(b"".join(get(f"/q{i}") for i in range(300)))
            rd = Reader(c)
            assert [rd.response().json()["path"] for _ in range(300)] == [f"/q{i}" for i in range(300)]


def test_pipelined_requests_then_fin_all_answered(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        with connect(front) as c:
            c.sendall(get("/1") + get("/2") + get("/3"))
            c.shutdown(socket.SHUT_WR)
            rd = Reader(c)
            assert [rd.response().json()["path"] for _ in range(3)] == ["/1", "/2", "/3"]
            assert rd.at_eof()


def _concurrent_slow_requests(front: str, n: int, ms: int) -> None:
    """<n> clients at once, each one request that the backend holds for <ms>; all must get 200."""
    socks = [connect(front) for _ in range(n)]
    try:
        for i, c in enumerate(socks):
            c.sendall(get(f"/slow/{ms}/{i}"))
        for c in socks:
            assert Reader(c).response().status == 200
    finally:
        for c in socks:
            c.close()


def test_the_pool_keeps_as_many_connections_as_the_backend_served_at_once(dataplane, ports):
    # No cap per backend: 40 requests at once leave 40 pooled connections, and the next 40 at once
    # connect no more.
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        _concurrent_slow_requests(front, 40, 300)
        be = dp.stats()["backends"][a.address]
        assert wait_until(lambda: dp.stats()["backends"][a.address]["idle"] == 40), be
        assert a.accepted == 40 and be["total"] == 40 and be["reused"] == 0
        _concurrent_slow_requests(front, 40, 300)
        be = dp.stats()["backends"][a.address]
        assert a.accepted == 40 and be["total"] == 40
        assert be["reused"] == 40 and be["requests"] == 80
        assert wait_until(lambda: dp.stats()["backends"][a.address]["active"] == 0)


def test_the_pool_is_bounded_by_pool_max(dataplane, ports):
    with HttpBackend("a") as a:
        # pool_idle far away: on a loaded machine the default 5 s could close one before the check
        dp = dataplane(workers=1, pool_max=5, pool_idle_ms=120_000)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        _concurrent_slow_requests(front, 12, 200)
        assert wait_until(lambda: dp.stats()["backends"][a.address]["requests"] == 12)
        # the 7 pooled first made room for the last 5; the backend sees the others closed
        assert wait_until(lambda: a.active == 5), a.active
        assert wait_until(lambda: dp.stats()["backends"][a.address]["idle"] == 5), dp.stats()["backends"][a.address]


def test_idle_pooled_connections_close_after_pool_idle(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1, pool_idle_ms=300)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        _concurrent_slow_requests(front, 10, 100)
        assert wait_until(lambda: a.active == 10) and a.accepted == 10
        assert wait_until(lambda: dp.stats()["backends"][a.address]["idle"] == 0, timeout=5)
        assert wait_until(lambda: a.active == 0)


def test_surplus_connections_close_while_the_busy_one_stays(dataplane, ports):
    # Demand falls from 8 at once to one at a time: the most recently pooled connection serves it,
    # and the 7 others go unused and close after pool_idle.
    with HttpBackend("a") as a:
        dp = dataplane(workers=1, pool_idle_ms=500)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        _concurrent_slow_requests(front, 8, 100)
        with connect(front) as c:
            rd = Reader(c)
            for i in range(30):  # 1.5 s of one request every 50 ms
                c.sendall(get(f"/n{i}"))
                assert rd.response().status == 200
                time.sleep(0.05)
            assert dp.stats()["backends"][a.address]["idle"] == 1
        assert a.accepted == 8


def test_no_pooling_after_connection_close_from_the_backend_or_with_pool_max_0(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1, pool_max=0)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        for _ in range(3):
            assert request(front, get("/")).status == 200
        assert a.accepted == 3 and dp.stats()["backends"][a.address]["idle"] == 0
    with HttpBackend("b") as b:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(port_table(http_service("web", [b.address]), front))
        for _ in range(3):  # the backend closes after each answer: nothing is pooled
            assert request(front, get("/close/10")).status == 200
        assert b.accepted == 3 and dp.stats()["backends"][b.address]["idle"] == 0


def test_stop_accepting_closes_pooled_backend_connections_and_pools_no_more(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1, pool_idle_ms=60000)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], timeouts=timeouts(http_keepalive_ms=60000)), front))
        c = connect(front)
        rd = Reader(c)
        c.sendall(get("/slow/300"))
        assert wait_until(lambda: a.in_flight == 1)
        assert request(front, get("/")).status == 200  # on a second backend connection, pooled after
        assert wait_until(lambda: a.active == 2)
        dp.stop_accepting()
        assert wait_until(lambda: a.active == 1)  # the pooled one closed at once
        r = rd.response()
        assert r.status == 200 and r.headers_named("Connection") == ["close"]
        assert rd.at_eof()
        c.close()
        assert wait_until(lambda: a.active == 0 and dp.active_connections() == 0)  # not pooled either


def test_a_drain_answers_requests_already_sent_and_says_close(dataplane, ports):
    # Bytes of a request waiting in the buffer (a pipelined one) or in the socket are answered when a
    # drain begins; only the last answer before the close says so, and a connection with nothing sent
    # closes at once.
    with HttpBackend("a", extra_headers=(("Connection", "keep-alive"),)) as a:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(port_table(http_service("web", [a.address], timeouts=timeouts(http_keepalive_ms=60000)), front))
        idle = connect(front)
        piped = connect(front)
        piped.sendall(get("/slow/300") + get("/second"))
        assert wait_until(lambda: a.in_flight == 1)
        dp.stop_accepting()
        assert Reader(idle).at_eof()
        rd = Reader(piped)
        first, second = rd.response(), rd.response()
        assert first.status == 200 and first.headers_named("Connection") == ["keep-alive"]  # one follows
        assert second.status == 200 and second.json()["path"] == "/second"
        assert second.headers_named("Connection") == ["close"]
        assert rd.at_eof()
        idle.close()
        piped.close()
