"""TCP mode's queue: a connection past its backends' maxconn waits, unread, for a slot up to the
service's queue timeout (then it is closed), first come first served; a backend never holds more."""

from __future__ import annotations

import time

from fastlb import spec
from fastlb.emulator.backends import Echo, wait_until

from .conftest import connect, recv_exactly, service, table


def test_connections_past_backend_maxconn_wait_then_go_in_order(dataplane, ports):
    with Echo() as a:
        dp = dataplane(workers=2)
        front = ports()
        svc = service("s", [a.address], backend_maxconn=2, timeouts=spec.Timeouts(queue_ms=20000))
        dp.publish(table([svc], {front: "s"}))
        first = [connect(front) for _ in range(2)]
        for i, c in enumerate(first):
            c.sendall(b"first%d" % i)
            assert recv_exactly(c, 6) == b"first%d" % i
        waiting = []
        for i in range(3):
            c = connect(front)
            c.sendall(b"wait%d" % i)  # waits in its socket, unread
            waiting.append(c)
            assert wait_until(lambda n=i + 1: dp.stats()["services"]["s"]["queued"] == n)
        time.sleep(0.2)
        assert a.active == 2 and a.accepted == 2
        # each close frees a slot for the oldest waiting connection
        for i, leaving in enumerate([first[0], first[1], waiting[0]]):
            leaving.close()
            assert recv_exactly(waiting[i], 5) == b"wait%d" % i
            assert a.active <= 2
        for c in first + waiting:
            c.close()
        s = dp.stats()["services"]["s"]
        assert (s["queue_total"], s["queue_timeouts"], s["queued_max"]) == (3, 0, 3)
        assert wait_until(lambda: a.active == 0)


def test_a_connection_that_waits_past_the_queue_timeout_is_closed(dataplane, ports):
    with Echo() as a:
        dp = dataplane(workers=1)
        front = ports()
        svc = service("s", [a.address], backend_maxconn=1, timeouts=spec.Timeouts(queue_ms=200))
        dp.publish(table([svc], {front: "s"}))
        with connect(front) as busy, connect(front) as late:
            busy.sendall(b"x")
            assert recv_exactly(busy, 1) == b"x"
            late.sendall(b"y")
            try:  # closed after the queue timeout, never connected (a reset: "y" was never read)
                assert late.recv(10) == b""
            except ConnectionResetError:
                pass
            assert a.accepted == 1
        s = dp.stats()["services"]["s"]
        assert (s["queue_total"], s["queue_timeouts"]) == (1, 1)
