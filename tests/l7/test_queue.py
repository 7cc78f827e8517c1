"""HTTP mode's queue: requests past a backend's maxconn wait, first come first served, for a slot up
to the service's queue timeout, instead of being refused; the backend never sees more at once."""

from __future__ import annotations

import socket
import struct
import threading

from fastlb import spec
from fastlb.emulator.backends import wait_until
from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, port_table, request, timeouts


def _clients(front: str, n: int, path: str) -> list[int]:
    """<n> clients at once, one request each; the statuses they got."""
    statuses = [0] * n
    start = threading.Barrier(n)

    def one(i: int) -> None:
        try:
            with connect(front, timeout=30) as c:
                start.wait()
                c.sendall(get(f"{path}/{i}"))
                statuses[i] = Reader(c).response().status
        except OSError as e:  # reported in the statuses the test compares
            statuses[i] = -e.errno if e.errno else -1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return statuses


def test_200_clients_through_a_backend_maxconn_of_10_all_served(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane(workers=2)
        front = ports()
        svc = http_service("web", [a.address], backend_maxconn=10, timeouts=timeouts(queue_ms=20000))
        dp.publish(port_table(svc, front))
        statuses = _clients(front, 200, "/slow/50")
        assert statuses == [200] * 200, statuses
        assert a.max_in_flight <= 10, a.max_in_flight
        web = dp.stats()["services"]["web"]
        assert web["queued_max"] > 10 and web["queue_timeouts"] == 0 and web["queued"] == 0, web
        assert web["queue_total"] >= web["queued_max"]
        assert wait_until(lambda: dp.stats()["backends"][a.address]["active"] == 0)


def test_a_backend_s_own_maxconn_and_the_others_take_the_rest(dataplane, ports):
    # b takes at most 1 at once (its own maxconn); c has no limit: nothing waits while c has room
    with HttpBackend("b") as b, HttpBackend("c") as c:
        dp = dataplane(workers=1)
        front = ports()
        backends = (spec.Backend(id="b", address=b.address, maxconn=1), spec.Backend(id="c", address=c.address))
        dp.publish(port_table(spec.Service(name="web", mode="http", backends=backends), front))
        assert _clients(front, 20, "/slow/100") == [200] * 20
        assert b.max_in_flight == 1 and len(b.requests) >= 1 and len(c.requests) >= 10
        assert dp.stats()["services"]["web"]["queue_total"] == 0


def test_the_queue_timeout_answers_503_without_reaching_the_backend(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        svc = http_service("web", [a.address], backend_maxconn=1, timeouts=timeouts(queue_ms=200))
        dp.publish(port_table(svc, front))
        with connect(front) as busy:
            busy.sendall(get("/slow/1500"))
            assert wait_until(lambda: a.requests == [("GET", "/slow/1500")])
            r = request(front, get("/late"))
            assert r.status == 503
            assert a.requests == [("GET", "/slow/1500")]
            assert Reader(busy).response().status == 200
        web = dp.stats()["services"]["web"]
        assert (web["queue_total"], web["queue_timeouts"]) == (1, 1)


def test_a_waiting_client_that_resets_frees_its_place(dataplane, ports):
    # (a FIN alone is a half-close: the request is whole and still gets its answer, as in HAProxy
    # without abortonclose)
    with HttpBackend("a") as a:
        dp = dataplane(workers=1)
        front = ports()
        svc = http_service("web", [a.address], backend_maxconn=1, timeouts=timeouts(queue_ms=20000))
        dp.publish(port_table(svc, front))
        with connect(front) as busy:
            busy.sendall(get("/slow/800"))
            assert wait_until(lambda: len(a.requests) == 1)
            gone = connect(front)
            gone.sendall(get("/gone"))
            assert wait_until(lambda: dp.stats()["services"]["web"]["queued"] == 1)
            gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            gone.close()  # a reset
            assert wait_until(lambda: dp.stats()["services"]["web"]["queued"] == 0)
            assert Reader(busy).response().status == 200
        assert a.requests == [("GET", "/slow/800")]

