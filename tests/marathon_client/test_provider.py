"""MarathonProvider against the emulator over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time

import pytest

from fastlb.emulator.emulator import MarathonEmulator, load_fixture
from fastlb.marathon.auth import BasicAuth

from .harness import Recorder, backend_ids, backend_states, make_provider, running, wait_until, web_app

READINESS_CHECK = {
    "name": "readinessCheck",
    "protocol": "HTTP",
    "path": "/ready",
    "portName": "p0",
    "intervalSeconds": 5,
    "timeoutSeconds": 3,
    "httpStatusCodesForReady": [200],
    "preserveLastResponse": False,
}


async def started(**kwargs) -> MarathonEmulator:
    emulator = MarathonEmulator(**kwargs)
    await emulator.start()
    return emulator


def fetches(emulator: MarathonEmulator, prefix: str) -> list[str]:
    return [path for method, path, _ in emulator.requests if path.startswith(prefix)]


async def test_connect_resync_then_events_applied() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url])
        async with running(provider, rec):
            await rec.wait_backends({first})
            # the stream was asked for with Marathon's exact headers and server-side filter
            stream_reqs = [(p, h) for m, p, h in emulator.requests if p.startswith("/v2/events")]
            path, headers = stream_reqs[0]
            assert headers["Accept"] == "text/event-stream"
            assert headers["Cache-Control"] == "no-cache"
            assert "event_type=event_stream_attached" in path and "event_type=status_update_event" in path
            # the resync: embed repeated, never comma-joined
            assert "/v2/apps?embed=apps.tasks&embed=apps.readiness" in fetches(emulator, "/v2/apps?")
            status = provider.status()
            assert status.connected and status.synced and status.leader == emulator.url

            second = emulator.add_task("/web", [31002])
            await rec.wait_backends({first, second})
            emulator.set_task_state(first, "TASK_KILLED")
            await rec.wait_backends({second})
            assert (first, "maint") in rec.backend_calls

            emulator.add_app(web_app("/other", 10001))
            other = emulator.add_task("/other", [31003])
            await rec.wait_backends({second, other})
            emulator.remove_app("/other")
            await rec.wait_backends({second})
            status = provider.status()
            assert status.events["status_update_event"] >= 3
            assert status.events["app_terminated_event"] == 1
            assert status.reconnects == 0


async def test_killing_task_drains_before_any_fetch_or_rebuild() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        tasks = [emulator.add_task("/web", [31000 + i], emit=False) for i in range(3)]
        rec = Recorder([emulator])
        async with running(make_provider([emulator.url]), rec):
            await rec.wait_backends(set(tasks))
            # every resync polls /v2/deployments once; the first table no longer waits for it
            await rec.wait_for(
                lambda: any(r[1] == "/v2/deployments" for r in emulator.requests), "the resync's deployments poll"
            )
            requests_before = len(emulator.requests)
            emulator.set_task_state(tasks[0], "TASK_KILLING")
            await rec.wait_for(
                lambda: backend_states(rec.table).get(tasks[0]) == "drain", "a draining backend"
            )
            # the data plane heard of the drain first: before the table that shows it, and before
            # any request reached Marathon
            call = rec.log.index(("backend", (tasks[0], "drain")))
            shows = next(i for i, (kind, t) in enumerate(rec.log) if kind == "table" and
                         backend_states(t).get(tasks[0]) == "drain")
            assert call < shows
            seen = rec.requests_at_call[rec.backend_calls.index((tasks[0], "drain"))]
            assert seen[requests_before:] == []
            assert backend_states(rec.table) == {tasks[0]: "drain", tasks[1]: "ready", tasks[2]: "ready"}


async def test_burst_of_events_is_coalesced() -> None:
    n = 300
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], coalesce_ms=50)
        async with running(provider, rec):
            await rec.wait_for(lambda: rec.table is not None, "the first table")
            before = len(rec.tables)
            start = time.monotonic()
            ids = {emulator.add_task("/web", [20000 + i]) for i in range(n)}
            await rec.wait_backends(ids)
            elapsed = time.monotonic() - start
            # at most one table per 50 ms window, however many of the 2n events it held
            published = len(rec.tables) - before
            assert published <= elapsed / 0.05 + 2
            assert published < n // 5
            # each app named by the burst was refetched a few times, not once per event
            assert len(fetches(emulator, "/v2/apps/web")) <= n // 10
            latency = provider.status().event_latency_ms
            assert latency is not None and 0 <= latency < 10_000


async def test_stalled_stream_reconnects_and_resync_heals() -> None:
    async with MarathonEmulator(heartbeat_interval=0.1) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], idle_timeout=0.6)
        async with running(provider, rec):
            await rec.wait_backends({first})
            emulator.stall_streams()
            # changes made while the stream is silent: no event reaches the provider
            second = emulator.add_task("/web", [31002])
            emulator.set_task_state(first, "TASK_FAILED")
            # the idle deadline drops the silent stream; the resync after reconnecting heals
            await rec.wait_backends({second})
            assert provider.status().reconnects >= 1
            assert emulator.streams_opened >= 2
            emulator.stall_streams(False)
            third = emulator.add_task("/web", [31003])
            await rec.wait_backends({second, third})


async def test_dropped_stream_reconnects_and_resync_heals() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], initial_backoff=0.5)
        async with running(provider, rec):
            await rec.wait_backends({first})
            before = provider.status()
            emulator.drop_streams()
            # Added before the provider can be back (no await in between), and without an event: only
            # the resync of the reconnect can tell it. (The reconnect's jittered backoff may be a few
            # ms, too short for a poll of status().connected to see the gap.)
            second = emulator.add_task("/web", [31002], emit=False)
            await wait_until(lambda: provider.status().reconnects > before.reconnects, "a reconnect")
            await rec.wait_backends({first, second})
            assert provider.status().resyncs > before.resyncs


async def test_failover_first_member_dead() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        dead = MarathonEmulator()
        dead_url = await dead.start()
        await dead.stop()  # a port nobody listens on any more
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([dead_url, emulator.url])
        async with running(provider, rec):
            await rec.wait_backends({first})
            second = emulator.add_task("/web", [31002])
            await rec.wait_backends({first, second})
            assert provider.status().leader == emulator.url
            assert provider.client.members[0] == emulator.url  # the last good member is tried first


async def test_failover_standby_redirects_to_leader() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as leader:
        standby = await started()
        try:
            standby.set_standby(leader.url)
            leader.load_app(web_app())
            first = leader.add_task("/web", [31001], emit=False)
            rec = Recorder([leader])
            provider = make_provider([standby.url])
            async with running(provider, rec):
                await rec.wait_backends({first})
                # the standby answered the stream with a 302, and the leader served it
                assert [p for m, p, h in standby.requests if p.startswith("/v2/events")]
                assert leader.streams_opened == 1 and provider.status().connected
                assert provider.status().leader == leader.url
                second = leader.add_task("/web", [31002])
                await rec.wait_backends({first, second})
        finally:
            await standby.stop()


async def test_server_errors_keep_the_last_good_table() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], resync_interval=0.2)
        async with running(provider, rec):
            await rec.wait_backends({first})
            published = len(rec.tables)
            emulator.fail_with(500)
            emulator.drop_streams()
            failures = provider.status().resync_failures
            await wait_until(lambda: provider.status().resync_failures >= failures + 3, "failing resyncs")
            assert len(rec.tables) == published  # nothing published from a failed fetch
            assert backend_ids(provider.table()) == {first}
            assert "500" in (provider.status().last_resync_error or "")
            emulator.fail_with(None)
            second = emulator.add_task("/web", [31002], emit=False)
            await rec.wait_backends({first, second})
            assert all(backend_ids(t) for t in rec.tables)  # never an empty table


async def test_marathon_down_at_start_publishes_nothing_then_recovers() -> None:
    emulator = MarathonEmulator(heartbeat_interval=0.2)
    emulator.load_app(web_app())
    first = emulator.add_task("/web", [31001], emit=False)
    url = await emulator.start()
    emulator.fail_with(503)
    rec = Recorder([emulator])
    provider = make_provider([url])
    try:
        async with running(provider, rec):
            await wait_until(lambda: provider.status().resync_failures >= 1, "a failed resync")
            assert rec.tables == [] and not provider.status().synced
            emulator.fail_with(None)
            await rec.wait_backends({first})
    finally:
        await emulator.stop()


async def test_malformed_event_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fastlb.marathon")
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url])
        async with running(provider, rec):
            await rec.wait_backends({first})
            emulator.emit("status_update_event", b'{"taskId": "web.1", "taskStatus": TASK_RUNN')
            emulator.emit_raw(b"event: status_update_event\r\ndata: \xff\xfe{{{\r\n\r\n")
            second = emulator.add_task("/web", [31002])
            await rec.wait_backends({first, second})
            assert provider.status().malformed_events == 2
            assert provider.status().connected and provider.status().reconnects == 0
        assert "not JSON" in caplog.text


async def test_malformed_apps_payload_keeps_the_table(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fastlb.marathon")
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url])
        async with running(provider, rec):
            await rec.wait_backends({first})
            published = len(rec.tables)
            emulator.tasks["/web"][first]["ports"] = "not a list"
            assert not await provider.resync()
            assert len(rec.tables) == published
            assert "ports" in (provider.status().last_resync_error or "")
            emulator.tasks["/web"][first]["ports"] = [31001]
            assert await provider.resync()


async def test_poll_mode() -> None:
    async with MarathonEmulator() as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], sse=False, poll_interval=0.2)
        async with running(provider, rec):
            await rec.wait_backends({first})
            second = emulator.add_task("/web", [31002], emit=False)
            await rec.wait_backends({first, second})
            assert emulator.streams_opened == 0
            assert not fetches(emulator, "/v2/events")
            assert provider.status().mode == "poll" and not provider.status().connected


async def test_basic_auth() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.require_basic_auth("lb", "s3:cret")
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], auth=BasicAuth.parse("lb:s3:cret"))
        async with running(provider, rec):
            await rec.wait_backends({first})
            second = emulator.add_task("/web", [31002])
            await rec.wait_backends({first, second})
            assert provider.status().connected


async def test_wrong_credentials_publish_nothing() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.require_basic_auth("lb", "right")
        emulator.load_app(web_app())
        emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], auth=BasicAuth("lb", "wrong"))
        async with running(provider, rec):
            await wait_until(lambda: provider.status().resync_failures >= 1, "a refused resync")
            assert "401" in (provider.status().last_resync_error or "")
            assert rec.tables == [] and not provider.status().connected


async def test_deployments_polled_while_one_runs() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        app = web_app()
        app["readinessChecks"] = [READINESS_CHECK]  # readiness makes a deployment worth polling
        emulator.load_app(app)
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], deployments_interval=0.1)
        async with running(provider, rec):
            await rec.wait_backends({first})
            await wait_until(lambda: fetches(emulator, "/v2/deployments"), "the check after resync")
            await asyncio.sleep(0.3)
            idle = len(fetches(emulator, "/v2/deployments"))  # none running: no more polling
            dep = emulator.start_deployment(["/web"])
            await wait_until(
                lambda: len(fetches(emulator, "/v2/deployments")) >= idle + 3, "deployment polls"
            )
            emulator.finish_deployment(dep)
            await asyncio.sleep(0.4)
            done = len(fetches(emulator, "/v2/deployments"))
            await asyncio.sleep(0.4)
            assert len(fetches(emulator, "/v2/deployments")) == done


async def test_hostnames_resolved_asynchronously() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        task = emulator.add_task("/web", [31001], host="localhost", emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url])
        async with running(provider, rec):
            # the first build does not know the name yet; its resolution triggers a rebuild
            await rec.wait_backends({task})
            [service] = [s for s in rec.table.services if s.backends]
            assert service.backends[0].address == "127.0.0.1:31001"


async def test_events_during_a_resync_are_not_undone_by_its_older_snapshot() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        second = emulator.add_task("/web", [31002], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url])
        async with running(provider, rec):
            await rec.wait_backends({first, second})
            emulator.delay_snapshots(1.0)
            snapshots = len(fetches(emulator, "/v2/apps?"))
            resync = asyncio.create_task(provider.resync())
            await wait_until(lambda: len(fetches(emulator, "/v2/apps?")) > snapshots, "the resync request")
            emulator.set_task_state(first, "TASK_KILLED")  # newer than the snapshot on its way
            await rec.wait_backends({second})
            assert await resync
            await asyncio.sleep(0.2)  # a publish of the stale snapshot would come within this
            assert all(first not in backend_ids(t) for t in rec.tables[rec.tables.index(rec.table):])
            assert backend_ids(provider.table()) == {second}


async def test_readiness_polled_from_deployments() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        app = web_app()
        app["readinessChecks"] = [READINESS_CHECK]
        emulator.load_app(app)
        old = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], deployments_interval=0.1)
        async with running(provider, rec):
            await rec.wait_backends({old})
            emulator.update_app("/web", env={"V": "2"})  # a new version...
            emulator.start_deployment(["/web"])  # ...rolled out with readiness checks
            await wait_until(lambda: len(fetches(emulator, "/v2/apps/web")) >= 1, "the app refetch")
            new = emulator.add_task("/web", [31002])
            emulator.set_readiness(new, False)
            await wait_until(lambda: provider.status().events.get("status_update_event", 0) >= 1, "the event")
            await asyncio.sleep(0.5)
            assert backend_ids(rec.table) == {old}  # running, not ready: not served
            emulator.set_readiness(new, True)  # no event tells of this: only the poll sees it
            await rec.wait_backends({old, new})


async def test_late_hostname_resolution_rebuilds() -> None:
    gate = asyncio.Event()
    answers = {"agent-1.test": "127.0.0.1"}

    async def slow_lookup(name: str) -> str | None:
        await gate.wait()
        return answers.get(name)

    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        on_ip = emulator.add_task("/web", [31001], emit=False)
        on_name = emulator.add_task("/web", [31002], host="agent-1.test", emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], dns_wait=0.1, dns_lookup=slow_lookup, dns_ttl=0.3)
        async with running(provider, rec):
            # the lookup outlasts dns_wait: the table goes out without that task...
            await rec.wait_backends({on_ip})
            gate.set()
            # ...and the answer brings it in, at the address resolved
            await rec.wait_backends({on_ip, on_name})
            addresses = {b.address for s in rec.table.services for b in s.backends}
            assert addresses == {"127.0.0.1:31001", "127.0.0.1:31002"}
            # a TTL refresh that brings another address moves the backend (seen at the next build)
            answers["agent-1.test"] = "127.0.0.2"
            await asyncio.sleep(0.4)
            await provider.resync()
            await rec.wait_for(
                lambda: "127.0.0.2:31002" in {b.address for s in rec.table.services for b in s.backends},
                "the new address",
            )


async def test_rolling_restart_sequence_from_fixtures() -> None:
    """Marathon's frames for a one-instance replacement (fixtures), over the emulator's stream."""
    old = "shop_web.instance-0a1b2c3f-8452-11e9-bc42-526af7764f64._app.1"
    new = "shop_web.instance-3f0c1c2e-85e6-11e9-bc42-526af7764f64._app.1"
    [app] = load_fixture("v2_apps_embed_tasks_host.json")["apps"]
    final = copy.deepcopy(app)
    final["tasks"] = [t for t in app["tasks"] if t["id"] != old and t["state"] == "TASK_RUNNING"]
    final["deployments"], final["readinessCheckResults"] = [], []
    start = copy.deepcopy(app)
    start["tasks"] = [dict(t, state="TASK_RUNNING") for t in app["tasks"] if not t["id"].startswith(new[:24])]
    start["deployments"], start["readinessCheckResults"] = [], []

    async def agents(name: str) -> str | None:  # agent-N.example.internal is 127.0.0.N
        return "127.0.0." + name.split(".")[0].removeprefix("agent-")

    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(start)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], dns_lookup=agents)
        async with running(provider, rec):
            before = {t["id"] for t in start["tasks"]}
            await rec.wait_for(
                lambda: rec.table is not None and before <= backend_ids(rec.table), "the start"
            )
            emulator.load_app(final)  # Marathon's snapshots are never older than its events
            for frame in load_fixture("sse_sequence_rolling_restart.json"):
                emulator.emit(frame["event"], json.dumps(frame["data"]).encode())
            after = {t["id"] for t in final["tasks"]}
            await rec.wait_for(
                lambda: after <= backend_ids(rec.table) and old not in backend_ids(rec.table), "the end"
            )
            drained = [b for b, s in rec.backend_calls if s == "drain"]
            removed = [b for b, s in rec.backend_calls if s == "maint"]
            assert drained and all(b.startswith(old) for b in drained)
            assert set(drained) <= set(removed)
            drain_at = rec.log.index(("backend", (drained[0], "drain")))
            assert drain_at < rec.log.index(("backend", (drained[0], "maint")))
            assert provider.status().malformed_events == 0
            events = provider.status().events
            assert "group_change_success" not in events  # not asked for: filtered by Marathon
            assert sum(events.values()) == 17 + 1  # the other frames, and our own attach
            addresses = {b.address for s in rec.table.services for b in s.backends}
            assert {"127.0.0.4:31877", "127.0.0.1:31012"} <= addresses


async def test_a_failing_consumer_does_not_stop_the_provider() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        calls = []

        def bad_on_change(table) -> None:
            calls.append(table)
            if len(calls) == 1:
                raise RuntimeError("the data plane refused the table")
            rec.on_change(table)

        def bad_on_backend_state(backend_id: str, state: str) -> None:
            raise RuntimeError("no such backend")

        provider = make_provider([emulator.url])
        task = asyncio.create_task(provider.run(bad_on_change, bad_on_backend_state))
        try:
            await wait_until(lambda: len(calls) == 1, "the first table")
            emulator.set_task_state(first, "TASK_KILLING")
            second = emulator.add_task("/web", [31002])
            await rec.wait_backends({first, second})
            assert provider.status().callback_errors == 2
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_marathon_gone_then_back() -> None:
    emulator = MarathonEmulator(heartbeat_interval=0.2)
    emulator.load_app(web_app())
    first = emulator.add_task("/web", [31001], emit=False)
    url = await emulator.start()
    port = int(url.rsplit(":", 1)[1])
    rec = Recorder([emulator])
    provider = make_provider([url], resync_interval=0.3)
    async with running(provider, rec):
        await rec.wait_backends({first})
        published = len(rec.tables)
        await emulator.stop()  # the whole cluster is gone: connections refused
        await wait_until(lambda: not provider.status().connected, "the stream to go")
        failures = provider.status().resync_failures
        await wait_until(lambda: provider.status().resync_failures >= failures + 2, "failed resyncs")
        assert len(rec.tables) == published and backend_ids(provider.table()) == {first}
        back = MarathonEmulator(heartbeat_interval=0.2)  # a new leader, at the same address
        back.load_app(web_app())
        second = back.add_task("/web", [31002], emit=False)
        await back.start(port=port)
        try:
            await rec.wait_backends({second})
            await wait_until(lambda: provider.status().connected, "the stream to come back")
        finally:
            await back.stop()


async def test_failed_refetch_is_retried() -> None:
    async with MarathonEmulator(heartbeat_interval=0.2) as emulator:
        emulator.load_app(web_app())
        first = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url])  # the periodic resync (60 s) is out of reach
        async with running(provider, rec):
            await rec.wait_backends({first})
            emulator.fail_with(500, events=False)
            refetches = len(fetches(emulator, "/v2/apps/web"))
            emulator.update_app("/web", portDefinitions=[{"port": 10005, "name": "p0", "protocol": "tcp"}])
            await wait_until(lambda: len(fetches(emulator, "/v2/apps/web")) >= refetches + 2, "retries")
            assert {s.name for s in rec.table.services} == {"web_10000"}
            emulator.fail_with(None)
            await rec.wait_for(lambda: {s.name for s in rec.table.services} == {"web_10005"}, "new port")
            assert backend_ids(rec.table) == {first}
