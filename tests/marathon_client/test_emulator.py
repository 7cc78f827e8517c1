"""The emulator speaks Marathon's formats: checked on the wire, with a raw socket where framing matters."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp

from fastlb.marathon.sse import SSEDecoder
from fastlb.testing.emulator import MarathonEmulator, load_fixture

from .harness import web_app


async def raw_get(url: str, target: str, headers: dict[str, str]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}"] + [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return reader, writer


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), headers


async def test_events_need_the_exact_accept() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session:
        for accept in (None, "application/json", "text/event-stream;q=1", "text/event-stream, */*"):
            headers = {"Accept": accept} if accept else {"Accept": "*/*"}
            async with session.get(emulator.url + "/v2/events", headers=headers) as resp:
                assert resp.status == 405, accept
        assert emulator.streams_opened == 0


async def test_stream_on_the_wire() -> None:
    async with MarathonEmulator(heartbeat_interval=0.1) as emulator:
        emulator.load_app(web_app())
        reader, writer = await raw_get(
            emulator.url,
            "/v2/events?event_type=event_stream_attached&event_type=status_update_event",
            {"Accept": "text/event-stream"},
        )
        try:
            status, headers = await read_head(reader)
            assert status == 200
            assert headers["content-type"] == "text/event-stream;charset=utf-8"
            assert headers["connection"] == "close"
            assert "transfer-encoding" not in headers and "content-length" not in headers
            first = await reader.readuntil(b"\r\n\r\n")
            assert first.startswith(b"event: event_stream_attached\r\ndata: {")
            assert json.loads(first.split(b"data: ", 1)[1])["eventType"] == "event_stream_attached"
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"  # a heartbeat
            emulator.update_app("/web", labels={"HAPROXY_GROUP": "internal"})  # filtered out
            task = emulator.add_task("/web", [31001])  # status_update passes, instance_changed does not
            emulator.drop_streams()
            rest = await asyncio.wait_for(reader.read(), 5)  # read to EOF: the close ends the body
        finally:
            writer.close()
        events = SSEDecoder().feed(rest)
        assert [e.event for e in events] == ["status_update_event"]
        data = json.loads(events[0].data)
        assert data["taskId"] == task and data["taskStatus"] == "TASK_RUNNING" and data["ports"] == [31001]
        assert data["eventType"] == "status_update_event" and data["appId"] == "/web"


async def test_apps_embed_rules() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session:
        emulator.load_app(web_app())
        emulator.add_task("/web", [31001], emit=False)
        url = emulator.url + "/v2/apps"
        async with session.get(url, params=[("embed", "apps.tasks"), ("embed", "apps.readiness")]) as resp:
            [app] = (await resp.json())["apps"]
            assert len(app["tasks"]) == 1 and app["readinessCheckResults"] == []
            assert app["deployments"] == [] and app["tasksRunning"] == 1
            assert resp.headers["X-Marathon-Leader"] == emulator.url
        async with session.get(url, params={"embed": "apps.tasks,apps.readiness"}) as resp:
            [app] = (await resp.json())["apps"]
            assert "tasks" not in app and "readinessCheckResults" not in app  # one unknown embed
            assert "deployments" in app and "tasksRunning" in app  # always there
        async with session.get(url, params={"embed": "app.tasks"}) as resp:  # Bamboo's spelling
            assert "tasks" in (await resp.json())["apps"][0]


async def test_single_app_and_404() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session:
        emulator.load_app(web_app("/shop/web"))
        emulator.add_task("/shop/web", [31001], emit=False)
        async with session.get(emulator.url + "/v2/apps/shop/web") as resp:
            app = (await resp.json())["app"]
            assert app["id"] == "/shop/web" and len(app["tasks"]) == 1
        async with session.get(emulator.url + "/v2/apps/nope") as resp:
            assert resp.status == 404
            assert (await resp.json())["message"] == "App '/nope' does not exist"


async def test_standby_redirects_the_stream_and_proxies_the_api() -> None:
    async with MarathonEmulator() as leader, MarathonEmulator() as standby, aiohttp.ClientSession() as session:
        leader.load_app(web_app())
        standby.set_standby(leader.url)
        async with session.get(
            standby.url + "/v2/events?event_type=x", headers={"Accept": "text/event-stream"}, allow_redirects=False
        ) as resp:
            assert resp.status == 302
            assert resp.headers["Location"] == leader.url + "/v2/events?event_type=x"
        async with session.get(standby.url + "/v2/apps") as resp:
            assert [a["id"] for a in (await resp.json())["apps"]] == ["/web"]
            assert "X-Marathon-Via" in resp.headers
        async with session.get(standby.url + "/v2/leader") as resp:
            assert (await resp.json())["leader"] == leader.url.removeprefix("http://")


async def test_faults_and_auth() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session:
        emulator.fail_with(500)
        async with session.get(emulator.url + "/v2/apps") as resp:
            assert resp.status == 500
        emulator.fail_with(None)
        emulator.require_basic_auth("u", "p")
        async with session.get(emulator.url + "/v2/apps") as resp:
            assert resp.status == 401
        async with session.get(emulator.url + "/v2/apps", auth=aiohttp.BasicAuth("u", "p")) as resp:
            assert resp.status == 200


async def test_deployment_events_and_listing() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session:
        emulator.load_app(web_app())
        task = emulator.add_task("/web", [31001], emit=False)
        dep = emulator.start_deployment(["/web"])
        emulator.set_readiness(task, False)
        async with session.get(emulator.url + "/v2/deployments") as resp:
            [listed] = await resp.json()
            assert listed["id"] == dep and listed["affectedApps"] == ["/web"]
            assert listed["currentActions"][0]["readinessCheckResults"][0] == {
                "name": "readinessCheck", "taskId": task, "ready": False
            }
        emulator.finish_deployment(dep)
        async with session.get(emulator.url + "/v2/deployments") as resp:
            assert await resp.json() == []


def test_packaged_fixtures_load() -> None:
    emulator = MarathonEmulator()
    for name in (
        "v2_apps_embed_tasks_host.json",
        "v2_apps_embed_tasks_bridge.json",
        "v2_apps_embed_tasks_container.json",
        "v2_apps_legacy_1_4_ip_per_task_and_bridge.json",
        "demo_apps.json",
    ):
        emulator.load_apps(load_fixture(name))
    assert "/shop/web" in emulator.apps and "/demo/web" in emulator.apps
    assert load_fixture("events/status_update_event.json")["eventType"] == "status_update_event"


async def test_runs_as_a_program(tmp_path) -> None:
    apps = tmp_path / "apps.json"
    app = web_app("/cli")
    app["tasks"] = []
    apps.write_text(json.dumps({"apps": [app]}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastlb.testing.emulator", "--port", "0", "--apps", str(apps),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = line.split(" at ")[1].split()[0]
        async with aiohttp.ClientSession() as session, session.get(url + "/v2/apps") as resp:
            assert [a["id"] for a in (await resp.json())["apps"]] == ["/cli"]
    finally:
        proc.terminate()
        await proc.wait()
