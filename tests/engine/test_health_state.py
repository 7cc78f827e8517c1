"""Health in the data plane: a new backend whose check must pass first starts down, and passive
health (consecutive connect failures reaching the check's fall) takes a backend down at once, until
an active check that passes brings it back."""

from __future__ import annotations

import asyncio
import socket

from fastlb import spec
from fastlb.emulator.backends import WhoAmI, refused_address, wait_until
from fastlb.health import HealthChecker

from .conftest import TIMEOUT, connect, recv_line, service, table
from .test_backends import _closed_by_proxy

MUST_PASS = spec.HealthCheck(kind="tcp", interval_ms=60000, require_pass=True)


def test_a_new_backend_whose_check_must_pass_starts_down(dataplane, ports):
    with WhoAmI("checked") as checked, WhoAmI("plain") as plain:
        dp = dataplane(workers=1)
        front = ports()
        held = spec.Backend(id="held", address=checked.address, check=MUST_PASS)
        dp.publish(table([service("s", [held])], {front: "s"}))
        assert dp.stats()["backends"]["held"]["health"] == "down"
        assert dp.backend_health("held") is False
        with connect(front) as c:
            assert _closed_by_proxy(c)
        assert checked.accepted == 0  # not one connection before its first pass
        # Its first pass; a later publish of the same backend keeps its health.
        assert dp.set_backend_health("held", True)
        dp.publish(
            table([service("s", [held, spec.Backend(id="plain", address=plain.address)])], {front: "s"})
        )
        assert dp.backend_health("held") is True and dp.backend_health("plain") is True
        with connect(front) as c:
            assert recv_line(c) in (b"checked\n", b"plain\n")
        # Gone from the table and back: a new record, down again until it passes.
        dp.publish(table([service("s", [spec.Backend(id="plain", address=plain.address)])], {front: "s"}))
        assert wait_until(lambda: dp.backend_health("held") is None)  # once no connection holds it
        dp.publish(table([service("s", [held])], {front: "s"}))
        assert dp.backend_health("held") is False


def test_consecutive_refused_connects_reaching_fall_take_a_checked_backend_down(dataplane, ports):
    check = spec.HealthCheck(kind="tcp", interval_ms=60000, fall=3)
    with refused_address() as dead, WhoAmI("alive") as alive:
        dp = dataplane(workers=2)
        front = ports()
        backends = [
            spec.Backend(id="dead", address=dead, check=check),
            spec.Backend(id="alive", address=alive.address),
        ]
        dp.publish(table([service("s", backends, retries=3)], {front: "s"}))
        for _ in range(20):
            with connect(front) as c:
                assert recv_line(c) == b"alive\n"
        st = dp.stats()["backends"]
        assert st["dead"]["health"] == "down"
        assert st["dead"]["connect_errors"] == 3  # after the third, no client tried it any more
        assert st["alive"]["health"] == "up" and st["alive"]["total"] == 20


def test_a_backend_without_an_active_check_is_never_taken_down_passively(dataplane, ports):
    with refused_address() as dead, WhoAmI("alive") as alive:
        dp = dataplane(workers=1)
        front = ports()
        dp.publish(table([service("s", [dead, alive.address], retries=3)], {front: "s"}))
        for _ in range(12):
            with connect(front) as c:
                assert recv_line(c) == b"alive\n"
        st = dp.stats()["backends"][dead]
        assert st["health"] == "up" and st["connect_errors"] >= 5


def test_a_successful_connect_resets_the_failure_count(dataplane, ports):
    check = spec.HealthCheck(kind="tcp", interval_ms=60000, fall=2)
    with WhoAmI("alive") as alive:
        # The port refuses until it listens: bound now, listening later.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        flaky = f"127.0.0.1:{sock.getsockname()[1]}"
        try:
            dp = dataplane(workers=1)
            front = ports()
            backends = [
                spec.Backend(id="flaky", address=flaky, check=check),
                spec.Backend(id="alive", address=alive.address),
            ]
            dp.publish(table([service("s", backends, retries=3, balance="leastconn")], {front: "s"}))
            _until_errors(dp, front, "flaky", 1)
            sock.listen(64)
            _until_total(dp, front, "flaky", 1)  # a connect that succeeds: the count starts again
            sock.close()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", int(flaky.rsplit(":", 1)[1])))
            _until_errors(dp, front, "flaky", 2)
            assert dp.backend_health("flaky") is True  # 1 failure, 1 success, 1 failure: not 2 in a row
            _until_errors(dp, front, "flaky", 3)
            assert dp.backend_health("flaky") is False
        finally:
            sock.close()


def _until_errors(dp, front: str, bid: str, n: int) -> None:
    """Opens clients until backend <bid> has counted <n> connect errors."""
    for _ in range(200):
        if dp.stats()["backends"][bid]["connect_errors"] >= n:
            break
        with connect(front) as c:
            c.recv(64)
    assert dp.stats()["backends"][bid]["connect_errors"] == n


def _until_total(dp, front: str, bid: str, n: int) -> None:
    for _ in range(200):
        if dp.stats()["backends"][bid]["total"] >= n:
            break
        with connect(front) as c:
            c.settimeout(0.2)
            try:
                c.recv(64)
            except TimeoutError:
                pass  # the flaky backend accepts in the kernel and never answers
    assert dp.stats()["backends"][bid]["total"] >= n


def test_an_active_check_that_passes_brings_a_passively_downed_backend_back(dataplane, ports):
    check = spec.HealthCheck(kind="tcp", interval_ms=200, timeout_ms=1000, fall=3, rise=2)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        with WhoAmI("alive") as alive:
            dp = dataplane(workers=1)
            front = ports()
            backends = [
                spec.Backend(id="back", address=f"127.0.0.1:{port}", check=check),
                spec.Backend(id="alive", address=alive.address),
            ]
            t = table([service("s", backends, retries=3)], {front: "s"})
            dp.publish(t)
            _until_errors(dp, front, "back", 3)
            assert dp.backend_health("back") is False
            for _ in range(5):  # new clients go elsewhere without trying it
                with connect(front) as c:
                    assert recv_line(c) == b"alive\n"
            assert dp.stats()["backends"]["back"]["connect_errors"] == 3
            sock.listen(64)  # the listener comes back

            async def checks() -> None:
                checker = HealthChecker(dp.set_backend_health, get_health=dp.backend_health)
                checker.update(t)
                try:
                    for _ in range(int(TIMEOUT / 0.05)):
                        if dp.backend_health("back"):
                            return
                        await asyncio.sleep(0.05)
                finally:
                    await checker.close()

            asyncio.run(checks())
            assert dp.backend_health("back") is True
            assert wait_until(lambda: dp.stats()["backends"]["back"]["health"] == "up")
    finally:
        sock.close()
