"""The admin API and the controller in front of the real data plane (in process): what /stats,
/stats.csv and /metrics say follows real connections, and state set by hand reaches the workers
and outlives the next table."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from fastlb import admin, spec
from fastlb._core import DataPlane
from fastlb.controller import Controller
from fastlb.emulator.backends import Echo, refused_address, reserve_port
from fastlb.emulator.http_backends import HttpBackend

from controller.test_controller import ListProvider
from support import promtext

TIMEOUT = 20.0


def make_table(listen: str, *addresses: str) -> spec.RouteTable:
    return spec.RouteTable(
        services=(spec.Service(name="echo", backends=tuple(spec.Backend(id=a, address=a) for a in addresses)),),
        listeners=(spec.Listener(address=listen, service="echo"),),
    )


async def until(predicate, what: str) -> None:
    """Waits for <predicate> (a function, plain or async) to hold."""
    for _ in range(int(TIMEOUT / 0.02)):
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_admin_follows_the_real_data_plane() -> None:
    with Echo() as a, Echo() as b, reserve_port() as listen:
        asyncio.run(_scenario(listen, a.address, b.address))


async def _scenario(listen: str, a: str, b: str) -> None:
    host, port = listen.rsplit(":", 1)
    provider = ListProvider(make_table(listen, a))
    c = Controller(DataPlane(2), {"static": provider}, drain_timeout=TIMEOUT)
    c.start()
    client = TestClient(TestServer(admin.make_app(c)))
    await client.start_server()
    try:
        async def stats() -> dict[str, Any]:
            return await (await client.get("/stats")).json()

        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == b"ping"

        async def one_open() -> bool:
            s = await stats()
            return s["services"][0]["backends"][0]["active"] == 1

        await until(one_open, "one open connection in /stats")
        s = await stats()
        backend = s["services"][0]["backends"][0]
        assert (backend["id"], backend["status"], backend["total"]) == (a, "UP", 1)
        assert s["generation"] == c.dataplane.generation == 1

        text = await (await client.get("/stats.csv")).text()
        rows = list(csv.reader(io.StringIO(text)))
        header = [rows[0][0][2:]] + rows[0][1:]
        server = dict(zip(header, [r for r in rows if r[:2] == ["echo", a]][0]))
        assert (server["status"], server["scur"], server["qcur"]) == ("UP", "1", "0")

        families = promtext.parse(await (await client.get("/metrics")).text())
        assert ("fastlb_backend_connections_active", {"service": "echo", "backend": a, "address": a}, 1.0) in (
            families["fastlb_backend_connections_active"]
        )

        # A second backend arrives; then b is put in maint by hand: new connections all go to a.
        provider.on_change(make_table(listen, a, b))
        await until(lambda: c.dataplane.generation == 2, "the second table")
        r = await client.post(f"/backends/{b}/state", json={"state": "maint"})
        assert r.status == 200 and c.dataplane.stats()["backends"][b]["state"] == "maint"
        r = await client.post(f"/backends/{a}/weight?weight=4")
        assert r.status == 200 and c.dataplane.stats()["backends"][a]["weight"] == 4
        for i in range(4):
            rd, wr = await asyncio.open_connection(host, int(port))
            wr.write(b"x%d" % i)
            assert await asyncio.wait_for(rd.readexactly(2), TIMEOUT) == b"x%d" % i
            wr.close()
            await wr.wait_closed()
        live = c.dataplane.stats()["backends"]
        assert live[b]["total"] == 0 and live[a]["total"] == 5

        # A third table (the provider does not know about maint) keeps what was set by hand.
        provider.on_change(make_table(listen, b, a))
        await until(lambda: c.dataplane.generation == 3, "the third table")
        live = c.dataplane.stats()["backends"]
        assert (live[b]["state"], live[a]["weight"]) == ("maint", 4)
        text = await (await client.get("/stats.csv")).text()
        assert f"echo,{b},0,0,0," in text and ",MAINT," in text

        routes = json.loads(await (await client.get("/routes")).text())
        assert routes["generation"] == 3 and [x["id"] for x in routes["table"]["services"][0]["backends"]] == [b, a]

        # The old connection was never touched by three swaps.
        writer.write(b"pong")
        assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == b"pong"
        writer.close()
        await writer.wait_closed()
    finally:
        await client.close()
        await c.drain()


def test_a_listener_that_cannot_bind_is_left_out_and_retried_on_resync() -> None:
    with Echo() as a, reserve_port() as listen, reserve_port() as spare:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)  # held by someone else, without SO_REUSEPORT: the data plane cannot bind it
        busy = "127.0.0.1:%d" % taken.getsockname()[1]
        try:
            asyncio.run(_left_out(listen, spare, busy, a.address, taken))
        finally:
            taken.close()


async def _left_out(listen: str, spare: str, busy: str, a: str, taken: socket.socket) -> None:
    provider = ListProvider(make_table(listen, a))
    c = Controller(DataPlane(1), {"static": provider}, drain_timeout=TIMEOUT)
    c.start()
    await provider.running.wait()
    try:
        two = spec.RouteTable(
            services=(
                spec.Service(name="echo", backends=(spec.Backend(id=a, address=a),)),
                spec.Service(name="other", backends=(spec.Backend(id="o", address=a),)),
                spec.Service(name="third", backends=(spec.Backend(id="t", address=a),)),
            ),
            listeners=(
                spec.Listener(address=listen, service="echo"),
                spec.Listener(address=busy, service="other"),
                spec.Listener(address=spare, service="third"),
            ),
        )
        provider.on_change(two)
        await until(lambda: c.dataplane.generation == 2, "the table without the busy listener")
        assert [x.address for x in c.serving.listeners] == [listen, spare]
        assert c.listen_errors == [f"listener {busy} (service 'other') skipped: Address already in use"]
        host, port = spare.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.readexactly(2), TIMEOUT) == b"hi"
        writer.close()
        await writer.wait_closed()
        # Nothing changed: a resync does not swap. Once the address is free, a resync binds it.
        await c.resync()
        assert c.dataplane.generation == 2
        taken.close()
        await c.resync()
        assert c.dataplane.generation == 3 and c.listen_errors == []
        assert busy in {x.address for x in c.serving.listeners}
    finally:
        await c.drain()


def test_active_health_checks_reach_the_data_plane_and_the_stats() -> None:
    with Echo() as a, refused_address() as dead, reserve_port() as listen:
        asyncio.run(_checked(listen, a.address, dead))


async def _checked(listen: str, a: str, dead: str) -> None:
    check = spec.HealthCheck(kind="tcp", interval_ms=50, timeout_ms=1000, rise=1, fall=1)
    table = spec.RouteTable(
        services=(
            spec.Service(
                name="echo",
                backends=(spec.Backend(id=a, address=a, check=check), spec.Backend(id=dead, address=dead, check=check)),
            ),
        ),
        listeners=(spec.Listener(address=listen, service="echo"),),
    )
    c = Controller(DataPlane(1), {"static": ListProvider(table)}, drain_timeout=TIMEOUT)
    c.start()
    client = TestClient(TestServer(admin.make_app(c)))
    await client.start_server()
    try:
        await until(lambda: c.dataplane.stats()["backends"][dead]["health"] == "down", "the dead backend down")
        s = await (await client.get("/stats")).json()
        by = {b["id"]: b for b in s["services"][0]["backends"]}
        assert (by[dead]["status"], by[dead]["check"]["up"]) == ("DOWN", False)
        assert (by[a]["status"], by[a]["check"]["kind"]) == ("UP", "tcp")
        text = await (await client.get("/stats.csv")).text()
        rows = list(csv.reader(io.StringIO(text)))
        header = [rows[0][0][2:]] + rows[0][1:]
        dead_row = dict(zip(header, [r for r in rows if r[:2] == ["echo", dead]][0]))
        assert (dead_row["status"], dead_row["check_status"]) == ("DOWN", "L4CON")
        # Every new connection goes to the live backend.
        host, port = listen.rsplit(":", 1)
        for i in range(4):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"%d" % i)
            assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"%d" % i
            writer.close()
            await writer.wait_closed()
    finally:
        await client.close()
        await c.drain()


def _get(address: str, path: str) -> int:
    """One request on its own connection; returns the response's status."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def _class(status: int) -> str:
    return f"{status // 100}xx" if 1 <= status // 100 <= 5 else "other"


