"""marathon-lb's zdd.py blue/green deploy through fastlb, unchanged: a client re-implements zdd's steps
against the Marathon emulator's write API and reads fastlb's /haproxy?stats;csv exactly as zdd does
(csv.reader with quotechar="'", rows as namedtuples of the header's columns), while ``fastlb run``
follows the emulator and a client loop sends requests through the service port without pause.

The sequence (docs/admin.md, "/stats.csv"; marathon-lb's zdd section of its reference): a first deploy
makes the blue app; the second POSTs the green app (HAPROXY_0_PORT keeps the service's name and port);
fastlb merges the two (HAPROXY_DEPLOYMENT_GROUP) and drains old tasks, which the CSV shows as MAINT;
zdd kills those that are MAINT with scur and qcur 0 (POST /v2/tasks/delete?scale=true), scales the
new app up (PUT /v2/apps/<id>), and deletes the old app (DELETE /v2/apps/<id>) once the new one runs
its target. Not one request of the client loop may fail."""

from __future__ import annotations

import asyncio
import collections
import csv
import datetime
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition

from .harness import ClientLoop, Fastlb, KeepAlive, TimedEmulator, running_fastlb, until

pytestmark = pytest.mark.timeout(240)

GROUP = "web"


@pytest.fixture
async def emu(servers: IdentServers) -> AsyncIterator[TimedEmulator]:
    """The emulator, each task it starts a real backend named after the task id, stopped when the API
    kills the task."""
    e = TimedEmulator(heartbeat_interval=1.0)
    e.launcher = lambda app, task_id: [servers.start(task_id).port]
    e.on_task_end = lambda task: servers.stop(task["id"])
    await e.start()
    try:
        yield e
    finally:
        await e.stop()


# -- zdd's client side, re-implemented -------------------------------------------------------------


def parse_stats(text: str) -> list[Any]:
    """zdd's reading of the stats CSV: the header's names; csv.reader(quotechar="'"); each row but its
    last (empty) field as a namedtuple, which raises unless the row has exactly the header's columns;
    lines starting with '#' (the header of a second LB's CSV) skipped."""
    lines = text.splitlines()
    headings = lines.pop(0).lstrip("# ").rstrip(",\n").split(",")
    row_type = collections.namedtuple("Row", headings)  # type: ignore[misc]
    return [row_type(*row[0:-1]) for row in csv.reader(lines, delimiter=",", quotechar="'") if row[0][0] != "#"]


def service_port(app: dict[str, Any]) -> int:
    return int(app["container"]["portMappings"][0]["servicePort"])


def service_port_of_definition(app: dict[str, Any]) -> int:
    return int(app["portDefinitions"][0]["port"])


def svname(task: dict[str, Any]) -> str:
    """zdd's server name of a task whose agent host is its IP: host with '.' as '_', then the port."""
    return task["host"].replace(".", "_") + "_" + str(task["ports"][0])


