"""Table swaps: no byte lost, no connection cut, listeners kept/opened/closed as the tables say."""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest

from fastlb import spec
from fastlb.emulator.backends import Echo, WhoAmI, refused_address, wait_until

from .conftest import connect, recv_exactly, recv_line, service, table


def _stream(address: str, stop: threading.Event, errors: list[BaseException], counts: list[int]) -> None:
    """Echoes random chunks through <address> until <stop>, checking every byte comes back."""
    try:
        with connect(address) as c:
            moved = 0
            while not stop.is_set():
                chunk = os.urandom(1 + moved % 30000)
                c.sendall(chunk)
                assert recv_exactly(c, len(chunk)) == chunk
                moved += len(chunk)
            c.shutdown(socket.SHUT_WR)
            assert c.recv(1) == b""
            counts.append(moved)
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


@pytest.mark.slow
def test_a_thousand_swaps_while_connections_stream(dataplane, ports):
    with Echo("a") as a, Echo("b") as b:
        dp = dataplane()
        front = ports()
        variants = [
            table([service("echo", [a.address])], {front: "echo"}),
            table([service("echo", [b.address])], {front: "echo"}),
            table([service("echo", [a.address, b.address], balance="leastconn")], {front: "echo"}),
        ]
        dp.publish(variants[0])
        fds = dp.listener_fds()
        assert len(fds[front]) == 2
        stop = threading.Event()
        errors: list[BaseException] = []
        counts: list[int] = []
        threads = [threading.Thread(target=_stream, args=(front, stop, errors, counts)) for _ in range(4)]
        for t in threads:
            t.start()
        new_conns = 0
        for i in range(1000):
            dp.publish(variants[i % 3])
            if i % 50 == 0:
                # connections opened mid-swaps are served by whichever table is current
                with connect(front) as c:
                    c.sendall(b"ping")
                    assert recv_exactly(c, 4) == b"ping"
                new_conns += 1
        stop.set()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(counts) == 4 and all(n > 0 for n in counts)
        assert dp.generation == 1001
        assert dp.stats()["swaps"] == 1000
        assert dp.listener_fds() == fds  # the kept listener was never closed nor rebound


def test_a_swap_opens_added_listeners_and_closes_dropped_ones(dataplane, ports):
    with WhoAmI("one") as one:
        dp = dataplane()
        first, second = ports(), ports()
        svc = service("who", [one.address])
        dp.publish(table([svc], {first: "who"}))
        before = dp.listener_fds()
        with pytest.raises(ConnectionRefusedError):
            connect(second).close()

        dp.publish(table([svc], {first: "who", second: "who"}))
        after = dp.listener_fds()
        assert after[first] == before[first]
        assert set(after) == {first, second}
        with connect(second) as c:
            assert recv_line(c) == b"one\n"

        held = connect(first)  # established through the listener about to be dropped
        assert recv_line(held) == b"one\n"
        dp.publish(table([svc], {second: "who"}))
        assert set(dp.listener_fds()) == {second}
        with pytest.raises(ConnectionRefusedError):
            connect(first).close()
        held.sendall(b"still here")
        assert recv_exactly(held, 10) == b"still here"
        held.close()


def test_a_table_that_cannot_bind_publishes_nothing(dataplane, ports):
    with WhoAmI("one") as one:
        dp = dataplane()
        good = ports()
        dp.publish(table([service("who", [one.address])], {good: "who"}))
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)  # no SO_REUSEPORT: nobody may bind beside it
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        try:
            fresh = ports()
            with pytest.raises(OSError) as info:
                dp.publish(table([service("who", [one.address])], {good: "who", fresh: "who", taken: "who"}))
            assert info.value.errno == errno.EADDRINUSE
            assert taken in str(info.value)
        finally:
            busy.close()
        assert dp.generation == 1
        assert set(dp.listener_fds()) == {good}
        with pytest.raises(ConnectionRefusedError):
            connect(fresh).close()
        with connect(good) as c:
            assert recv_line(c) == b"one\n"


@pytest.mark.parametrize(
    "bad, message",
    [
        (spec.Backend(id="x", address="localhost:80"), "localhost:80"),
        (spec.Backend(id="x", address="127.0.0.1"), "127.0.0.1"),
        (spec.Backend(id="x", address="127.0.0.1:0"), "127.0.0.1:0"),
        (spec.Backend(id="x", address="[::1:80"), "[::1:80"),
        (spec.Backend(id="x", address="127.0.0.1:80", weight=300), "weight"),
    ],
)
def test_a_bad_table_raises_and_publishes_nothing(dataplane, ports, bad, message):
    with WhoAmI("one") as one:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("who", [one.address])], {front: "who"}))
        with pytest.raises(ValueError, match=message.replace("[", r"\[")):
            dp.publish(table([service("who", [one.address, bad])], {front: "who"}))
        with pytest.raises(ValueError, match="nope"):
            dp.publish(table([service("who", [one.address])], {front: "nope"}))
        assert dp.generation == 1
        with connect(front) as c:
            assert recv_line(c) == b"one\n"


def test_ipv6_backend_address(dataplane, ports):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    srv = socket.socket(socket.AF_INET6)
    try:
        srv.bind(("::1", 0))
    except OSError:
        srv.close()
        pytest.skip("no IPv6 loopback")
    srv.listen(4)
    hold = socket.socket(socket.AF_INET6)  # reserves the v6 listener's port (see reserve_port)
    hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    hold.bind(("::1", 0))
    try:
        dp = dataplane()
        front = ports()
        front6 = f"[::1]:{hold.getsockname()[1]}"
        addr = f"[::1]:{srv.getsockname()[1]}"
        dp.publish(table([service("v6", [addr])], {front: "v6", front6: "v6"}))
        assert dp.stats()["backends"][addr]["address"] == addr
        assert set(dp.listener_fds()) == {front, front6}
        for listener in (front, front6):
            c = socket.create_connection(
                (listener.rsplit(":", 1)[0].strip("[]"), int(listener.rsplit(":", 1)[1])), timeout=20
            )
            with c:
                peer, _ = srv.accept()
                with peer:
                    c.sendall(b"six")
                    assert recv_exactly(peer, 3) == b"six"
    finally:
        hold.close()
        srv.close()


