"""The controller's merge is kept up to date item by item (``TableMerger``) and gives what
``merge_tables`` gives from scratch, errors included, after every change of every sequence:
random tables drawn from small pools (so that names, backend ids and sockets clash, listeners are
shared, point at missing services or do not parse, and unchanged items come back as the same
objects), and the Marathon provider's tables after each event of the mixed workloads. Then the work
one task event costs is counted, not timed: one app built, two services re-counted by the merge,
no whole merge and no encode on a 2,000-app cluster."""

from __future__ import annotations

import json
import logging
import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import merge, spec
from fastlb.controller import Controller, backend_ids
from fastlb.marathon import incremental
from fastlb.marathon.state import MarathonOptions, MarathonState
from fastlb.merge import TableMerger, merge_tables

from . import workloads


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("fastlb").setLevel(logging.CRITICAL)  # bad apps and swaps are the point here
    yield
    logging.getLogger("fastlb").setLevel(logging.NOTSET)


_NAMES = [f"s{n}" for n in range(30)]


def _pools(rng: random.Random) -> dict[str, list]:
    """Items made once, so that tables drawn from them share objects the way a provider's do: per
    service name two versions of the service, its listener and its route; and odd items that clash,
    point nowhere or do not parse."""
    pools: dict[str, list] = {"noise": []}
    for n, name in enumerate(_NAMES):
        pools[name] = [
            spec.Service(
                name=name,
                backends=tuple(
                    spec.Backend(
                        id=f"{name}.{v}.{k}" if rng.random() < 0.97 else "shared-id",
                        address=f"10.0.{n}.{k}:80",
                        check=spec.HealthCheck() if rng.random() < 0.1 else None,
                    )
                    for k in range(rng.randrange(4))
                ),
                retries=v,
            )
            for v in range(2)
        ]
        ip = "0.0.0.0" if rng.random() < 0.1 else "127.0.0.1"
        pools[name + ":listener"] = [spec.Listener(address=f"{ip}:{1000 + n}", service=name)]
        pools[name + ":route"] = [spec.HttpRoute(host=f"{name}.example", service=name)]
    addresses = ["0.0.0.0:80", "127.0.0.1:80", "[::]:80", "[::1]:80", "127.0.0.1:1003", "0.0.0.0:1004",
                 "not-an-address", "127.0.0.1:01005"]
    for _ in range(12):
        kind = rng.choice(["service", "vhost", "appid"])
        pools["noise"].append(
            spec.Listener(
                address=rng.choice(addresses), kind=kind,  # type: ignore[arg-type]
                service=rng.choice(_NAMES) if kind == "service" else "",
            )
        )
    pools["noise"] += [spec.HttpRoute(host="nowhere.example", service="missing"), rng.choice(pools["s1"])]
    # The shared listener as separate, equal objects: a provider may hold it twice.
    pools["vhost"] = [spec.Listener(address="0.0.0.0:80", kind="vhost") for _ in range(3)]
    return pools


def _table(rng: random.Random, pools: dict[str, list], names: list[str]) -> spec.RouteTable:
    services, listeners, routes = [], [], []
    for name in names:
        if rng.random() < 0.5:
            services.append(rng.choice(pools[name]))
            if rng.random() < 0.9:
                listeners.append(pools[name + ":listener"][0])
            if rng.random() < 0.3:
                routes.append(pools[name + ":route"][0])
    if rng.random() < 0.5:
        listeners.insert(rng.randrange(len(listeners) + 1), rng.choice(pools["vhost"]))
    return spec.RouteTable(
        services=tuple(services), listeners=tuple(listeners), http_routes=tuple(routes),
        maxconn=rng.choice([0, 0, 100]),
    )