class Zdd:
    """zdd's steps: prepare the new colour, POST it, then until done: wait for no reload in progress,
    the LBs to list every task of both apps, enough of them UP and some MAINT with nothing open; kill
    those, scale the new app up by half, and delete the old app once the new one runs its target."""

    def __init__(
        self, session: aiohttp.ClientSession, marathon: str, lbs: list[str], step_delay: float = 0.2,
        max_wait: float = 30.0, initial_instances: int = 1,
    ) -> None:
        self.session = session
        self.marathon = marathon
        self.lbs = lbs
        self.step_delay = step_delay
        self.max_wait = max_wait
        self.initial_instances = initial_instances
        self.log: list[tuple[str, Any]] = []  # what it did and saw, in order
        self.polls: list[list[Any]] = []  # the app's rows of every stats read

    async def _marathon(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.marathon + path, json=body) as r:
            assert r.status in (200, 201), (method, path, r.status, await r.text())
            return await r.json()

    async def deploy(self, app: dict[str, Any]) -> None:
        app = {**app, "labels": dict(app["labels"])}
        group = app["labels"]["HAPROXY_DEPLOYMENT_GROUP"]
        apps = (await self._marathon("GET", "/v2/apps"))["apps"]
        previous = [a for a in apps if a.get("labels", {}).get("HAPROXY_DEPLOYMENT_GROUP") == group]
        original_port = service_port(app)
        if previous:
            last = max(previous, key=lambda a: a["labels"].get("HAPROXY_DEPLOYMENT_STARTED_AT", "0"))
            colour = "green" if last["labels"].get("HAPROXY_DEPLOYMENT_COLOUR") == "blue" else "blue"
            alt = int(last["labels"]["HAPROXY_DEPLOYMENT_ALT_PORT"])
            port = int(last["labels"]["HAPROXY_0_PORT"]) if service_port(last) == alt else alt
            target = last["instances"]
            app["instances"] = min(self.initial_instances, target)
        else:
            colour, port, target = "blue", original_port, app["instances"]
        app["labels"].update(
            HAPROXY_APP_ID=app["id"], HAPROXY_0_PORT=str(original_port), HAPROXY_DEPLOYMENT_NEW_INSTANCES="0",
            HAPROXY_DEPLOYMENT_TARGET_INSTANCES=str(target), HAPROXY_DEPLOYMENT_COLOUR=colour,
            HAPROXY_DEPLOYMENT_STARTED_AT=datetime.datetime.now().isoformat(),
        )
        app["id"] = app["id"] + "-" + colour
        app["container"]["portMappings"][0]["servicePort"] = port
        await self._marathon("POST", "/v2/apps", app)
        self.log.append(("post", app["id"]))
        if previous:
            await self._swap(app["id"], last["id"], f"{group}_{original_port}")

    async def _swap(self, new_id: str, old_id: str, pxname: str) -> None:
        while True:
            old = (await self._marathon("GET", "/v2/apps" + old_id))["app"]
            new = (await self._marathon("GET", "/v2/apps" + new_id))["app"]
            if new["deployments"]:
                await asyncio.sleep(self.step_delay)
                continue
            target = int(new["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"])
            kill = await self._tasks_to_kill(new, old, pxname, target)
            if new["instances"] == target and len(kill) == old["instances"]:
                await self._marathon("DELETE", "/v2/apps" + old_id)
                self.log.append(("delete", old_id))
                return
            if kill:
                await self._marathon("POST", "/v2/tasks/delete?scale=true", {"ids": kill})
                self.log.append(("kill", kill))
            if new["instances"] < target:
                instances = int(new["instances"] + (new["instances"] + 1) / 2)
                if instances >= old["instances"]:
                    instances = target
                await self._marathon("PUT", "/v2/apps" + new_id, {"instances": instances})
                self.log.append(("scale", instances))

    async def _rows(self, pxname: str) -> list[Any]:
        text = ""
        for lb in self.lbs:
            async with self.session.get(lb + "/haproxy?stats;csv") as r:
                assert r.status == 200
                text += await r.text()
        return [r for r in parse_stats(text) if r.pxname == pxname and r.svname not in ("BACKEND", "FRONTEND")]

    async def _reloading(self) -> bool:
        for lb in self.lbs:
            async with self.session.get(lb + "/_haproxy_getpids") as r:
                if len((await r.text()).split()) > 1:
                    return True
        return False

    async def _tasks_to_kill(self, new: dict[str, Any], old: dict[str, Any], pxname: str, target: int) -> list[str]:
        count = len(self.lbs)
        started = time.monotonic()
        rows: list[Any] = []
        while time.monotonic() - started < self.max_wait:
            await asyncio.sleep(self.step_delay)
            if await self._reloading():
                continue
            rows = await self._rows(pxname)
            self.polls.append(rows)
            if len(rows) / count != new["instances"] + old["instances"]:
                continue
            if len([r for r in rows if r.status == "UP"]) / count < target:
                continue
            drained = [r for r in rows if r.status == "MAINT" and int(r.scur or 0) == 0 and int(r.qcur or 0) == 0]
            if not drained:
                continue
            kill = [t["id"] for t in old["tasks"] if sum(r.svname == svname(t) for r in drained) == count]
            self.log.append(("drained", [(r.svname, r.status, r.scur, r.qcur) for r in drained]))
            return kill
        draining = {r.svname for r in rows if r.status == "MAINT"}
        self.log.append(("timed out", sorted(draining)))
        return [t["id"] for t in old["tasks"] if svname(t) in draining]


# -- the test --------------------------------------------------------------------------------------


def user_app(port: int, alt: int, mode: str, version: str) -> dict[str, Any]:
    """The app JSON a user hands zdd: a bridge app (zdd reads container.portMappings)."""
    labels = {
        "HAPROXY_GROUP": "external", "HAPROXY_0_MODE": mode, "HAPROXY_DEPLOYMENT_GROUP": GROUP,
        "HAPROXY_DEPLOYMENT_ALT_PORT": str(alt),
    }
    app = app_definition("/" + GROUP, [port], labels=labels, network="container/bridge", instances=2)
    app["env"] = {"VERSION": version}
    for key in ("version", "versionInfo"):
        del app[key]
    return app


async def tasks_of(emu: TimedEmulator, app_id: str) -> list[dict[str, Any]]:
    return sorted(emu.tasks.get(app_id, {}).values(), key=lambda t: t["id"])


def ours(ids: set[str]) -> set[str]:
    """The backend ids of the deployed app's tasks (not the broken app's)."""
    return {i for i in ids if i.startswith(GROUP + "-")}


async def served(lb: Fastlb) -> dict[str, str]:
    """Backend id -> its status in fastlb's /stats."""
    stats = await lb.stats()
    return {b["id"]: b["status"] for s in stats["services"] for b in s["backends"]}