def test_http_services_and_vhost_listeners_are_served_at_l7(dataplane, ports):
    # HTTP mode (tests/l7): an http service's port and the vhost listener speak HTTP; an echo is no
    # HTTP server, so its answer (the request itself) is a bad response head: 502.
    with Echo() as echo:
        dp = dataplane()
        front, vhost = ports(), ports()
        svc = service("web", [echo.address], mode="http")
        lst = (spec.Listener(address=front, service="web"), spec.Listener(address=vhost, kind="vhost"))
        dp.publish(spec.RouteTable(services=(svc,), listeners=lst))
        assert set(dp.listener_fds()) == {front, vhost}
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        for address, status in ((vhost, b"503"), (front, b"502")):
            with connect(address) as c:
                c.sendall(request)
                assert recv_exactly(c, 12) == b"HTTP/1.1 " + status


def test_a_backend_that_moves_takes_new_connections_at_its_new_address(dataplane, ports):
    with WhoAmI("old") as old, WhoAmI("new") as new:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [spec.Backend(id="task-1", address=old.address)])], {front: "s"}))
        held = connect(front)
        assert recv_line(held) == b"old\n"
        dp.publish(table([service("s", [spec.Backend(id="task-1", address=new.address)])], {front: "s"}))
        with connect(front) as c:
            assert recv_line(c) == b"new\n"
        assert dp.stats()["backends"]["task-1"]["address"] == new.address
        assert dp.stats()["backends"]["task-1"]["total"] == 2  # one record, by identity
        held.sendall(b"x")
        assert recv_exactly(held, 1) == b"x"
        held.close()


def test_a_swap_that_lifts_maxconn_serves_the_waiting_connection(dataplane, ports):
    with WhoAmI("w") as w:
        dp = dataplane()
        front = ports()
        svc = service("s", [w.address])
        dp.publish(
            spec.RouteTable(
                services=(svc,), listeners=(spec.Listener(address=front, service="s", maxconn=1),)
            )
        )
        first = connect(front)
        assert recv_line(first) == b"w\n"
        waiting = connect(front)
        try:
            waiting.settimeout(0.3)
            with pytest.raises(socket.timeout):
                waiting.recv(1)
            dp.publish(table([svc], {front: "s"}))  # the same listener, no limit
            waiting.settimeout(20)
            assert recv_line(waiting) == b"w\n"
        finally:
            first.close()
            waiting.close()


def test_listeners_come_and_go_across_many_swaps(dataplane, ports):
    with WhoAmI("w") as w:
        dp = dataplane()
        kept, flapping = ports(), ports()
        svc = service("s", [w.address])
        with_both = table([svc], {kept: "s", flapping: "s"})
        only_kept = table([svc], {kept: "s"})
        dp.publish(only_kept)
        fds = dp.listener_fds()[kept]
        for i in range(100):
            dp.publish(with_both if i % 2 == 0 else only_kept)
            if i % 10 == 0:
                with connect(kept) as c:
                    assert recv_line(c) == b"w\n"
            if i % 10 == 0:
                with connect(flapping) as c:  # just opened by this swap
                    assert recv_line(c) == b"w\n"
        assert set(dp.listener_fds()) == {kept}
        assert dp.listener_fds()[kept] == fds


def test_maglev_sends_one_client_address_to_one_backend(dataplane, ports):
    with WhoAmI("a") as a, WhoAmI("b") as b, WhoAmI("c") as c3:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [a.address, b.address, c3.address], balance="maglev")], {front: "s"}))
        seen = set()
        for _ in range(8):
            with connect(front) as c:
                seen.add(recv_line(c))
        assert len(seen) == 1


@pytest.mark.slow
def test_swaps_state_changes_and_connections_all_at_once(dataplane, ports):
    """Clients connect, talk and leave while tables swap, backends drain and come back, and a
    second listener comes and goes: every client on the kept listener is served, none hangs."""
    with WhoAmI("a") as a, WhoAmI("b") as b, refused_address() as dead:
        dp = dataplane()
        front, extra = ports(), ports()
        variants = [
            table([service("s", [a.address, b.address, dead], retries=2)], {front: "s"}),
            table([service("s", [a.address, b.address], balance="leastconn")], {front: "s", extra: "s"}),
            table([service("s", [b.address, a.address], balance="maglev", retries=1)], {front: "s"}),
        ]
        dp.publish(variants[0])
        stop = threading.Event()
        errors: list[BaseException] = []
        served = [0]

        def client() -> None:
            try:
                while not stop.is_set():
                    with connect(front) as c:
                        ident = recv_line(c)
                        assert ident in (b"a\n", b"b\n")
                        c.sendall(b"ping")
                        assert recv_exactly(c, 4) == b"ping"
                    served[0] += 1
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(300):
            dp.publish(variants[i % 3])
            # one backend at a time is drained: the other always takes new connections
            dp.set_backend_state(a.address if i % 2 else b.address, "drain")
            dp.set_backend_state(b.address if i % 2 else a.address, "ready")
        stop.set()
        for t in threads:
            t.join(60)
        assert not errors, errors[:3]
        assert served[0] > 0
        assert wait_until(lambda: dp.active_connections() == 0)
