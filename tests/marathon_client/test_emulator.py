"""The emulator speaks Marathon's formats: checked on the wire, with a raw socket where framing matters."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp

from fastlb.emulator.emulator import MarathonEmulator, load_fixture
from fastlb.marathon.sse import SSEDecoder

from .harness import web_app


async def raw_get(
    url: str, target: str, headers: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
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
    async with (
        MarathonEmulator() as leader,
        MarathonEmulator() as standby,
        aiohttp.ClientSession() as session,
    ):
        leader.load_app(web_app())
        standby.set_standby(leader.url)
        async with session.get(
            standby.url + "/v2/events?event_type=x",
            headers={"Accept": "text/event-stream"},
            allow_redirects=False,
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
        sys.executable, "-m", "fastlb.emulator.emulator", "--port", "0", "--apps", str(apps),
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


async def test_emitted_events_have_marathons_fields() -> None:
    """Every event the emulator emits carries the fields of Marathon's own (the fixtures)."""
    async with MarathonEmulator() as emulator:
        reader, writer = await raw_get(emulator.url, "/v2/events", {"Accept": "text/event-stream"})
        try:
            await read_head(reader)
            emulator.add_app(web_app())
            task = emulator.add_task("/web", [31001])
            emulator.set_task_health(task, False)
            dep = emulator.start_deployment(["/web"])
            emulator.finish_deployment(dep)
            dep = emulator.start_deployment(["/web"])
            emulator.finish_deployment(dep, success=False)
            emulator.set_task_state(task, "TASK_KILLED")
            emulator.remove_app("/web")
            emulator.drop_streams()
            events = SSEDecoder().feed(await asyncio.wait_for(reader.read(), 5))
        finally:
            writer.close()
        seen = {e.event for e in events}
        assert seen == {
            "event_stream_attached", "api_post_event", "status_update_event", "instance_changed_event",
            "health_status_changed_event", "deployment_info", "deployment_success", "deployment_failed",
            "app_terminated_event",
        }
        for event in events:
            fixture = load_fixture(f"events/{event.event}.json")
            assert set(json.loads(event.data)) == set(fixture), event.event


class _Events:
    """Every event of one stream, decoded as it comes."""

    def __init__(self, emulator: MarathonEmulator) -> None:
        self.emulator = emulator
        self.seen: list[tuple[str, dict]] = []
        self._decoder = SSEDecoder()

    async def __aenter__(self) -> _Events:
        self.reader, self.writer = await raw_get(self.emulator.url, "/v2/events", {"Accept": "text/event-stream"})
        await read_head(self.reader)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def until(self, predicate, what: str) -> None:  # noqa: ANN001
        async with asyncio.timeout(10):
            while not predicate():
                chunk = await self.reader.read(65536)
                assert chunk, f"stream ended before {what}"
                for e in self._decoder.feed(chunk):
                    if e.data.strip():
                        self.seen.append((e.event, json.loads(e.data)))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.seen if k != "event_stream_attached"]

    def task_states(self, task_id: str) -> list[str]:
        return [d["taskStatus"] for k, d in self.seen if k == "status_update_event" and d["taskId"] == task_id]


async def _json(resp: aiohttp.ClientResponse) -> tuple[int, dict]:
    return resp.status, await resp.json()


async def test_post_app_starts_its_tasks_with_marathons_answers_and_events() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session, _Events(emulator) as events:
        launched: list[str] = []

        def launcher(app: dict, task_id: str) -> list[int]:
            launched.append(task_id)
            return [40000 + len(launched)]

        emulator.launcher = launcher
        body = {"id": "web", "instances": 2, "labels": {"HAPROXY_GROUP": "external"},
                "portDefinitions": [{"port": 0, "protocol": "tcp"}]}
        async with session.post(emulator.url + "/v2/apps", json=body) as resp:
            status, app = await _json(resp)
            assert status == 201 and resp.headers["Location"] == emulator.url + "/v2/apps/web"
        assert app["id"] == "/web" and app["instances"] == 2
        assert app["portDefinitions"][0]["port"] == 10000  # 0: Marathon picks one
        assert [set(d) for d in app["deployments"]] == [{"id"}]
        await events.until(lambda: "deployment_success" in events.kinds(), "the deployment's end")
        kinds = events.kinds()
        assert kinds[:2] == ["api_post_event", "deployment_info"] and kinds[-1] == "deployment_success"
        assert [events.task_states(t) for t in launched] == [["TASK_STAGING", "TASK_RUNNING"]] * 2
        async with session.get(emulator.url + "/v2/apps/web") as resp:
            _, got = await _json(resp)
        tasks = got["app"]["tasks"]
        assert sorted(t["id"] for t in tasks) == sorted(launched)
        assert {t["ports"][0] for t in tasks} == {40001, 40002} and got["app"]["deployments"] == []
        assert all(t["servicePorts"] == [10000] for t in tasks)
        # the same id again, or a service port in use: refused as Marathon does
        async with session.post(emulator.url + "/v2/apps", json=body) as resp:
            assert await _json(resp) == (409, {"message": "An app with id [/web] already exists."})
        other = {"id": "/other", "portDefinitions": [{"port": 10000}]}
        async with session.post(emulator.url + "/v2/apps", json=other) as resp:
            status, refused = await _json(resp)
            assert status == 422 and "conflicts with a service port in use by app /web" in str(refused["details"])
        assert "/other" not in emulator.apps


