"""Active health checks: TCP connect, or HTTP GET with an expected status range.

Each backend that carries a ``spec.HealthCheck`` is probed every ``interval_ms``; ``rise`` consecutive
passes bring it up and ``fall`` consecutive failures take it down. A change reaches the data plane as
one ``set_health(backend_id, up)`` call: no table is rebuilt. Probes are spread: a backend's first
probe waits a stable fraction of its interval derived from its identity, so 10,000 backends published
together never fire at once, and a semaphore caps the probes in flight.

The checker is keyed by backend identity, like the data plane's state: a backend that stays in the next
table keeps its probe and its counts; one that leaves has its probe cancelled.
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from fastlb.spec import HealthCheck, RouteTable

# Probes in flight at most, all backends together.
DEFAULT_CONCURRENCY = 256
# Bytes of an HTTP answer read to find its status line.
_STATUS_LINE_MAX = 1024


def spread_delay(backend_id: str, interval_s: float) -> float:
    """The delay before a backend's first probe: a stable fraction of its interval."""
    return (zlib.crc32(backend_id.encode()) % 10007) / 10007 * interval_s


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class ProbeResult(NamedTuple):
    """One probe's outcome, in HAProxy's vocabulary (what its stats CSV shows of a check)."""

    passed: bool
    status: str  # L4OK L4TOUT L4CON (tcp, and the connect of http) | L7OK L7STS L7TOUT L7RSP (http)
    code: int | None  # the HTTP status, when one came back
    detail: str  # short text: "status 204", "Connection refused", "timeout"; no quote, comma or line break
    duration_ms: int


def _error_text(exc: BaseException) -> str:
    """A short, quote-free description of <exc>: strerror for OS errors, else the exception's type."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return type(exc).__name__


async def probe(check: HealthCheck, host: str, port: int) -> ProbeResult:
    """One probe of <host>:<port>: TCP connect, or an HTTP GET and its status line."""
    timeout = check.timeout_ms / 1000
    started = time.monotonic()
    writer = None

    def result(passed: bool, status: str, detail: str, code: int | None = None) -> ProbeResult:
        return ProbeResult(passed, status, code, detail, int((time.monotonic() - started) * 1000))

    try:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (TimeoutError, OSError, ValueError) as exc:
            return result(False, "L4TOUT" if isinstance(exc, TimeoutError) else "L4CON", _error_text(exc))
        if check.kind == "tcp":
            return result(True, "L4OK", "connected")
        hostname = f"[{host}]" if ":" in host else host
        request = (
            f"GET {check.path} HTTP/1.1\r\nHost: {hostname}:{port}\r\n"
            "User-Agent: fastlb-health\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(request.encode("latin-1"))
            line = await asyncio.wait_for(reader.readline(), timeout)
        except (TimeoutError, OSError, ValueError) as exc:
            return result(False, "L7TOUT" if isinstance(exc, TimeoutError) else "L7RSP", _error_text(exc))
        parts = line[:_STATUS_LINE_MAX].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            return result(False, "L7RSP", "bad status line")
        status = int(parts[1])
        low, high = check.expect_status
        passed = low <= status <= high
        return result(passed, "L7OK" if passed else "L7STS", f"status {status}", status)
    finally:
        if writer is not None:
            writer.close()


@dataclass
class _Target:
    backend_id: str
    address: str
    check: HealthCheck
    up: bool
    ever_passed: bool = False
    passes: int = 0
    failures: int = 0
    last_detail: str = ""
    last_status: str = "INI"  # HAProxy's word for the last result; INI before the first probe
    last_code: int | None = None
    last_duration_ms: int = 0
    last_check: float = 0.0
    changes: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class HealthChecker:
    """Runs the active checks of the backends of the table now serving.

    ``set_health(backend_id, up)`` is called on every transition (and never otherwise).
    ``get_health(backend_id)``, when given, reads the data plane's health: passive checks there can
    take a backend down on their own, and one passing probe brings such a backend back.
    """

    def __init__(
        self,
        set_health: Callable[[str, bool], None],
        *,
        get_health: Callable[[str], bool | None] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._set_health = set_health
        self._get_health = get_health
        self._targets: dict[str, _Target] = {}
        self._slots = asyncio.Semaphore(concurrency)

    def update(self, table: RouteTable) -> None:
        """Follows a new table: starts probes for new checked backends, stops those that left."""
        wanted: dict[str, tuple[str, HealthCheck]] = {}
        for service in table.services:
            for backend in service.backends:
                if backend.check is not None and backend.id not in wanted:
                    wanted[backend.id] = (backend.address, backend.check)
        for backend_id in list(self._targets):
            target = self._targets[backend_id]
            if wanted.get(backend_id) != (target.address, target.check):
                self._stop(backend_id)
        for backend_id, (address, check) in wanted.items():
            if backend_id not in self._targets:
                target = _Target(backend_id, address, check, up=not check.require_pass)
                target.task = asyncio.get_running_loop().create_task(self._run(target))
                self._targets[backend_id] = target

    def status(self) -> dict[str, dict[str, object]]:
        return {
            t.backend_id: {
                "up": t.up,
                "kind": t.check.kind,
                "passes": t.passes,
                "failures": t.failures,
                "last": t.last_detail,
                "status": t.last_status,
                "code": t.last_code,
                "duration_ms": t.last_duration_ms,
                "last_check": t.last_check,
                "changes": t.changes,
                "rise": t.check.rise,
                "fall": t.check.fall,
            }
            for t in self._targets.values()
        }

    async def close(self) -> None:
        tasks = [t.task for t in self._targets.values() if t.task is not None]
        for backend_id in list(self._targets):
            self._stop(backend_id)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop(self, backend_id: str) -> None:
        target = self._targets.pop(backend_id)
        if target.task is not None:
            target.task.cancel()

    async def _run(self, target: _Target) -> None:
        interval = target.check.interval_ms / 1000
        host, port = split_address(target.address)
        if target.check.port:
            port = target.check.port
        await asyncio.sleep(spread_delay(target.backend_id, interval))
        while True:
            async with self._slots:
                result = await probe(target.check, host, port)
            self._record(target, result)
            await asyncio.sleep(interval)

    def _record(self, target: _Target, result: ProbeResult) -> None:
        passed = result.passed
        target.last_detail = result.detail
        target.last_status = result.status
        target.last_code = result.code
        target.last_duration_ms = result.duration_ms
        target.last_check = time.time()
        if passed:
            target.passes += 1
            target.failures = 0
            # A backend that never passed (require_pass) comes up on its first pass.
            rise = 1 if not target.ever_passed else target.check.rise
            target.ever_passed = True
            rises = not target.up and target.passes >= rise
            passive_down = target.up and self._get_health is not None and self._get_health(target.backend_id) is False
            if rises or passive_down:
                self._transition(target, True)
        else:
            target.failures += 1
            target.passes = 0
            if target.up and target.failures >= target.check.fall:
                self._transition(target, False)

    def _transition(self, target: _Target, up: bool) -> None:
        target.up = up
        target.changes += 1
        # The control plane logs the transition (one line per backend going up or down).
        self._set_health(target.backend_id, up)