def test_http_status_counters_follow_real_requests() -> None:
    """hrsp_* and req_tot of each server row count the responses to the requests that server took;
    the BACKEND row counts the service's, fastlb's own answers included; /metrics says the same."""
    with HttpBackend("a") as a, HttpBackend("b") as b, reserve_port() as listen:
        asyncio.run(_status_counters(listen, a, b))


async def _status_counters(listen: str, a: HttpBackend, b: HttpBackend) -> None:
    table = spec.RouteTable(
        services=(
            spec.Service(
                name="web", mode="http",
                backends=(spec.Backend(id=a.address, address=a.address), spec.Backend(id=b.address, address=b.address)),
            ),
        ),
        listeners=(spec.Listener(address=listen, service="web"),),
    )
    c = Controller(DataPlane(2), {"static": ListProvider(table)}, drain_timeout=TIMEOUT)
    c.start()
    client = TestClient(TestServer(admin.make_app(c)))
    await client.start_server()
    try:
        await until(lambda: c.serving is not None, "the table")
        paths = ["/status/204"] * 6 + ["/status/404"] * 4 + ["/status/503"] * 2 + ["/status/301", "/status/200"]
        for path in paths:
            assert await asyncio.to_thread(_get, listen, path) == int(path.rsplit("/", 1)[1])
        # Both backends in maintenance: fastlb answers 503 itself; the BACKEND row counts it, no server does.
        for backend in (a, b):
            c.set_state(backend.address, "maint")
        assert await asyncio.to_thread(_get, listen, "/status/200") == 503

        expected: dict[str, dict[str, int]] = {}
        for backend in (a, b):
            counts = dict.fromkeys(("1xx", "2xx", "3xx", "4xx", "5xx", "other"), 0)
            for _, path in backend.requests:
                status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
                counts[_class(status)] += 1
            expected[backend.address] = counts
        assert sum(len(x.requests) for x in (a, b)) == len(paths)

        text = await (await client.get("/stats.csv")).text()
        rows = list(csv.reader(io.StringIO(text)))
        header = [rows[0][0][2:]] + rows[0][1:]
        by = {tuple(r[:2]): dict(zip(header, r)) for r in rows[1:]}
        total = dict.fromkeys(("1xx", "2xx", "3xx", "4xx", "5xx", "other"), 0)
        for backend in (a, b):
            row = by[("web", backend.address)]
            got = {k: int(row[f"hrsp_{k}"]) for k in total}
            assert got == expected[backend.address], backend.address
            assert int(row["req_tot"]) == len(backend.requests)
            for k in total:
                total[k] += got[k]
        total["5xx"] += 1  # fastlb's own 503
        backend_row = by[("web", "BACKEND")]
        assert {k: int(backend_row[f"hrsp_{k}"]) for k in total} == total
        assert int(backend_row["req_tot"]) == len(paths) + 1
        assert total["2xx"] == 7 and total["4xx"] == 4 and total["3xx"] == 1

        families = promtext.parse(await (await client.get("/metrics")).text())
        by_code = {lab["code"]: v for _, lab, v in families["fastlb_service_http_responses_total"]}
        assert by_code == {k: float(v) for k, v in total.items()}

        # req_rate: requests per second over the last second, while a client keeps sending.
        for backend in (a, b):
            c.set_state(backend.address, "ready")
        await client.get("/stats.csv")
        sent = 0
        started = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < 1.5:
            await asyncio.to_thread(_get, listen, "/status/200")
            sent += 1
        text = await (await client.get("/stats.csv")).text()
        rows = list(csv.reader(io.StringIO(text)))
        backend_row = dict(zip(header, next(r for r in rows if r[:2] == ["web", "BACKEND"])))
        rate, rate_max = int(backend_row["req_rate"]), int(backend_row["req_rate_max"])
        assert 0 < rate <= sent and rate <= rate_max, (rate, rate_max, sent)
        servers = [dict(zip(header, r)) for r in rows if r[0] == "web" and r[1] not in ("BACKEND", "FRONTEND")]
        assert sum(int(r["req_rate"]) for r in servers) > 0
    finally:
        await client.close()
        await c.drain()
