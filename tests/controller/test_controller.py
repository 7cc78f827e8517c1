"""The controller against a test double of the data plane: merging, overrides, publish, reload, drain."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from fastlb import config, server, spec
from fastlb.controller import Controller
from fastlb.marathon.args import MarathonArgs, marathon_provider
from fastlb.merge import merge_tables
from fastlb.overrides import Override, apply_overrides
from fastlb.static_provider import StaticProvider

from support.fake_dataplane import FakeDataPlane


def table(*services: spec.Service, listeners: tuple[spec.Listener, ...] = (), routes=()) -> spec.RouteTable:
    return spec.RouteTable(services=services, listeners=listeners, http_routes=routes)


def svc(name: str, *addresses: str, **kw: Any) -> spec.Service:
    return spec.Service(name=name, backends=tuple(spec.Backend(id=a, address=a) for a in addresses), **kw)


def listen(address: str, service: str = "", kind: str = "service") -> spec.Listener:
    return spec.Listener(address=address, service=service, kind=kind)  # type: ignore[arg-type]


class ListProvider:
    """A provider that hands over the tables a test gives it."""

    ready_at_start = True

    def __init__(self, first: spec.RouteTable | None = None) -> None:
        self.first = first
        self.on_change = None
        self.on_state = None
        self.resyncs = 0
        self.running = asyncio.Event()

    async def run(self, on_change, on_backend_state) -> None:
        self.on_change, self.on_state = on_change, on_backend_state
        self.running.set()
        await asyncio.Event().wait()

    async def resync(self) -> None:
        self.resyncs += 1

    def table(self):
        return self.first

    def app_errors(self):
        return ["app /bad: HAPROXY_0_PORT is not a port"]

    def status(self):
        return {"connected": True}


# -- merge (pure) ----------------------------------------------------------------------------------


def test_merge_keeps_everything_without_clashes() -> None:
    a = table(svc("a", "10.0.0.1:1"), listeners=(listen("127.0.0.1:1", "a"), listen("0.0.0.0:80", kind="vhost")),
              routes=(spec.HttpRoute(host="a.com", service="a"),))
    b = table(svc("b", "10.0.0.2:1"), listeners=(listen("127.0.0.1:2", "b"), listen("0.0.0.0:80", kind="vhost")),
              routes=(spec.HttpRoute(host="b.com", service="b"),))
    merged, errors = merge_tables([("static", a), ("marathon", b)])
    assert errors == []
    assert [s.name for s in merged.services] == ["a", "b"]
    assert [x.address for x in merged.listeners] == ["127.0.0.1:1", "0.0.0.0:80", "127.0.0.1:2"]
    assert [r.host for r in merged.http_routes] == ["a.com", "b.com"]


def test_merge_skips_the_later_part_of_a_clash() -> None:
    a = table(svc("web", "10.0.0.1:1"), listeners=(listen("127.0.0.1:1", "web"),))
    b = table(
        svc("web", "10.0.0.9:1"), svc("other", "10.0.0.1:1", "10.0.0.2:1"), svc("third", "10.0.0.3:1"),
        listeners=(listen("127.0.0.1:1", "other"), listen("127.0.0.1:3", "third"), listen("0.0.0.0:3", "other")),
        routes=(spec.HttpRoute(host="web.com", service="web"), spec.HttpRoute(host="o.com", service="other")),
    )
    merged, errors = merge_tables([("static", a), ("marathon", b)])
    assert [s.name for s in merged.services] == ["web", "other", "third"]
    assert merged.services[0].backends[0].address == "10.0.0.1:1"
    assert [b.id for b in merged.services[1].backends] == ["10.0.0.2:1"]
    assert [x.address for x in merged.listeners] == ["127.0.0.1:1", "127.0.0.1:3"]
    assert [r.host for r in merged.http_routes] == ["o.com"]
    assert errors == [
        "marathon: service 'web' skipped: the name is already static's",
        "marathon: backend '10.0.0.1:1' of 'other' skipped: the id is already static service 'web''s",
        "marathon: listener 127.0.0.1:1 (service 'other') skipped: 127.0.0.1:1 is already static's (service 'web')",
        "marathon: listener 0.0.0.0:3 (service 'other') skipped: 127.0.0.1:3 is already marathon's (service 'third')",
    ]


def test_merge_keeps_a_backend_one_provider_names_in_several_services() -> None:
    shared = spec.Backend(id="app-1", address="10.0.0.1:1")
    a = table(spec.Service(name="l4", backends=(shared,)), spec.Service(name="l7", mode="http", backends=(shared,)))
    b = table(svc("other", "10.0.0.2:1"), spec.Service(name="later", backends=(shared,)))
    merged, errors = merge_tables([("static", a), ("marathon", b)])
    assert [[x.id for x in s.backends] for s in merged.services] == [["app-1"], ["app-1"], ["10.0.0.2:1"], []]
    assert errors == ["marathon: backend 'app-1' of 'later' skipped: the id is already static service 'l4''s"]


def test_overrides_replace_state_and_weight() -> None:
    t = table(svc("a", "10.0.0.1:1", "10.0.0.2:1"))
    out = apply_overrides(t, {"10.0.0.2:1": Override(state="drain"), "x": Override(weight=3)})
    assert [(b.state, b.weight) for b in out.services[0].backends] == [("ready", 1), ("drain", 1)]
    assert apply_overrides(t, {}) is t


# -- the controller ----------------------------------------------------------------------------------


def run(coro):
    return asyncio.run(coro)


def test_publish_only_when_the_table_changes_and_measures_it() -> None:
    async def go() -> None:
        dp = FakeDataPlane()
        p = ListProvider(table(svc("a", "10.0.0.1:1"), listeners=(listen("127.0.0.1:1", "a"),)))
        c = Controller(dp, {"static": p})
        c.start()
        assert dp.started and dp.generation == 1 and c.swap.count == 1 and c.swap.last_s > 0
        await p.running.wait()
        p.on_change(p.first)  # the same table again: no swap
        p.on_change(table(svc("a", "10.0.0.2:1")))
        p.on_change(table(svc("a", "10.0.0.3:1")))  # one burst, one swap
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert dp.generation == 2
        assert dp.published[-1].services[0].backends[0].address == "10.0.0.3:1"
        assert c.serving == dp.published[-1]
        c.request_stop()
        await c.drain()

    run(go())


def test_a_refused_table_keeps_the_last_good_one(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        dp = FakeDataPlane()
        good = table(svc("a", "10.0.0.1:1"))
        p = ListProvider(good)
        c = Controller(dp, {"static": p})
        c.start()
        await p.running.wait()
        dp.refuse_next = OSError(98, "Address already in use")
        p.on_change(table(svc("b", "10.0.0.1:1")))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert c.serving == good and dp.generation == 1 and c.swap.failed == 1
        assert "swap_failed" in caplog.text and "Address already in use" in caplog.text
        await c.drain()

    with caplog.at_level(logging.INFO, logger="fastlb"):
        run(go())


def test_the_first_table_refused_is_fatal() -> None:
    dp = FakeDataPlane()
    dp.refuse_next = OSError(98, "Address already in use")
    c = Controller(dp, {"static": ListProvider(table(svc("a", "10.0.0.1:1")))})
    with pytest.raises(OSError):
        c.start()  # publishes the first table before anything runs
    assert not dp.started and c.serving is None


def test_overrides_persist_across_publishes_and_are_pruned() -> None:
    async def go() -> None:
        dp = FakeDataPlane()
        p = ListProvider(table(svc("a", "10.0.0.1:1", "10.0.0.2:1")))
        c = Controller(dp, {"static": p})
        c.start()
        await p.running.wait()
        assert c.set_state("10.0.0.1:1", "maint")
        assert c.set_weight("10.0.0.2:1", 7)
        assert not c.set_state("10.9.9.9:1", "drain")
        with pytest.raises(ValueError):
            c.set_state("10.0.0.1:1", "sleepy")
        with pytest.raises(ValueError):
            c.set_weight("10.0.0.1:1", 257)
        assert dp.backends["10.0.0.1:1"]["state"] == "maint" and dp.backends["10.0.0.2:1"]["weight"] == 7
        # A new table from the provider (a backend added) keeps what was set by hand.
        p.on_change(table(svc("a", "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1")))
        await asyncio.sleep(0)
        published = dp.published[-1].services[0].backends
        assert [(b.state, b.weight) for b in published] == [("maint", 1), ("ready", 7), ("ready", 1)]
        assert dp.backends["10.0.0.1:1"]["state"] == "maint"
        # A provider saying "ready" does not undo the operator's maint.
        p.on_state("10.0.0.1:1", "ready")
        assert dp.backends["10.0.0.1:1"]["state"] == "maint"
        p.on_state("10.0.0.3:1", "drain")
        assert dp.backends["10.0.0.3:1"]["state"] == "drain"
        p.on_state("10.0.0.3:1", "down")
        assert dp.backends["10.0.0.3:1"]["health"] == "down"
        # Clearing goes back to the provider's values.
        assert c.clear_override("10.0.0.1:1")
        assert dp.backends["10.0.0.1:1"]["state"] == "ready"
        # A backend that leaves takes its override with it.
        p.on_change(table(svc("a", "10.0.0.1:1")))
        await asyncio.sleep(0)
        assert "10.0.0.2:1" not in c.overrides
        await c.drain()

    run(go())


def test_static_provider_reload_keeps_the_last_good_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "lb.toml"
    f.write_text('[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\nbackends = ["10.0.0.1:1"]\n')

    async def go() -> None:
        dp = FakeDataPlane()
        static = StaticProvider(str(f))
        c = Controller(dp, {"static": static})
        c.start()
        await asyncio.sleep(0)
        f.write_text('[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\nbackends = ["10.0.0.2:1"]\n')
        await c.resync()
        await asyncio.sleep(0)
        assert dp.generation == 2 and c.serving.services[0].backends[0].address == "10.0.0.2:1"
        f.write_text('[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\nbackends = ["10.0.0.3"]\n')
        await c.resync()
        await asyncio.sleep(0)
        assert dp.generation == 2 and c.serving.services[0].backends[0].address == "10.0.0.2:1"
        assert static.status()["rejected"] == 1
        assert static.status()["last_problems"] == ['services[0].backends[0]: "10.0.0.3" is not ip:port']
        await c.drain()

    with caplog.at_level(logging.INFO, logger="fastlb"):
        run(go())
    assert 'config_rejected file=' in caplog.text and 'is not ip:port' in caplog.text


def test_drain_waits_for_connections_then_closes_what_is_left() -> None:
    async def go() -> None:
        dp = FakeDataPlane()
        c = Controller(dp, {"static": ListProvider(table(svc("a", "10.0.0.1:1")))}, drain_timeout=5)
        c.start()
        dp.active = 2
        task = asyncio.create_task(c.drain())
        await asyncio.sleep(0.2)
        assert not dp.accepting and not task.done() and c.draining and not c.serving_now
        dp.active = 0  # the last connection ends by itself
        await asyncio.wait_for(task, 5)
        assert dp.stopped and not dp.closed_all

        dp2 = FakeDataPlane()
        c2 = Controller(dp2, {"static": ListProvider(table(svc("a", "10.0.0.1:1")))}, drain_timeout=0.2)
        c2.start()
        dp2.active = 1
        await asyncio.wait_for(c2.drain(), 5)
        assert dp2.closed_all and dp2.stopped

    run(go())


def test_build_refuses_a_public_admin_without_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTLB_ADMIN_TOKEN", raising=False)
    with pytest.raises(server.StartError, match="not a loopback address"):
        server.build(server.RunOptions(admin="0.0.0.0:9090"), FakeDataPlane)
    c, admin, token = server.build(server.RunOptions(admin="0.0.0.0:9090", admin_token="s3cret"), FakeDataPlane)
    assert (admin, token) == ("0.0.0.0:9090", "s3cret")
    monkeypatch.setenv("FASTLB_ADMIN_TOKEN", "from-env")
    c, admin, token = server.build(server.RunOptions(admin="0.0.0.0:9090"), FakeDataPlane)
    assert token == "from-env"


def test_build_takes_engine_settings_from_the_file_and_flags(tmp_path: Path) -> None:
    f = tmp_path / "lb.toml"
    f.write_text('[engine]\nworkers = 3\npipe_max = 10\n[admin]\nlisten = "127.0.0.1:9999"\n')
    c, admin, _ = server.build(server.RunOptions(config_path=str(f)), FakeDataPlane)
    assert c.dataplane.workers == 3 and c.dataplane.settings["pipe_max"] == 10 and admin == "127.0.0.1:9999"
    c, admin, _ = server.build(server.RunOptions(config_path=str(f), workers=5, admin="127.0.0.1:1"), FakeDataPlane)
    assert c.dataplane.workers == 5 and admin == "127.0.0.1:1"
    c, admin, _ = server.build(server.RunOptions(), FakeDataPlane)  # the embedded default
    assert c.dataplane.workers == server.cpu_count() and admin == "127.0.0.1:9090"
    assert c.providers["static"].table() == config.load_default().table
    f.write_text("[engine]\nworkers = -1\n")
    with pytest.raises(server.StartError, match=r"engine.workers: -1 is out of range"):
        server.build(server.RunOptions(config_path=str(f)), FakeDataPlane)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_signals(tmp_path: Path) -> None:
    """serve(): the admin API up, SIGHUP re-reads the file, SIGTERM drains and returns 0."""
    import os
    import signal

    import aiohttp

    f = tmp_path / "lb.toml"
    f.write_text('[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\nbackends = ["10.0.0.1:1"]\n')
    port = free_port()

    async def go() -> int:
        c, admin_address, token = server.build(
            server.RunOptions(config_path=str(f), admin=f"127.0.0.1:{port}", drain_timeout=5), FakeDataPlane
        )
        task = asyncio.create_task(server.serve(c, admin_address, token))
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/_health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            f.write_text('[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\nbackends = ["10.0.0.2:1"]\n')
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(200):
                if c.dataplane.generation == 2:
                    break
                await asyncio.sleep(0.02)
            assert c.serving.services[0].backends[0].address == "10.0.0.2:1"
            c.dataplane.active = 1
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert not task.done() and not c.dataplane.accepting
            async with http.get(f"http://127.0.0.1:{port}/_health") as r:
                assert r.status == 503  # draining
            c.dataplane.active = 0
            rc = await asyncio.wait_for(task, 10)
        assert c.dataplane.stopped and not c.dataplane.closed_all
        return rc

    assert asyncio.run(go()) == 0


def test_marathon_provider_is_built_from_the_flags(tmp_path: Path) -> None:
    """The Marathon provider gets marathon-lb's options under the names it declares."""
    from fastlb.marathon.auth import BasicAuth
    from fastlb.marathon.state import MarathonOptions

    args = MarathonArgs(
        urls=("http://127.0.0.1:8080", "http://127.0.0.2:8080"), groups=("*",), sse=False, poll_interval=5,
        strict_mode=True, health_check=True, auth_credentials="u:p:q", bind_addr="127.0.0.1", http_port=0,
        appid_port=0, min_serv_port_ip_per_task=0, max_serv_port_ip_per_task=0, max_backoff=7,
    )
    p = marathon_provider(args)
    assert p.options == MarathonOptions(
        groups=("*",), strict_mode=True, health_check=True, bind_addr="127.0.0.1", http_port=0, appid_port=0,
        min_serv_port_ip_per_task=0, max_serv_port_ip_per_task=0,
    )
    assert (p.sse, p.poll_interval, p.max_backoff) == (False, 5, 7)
    assert p.client.members == ("http://127.0.0.1:8080", "http://127.0.0.2:8080")
    assert isinstance(p.client.auth, BasicAuth) and p.client.auth.user == "u"
    f = tmp_path / "creds"
    f.write_text("\nfile-user:secret\n")
    p = marathon_provider(MarathonArgs(urls=("http://127.0.0.1:1",), auth_credential_file=str(f)))
    assert p.client.auth.user == "file-user"


