"""Headless Chromium (Debian's ``chromium`` package) driven over the DevTools protocol, with aiohttp's
websocket client: start it, open one page, evaluate JavaScript in it, record every request it makes,
take a screenshot, stop it. Nothing beyond loopback: the flags below turn off every connection
Chromium would make on its own (updates, sync, safe browsing, QUIC probes)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--window-size=1280,900",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def executable() -> str:
    """Chromium from $FASTLB_CHROMIUM, else Debian's /usr/bin/chromium, else one on PATH."""
    for candidate in (os.environ.get("FASTLB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no Chromium: install Debian's `chromium` package (apt-get install -y chromium)")


class DevToolsError(RuntimeError):
    pass


class Page:
    """One page target. ``events`` keeps every protocol event the page sent, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append((data.get("method", ""), data.get("params", {})))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(DevToolsError("the DevTools connection closed"))

    async def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        """The value of <expression> in the page (awaited when it is a promise), as JSON data."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 30.0) -> Any:
        """Polls <expression> until it is truthy; returns that value, or fails saying <what> never came."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = await self.evaluate(expression)
            if last:
                return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")

    async def navigate(self, url: str, timeout: float = 30.0) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", f"{url} to load", timeout)

    async def screenshot(self, path: Path) -> None:
        """The whole page, however long, as a PNG at <path>."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=max(600, int(size["height"])),
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        await self.send("Emulation.clearDeviceMetricsOverride")

    def requested_urls(self) -> list[str]:
        return [
            params["request"]["url"]
            for method, params in self.events
            if method == "Network.requestWillBeSent"
        ]

    async def close(self) -> None:
        await self._ws.close()
        await self._reader


async def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    # Chromium writes the port it bound (and the browser target's path) once it listens.
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevToolsError(f"chromium exited with {proc.returncode} before listening")
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(active.read_text().splitlines()[0])
        await asyncio.sleep(0.1)
    raise DevToolsError(f"chromium did not write {active} within {timeout:.0f}s")


@contextlib.asynccontextmanager
async def page(profile: Path, log: Path, timeout: float = 60.0) -> AsyncIterator[Page]:
    """A fresh Chromium with its own profile directory <profile> (its stderr goes to <log>), and one
    blank page in it with the Page, Runtime and Network domains on. Chromium stops on exit."""
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a reused profile's, naming a dead port
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [executable(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    try:
        port = await _devtools_port(profile, proc, timeout)
        async with aiohttp.ClientSession() as session:
            async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as r:
                target = await r.json(content_type=None)
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                p = Page(ws)
                try:
                    for domain in ("Page", "Runtime", "Network"):
                        await p.send(f"{domain}.enable")
                    yield p
                finally:
                    await p.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
