"""Counters: they add up, they survive swaps, and they are read without pausing the workers."""

from __future__ import annotations

import os
import socket
import zlib

from fastlb.emulator.backends import Sink, wait_until

from .conftest import connect, recv_all, service, table


def test_counters_add_up(dataplane, ports):
    with Sink() as sink:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("sink", [sink.address])], {front: "sink"}))
        sent = 0
        received = 0
        for size in (10, 1000, 200000):
            payload = os.urandom(size)
            with connect(front) as c:
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)
                reply = recv_all(c)
            assert reply == b"%d %d\n" % (size, zlib.crc32(payload))
            sent += size
            received += len(reply)
        assert wait_until(lambda: dp.active_connections() == 0)
        st = dp.stats()
        assert st["generation"] == 1 and st["swaps"] == 0
        assert st["total"] == 3 and st["active"] == 0
        assert st["listeners"][front] == {"active": 0, "total": 3, "refused": 0}
        svc = st["services"]["sink"]
        assert svc["total"] == 3 and svc["active"] == 0
        assert svc["bytes_out"] == sent and svc["bytes_in"] == received
        assert svc["connect_errors"] == svc["retries"] == svc["timeouts"] == svc["no_backend"] == 0
        be = st["backends"][sink.address]
        assert be["service"] == "sink" and be["address"] == sink.address
        assert be["state"] == "ready" and be["health"] == "up" and be["weight"] == 1
        assert be["total"] == 3 and be["active"] == 0
        assert be["bytes_out"] == sent and be["bytes_in"] == received


def test_counters_survive_a_swap(dataplane, ports):
    with Sink() as sink:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("sink", [sink.address])], {front: "sink"}))
        with connect(front) as c:
            c.sendall(b"12345")
            c.shutdown(socket.SHUT_WR)
            recv_all(c)
        dp.publish(table([service("sink", [sink.address], retries=1)], {front: "sink"}))
        assert wait_until(lambda: dp.active_connections() == 0)
        st = dp.stats()
        assert st["generation"] == 2 and st["swaps"] == 1
        assert st["services"]["sink"]["total"] == 1
        assert st["services"]["sink"]["bytes_out"] == 5
        assert st["backends"][sink.address]["total"] == 1
        assert st["listeners"][front]["total"] == 1


def test_stats_of_an_empty_dataplane(dataplane):
    dp = dataplane()
    assert dp.generation == 0
    st = dp.stats()
    assert st == {
        "generation": 0,
        "swaps": 0,
        "active": 0,
        "total": 0,
        "listeners": {},
        "services": {},
        "backends": {},
    }
    assert dp.listener_fds() == {}
    assert dp.workers == 2
