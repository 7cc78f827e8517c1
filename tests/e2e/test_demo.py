"""``fastlb demo`` as a user runs it: it prints working curl lines for every sample app, its task API
changes what fastlb serves, and Ctrl-C stops it all with exit status 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import aiohttp
import pytest

from .harness import ROOT, arequest, until

pytestmark = pytest.mark.timeout(120)


async def test_demo_serves_its_apps_follows_task_changes_and_stops_on_ctrl_c() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastlb", "demo",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=str(ROOT), env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        text = ""
        while "Ctrl-C stops everything." not in text:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"the demo ended early: {text}"
            text += line.decode()
        ports = {
            app: int(port)
            for port, app in re.findall(r"curl http://127\.0\.0\.1:(\d+)/ +# /demo/(\w+)", text)
        }
        assert set(ports) == {"host", "bridge", "container", "web", "tcp"}, text
        for app, port in ports.items():
            seen = {await arequest(port) for _ in range(8)}
            assert seen == {f"demo/{app}#1", f"demo/{app}#2"}, (app, seen)
        shared = re.search(r"curl -H 'Host: web\.localhost' http://127\.0\.0\.1:(\d+)/", text)
        assert shared, text
        seen = {await arequest(int(shared.group(1)), "web.localhost") for _ in range(8)}
        assert seen == {"demo/web#1", "demo/web#2"}, seen
        control = re.search(r"curl -X POST (http://127\.0\.0\.1:\d+)/apps/demo/host/restart", text)
        admin = re.search(r"curl (http://127\.0\.0\.1:\d+)/stats", text)
        assert control and admin, text
        async with aiohttp.ClientSession() as session:
            async with session.post(control.group(1) + "/apps/demo/host/restart") as r:
                assert r.status == 200

            async def restarted() -> bool:
                async with session.get(admin.group(1) + "/routes") as r:
                    table = (await r.json())["table"]
                host = next(s for s in table["services"] if s["name"].startswith("demo_host_"))
                return len(host["backends"]) == 2 and all(
                    "-4000-8000-000000000000." not in b["id"] for b in host["backends"]
                )

            await until(restarted, "the rolling restart of /demo/host")
        seen = {await arequest(ports["host"]) for _ in range(8)}
        assert seen and not seen & {"demo/host#1", "demo/host#2"}, seen
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
