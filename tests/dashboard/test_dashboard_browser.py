"""The dashboard at ``/`` in a real headless Chromium, in front of a real ``fastlb run`` with two
loopback backends under an active health check: the page lists the service and both backends as up,
shows a backend going down and the connection counters rising without ever reloading, fetches
nothing from anywhere but fastlb's admin address, and says its data is stale once fastlb is gone.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``). A screenshot of the page is
left in the test's tmp dir (``dashboard.png``, and ``dashboard-stale.png`` once fastlb stopped)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fastlb.emulator.backends import Backend, Echo, reserve_port

from . import chromium

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def config(listen: str, backends: list[str]) -> str:
    # A TCP check every 200 ms, down after 2 failures: a killed backend shows down within a second.
    return (
        "[[services]]\n"
        'name = "echo"\n'
        f'listen = "{listen}"\n'
        'mode = "tcp"\n'
        f"backends = {json.dumps(backends)}\n"
        "[services.health]\n"
        'kind = "tcp"\n'
        'interval = "200ms"\n'
        'timeout = "500ms"\n'
        "rise = 1\n"
        "fall = 2\n"
    )


class Fastlb:
    """``fastlb run`` as a subprocess, one worker, serving <toml>, its admin API on a free port."""

    def __init__(self, toml: Path, log: Path) -> None:
        self.admin = free_port()
        self.url = f"http://127.0.0.1:{self.admin}/"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fastlb",
                "run",
                "--config",
                str(toml),
                "--admin",
                f"127.0.0.1:{self.admin}",
                "--workers",
                "1",
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + TIMEOUT
        while status_of(self.url + "_health") != 200:
            assert self.proc.poll() is None, f"fastlb exited with {self.proc.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, (
                f"fastlb did not serve within {TIMEOUT:.0f}s: {log.read_text()}"
            )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
        self._log.close()


class Setup:
    """fastlb (``server``, its service at ``listen``) in front of two echo backends ``a`` and ``b``."""

    def __init__(
        self, server: Fastlb, listen: str, a: Backend, b: Backend, b_stack: contextlib.ExitStack
    ) -> None:
        self.server, self.listen, self.a, self.b = server, listen, a, b
        self._b_stack = b_stack

    def kill_b(self) -> None:
        """Stops backend b: its port refuses connections from now on."""
        self._b_stack.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with Echo() as a, contextlib.ExitStack() as b_stack, reserve_port() as listen:
        b = b_stack.enter_context(Echo())
        toml = tmp_path / "lb.toml"
        toml.write_text(config(listen, [a.address, b.address]))
        server = Fastlb(toml, tmp_path / "fastlb.log")
        try:
            yield Setup(server, listen, a, b, b_stack)
        finally:
            server.stop()


def echo_through(address: str, n: int) -> None:
    """<n> connections through the proxy, each echoing one message whole."""
    host, port = address.rsplit(":", 1)
    for i in range(n):
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as conn:
            message = b"hello %d\n" % i
            conn.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = conn.recv(4096)
                assert chunk, "the proxy closed before echoing"
                got += chunk
            assert got == message


def cell(service: str, backend: str, col: str) -> str:
    """JS: the text of column <col> of <backend>'s row in <service>'s table, or null. Rows are keyed
    by backend id: a static backend's is <service>/<address>."""
    return (
        f"(() => {{ const c = document.querySelector('[data-service={json.dumps(service)}] "
        f"tr[data-key={json.dumps(f'{service}/{backend}')}] td[data-col={json.dumps(col)}]'); "
        "return c && c.textContent; })()"
    )


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.timeout(300)
async def test_dashboard_follows_fastlb_live_in_chromium(tmp_path: Path, setup: Setup) -> None:
    server, listen, a, b = setup.server, setup.listen, setup.a, setup.b
    async with chromium.page(tmp_path / "profile", tmp_path / "chromium.log") as page:
        await page.navigate(server.url)
        # A marker that only survives as long as this very document does: a reload would drop it.
        await page.evaluate("window.fastlbTestMarker = 'loaded once'; true")

        await page.wait_for(
            "document.querySelector('[data-service=\"echo\"] h3')?.textContent === 'echo'",
            "the service to be listed",
        )
        for backend in (a, b):
            await page.wait_for(
                f"{cell('echo', backend.address, 'health')} === 'up'", f"{backend.address} up"
            )
            assert await page.evaluate(cell("echo", backend.address, "address")) == backend.address
            assert await page.evaluate(cell("echo", backend.address, "state")) == "ready"
        assert await page.evaluate("document.getElementById('status').textContent") == "serving"
        assert await page.evaluate("document.getElementById('backends-up').textContent") == "2 / 2"

        # Traffic through the proxy shows in the per-backend and the page-wide counters.
        before = [number(await page.evaluate(cell("echo", x.address, "total"))) for x in (a, b)]
        total_before = number(await page.evaluate("document.getElementById('total').textContent"))
        echo_through(listen, 6)
        sums = f"[{cell('echo', a.address, 'total')}, {cell('echo', b.address, 'total')}]"
        await page.wait_for(
            f"{sums}.reduce((acc, t) => acc + Number(t.replace(/,/g, '')), 0) >= {sum(before) + 6}",
            "the backends' connection counters to count 6 more",
        )
        await page.wait_for(
            f"Number(document.getElementById('total').textContent.replace(/,/g, '')) >= {total_before + 6}",
            "the accepted-connections counter to count 6 more",
        )

        # One backend dies: the health check takes it down, and the page follows without a reload.
        setup.kill_b()
        await page.wait_for(f"{cell('echo', b.address, 'health')} === 'down'", f"{b.address} shown down")
        assert await page.evaluate(cell("echo", a.address, "health")) == "up"
        assert await page.evaluate("document.getElementById('backends-up').textContent") == "1 / 2"
        await page.wait_for(
            "[...document.querySelectorAll('#events li')]"
            ".some((li) => li.textContent.includes('health up → down'))",
            "the health change in the recent errors",
        )
        assert await page.evaluate("window.fastlbTestMarker") == "loaded once"
        documents = [
            p["request"]["url"]
            for m, p in page.events
            if m == "Network.requestWillBeSent" and p.get("type") == "Document"
        ]
        assert documents == [server.url]

        await page.screenshot(tmp_path / "dashboard.png")

        # fastlb goes away: the last data stays, under a banner saying since when it is stale.
        server.stop()
        banner = await page.wait_for(
            "!document.getElementById('stale').hidden && document.getElementById('stale').textContent",
            "the stale banner",
        )
        assert banner.startswith("Stale since ")
        assert await page.evaluate("document.getElementById('status').textContent") == "unreachable"
        assert await page.evaluate(cell("echo", a.address, "address")) == a.address
        assert await page.evaluate("window.fastlbTestMarker") == "loaded once"
        await page.screenshot(tmp_path / "dashboard-stale.png")

        # Everything the page fetched came from fastlb's admin address (the icon is an inline data: URL).
        urls = page.requested_urls()
        assert any(u.endswith("/static/dashboard.js") for u in urls) and any(
            u.endswith("/stats") for u in urls
        )
        elsewhere = [
            u for u in urls if not u.startswith("data:") and urlsplit(u).netloc != f"127.0.0.1:{server.admin}"
        ]
        assert elsewhere == []


