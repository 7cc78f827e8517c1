"""What the end-to-end tests (and bench/marathon) run: ``fastlb run`` as a subprocess following a Marathon
emulator over real HTTP and SSE, real loopback backends (``fastlb.emulator.demo.IdentServers``), and
clients that speak HTTP/1.1 through fastlb's service ports.

The emulator runs on the caller's event loop; a ``ClientLoop`` runs in its own thread with blocking
sockets, so that neither slows the other. Times are ``time.monotonic()``, shared by every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from fastlb.emulator.demo import free_port
from fastlb.emulator.emulator import MarathonEmulator

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


class TimedEmulator(MarathonEmulator):
    """The emulator, recording when each event was emitted (queued on the open streams)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.emitted: list[tuple[str, float, Any]] = []

    def emit(self, event_type: str, data: Any) -> None:
        at = time.monotonic()
        super().emit(event_type, data)
        self.emitted.append((event_type, at, data))

    def emitted_at(self, event_type: str, task_id: str) -> float:
        """When the last ``event_type`` naming task <task_id> was emitted."""
        for kind, at, data in reversed(self.emitted):
            if kind == event_type and isinstance(data, dict) and data.get("taskId") == task_id:
                return at
        raise KeyError((event_type, task_id))


async def until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Polls <predicate> (sync or async) until it returns something true; AssertionError at <timeout>."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


class Fastlb:
    """One ``fastlb run`` process. ``await start()`` returns once its admin API answers."""

    def __init__(
        self, args: Sequence[str], log_path: Path, workers: int = 2, env: dict[str, str] | None = None
    ) -> None:
        self.admin_port = free_port()
        self.env = dict(env or {})
        self.args = [
            "--bind-addr",
            "127.0.0.1",
            "--http-port",
            "0",
            "--https-port",
            "0",
            "--appid-port",
            "0",
            "--workers",
            str(workers),
            "--drain-timeout",
            "3",
            "--max-backoff",
            "1",
            *args,
            "--admin",
            f"127.0.0.1:{self.admin_port}",
        ]
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self._log: Any = None

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def start(self) -> Fastlb:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed by stop())
        env = {
            **os.environ, **self.env, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
        }
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fastlb",
            "run",
            *self.args,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(ROOT),
            env=env,
        )
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        await until(self._healthy, "fastlb's admin API")
        return self

    async def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"fastlb exited with {self.proc.returncode}:\n{self.log()}")
        try:
            async with self.session.get(self.admin + "/_health") as r:  # type: ignore[union-attr]
                return r.status == 200
        except aiohttp.ClientError:
            return False

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")[-6000:]

    async def get(self, path: str) -> Any:
        assert self.session is not None
        async with self.session.get(self.admin + path) as r:
            assert r.status == 200, (path, r.status)
            return await r.json()

    async def routes(self) -> dict[str, Any]:
        return await self.get("/routes")  # type: ignore[no-any-return]

    async def stats(self) -> dict[str, Any]:
        return await self.get("/stats")  # type: ignore[no-any-return]

    async def backend_ids(self) -> set[str]:
        table = (await self.routes())["table"]
        return {b["id"] for s in table.get("services", []) for b in s.get("backends", [])}

    async def wait_backends(
        self, predicate: Callable[[set[str]], bool], what: str, timeout: float = TIMEOUT
    ) -> set[str]:
        async def check() -> set[str] | None:
            ids = await self.backend_ids()
            return ids if predicate(ids) else None

        return await until(check, what, timeout)  # type: ignore[no-any-return]

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit status."""
        if self.session is not None:
            await self.session.close()
            self.session = None
        rc = None
        if self.proc is not None:
            if self.proc.returncode is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = await asyncio.wait_for(self.proc.wait(), 20)
                except TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()
            else:
                rc = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc


@contextlib.asynccontextmanager
async def running_fastlb(
    args: Sequence[str], log_path: Path, workers: int = 2, env: dict[str, str] | None = None
) -> AsyncIterator[Fastlb]:
    lb = Fastlb(args, log_path, workers, env)
    try:
        yield await lb.start()
    finally:
        rc = await lb.stop()
        assert rc in (0, None), f"fastlb exited with {rc}:\n{lb.log()}"


# -- clients -------------------------------------------------------------------------------------


def request(port: int, host: str | None = None, timeout: float = 10.0) -> str:
    """One HTTP/1.1 request (Connection: close) to 127.0.0.1:<port>; returns the body (the name of
    the task that answered). Raises OSError or ValueError on any failure."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (host or "localhost").encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(f"bad answer {data[:200]!r}")
    return body.decode().strip()


async def arequest(port: int, host: str | None = None) -> str:
    return await asyncio.to_thread(request, port, host)


class KeepAlive:
    """One long HTTP/1.1 connection through fastlb; ``ask()`` sends a request on it, returns the body."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buf = b""

    def ask(self) -> str:
        self.sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        while b"\r\n\r\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before an answer ({self._buf[:200]!r})")
            self._buf += chunk
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a body")
            rest += chunk
        body, self._buf = rest[:length], rest[length:]
        return body.decode().strip()

    def close(self) -> None:
        self.sock.close()


class ClientLoop:
    """A thread sending requests through a service port back to back (one connection each, a
    <pause> between them) until stopped; counts answers by task name, and every failure."""

    def __init__(self, port: int, host: str | None = None, pause: float = 0.002) -> None:
        self.port = port
        self.host = host
        self.pause = pause
        self.ok = 0
        self.by_name: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"client-{port}", daemon=True)

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                name = request(self.port, self.host)
            except (OSError, ValueError) as e:
                self.failures.append(f"{time.monotonic():.3f} {e!r}")
            else:
                self.ok += 1
                self.by_name[name] += 1
            if self.pause:
                self._stop.wait(self.pause)

    async def wait_ok(self, count: int, timeout: float = TIMEOUT) -> None:
        """Until <count> more requests have succeeded."""
        target = self.ok + count
        await until(lambda: self.ok >= target, f"{count} more requests through port {self.port}", timeout)
