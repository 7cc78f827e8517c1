"""Forwarding through the proxy: echo, server-first, big transfers, half-close, many connections."""

from __future__ import annotations

import os
import socket
import threading
import time
import zlib

import pytest

from fastlb import _core
from fastlb.emulator.backends import Echo, Greeter, Sink, wait_until

from .conftest import connect, recv_all, recv_exactly, recv_line, service, table


def test_echo_through_the_proxy(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        assert dp.publish(table([service("echo", [echo.address])], {front: "echo"})) == 1
        with connect(front) as c:
            for size in (1, 100, 5000, 70000):
                payload = os.urandom(size)
                c.sendall(payload)
                assert recv_exactly(c, size) == payload


def test_server_speaks_first(dataplane, ports):
    with Greeter(b"220 hello\r\n") as greeter:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("smtp", [greeter.address])], {front: "smtp"}))
        with connect(front) as c:
            assert recv_exactly(c, 11) == b"220 hello\r\n"
            c.sendall(b"HELO x\r\n")
            assert recv_exactly(c, 8) == b"HELO x\r\n"


def test_client_bytes_sent_before_the_backend_answers_are_kept(dataplane, ports):
    with Sink() as sink:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [sink.address])], {front: "s"}))
        payload = os.urandom(3000)
        with connect(front) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            assert recv_line(c) == b"%d %d\n" % (len(payload), zlib.crc32(payload))


def test_client_half_close_still_receives(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("echo", [echo.address])], {front: "echo"}))
        payload = os.urandom(300000)
        with connect(front) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            assert recv_all(c) == payload  # every echoed byte, then the FIN passed back


def test_backend_half_close_client_still_sends(dataplane, ports):
    with Sink(greeting=b"bye\n", shut_after_greeting=True) as sink:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [sink.address])], {front: "s"}))
        payload = os.urandom(200000)
        with connect(front) as c:
            assert recv_all(c) == b"bye\n"  # the backend has shut its side
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            assert wait_until(lambda: sink.finished == [(len(payload), zlib.crc32(payload))])
        assert wait_until(lambda: dp.active_connections() == 0)


def _bulk_each_way(front: str, total: int) -> None:
    """Sends <total> bytes through an echo and receives them back, at once, checking both crc32s."""
    block = bytearray(os.urandom(1 << 20))
    sent_crc = [0]
    errors: list[BaseException] = []

    with connect(front, timeout=120) as c:

        def send() -> None:
            try:
                left = total
                i = 0
                while left:
                    block[:8] = i.to_bytes(8, "little")  # no two blocks alike
                    chunk = memoryview(block)[: min(left, len(block))]
                    sent_crc[0] = zlib.crc32(chunk, sent_crc[0])
                    c.sendall(chunk)
                    left -= len(chunk)
                    i += 1
                c.shutdown(socket.SHUT_WR)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        sender = threading.Thread(target=send)
        sender.start()
        got = 0
        crc = 0
        buf = bytearray(1 << 20)
        while True:
            n = c.recv_into(buf)
            if n == 0:
                break
            crc = zlib.crc32(memoryview(buf)[:n], crc)
            got += n
        sender.join(120)
    assert not errors, errors
    assert got == total
    assert crc == sent_crc[0]


@pytest.mark.slow
def test_one_gibibyte_each_way_spliced(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("echo", [echo.address])], {front: "echo"}))
        total = 1 << 30
        pipes = _core.live_counts()["pipes"]
        _bulk_each_way(front, total)
        assert _core.live_counts()["pipes"] > pipes  # the bulk went through pipes, now pooled
        assert wait_until(lambda: dp.active_connections() == 0)
        svc = dp.stats()["services"]["echo"]
        assert svc["bytes_out"] == total and svc["bytes_in"] == total


def test_bulk_copy_only_when_no_pipe_may_be_had(dataplane, ports):
    with Echo() as echo:
        dp = dataplane(pipe_max=0)
        front = ports()
        dp.publish(table([service("echo", [echo.address])], {front: "echo"}))
        pipes = _core.live_counts()["pipes"]
        _bulk_each_way(front, 64 << 20)
        assert _core.live_counts()["pipes"] == pipes


