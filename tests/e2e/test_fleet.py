"""A fleet behind DNS or ECMP: two ``fastlb run`` following one Marathon emulator build the same table
and send each client address to the same task under maglev and source balancing, before and after a
scale-up (real connections from several addresses in 127.0.0.0/8 through both); and --drain-delay:
on SIGTERM /_health answers 503 while the listeners still accept, for the delay."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition

from .harness import Fastlb, TimedEmulator, running_fastlb, until

pytestmark = pytest.mark.timeout(180)

CLIENTS = [f"127.0.0.{n}" for n in range(10, 34)]


def request_from(source: str, address: tuple[str, int], mode: str) -> str:
    """One connection from <source> to <address>; the name of the task that answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(address)
        s.sendall(b"GET / HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), (mode, data[:200])
    return body.decode().strip()


async def picks(bind: str, port: int, mode: str) -> dict[str, str]:
    """Which task each client address reaches through <bind>:<port> (asked twice: it holds)."""
    out: dict[str, str] = {}
    for client in CLIENTS:
        first = await asyncio.to_thread(request_from, client, (bind, port), mode)
        assert await asyncio.to_thread(request_from, client, (bind, port), mode) == first
        out[client] = first
    return out


def same_table(table: dict[str, Any], bind: str) -> dict[str, Any]:
    """<table> with the listeners' --bind-addr written as 127.0.0.1 (the one flag the two differ by)."""
    for listener in table["listeners"]:
        listener["address"] = listener["address"].replace(bind + ":", "127.0.0.1:")
    return table


async def test_two_instances_agree_on_the_table_and_on_each_clients_task(
    emu: TimedEmulator, servers: IdentServers, tmp_path: Path
) -> None:
    ports = {"maglev": free_port(), "source": free_port()}
    for balance, port in ports.items():
        labels = {"HAPROXY_GROUP": "external", "HAPROXY_0_BALANCE": balance}
        if balance == "source":
            labels["HAPROXY_0_MODE"] = "http"
        emu.add_app(app_definition(f"/fleet/{balance}", [port], labels=labels))

    def start(balance: str, n: int) -> str:
        ident = servers.start(f"{balance}#{n}")
        return emu.add_task(f"/fleet/{balance}", [ident.port], task_id=f"fleet_{balance}.t{n}")

    for balance in ports:
        for n in range(4):
            start(balance, n)
    args = ["--marathon", emu.url, "--group", "external"]
    async with (
        running_fastlb(args, tmp_path / "a.log") as a,
        running_fastlb([*args, "--bind-addr", "127.0.0.2"], tmp_path / "b.log") as b,
    ):
        for want in (4, 7):
            for lb in (a, b):
                await lb.wait_backends(lambda ids, w=want: len(ids) == 2 * w, f"{want} tasks per app")
            ra, rb = await a.routes(), await b.routes()
            assert ra["table"] == same_table(rb["table"], "127.0.0.2")
            for balance, port in ports.items():
                pa = await picks("127.0.0.1", port, balance)
                pb = await picks("127.0.0.2", port, balance)
                print(f"{balance}, {want} tasks: through 127.0.0.1 {sorted(pa.items())}")
                print(f"{balance}, {want} tasks: through 127.0.0.2 {sorted(pb.items())}")
                assert pa == pb, balance
                # the clients are spread (the test would pass with one task otherwise)
                assert len(set(pa.values())) >= 3, (balance, pa)
                assert {v.split("#")[0] for v in pa.values()} == {balance}
            if want == 4:  # scale up: three more tasks each, then the same checks
                for balance in ports:
                    for n in range(4, 7):
                        start(balance, n)


async def health(session: aiohttp.ClientSession, lb: Fastlb) -> int:
    async with session.get(lb.admin + "/_health") as r:
        return r.status


async def health_is(lb: Fastlb, want: int) -> bool:
    assert lb.session is not None
    return await health(lb.session, lb) == want


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


async def test_drain_delay_answers_503_while_the_listeners_still_accept(servers: IdentServers, tmp_path: Path) -> None:
    backend = servers.start("web#1")
    port = free_port()
    f = tmp_path / "lb.toml"
    f.write_text(
        f'[[services]]\nname = "web"\nlisten = "127.0.0.1:{port}"\nmode = "http"\n'
        f'backends = ["127.0.0.1:{backend.port}"]\n'
    )
    delay = 3.0
    lb = await Fastlb(["--config", str(f), "--drain-delay", str(delay)], tmp_path / "lb.log").start()
    try:
        assert lb.proc is not None and lb.session is not None
        assert await asyncio.to_thread(request_from, "127.0.0.1", ("127.0.0.1", port), "http") == "web#1"
        signalled = time.monotonic()
        lb.proc.send_signal(signal.SIGTERM)
        await until(lambda: health_is(lb, 503), "/_health 503")
        # withdrawn, still serving: a request made after the 503 is answered
        assert await asyncio.to_thread(request_from, "127.0.0.2", ("127.0.0.1", port), "http") == "web#1"
        while time.monotonic() - signalled < delay * 0.6:  # and it keeps accepting through the delay
            assert await asyncio.to_thread(accepts, port)
            assert await health(lb.session, lb) == 503
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(lb.proc.wait(), 30) == 0
        assert not accepts(port)
        assert "withdrawing health=503 listeners_close_in_s=3.0" in lb.log()
    finally:
        await lb.stop()