def _change(rng: random.Random, table: spec.RouteTable, pools: dict[str, list]) -> spec.RouteTable:
    """<table> with one service (and what goes with it) or one odd item changed, the rest the same
    objects."""
    services, listeners, routes = list(table.services), list(table.listeners), list(table.http_routes)
    roll = rng.random()
    if roll < 0.6 and services:  # a service changes: a new version, or it goes with its listener
        k = rng.randrange(len(services))
        name = services[k].name
        if rng.random() < 0.6:
            services[k] = rng.choice(pools[name])
        else:
            del services[k]
            listeners = [x for x in listeners if x.service != name]
            routes = [r for r in routes if r.service != name]
    elif roll < 0.8:  # a service comes, with its listener
        name = rng.choice(_NAMES)
        services.insert(rng.randrange(len(services) + 1), rng.choice(pools[name]))
        listeners.append(pools[name + ":listener"][0])
    elif roll < 0.9:  # an odd item comes
        item = rng.choice(pools["noise"] + pools["vhost"])
        target: list = listeners
        if isinstance(item, spec.Service):
            target = services
        elif isinstance(item, spec.HttpRoute):
            target = routes
        target.insert(rng.randrange(len(target) + 1), item)
    else:  # an odd item goes
        regular = {id(pools[name + ":listener"][0]) for name in _NAMES}
        odd = [n for n, x in enumerate(listeners) if id(x) not in regular]
        if odd:
            del listeners[rng.choice(odd)]
    return msgspec_replace(table, services=tuple(services), listeners=tuple(listeners), http_routes=tuple(routes))


def msgspec_replace(table: spec.RouteTable, **changes: object) -> spec.RouteTable:
    return msgspec.structs.replace(table, **changes)


def _assert_same(merger: TableMerger, parts: list[tuple[str, spec.RouteTable]]) -> None:
    got, errors = merger.merge(parts)
    want, want_errors = merge_tables(parts)
    assert spec.encode(got) == spec.encode(want)
    assert got == want
    assert errors == want_errors
    ids = merger.backend_ids()
    if ids is not None:
        assert set(ids) == backend_ids(got)
    checked = merger.health_checked()
    if checked is not None:
        assert checked == any(b.check is not None for s in got.services for b in s.backends)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_sequences_merge_as_from_scratch(seed: int) -> None:
    rng = random.Random(seed)
    pools = _pools(rng)
    names = ["static", "marathon", "third"]
    # Mostly names of their own per provider: clashes between them come now and then.
    tables = {name: _table(rng, pools, _NAMES[10 * n : 10 * n + 10]) for n, name in enumerate(names)}
    merger = TableMerger()
    order = names[:2]
    for _ in range(30):
        roll = rng.random()
        if roll < 0.8:
            name = rng.choice(order)
            tables[name] = _change(rng, tables[name], pools)
        elif roll < 0.87:
            n = rng.randrange(3)
            tables[names[n]] = _table(rng, pools, _NAMES[10 * n : 10 * n + 10])  # a whole new table
        elif roll < 0.95:
            order = rng.sample(names, rng.randrange(1, 4))  # providers come, go, change order
        else:
            name = rng.choice(order)
            t = tables[name]
            if t.services:  # the same object twice: not counted, merged from scratch
                tables[name] = msgspec_replace(t, services=(*t.services, t.services[0]))
        _assert_same(merger, [(name, tables[name]) for name in order])