@pytest.mark.parametrize("mode", ["http", "tcp"])
async def test_zdd_blue_green_through_fastlb_loses_no_request(
    emu: TimedEmulator, servers: IdentServers, tmp_path: Path, mode: str
) -> None:
    port, alt = free_port(), free_port()
    assert port != alt
    # Another app, whose task nothing listens for, under a Marathon TCP health check: its failing check
    # is in the CSV zdd reads whole (a row it cannot split stops zdd, whatever the app).
    broken = app_definition("/broken", [free_port()], labels={"HAPROXY_GROUP": "external"})
    broken["healthChecks"] = [
        {"protocol": "TCP", "portIndex": 0, "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 0}
    ]
    emu.add_app(broken)
    emu.add_task("/broken", [free_port()], task_id="broken.t1._app.1")
    async with running_fastlb(["--marathon", emu.url, "--group", "external"], tmp_path / "fastlb.log") as lb:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            zdd = Zdd(session, emu.url, [lb.admin])

            async def broken_row() -> Any:
                async with session.get(lb.admin + "/haproxy?stats;csv") as r:
                    rows = parse_stats(await r.text())
                return next((r for r in rows if r.pxname == broken_name and r.check_status == "L4CON"), None)

            broken_name = f"broken_{service_port_of_definition(broken)}"
            row = await until(broken_row, "the broken task's failed check in the CSV")
            assert (row.status, row.last_chk, row.check_desc) == (
                "DOWN", "Connection refused", "Layer4 connection problem",
            )
            # The first deploy: the blue app, two tasks.
            await zdd.deploy(user_app(port, alt, mode, "1"))
            await until(lambda: len(emu.tasks.get("/web-blue", {})) == 2 and not emu.deployments, "blue's tasks")
            blue = await tasks_of(emu, "/web-blue")
            await lb.wait_backends(lambda ids: ours(ids) == {t["id"] for t in blue}, "blue's two tasks served")
            pxname = f"{GROUP}_{port}"
            rows = await zdd._rows(pxname)
            assert sorted(r.svname for r in rows) == sorted(svname(t) for t in blue)
            assert {r.status for r in rows} == {"UP"}

            with ClientLoop(port, pause=0.005) as clients:
                await clients.wait_ok(20)
                held = None
                if mode == "tcp":
                    # A connection open to the blue task drained first (the lowest task id): zdd must
                    # wait for it, as it waits for HAProxy's scur.
                    first = blue[0]["id"]
                    for _ in range(20):
                        conn = KeepAlive(port)
                        if await asyncio.to_thread(conn.ask) == first:
                            held = conn
                            break
                        conn.close()
                    assert held is not None
                deploy = asyncio.create_task(zdd.deploy(user_app(port, alt, mode, "2")))
                try:
                    if held is not None:
                        held_name = svname(blue[0])

                        def held_is_maint_and_busy() -> bool:
                            return sum(
                                1 for rows in zdd.polls for r in rows
                                if (r.svname, r.status, r.scur) == (held_name, "MAINT", "1")
                            ) >= 3

                        await until(held_is_maint_and_busy, "zdd to see the held task MAINT with scur 1", 60)
                        assert not any(kind == "kill" for kind, _ in zdd.log)  # not killed while busy
                        assert await asyncio.to_thread(held.ask) == first  # its connection carries on
                        held.close()
                        held = None
                    await asyncio.wait_for(deploy, 90)
                finally:
                    if held is not None:
                        held.close()
                    if not deploy.done():
                        deploy.cancel()
                await until(lambda: "/web-blue" not in emu.tasks, "blue's tasks gone")
                green = await tasks_of(emu, "/web-green")
                await lb.wait_backends(lambda ids: ours(ids) == {t["id"] for t in green}, "green alone served")
                await clients.wait_ok(20)
            assert clients.failures == [], clients.failures[:5]
            # Both colours answered during the deploy; green alone at the end.
            assert {t["id"] for t in blue} <= set(clients.by_name) and len(green) == 2
            assert {t["id"] for t in green} <= set(clients.by_name)
            assert {v for k, v in (await served(lb)).items() if k in ours({k})} == {"UP"}

    # What zdd did: the green app posted, old tasks killed only once MAINT with nothing open (scur and
    # qcur 0), green scaled to its target, the old app deleted.
    kinds = [kind for kind, _ in zdd.log]
    assert kinds[:2] == ["post", "post"] and kinds[-1] == "delete" and "timed out" not in kinds, zdd.log
    assert zdd.log[1] == ("post", "/web-green") and zdd.log[-1] == ("delete", "/web-blue")
    assert ("scale", 2) in zdd.log
    killed = [ids for kind, ids in zdd.log if kind == "kill"]
    assert killed and all(len(ids) == 1 for ids in killed)
    assert {i for ids in killed for i in ids} < {t["id"] for t in blue}
    for kind, seen in zdd.log:
        if kind == "drained":
            assert seen and all(status == "MAINT" and scur == "0" and qcur == "0" for _, status, scur, qcur in seen)
    # Every stats read parsed as zdd parses it, and showed the old tasks only as UP or MAINT.
    assert zdd.polls and all(r.status in ("UP", "MAINT") for rows in zdd.polls for r in rows)