def test_splice_from_the_first_byte(dataplane, ports):
    with Echo() as echo:
        dp = dataplane(splice_threshold=0, pipe_max=4, pipe_size=65536)
        front = ports()
        dp.publish(table([service("echo", [echo.address])], {front: "echo"}))
        with connect(front) as c:
            for size in (1, 10, 100000):
                payload = os.urandom(size)
                c.sendall(payload)
                assert recv_exactly(c, size) == payload
        _bulk_each_way(front, 32 << 20)
        assert 0 < _core.live_counts()["pipes"] <= 4  # pooled, never past pipe_max


def test_two_thousand_concurrent_connections(dataplane, ports):
    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("echo", [echo.address])], {front: "echo"}))
        clients = []
        try:
            for i in range(2000):
                c = connect(front)
                clients.append(c)
                msg = b"%d\n" % i
                c.sendall(msg)
                assert recv_exactly(c, len(msg)) == msg
            assert wait_until(lambda: dp.active_connections() == 2000)
            assert echo.active == 2000
            for c in clients:  # every one of them still carries bytes
                c.sendall(b"x")
            for c in clients:
                assert recv_exactly(c, 1) == b"x"
        finally:
            for c in clients:
                c.close()
        assert wait_until(lambda: dp.active_connections() == 0)
        st = dp.stats()
        assert st["total"] == 2000
        assert st["services"]["echo"]["bytes_out"] == st["services"]["echo"]["bytes_in"]


def test_clients_that_leave_at_once_are_cleaned_up(dataplane, ports):
    import struct

    with Echo() as echo:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [echo.address])], {front: "s"}))
        for i in range(300):
            c = connect(front)
            if i % 3 == 0:
                c.sendall(b"hello")
            if i % 2 == 0:  # leave with a reset rather than a FIN
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        assert wait_until(lambda: dp.stats()["total"] == 300)
        assert wait_until(lambda: dp.active_connections() == 0)
        assert wait_until(lambda: echo.active == 0)
        with connect(front) as c:  # and the proxy still serves
            c.sendall(b"ok")
            assert recv_exactly(c, 2) == b"ok"


def test_bytes_and_fin_sent_while_the_connect_is_in_flight_are_forwarded(dataplane, ports):
    """The backend's accept queue is full, so the proxy's SYN is dropped and retried (about 1 s
    later): the client's bytes and FIN arrive long before the connect completes. One filler fills a
    listen(0) queue (Linux: full once it holds more than the backlog); a second one would race the
    proxy's SYN retries for the freed slot, and could push its connect past the timeout."""
    from fastlb import spec

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    backend = f"127.0.0.1:{srv.getsockname()[1]}"
    fillers = []
    try:
        for _ in range(1):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", srv.getsockname()[1]))
            fillers.append(f)
        dp = dataplane()
        front = ports()
        slow = spec.Timeouts(connect_ms=30000)
        dp.publish(table([service("s", [backend], timeouts=slow)], {front: "s"}))
        payload = os.urandom(5000)
        with connect(front) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            wait_until(lambda: dp.active_connections() == 1)
            srv.settimeout(20)
            while True:  # drain the queue: the fillers first, then the proxy's retried SYN
                peer, addr = srv.accept()
                if addr[1] not in [f.getsockname()[1] for f in fillers]:
                    break
                peer.close()
            with peer:
                peer.settimeout(20)
                assert recv_all(peer) == payload
                peer.sendall(b"done")
            assert recv_all(c) == b"done"
    finally:
        for f in fillers:
            f.close()
        srv.close()


