"""Backend choice and failure: retries, nothing left, timeouts, drain, leastconn, maxconn, draining
the whole data plane."""

from __future__ import annotations

import socket
import time

import pytest

from fastlb import spec
from fastlb.emulator.backends import Blackhole, Echo, WhoAmI, refused_address, wait_until

from .conftest import connect, recv_exactly, recv_line, service, table


def _closed_by_proxy(c: socket.socket) -> bool:
    """True once the proxy has closed the client (EOF or reset)."""
    try:
        return c.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_refused_backend_is_retried_elsewhere(dataplane, ports):
    with refused_address() as dead, WhoAmI("alive") as alive:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(table([service("s", [dead, alive.address], retries=3)], {front: "s"}))
        for _ in range(4):  # round-robin: two of them try the dead one first
            with connect(front) as c:
                assert recv_line(c) == b"alive\n"
        st = dp.stats()
        bad, good, svc = st["backends"][dead], st["backends"][alive.address], st["services"]["s"]
        assert bad["connect_errors"] >= 1
        assert bad["retries"] == bad["connect_errors"]
        assert bad["total"] == 0 and good["total"] == 4 and good["connect_errors"] == 0
        assert svc["connect_errors"] == bad["connect_errors"]
        assert svc["retries"] == bad["retries"]
        assert svc["no_backend"] == 0


def test_every_backend_refusing_closes_the_client_promptly(dataplane, ports):
    with refused_address() as one, refused_address() as two:
        dp = dataplane()
        front = ports()
        timeouts = spec.Timeouts(connect_ms=30000)
        dp.publish(table([service("s", [one, two], retries=3, timeouts=timeouts)], {front: "s"}))
        start = time.monotonic()
        with connect(front) as c:
            assert _closed_by_proxy(c)
        assert time.monotonic() - start < 10.0  # not the 30 s connect timeout
        assert wait_until(lambda: dp.active_connections() == 0)
        svc = dp.stats()["services"]["s"]
        assert svc["connect_errors"] == 2  # each backend tried once: a failed one is not tried again
        assert svc["retries"] == 1
        assert svc["no_backend"] == 1
        assert dp.stats()["listeners"][front]["refused"] == 1


def test_no_available_backend_closes_the_client(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [echo.address])], {front: "s"}))
        assert dp.set_backend_health(echo.address, False)
        with connect(front) as c:
            assert _closed_by_proxy(c)
        assert wait_until(lambda: dp.stats()["services"]["s"]["no_backend"] == 1)
        assert dp.stats()["backends"][echo.address]["health"] == "down"
        assert echo.accepted == 0
        assert dp.set_backend_health(echo.address, True)
        with connect(front) as c:
            c.sendall(b"up")
            assert recv_exactly(c, 2) == b"up"


def test_an_empty_service_closes_the_client(dataplane, ports):
    dp = dataplane()
    front = ports()
    dp.publish(table([service("empty", [])], {front: "empty"}))
    with connect(front) as c:
        assert _closed_by_proxy(c)
    assert wait_until(lambda: dp.stats()["services"]["empty"]["no_backend"] == 1)


def test_connect_timeout_to_a_blackhole(dataplane, ports):
    with Blackhole() as hole:
        dp = dataplane()
        front = ports()
        timeouts = spec.Timeouts(connect_ms=400)
        dp.publish(table([service("s", [hole.address], retries=0, timeouts=timeouts)], {front: "s"}))
        start = time.monotonic()
        with connect(front) as c:
            assert _closed_by_proxy(c)
        elapsed = time.monotonic() - start
        assert 0.35 <= elapsed < 10.0  # it waited for the connect timeout, then gave up
        st = dp.stats()
        # a failed connect, counted once: not also a timeout (errors = connect_errors + timeouts)
        assert st["services"]["s"]["connect_errors"] == 1
        assert st["services"]["s"]["timeouts"] == 0
        assert st["services"]["s"]["no_backend"] == 1
        assert st["backends"][hole.address]["connect_errors"] == 1
        assert st["backends"][hole.address]["timeouts"] == 0


def test_idle_timeout_closes_and_activity_keeps_open(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        timeouts = spec.Timeouts(tunnel_ms=500)
        dp.publish(table([service("s", [echo.address], timeouts=timeouts)], {front: "s"}))
        with connect(front) as c:
            start = time.monotonic()
            while True:  # three idle timeouts' worth of activity, a byte every 0.1 s
                c.sendall(b"k")
                assert recv_exactly(c, 1) == b"k"
                idle_from = time.monotonic()
                if idle_from - start >= 1.5:
                    break
                time.sleep(0.1)
            assert _closed_by_proxy(c)
            assert time.monotonic() - idle_from >= 0.45
        st = dp.stats()
        assert st["services"]["s"]["timeouts"] == 1
        assert st["backends"][echo.address]["timeouts"] == 1
        assert wait_until(lambda: echo.active == 0)


def test_drain_stops_new_connections_while_open_ones_carry_on(dataplane, ports):
    with WhoAmI("a") as a, WhoAmI("b") as b:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [a.address, b.address])], {front: "s"}))
        held = connect(front)
        first = recv_line(held).strip().decode()
        drained = a if first == "a" else b
        other = b if drained is a else a
        assert dp.set_backend_state(drained.address, "drain")
        assert dp.stats()["backends"][drained.address]["state"] == "drain"
        for _ in range(6):
            with connect(front) as c:
                assert recv_line(c) == other.ident.encode() + b"\n"
        held.sendall(b"on")
        assert recv_exactly(held, 2) == b"on"
        held.close()
        assert dp.set_backend_state(drained.address, "ready")
        assert not dp.set_backend_state("127.0.0.9:1", "drain")
        assert not dp.set_backend_health("nobody", False)
        assert not dp.set_backend_weight("nobody", 3)
        with pytest.raises(ValueError):
            dp.set_backend_state(drained.address, "sleepy")
        with pytest.raises(ValueError):
            dp.set_backend_weight(drained.address, 257)