def test_unusable_marathon_credentials_stop_the_start(tmp_path: Path) -> None:
    for args, message in (
        (MarathonArgs(urls=("http://127.0.0.1:1",), auth_credentials="nocolon"), "user:password"),
        (
            MarathonArgs(urls=("http://127.0.0.1:1",), auth_credential_file=str(tmp_path / "none")),
            "No such file",
        ),
        (MarathonArgs(urls=("http://127.0.0.1:1",), dcos_auth_credentials="{not json"), "not JSON"),
    ):
        with pytest.raises(server.StartError, match=message):
            server.build(server.RunOptions(marathon=args), FakeDataPlane)


def test_a_second_signal_while_draining_closes_at_once() -> None:
    async def go() -> None:
        dp = FakeDataPlane()
        c = Controller(dp, {"static": ListProvider(table(svc("a", "10.0.0.1:1")))}, drain_timeout=60)
        c.start()
        dp.active = 3
        c.request_stop()
        task = asyncio.create_task(c.drain())
        await asyncio.sleep(0.1)
        assert not task.done() and not dp.closed_all
        c.request_stop()
        await asyncio.wait_for(task, 5)
        assert dp.closed_all and dp.stopped

    run(go())


def test_a_provider_not_ready_at_start_serves_from_its_first_table() -> None:
    """Marathon-like: nothing is published (and /_health says 503) until its first on_change."""

    class Later(ListProvider):
        ready_at_start = False

    async def go() -> None:
        dp = FakeDataPlane()
        p = Later(table(svc("ignored", "10.0.0.9:1")))
        c = Controller(dp, {"marathon": p})
        c.start()
        await p.running.wait()
        assert dp.started and dp.generation == 0 and not c.serving_now
        p.on_change(table(svc("a", "10.0.0.1:1")))
        await asyncio.sleep(0)
        assert dp.generation == 1 and c.serving_now and c.serving.services[0].name == "a"
        await c.drain()

    run(go())