@pytest.mark.timeout(300)
async def test_dashboard_lists_the_certificates_with_the_days_left(tmp_path: Path) -> None:
    from tests.tls.conftest import TestCA as CA

    ca = CA()
    (tmp_path / "soon.pem").write_bytes(ca.leaf("soon.example.com", days=5.5))
    (tmp_path / "later.pem").write_bytes(ca.leaf("later.example.com", "*.later.example.com", days=90.5))
    with reserve_port() as https:
        toml = tmp_path / "lb.toml"
        toml.write_text(f'[https]\nlisten = "{https}"\ncerts = ["{tmp_path}/soon.pem", "{tmp_path}/later.pem"]\n')
        server = Fastlb(toml, tmp_path / "fastlb.log")
        try:
            async with chromium.page(tmp_path / "profile", tmp_path / "chromium.log") as page:
                await page.navigate(server.url)
                rows = "[...document.querySelectorAll('#certificates tr')]"
                await page.wait_for(f"{rows}.length === 2", "two certificate rows")
                got = await page.evaluate(
                    f"{rows}.map((tr) => [...tr.children].map((td) => td.textContent)"
                    ".concat([tr.children[3].children[0].className]))"
                )
                assert got == [
                    [f"https.certs: {tmp_path}/soon.pem", "soon.example.com", got[0][2], "in 5 days", "pill draining"],
                    [f"https.certs: {tmp_path}/later.pem", "later.example.com, *.later.example.com", got[1][2],
                     "in 90 days", "pill serving"],
                ]
                assert got[0][2].startswith("20") and " " in got[0][2]
                assert not await page.evaluate("document.getElementById('certificates-panel').hidden")
                await page.screenshot(tmp_path / "dashboard-certificates.png")
        finally:
            server.stop()
