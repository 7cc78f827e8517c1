"""Per-port HTTP services: requests forwarded, keep-alive both sides, framing."""

from __future__ import annotations

from fastlb.emulator.http_backends import HttpBackend

from .conftest import get, http_service, port_table, request


def test_one_request(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        r = request(front, get("/hello"))
        assert r.status == 200
        doc = r.json()
        assert doc["backend"] == "a" and doc["path"] == "/hello"