def test_clean_tables_take_the_counted_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables that do not clash, even sharing a vhost listener, are merged without merge_tables."""
    whole = []
    monkeypatch.setattr(merge, "merge_tables", lambda parts: whole.append(1) or _real_merge(parts))
    static = spec.RouteTable(
        services=(spec.Service(name="a", backends=(spec.Backend(id="a1", address="10.0.0.1:1"),)),),
        listeners=(spec.Listener(address="0.0.0.0:80", kind="vhost"),
                   spec.Listener(address="127.0.0.1:81", service="a")),
    )
    services = tuple(
        spec.Service(name=f"m{n}", backends=(spec.Backend(id=f"m{n}.1", address=f"10.0.1.{n}:1"),)) for n in range(50)
    )
    marathon = spec.RouteTable(
        services=services,
        listeners=(spec.Listener(address="0.0.0.0:80", kind="vhost"),
                   *(spec.Listener(address=f"127.0.0.1:{1000 + n}", service=f"m{n}") for n in range(50))),
        http_routes=(spec.HttpRoute(host="m1.example", service="m1"),),
    )
    merger = TableMerger()
    for n in range(10):
        s = services[n]
        marathon = msgspec_replace(
            marathon,
            services=marathon.services[:n] + (msgspec_replace(s, retries=5),) + marathon.services[n + 1:],
        )
        parts = [("static", static), ("marathon", marathon)]
        got, errors = merger.merge(parts)
        assert (got, errors) == _real_merge(parts)
        if n:
            assert merger.touched == 2  # the service that went, the one that came
    assert whole == []


_real_merge = merge_tables


# -- the Marathon provider's tables, event by event ---------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_marathon_events_merge_as_from_scratch(seed: int) -> None:
    body = workloads.mixed_payload(300, seed)
    for options in workloads.OPTION_SETS.values():
        state = MarathonState(options, workloads.resolver)
        state.replace_all(body)
        merger = TableMerger()
        _assert_same(merger, [("static", workloads._STATIC), ("marathon", state.table())])
        for event_type, data in workloads.events_for(body, seed):
            state.apply_event(event_type, data)
            _assert_same(merger, [("static", workloads._STATIC), ("marathon", state.table())])
            _assert_same(merger, [("marathon", state.table())])
            # the apps that need /v2/deployments polled are kept as a set, not looked for per event
            apps = state.apps().values()
            assert state.needs_deployment_poll() == any(a.deployments and a.readiness_checks for a in apps)


# -- the work one event costs, counted ----------------------------------------------------------


def _event(app: int, n: int) -> bytes:
    return json.dumps(
        {
            "eventType": "status_update_event",
            "timestamp": workloads.LATER,
            "taskId": f"bench_app{app:05d}.instance-new{n}._app.1",
            "taskStatus": "TASK_RUNNING",
            "appId": f"/bench/app{app:05d}",
            "host": "10.0.99.0",
            "ipAddresses": [{"ipAddress": "10.0.99.0", "protocol": "IPv4"}],
            "ports": [31999],
            "version": workloads.STAMP,
        }
    ).encode()


class _DataPlane:
    """What the controller publishes on, kept: the tables."""

    generation = 0

    def __init__(self) -> None:
        self.published: list[spec.RouteTable] = []

    def publish(self, table: spec.RouteTable) -> int:
        self.published.append(table)
        return len(self.published)


@pytest.mark.parametrize("apps", [200, 2000])
def test_one_task_event_costs_one_app(apps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task event on a cluster of <apps> apps builds its app only, and the controller counts two
    services (the app's, before and after), runs no whole merge and encodes no table: the same
    work at 200 apps and at 2,000."""
    builds: list[str] = []
    real_candidates = incremental._mlb_candidates
    monkeypatch.setattr(
        incremental, "_mlb_candidates", lambda item, *a: builds.append(item.app.id) or real_candidates(item, *a)
    )
    whole: list[int] = []
    monkeypatch.setattr(merge, "merge_tables", lambda parts: whole.append(1) or _real_merge(parts))
    encodes: list[int] = []
    real_encode = spec.encode
    monkeypatch.setattr(spec, "encode", lambda table: encodes.append(1) or real_encode(table))

    options = MarathonOptions(bind_addr="127.0.77.1", http_port=0, https_port=0, appid_port=0)
    state = MarathonState(options, lambda host: host)
    state.replace_all(workloads.bench_payload(apps, tasks=1))
    dataplane = _DataPlane()
    controller = Controller(dataplane, {"marathon": None})  # type: ignore[arg-type,dict-item]
    controller.tables["marathon"] = state.table()
    assert controller.publish()
    merger = controller._merger
    for n in range(5):
        builds.clear()
        whole.clear()
        encodes.clear()
        state.apply_event("status_update_event", _event(n * 7 % apps, n))
        table = state.table()
        controller.tables["marathon"] = table
        assert controller.publish()
        assert builds == [f"/bench/app{n * 7 % apps:05d}"]
        assert merger.touched == 2
        assert whole == [] and encodes == []
        assert dataplane.published[-1] == _real_merge([("marathon", table)])[0]