@pytest.mark.parametrize("opts", [{"buffer_size": 1024}, {"buffer_size": 1024, "splice_threshold": 0}])
def test_bytes_followed_at_once_by_a_fin_are_forwarded_whole_both_ways(dataplane, ports, opts):
    """Each side sends its bytes and its FIN back to back (the proxy may see both in one wakeup),
    around the copy buffer's size: the other side gets every byte, then a clean end of stream (a
    reset would raise), whichever side ends first."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(20)
    backend = f"127.0.0.1:{srv.getsockname()[1]}"
    try:
        dp = dataplane(**opts)
        front = ports()
        dp.publish(table([service("s", [backend])], {front: "s"}))
        for size in (1, 1023, 1024, 1025, 5000):
            for server_ends_first in (True, False):
                first, second = os.urandom(size), os.urandom(size)
                with connect(front) as c:
                    c.sendall(b"?")
                    peer, _ = srv.accept()
                    with peer:
                        peer.settimeout(20)
                        assert recv_exactly(peer, 1) == b"?"  # both sides are polled now
                        a, b = (peer, c) if server_ends_first else (c, peer)
                        a.sendall(first)
                        a.shutdown(socket.SHUT_WR)
                        assert recv_all(b) == first
                        b.sendall(second)
                        b.shutdown(socket.SHUT_WR)
                        assert recv_all(a) == second
                        assert a.recv(1) == b"" and b.recv(1) == b""
        assert wait_until(lambda: dp.active_connections() == 0)
    finally:
        srv.close()


@pytest.mark.parametrize("server_ends_first", [True, False])
def test_a_half_closed_connection_left_idle_costs_no_cpu(dataplane, ports, server_ends_first):
    """One side has passed its FIN on and the other sends nothing more: the proxy's socket on the
    first side stays readable (its EOF) and must not keep the worker awake; later bytes the other
    way still go through."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(20)
    try:
        dp = dataplane()
        front = ports()
        dp.publish(table([service("s", [f"127.0.0.1:{srv.getsockname()[1]}"])], {front: "s"}))
        with connect(front) as c:
            c.sendall(b"?")
            peer, _ = srv.accept()
            with peer:
                peer.settimeout(20)
                assert recv_exactly(peer, 1) == b"?"
                a, b = (peer, c) if server_ends_first else (c, peer)
                a.shutdown(socket.SHUT_WR)
                assert b.recv(1) == b""
                time.sleep(0.1)
                cpu, wall = time.process_time(), time.monotonic()
                time.sleep(0.5)
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
                assert cpu < 0.25 * wall  # a spinning worker would take all of it
                b.sendall(b"late")
                b.shutdown(socket.SHUT_WR)
                assert recv_all(a) == b"late"
        assert wait_until(lambda: dp.active_connections() == 0)
    finally:
        srv.close()


def _segments_in(sock: socket.socket) -> int:
    """Segments the socket has received (struct tcp_info's tcpi_segs_in, Linux 4.2+)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int.from_bytes(info[140:144], "little")


def test_bytes_that_came_with_the_fin_leave_with_the_fin(dataplane, ports):
    """A backend's last bytes and its FIN, arriving together, go to the client in one segment (as
    HAProxy sends them), not as the bytes and then a FIN of their own: one packet less per short
    connection for both ends to handle."""

    def answer_and_close(conn: socket.socket) -> None:
        conn.send(b"HTTP/1.0 200 OK\r\n\r\nbye", socket.MSG_MORE)
        conn.shutdown(socket.SHUT_WR)  # flushes the bytes with the FIN: one segment

    with socket.create_server(("127.0.0.1", 0)) as lsock:
        backend = "127.0.0.1:%d" % lsock.getsockname()[1]
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(table([service("s", [backend])], {front: "s"}))
        together = 0
        for _ in range(20):
            with connect(front) as c:
                conn, _ = lsock.accept()
                with conn:
                    answer_and_close(conn)
                    assert recv_all(c) == b"HTTP/1.0 200 OK\r\n\r\nbye"
                    # in: the SYN-ACK, then the bytes with the FIN, or the bytes and a FIN apart
                    together += _segments_in(c) == 2
        assert together >= 15, f"bytes and FIN in one segment on {together} of 20 connections"
