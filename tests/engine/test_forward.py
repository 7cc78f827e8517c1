"""Forwarding through the proxy: echo, server-first, big transfers, half-close, many connections."""

from __future__ import annotations

import os
import socket
import threading
import zlib

import pytest

from fastlb.testing.backends import Echo, Greeter, Sink, wait_until

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