def test_require_pass_holds_a_new_backend_down_until_its_first_check_passes() -> None:
    from fastlb.emulator.backends import Echo, refused_address

    check = spec.HealthCheck(kind="tcp", interval_ms=50, rise=3, fall=3, require_pass=True)

    async def go(live: str, dead: str) -> None:
        dp = FakeDataPlane()
        backends = (spec.Backend(id=live, address=live, check=check), spec.Backend(id=dead, address=dead, check=check))
        c = Controller(dp, {"static": ListProvider(table(spec.Service(name="a", backends=backends)))})
        c.start()
        assert dp.backends[live]["health"] == "down" and dp.backends[dead]["health"] == "down"
        for _ in range(500):
            if dp.backends[live]["health"] == "up":
                break
            await asyncio.sleep(0.02)
        assert dp.backends[live]["health"] == "up" and dp.backends[dead]["health"] == "down"
        await c.drain()

    with Echo() as e, refused_address() as dead:
        run(go(e.address, dead))


def test_a_passing_check_brings_back_a_backend_passive_health_took_down() -> None:
    from fastlb.emulator.backends import Echo

    check = spec.HealthCheck(kind="tcp", interval_ms=50, rise=2, fall=3)

    async def go(live: str) -> None:
        dp = FakeDataPlane()
        backends = (spec.Backend(id=live, address=live, check=check),)
        p = ListProvider(table(spec.Service(name="a", backends=backends)))
        c = Controller(dp, {"static": p})
        c.start()
        await p.running.wait()
        assert dp.backends[live]["health"] == "up"
        dp.backends[live]["health"] = "down"  # what the workers do after <fall> refused connects
        for _ in range(500):
            if dp.backends[live]["health"] == "up":
                break
            await asyncio.sleep(0.02)
        assert dp.backends[live]["health"] == "up"
        assert ("health", live, "up") in dp.calls
        await c.drain()

    with Echo() as e:
        run(go(e.address))