def test_weight_zero_takes_no_new_connection(dataplane, ports):
    with WhoAmI("a") as a, WhoAmI("b") as b:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [a.address, b.address])], {front: "s"}))
        assert dp.set_backend_weight(a.address, 0)
        assert dp.stats()["backends"][a.address]["weight"] == 0
        for _ in range(4):
            with connect(front) as c:
                assert recv_line(c) == b"b\n"


def test_leastconn_counts_are_visible_in_stats(dataplane, ports):
    with WhoAmI("a") as a, WhoAmI("b") as b:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [a.address, b.address], balance="leastconn")], {front: "s"}))
        held = []
        try:
            for _ in range(4):
                c = connect(front)
                held.append(c)
                recv_line(c)
            st = dp.stats()["backends"]
            assert st[a.address]["active"] == 2 and st[b.address]["active"] == 2
            assert dp.stats()["services"]["s"]["active"] == 4
        finally:
            for c in held:
                c.close()
        assert wait_until(lambda: all(v["active"] == 0 for v in dp.stats()["backends"].values()))


@pytest.mark.parametrize("where", ["listener", "table", "dataplane"])
def test_maxconn_holds_connections_in_the_backlog(dataplane, ports, where):
    with WhoAmI("w") as w:
        dp = dataplane(maxconn=2) if where == "dataplane" else dataplane()
        front = ports()
        svc = service("s", [w.address])
        lst = (spec.Listener(address=front, service="s", maxconn=2 if where == "listener" else 0),)
        dp.publish(spec.RouteTable(services=(svc,), listeners=lst, maxconn=2 if where == "table" else 0))
        first, second = connect(front), connect(front)
        assert recv_line(first) == b"w\n" and recv_line(second) == b"w\n"
        third = connect(front)  # completes in the kernel's backlog, not accepted yet
        try:
            third.settimeout(0.5)
            with pytest.raises(socket.timeout):
                third.recv(1)
            st = dp.stats()
            assert st["active"] == 2 and st["listeners"][front]["active"] == 2
            assert st["listeners"][front]["refused"] == 0
            first.close()
            third.settimeout(20)
            assert recv_line(third) == b"w\n"  # served once a slot freed
        finally:
            first.close()
            second.close()
            third.close()
        assert wait_until(lambda: dp.active_connections() == 0)
        assert dp.stats()["listeners"][front]["total"] == 3


def test_stop_accepting_then_close_all(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [echo.address])], {front: "s"}))
        held = connect(front)
        held.sendall(b"1")
        assert recv_exactly(held, 1) == b"1"
        dp.stop_accepting()
        assert dp.listener_fds() == {}
        with pytest.raises(ConnectionRefusedError):
            connect(front).close()
        held.sendall(b"2")
        assert recv_exactly(held, 1) == b"2"  # open connections carry on
        assert dp.active_connections() == 1
        dp.close_all()
        assert dp.active_connections() == 0
        assert _closed_by_proxy(held)
        held.close()
        # a table published now is adopted, but opens no listener
        other = ports()
        dp.publish(table([service("s", [echo.address])], {other: "s"}))
        with pytest.raises(ConnectionRefusedError):
            connect(other).close()


def test_stop_is_idempotent_and_closes_everything(ports):
    from fastlb._core import DataPlane

    with Echo() as echo:
        dp = DataPlane(2)
        dp.start()
        front = ports()
        dp.publish(table([service("s", [echo.address])], {front: "s"}))
        c = connect(front)
        c.sendall(b"x")
        assert recv_exactly(c, 1) == b"x"
        dp.stop()
        dp.stop()
        assert _closed_by_proxy(c)
        c.close()
        with pytest.raises(RuntimeError):
            dp.publish(table([service("s", [echo.address])], {front: "s"}))
        with pytest.raises(RuntimeError):
            dp.start()
        del dp


def test_publish_before_start(ports):
    from fastlb._core import DataPlane

    with Echo() as echo:
        dp = DataPlane(1)
        front = ports()
        dp.publish(table([service("s", [echo.address])], {front: "s"}))
        dp.start()
        try:
            with connect(front) as c:
                c.sendall(b"early")
                assert recv_exactly(c, 5) == b"early"
        finally:
            dp.stop()


def test_close_all_while_bytes_are_in_flight(dataplane, ports):
    """A backend that never reads: the proxy ends up holding bytes (in a pipe or a buffer) when
    close_all runs; everything is released (the conftest checks fds and pipes)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    backend = f"127.0.0.1:{srv.getsockname()[1]}"
    try:
        dp = dataplane(splice_threshold=0)
        front = ports()
        dp.publish(table([service("s", [backend])], {front: "s"}))
        c = connect(front)
        peer, _ = srv.accept()
        c.setblocking(False)
        block = b"z" * (1 << 20)
        sent = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # fill every buffer on the way until the client blocks
            try:
                sent += c.send(block)
            except BlockingIOError:
                if wait_until(lambda: dp.stats()["services"]["s"]["bytes_out"] > 0, timeout=0.2):
                    break
        assert sent > 0
        assert dp.active_connections() == 1
        dp.close_all()
        assert dp.active_connections() == 0
        assert dp.stats()["services"]["s"]["active"] == 0
        c.setblocking(True)
        c.settimeout(20)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while True:
                c.send(block)
        c.close()
        peer.close()
    finally:
        srv.close()
