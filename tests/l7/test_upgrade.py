"""Upgrade (WebSocket): after the backend's 101 the connection is a plain tunnel, bytes both ways."""

from __future__ import annotations

import os
import socket

from fastlb.emulator.backends import wait_until
from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, port_table

UPGRADE = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


def test_websocket_upgrade_then_bytes_both_ways(dataplane, ports):
    with HttpBackend("ws") as b:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [b.address]), front))
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(UPGRADE)
            r = rd.response()
            assert r.status == 101 and r.header("Upgrade") == "websocket"
            while b"\n" not in rd.buf:
                rd._more()
            assert bytes(rd.buf) == b"hello from ws\n"
            rd.buf.clear()
            # not HTTP any more: raw bytes, big enough to take the splice path
            payload = os.urandom(2 << 20)
            c.sendall(payload[:100])
            rd._need(100)
            c.sendall(payload[100:])
            rd._need(len(payload))
            assert bytes(rd.buf) == payload
            c.shutdown(socket.SHUT_WR)
            assert c.recv(10) == b""  # the backend's FIN came back through
        assert wait_until(lambda: dp.active_connections() == 0)
        assert dp.stats()["services"]["web"]["http"]["1xx"] == 1


def test_upgrade_refused_by_the_backend_stays_http(dataplane, ports):
    with HttpBackend("plain") as b:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [b.address]), front))
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(UPGRADE.replace(b"/ws", b"/nows"))
            assert rd.response().status == 200
            c.sendall(get("/again"))
            assert rd.response().json()["path"] == "/again"