def test_a_publish_does_not_undo_a_passive_down() -> None:
    async def go() -> None:
        dp = FakeDataPlane()
        p = ListProvider(table(svc("a", "10.0.0.1:1")))
        c = Controller(dp, {"static": p})
        c.start()
        await p.running.wait()
        p.on_state("10.0.0.1:1", "up")  # the provider says up once (Marathon's own health)
        dp.backends["10.0.0.1:1"]["health"] = "down"  # passive health, in the workers
        p.on_change(table(svc("a", "10.0.0.1:1", "10.0.0.2:1")))
        await asyncio.sleep(0)
        assert dp.generation == 2
        assert dp.backends["10.0.0.1:1"]["health"] == "down"
        await c.drain()

    run(go())


def test_disabled_apps_and_reconnects_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    class Marathonish(ListProvider):
        errors: dict[str, str] = {}
        reconnects = 0

        def app_errors(self):
            return dict(self.errors)

        def status(self):
            import types

            return types.SimpleNamespace(reconnects=self.reconnects, event_latency_ms=None)

    async def go() -> None:
        p = Marathonish(table(svc("a", "10.0.0.1:1")))
        c = Controller(FakeDataPlane(), {"marathon": p})
        c.start()
        await p.running.wait()
        p.errors = {"/bad": "HAPROXY_0_PORT: 'x' is not a port"}
        p.on_change(table(svc("b", "10.0.0.1:1")))
        p.on_change(table(svc("c", "10.0.0.1:1")))  # the same error again: no second line
        p.reconnects = 1
        p.errors = {}
        p.on_change(table(svc("d", "10.0.0.1:1")))
        await c.drain()

    with caplog.at_level(logging.INFO, logger="fastlb"):
        run(go())
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count('app_disabled provider=marathon app=/bad error="HAPROXY_0_PORT: \'x\' is not a port"') == 1
    assert "app_enabled provider=marathon app=/bad" in lines
    assert "marathon_reconnect provider=marathon reconnects=1" in lines
