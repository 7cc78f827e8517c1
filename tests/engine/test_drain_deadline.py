"""Drain deadlines: a draining backend takes no new connection; its open ones carry on until they
end or the service's drain_timeout_ms passes, and are then closed cleanly (the client reads EOF)."""

from __future__ import annotations

import socket
import time

from fastlb import spec
from fastlb.emulator.backends import Echo, wait_until

from .conftest import TIMEOUT, connect, recv_exactly, service, table
from .test_backends import _closed_by_proxy


def _echoes(c: socket.socket, data: bytes = b"ping") -> bool:
    c.sendall(data)
    return recv_exactly(c, len(data)) == data


def _eof(c: socket.socket) -> bool:
    """Waits for the proxy to end <c>: True for a clean EOF (False for a reset)."""
    c.settimeout(TIMEOUT)
    try:
        return c.recv(1) == b""
    except ConnectionResetError:
        return False


def test_set_to_drain_by_hand_the_open_connections_end_at_the_deadline(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [echo.address], drain_timeout_ms=400)], {front: "s"}))
        with connect(front) as c:
            assert _echoes(c)
            before = time.time() * 1000
            assert dp.set_backend_state(echo.address, "drain")
            st = dp.stats()["backends"][echo.address]
            assert st["state"] == "drain" and st["drain_since_ms"] >= before - 1000
            with connect(front) as other:  # no new connection
                assert _closed_by_proxy(other)
            assert _echoes(c, b"still here")  # the open one carries on
            assert _eof(c)  # then ends, cleanly
            assert time.time() * 1000 - before >= 300  # not before its deadline (clocks differ a little)
        assert wait_until(lambda: echo.active == 0 and dp.active_connections() == 0)
        assert echo.accepted == 1


def test_a_table_that_drains_a_backend_starts_its_clock(dataplane, ports):
    with Echo() as old, Echo() as new:
        dp = dataplane()
        front = ports()
        ready = [spec.Backend(id="old", address=old.address)]
        dp.publish(table([service("s", ready, drain_timeout_ms=300)], {front: "s"}))
        with connect(front) as c:
            assert _echoes(c)
            draining = [
                spec.Backend(id="old", address=old.address, state="drain"),
                spec.Backend(id="new", address=new.address),
            ]
            dp.publish(table([service("s", draining, drain_timeout_ms=300)], {front: "s"}))
            with connect(front) as d:
                assert _echoes(d)  # the new one goes to "new"
                assert _eof(c)
                assert _echoes(d, b"unaffected")
        assert new.accepted == 1 and old.accepted == 1
        assert dp.stats()["backends"]["new"]["drain_since_ms"] == 0


def test_a_backend_gone_from_the_table_keeps_its_deadline(dataplane, ports):
    with Echo() as old, Echo() as new:
        dp = dataplane()
        front = ports()
        dp.publish(
            table(
                [service("s", [spec.Backend(id="old", address=old.address)], drain_timeout_ms=300)],
                {front: "s"},
            )
        )
        with connect(front) as c:
            assert _echoes(c)
            assert dp.set_backend_state("old", "drain")
            dp.publish(
                table(
                    [service("s", [spec.Backend(id="new", address=new.address)], drain_timeout_ms=300)],
                    {front: "s"},
                )
            )
            assert _eof(c)


def test_back_to_ready_before_the_deadline_keeps_the_connections(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [echo.address], drain_timeout_ms=300)], {front: "s"}))
        with connect(front) as c:
            assert _echoes(c)
            assert dp.set_backend_state(echo.address, "drain")
            assert dp.set_backend_state(echo.address, "ready")
            assert dp.stats()["backends"][echo.address]["drain_since_ms"] == 0
            time.sleep(0.6)  # past the deadline it would have had
            assert _echoes(c)


def test_no_drain_timeout_means_connections_carry_on(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [echo.address])], {front: "s"}))
        with connect(front) as c:
            assert _echoes(c)
            assert dp.set_backend_state(echo.address, "drain")
            time.sleep(0.3)
            assert _echoes(c)
            assert dp.stats()["backends"][echo.address]["drain_since_ms"] > 0
