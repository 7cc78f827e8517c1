"""Active health checks against real loopback servers."""

from __future__ import annotations

import asyncio
import socket

from fastlb.health import HealthChecker, probe, spread_delay
from fastlb.spec import Backend, HealthCheck, RouteTable, Service


def _table(*backends: Backend) -> RouteTable:
    return RouteTable(services=(Service(name="s", backends=backends),))


class _HttpServer:
    """A loopback HTTP server whose status can be changed while it runs."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> _HttpServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_spread_is_stable_and_covers_the_interval() -> None:
    delays = [spread_delay(f"task-{i}", 2.0) for i in range(10_000)]
    assert delays == [spread_delay(f"task-{i}", 2.0) for i in range(10_000)]
    assert all(0 <= d < 2.0 for d in delays)
    # No tenth of the interval holds more than 15% of the first probes (uniform: 10%).
    buckets = [0] * 10
    for d in delays:
        buckets[int(d / 0.2)] += 1
    assert max(buckets) < 1500, buckets


async def test_http_probe_checks_the_status_range_and_path() -> None:
    async with _HttpServer(204) as srv:
        check = HealthCheck(kind="http", path="/ping", expect_status=(200, 299))
        r = await probe(check, "127.0.0.1", srv.port)
        assert (r.passed, r.status, r.code, r.detail) == (True, "L7OK", 204, "status 204")
        assert 0 <= r.duration_ms < 5000
        assert srv.requests[0].startswith(b"GET /ping HTTP/1.1\r\n")
        srv.status = 503
        r = await probe(check, "127.0.0.1", srv.port)
        assert (r.passed, r.status, r.code, r.detail) == (False, "L7STS", 503, "status 503")


async def test_tcp_probe_fails_on_a_closed_port() -> None:
    r = await probe(HealthCheck(kind="tcp", timeout_ms=500), "127.0.0.1", _closed_port())
    # HAProxy's words, and a short text with no quote or comma (the stats CSV shows it as it is)
    assert (r.passed, r.status, r.code, r.detail) == (False, "L4CON", None, "Connection refused")


async def test_probe_results_in_haproxy_words() -> None:
    """A server that accepts and never answers is an L7 timeout; one that answers garbage an invalid
    response; a port that accepts passes a tcp check."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        r = await probe(HealthCheck(kind="http", timeout_ms=200), "127.0.0.1", port)
        assert (r.passed, r.status, r.detail) == (False, "L7TOUT", "timeout")
        assert r.duration_ms >= 150
        r = await probe(HealthCheck(kind="tcp", timeout_ms=500), "127.0.0.1", port)
        assert (r.passed, r.status, r.detail) == (True, "L4OK", "connected")
    finally:
        silent.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"SSH-2.0-OpenSSH_9.6, 'quoted'\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    try:
        gport = server.sockets[0].getsockname()[1]
        r = await probe(HealthCheck(kind="http", timeout_ms=1000), "127.0.0.1", gport)
        assert (r.passed, r.status, r.code, r.detail) == (False, "L7RSP", None, "bad status line")
    finally:
        server.close()
        await server.wait_closed()


async def test_fall_takes_a_backend_down_and_rise_brings_it_back() -> None:
    changes: list[tuple[str, bool]] = []
    checker = HealthChecker(lambda i, up: changes.append((i, up)))
    async with _HttpServer(200) as srv:
        check = HealthCheck(kind="http", interval_ms=20, timeout_ms=500, rise=2, fall=3)
        checker.update(_table(Backend(id="b1", address=f"127.0.0.1:{srv.port}", check=check)))
        await _until(lambda: len(srv.requests) >= 3)
        assert changes == []  # up from the start, and it stays up
        srv.status = 500
        await _until(lambda: changes == [("b1", False)])
        n = len(srv.requests)
        srv.status = 200
        await _until(lambda: changes == [("b1", False), ("b1", True)])
        # rise=2: at least two passing probes after the failures
        assert len(srv.requests) >= n + 2
    await checker.close()


async def test_require_pass_keeps_a_new_backend_down_until_its_first_pass() -> None:
    changes: list[tuple[str, bool]] = []
    checker = HealthChecker(lambda i, up: changes.append((i, up)))
    port = _closed_port()
    check = HealthCheck(kind="tcp", interval_ms=20, timeout_ms=500, rise=3, require_pass=True)
    checker.update(_table(Backend(id="b1", address=f"127.0.0.1:{port}", check=check)))
    await asyncio.sleep(0.2)
    assert changes == [] and checker.status()["b1"]["up"] is False
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        await _until(lambda: changes == [("b1", True)])  # one pass is enough the first time
    finally:
        server.close()
        await server.wait_closed()
        await checker.close()


async def test_a_backend_that_leaves_the_table_stops_being_probed() -> None:
    async with _HttpServer(200) as srv:
        checker = HealthChecker(lambda i, up: None)
        check = HealthCheck(kind="http", interval_ms=20, timeout_ms=500)
        checker.update(_table(Backend(id="b1", address=f"127.0.0.1:{srv.port}", check=check)))
        await _until(lambda: len(srv.requests) >= 2)
        task = checker._targets["b1"].task
        assert task is not None
        checker.update(_table())
        assert checker.status() == {}
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        await asyncio.sleep(0.1)  # a request already on the wire may still land
        n = len(srv.requests)
        await asyncio.sleep(0.2)
        assert len(srv.requests) == n
        await checker.close()


async def test_one_pass_recovers_a_backend_the_data_plane_marked_down() -> None:
    health = {"b1": True}
    changes: list[tuple[str, bool]] = []

    def set_health(backend_id: str, up: bool) -> None:
        changes.append((backend_id, up))
        health[backend_id] = up

    checker = HealthChecker(set_health, get_health=health.get)
    async with _HttpServer(200) as srv:
        check = HealthCheck(kind="http", interval_ms=20, timeout_ms=500, rise=5)
        checker.update(_table(Backend(id="b1", address=f"127.0.0.1:{srv.port}", check=check)))
        await _until(lambda: len(srv.requests) >= 1)
        health["b1"] = False  # passive checks in the data plane took it down
        await _until(lambda: changes == [("b1", True)])
        assert health["b1"] is True
    await checker.close()