async def test_put_scales_and_is_locked_during_a_deployment() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session, _Events(emulator) as events:
        emulator.load_app(web_app())
        before = dict(emulator.apps["/web"]["versionInfo"])
        emulator.launch_delay = 0.3
        async with session.put(emulator.url + "/v2/apps/web", json={"instances": 3}) as resp:
            status, answer = await _json(resp)
        assert status == 200 and set(answer) == {"version", "deploymentId"}
        assert emulator.apps["/web"]["instances"] == 3 and emulator.apps["/web"]["labels"] == web_app()["labels"]
        # a scale: a new version, lastScalingAt with it, the configuration's change time kept
        assert emulator.apps["/web"]["versionInfo"] == {
            "lastScalingAt": answer["version"], "lastConfigChangeAt": before["lastConfigChangeAt"],
        }
        assert emulator.apps["/web"]["version"] == answer["version"]
        async with session.put(emulator.url + "/v2/apps/web", json={"instances": 1}) as resp:
            status, locked = await _json(resp)
            assert status == 409 and locked["deployments"] == [{"id": answer["deploymentId"]}]
        await events.until(lambda: "deployment_success" in events.kinds(), "the scale-up")
        assert len(emulator.tasks["/web"]) == 3
        assert [d for k, d in events.seen if k == "deployment_info"][0]["plan"]["steps"][0]["actions"] == [
            {"action": "ScaleApplication", "app": "/web"}
        ]
        emulator.launch_delay = 0.0
        async with session.put(emulator.url + "/v2/apps/web?force=true", json={"instances": 1}) as resp:
            assert resp.status == 200
        await events.until(lambda: events.kinds().count("deployment_success") == 2, "the scale-down")
        assert len(emulator.tasks["/web"]) == 1
        # PUT of an app that does not exist creates it
        async with session.put(emulator.url + "/v2/apps/new", json={"instances": 0}) as resp:
            status, created = await _json(resp)
            assert status == 201 and created["id"] == "/new"


async def test_tasks_delete_with_and_without_scale() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session, _Events(emulator) as events:
        ended: list[str] = []
        emulator.on_task_end = lambda task: ended.append(task["id"])
        emulator.kill_delay = 0.05
        app = web_app()
        app["instances"] = 2
        emulator.load_app(app)
        one = emulator.add_task("/web", [31001], emit=False)
        two = emulator.add_task("/web", [31002], emit=False)
        async with session.post(
            emulator.url + "/v2/tasks/delete?scale=true", json={"ids": [one, "web.unknown._app.1"]}
        ) as resp:
            status, answer = await _json(resp)
        assert status == 200 and set(answer) == {"version", "deploymentId"}
        assert emulator.apps["/web"]["instances"] == 1  # at once, in the app's definition
        await events.until(lambda: "deployment_success" in events.kinds(), "the kill")
        assert events.task_states(one) == ["TASK_KILLING", "TASK_KILLED"] and ended == [one]
        assert list(emulator.tasks["/web"]) == [two]
        # without scale: the answer lists the tasks, and Marathon starts a replacement
        async with session.post(emulator.url + "/v2/tasks/delete", json={"ids": [two]}) as resp:
            status, answer = await _json(resp)
        assert status == 200 and [t["id"] for t in answer["tasks"]] == [two]
        await events.until(lambda: events.kinds().count("deployment_success") == 2, "the replacement")
        assert ended == [one, two] and emulator.apps["/web"]["instances"] == 1
        [replacement] = emulator.tasks["/web"].values()
        assert replacement["id"] != two and replacement["state"] == "TASK_RUNNING"


async def test_delete_app_kills_its_tasks_then_says_terminated() -> None:
    async with MarathonEmulator() as emulator, aiohttp.ClientSession() as session, _Events(emulator) as events:
        ended: list[str] = []
        emulator.on_task_end = lambda task: ended.append(task["id"])
        emulator.load_app(web_app())
        task = emulator.add_task("/web", [31001], emit=False)
        async with session.delete(emulator.url + "/v2/apps/web") as resp:
            status, answer = await _json(resp)
        assert status == 200 and set(answer) == {"version", "deploymentId"}
        async with session.get(emulator.url + "/v2/apps/web") as resp:
            assert resp.status == 404  # gone from the API at once
        await events.until(lambda: "deployment_success" in events.kinds(), "the stop")
        kinds = events.kinds()
        assert kinds.index("app_terminated_event") > kinds.index("status_update_event")
        assert events.task_states(task) == ["TASK_KILLING", "TASK_KILLED"] and ended == [task]
        assert "/web" not in emulator.tasks
        async with session.delete(emulator.url + "/v2/apps/web") as resp:
            assert await _json(resp) == (404, {"message": "App '/web' does not exist"})
