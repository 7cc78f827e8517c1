"""fastlb deployed as a Marathon app (deploy/marathon/fastlb.json): the definition posted to the Marathon
emulator beside other apps, and a real ``fastlb run`` with that definition's args and the environment
Marathon gives its tasks, following that emulator: it leaves its own app out and serves the others."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition

from .harness import ROOT, TimedEmulator, arequest, running_fastlb, until

pytestmark = pytest.mark.timeout(180)

DEFINITION = ROOT / "deploy" / "marathon" / "fastlb.json"


def definition() -> dict[str, Any]:
    return json.loads(DEFINITION.read_text())  # type: ignore[no-any-return]


def run_args(app: dict[str, Any], marathon_url: str) -> list[str]:
    """The definition's args after ``run``, following <marathon_url> instead of marathon.mesos."""
    args = list(app["args"])
    assert args[0] == "run"
    args = args[1:]
    at = args.index("--marathon")
    return [*args[:at], *args[at + 2 :], "--marathon", marathon_url]


def test_the_definition_is_what_a_public_agent_fleet_needs() -> None:
    app = definition()
    assert app["networks"] == [{"mode": "host"}]
    assert app["acceptedResourceRoles"] == ["slave_public"]
    assert ["hostname", "UNIQUE"] in app["constraints"]
    ports = {d["name"]: d["port"] for d in app["portDefinitions"]}
    assert ports == {"http": 80, "https": 443, "admin": 9090, "appid": 9091} and app["requirePorts"] is True
    (check,) = app["healthChecks"]
    assert check["path"] == "/_health" and check["protocol"] in ("HTTP", "MESOS_HTTP")
    assert app["portDefinitions"][check["portIndex"]]["port"] == 9090
    assert app["upgradeStrategy"]["minimumHealthCapacity"] >= 0.5
    token = app["env"]["FASTLB_ADMIN_TOKEN"]
    assert app["secrets"][token["secret"]]["source"]
    args = app["args"]
    assert args[args.index("--group") + 1] == "external"
    assert args[args.index("--admin") + 1] == "0.0.0.0:9090"
    # health checks see 503 for longer than they take to withdraw the task before its listeners close
    assert float(args[args.index("--drain-delay") + 1]) > check["intervalSeconds"] * check["maxConsecutiveFailures"]


async def _routes_cli(url: str, env: dict[str, str]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastlb", "routes", "--marathon", url, "--group", "*", "--bind-addr", "127.0.0.1",
        "--http-port", "0", "--https-port", "0", "--appid-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
        env={k: v for k, v in {**os.environ, **env}.items() if v},
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)  # type: ignore[no-any-return]


async def test_fastlb_run_from_its_definition_leaves_its_own_app_out(
    emu: TimedEmulator, servers: IdentServers, tmp_path: Path
) -> None:
    app = definition()
    async with aiohttp.ClientSession() as http, http.post(emu.url + "/v2/apps", json=app) as r:
        assert r.status == 201, await r.text()
    await until(lambda: len(emu.tasks["/fastlb"]) == app["instances"], "fastlb's own tasks")
    web, tcp = free_port(), free_port()
    emu.add_app(app_definition("/shop/web", [web], labels={"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http"}))
    emu.add_app(app_definition("/shop/db", [tcp], labels={"HAPROXY_GROUP": "external"}))
    for app_id in ("/shop/web", "/shop/db"):
        for n in (1, 2):
            ident = servers.start(f"{app_id.strip('/')}#{n}")
            emu.add_task(app_id, [ident.port], task_id=f"{app_id.strip('/').replace('/', '_')}.{n}")

    ours = {f"shop_web_{web}", f"shop_db_{tcp}"}
    # Every app is in '*'; what keeps fastlb's app out is its id, from the environment Marathon sets.
    served = await _routes_cli(emu.url, {"MARATHON_APP_ID": "", "FRAMEWORK_NAME": ""})
    assert {s["name"] for s in served["services"]} == {"fastlb_80", "fastlb_443", "fastlb_9090", "fastlb_9091", *ours}
    env = {"MARATHON_APP_ID": app["id"], "FASTLB_ADMIN_TOKEN": "s3cret", "FRAMEWORK_NAME": ""}
    args = [*run_args(app, emu.url), "--group", "*"]
    async with running_fastlb(args, tmp_path / "fastlb.log", env=env) as lb:
        await lb.wait_backends(lambda ids: len(ids) == 4, "the four tasks of the other apps")
        table = (await lb.routes())["table"]
        assert {s["name"] for s in table["services"]} == ours
        assert not [lst for lst in table["listeners"] if lst["address"].endswith((":80", ":443", ":9090"))]
        assert {await arequest(web) for _ in range(8)} == {"shop/web#1", "shop/web#2"}
        assert {await arequest(tcp) for _ in range(8)} == {"shop/db#1", "shop/db#2"}
        # The token of the environment guards the changing endpoints.
        assert lb.session is not None
        async with lb.session.post(lb.admin + "/_mlb_signal/hup") as r:
            assert r.status == 401
        async with lb.session.post(lb.admin + "/_mlb_signal/hup", headers={"Authorization": "Bearer s3cret"}) as r:
            assert r.status == 200
