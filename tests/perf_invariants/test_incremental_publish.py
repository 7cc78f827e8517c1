"""What one Marathon task event costs, counted, not timed: the build makes no whole task index, the
publish compiles the one service that changed and shares every other compiled service, the listeners
and the routes with the table before, the same at 200 apps and at 2,000; and the table it publishes
serves what a publish from scratch serves."""

from __future__ import annotations

import json
import logging

import pytest

from fastlb import spec
from fastlb._core import DataPlane
from fastlb.controller import Controller
from fastlb.marathon import incremental
from fastlb.marathon.state import MarathonOptions, MarathonState

from . import workloads


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("fastlb").setLevel(logging.CRITICAL)
    yield
    logging.getLogger("fastlb").setLevel(logging.NOTSET)


def _event(app: int, n: int, state: str = "TASK_RUNNING") -> bytes:
    return json.dumps(
        {
            "eventType": "status_update_event",
            "timestamp": workloads.STAMP,
            "slaveId": "agent-x",
            "taskId": f"bench_app{app:05d}.instance-new{n}._app.1",
            "taskStatus": state,
            "appId": f"/bench/app{app:05d}",
            "host": "10.0.99.0",
            "ipAddresses": [{"ipAddress": "10.0.99.0", "protocol": "IPv4"}],
            "ports": [31000 + n],
            "version": workloads.STAMP,
        }
    ).encode()


@pytest.fixture
def dataplane() -> DataPlane:
    dp = DataPlane(1)
    dp.stop_accepting()  # compiles and swaps as usual, binds nothing: the ports are not the test's
    yield dp
    dp.stop()


def _served(dp: DataPlane) -> dict[str, tuple[str, ...]]:
    stats = dp.stats()
    out: dict[str, list[str]] = {name: [] for name in stats["services"]}
    for bid, b in stats["backends"].items():
        out[b["service"]].append(bid)
    return {name: tuple(sorted(ids)) for name, ids in out.items()}


@pytest.mark.parametrize("apps", [200, 2000])
def test_one_task_event_compiles_one_service(
    apps: int, dataplane: DataPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """... and walks no other app's tasks: the task index of the resync's table is made when the
    provider hands it over (warm), not by the first event."""
    options = MarathonOptions(bind_addr="127.0.77.1", http_port=0, https_port=0, appid_port=0)
    state = MarathonState(options, lambda host: host)
    state.replace_all(workloads.bench_payload(apps, tasks=1))
    controller = Controller(dataplane, {"marathon": None})  # type: ignore[dict-item]
    controller.tables["marathon"] = state.table()
    assert controller.publish()
    assert dataplane.last_publish["compiled"] == apps
    state.warm()
    whole: list[int] = []
    real_merge = incremental._TaskIndex._merge
    monkeypatch.setattr(incremental._TaskIndex, "_merge", lambda self, groups: whole.append(len(groups))
                        or real_merge(self, groups))
    for n in range(6):  # a task comes, then goes, on three apps
        app = n // 2 * 7 % apps
        state.apply_event("status_update_event", _event(app, n // 2, "TASK_KILLED" if n % 2 else "TASK_RUNNING"))
        table = state.table()
        controller.tables["marathon"] = table
        assert controller.publish()
        work = dataplane.last_publish
        assert work == {"services": apps, "compiled": 1, "listeners": "shared", "routes": "shared"}, n
        assert whole == [], n
        # what serves is the table's, service by service
        want = {s.name: tuple(sorted(b.id for b in s.backends)) for s in table.services}
        assert _served(dataplane) == want


def _service(name: str, backends: int, *, mode: str = "tcp", version: int = 0) -> spec.Service:
    return spec.Service(
        name=name,
        mode=mode,
        app_id=f"/{name}",
        backends=tuple(
            spec.Backend(id=f"{name}.{k}", address=f"10.1.{version}.{k}:80") for k in range(backends)
        ),
    )


def _table(services: list[spec.Service], **kw: object) -> spec.RouteTable:
    listeners = tuple(
        spec.Listener(address=f"127.0.0.1:{41000 + i}", service=s.name) for i, s in enumerate(services)
    )
    return spec.RouteTable(services=tuple(services), listeners=listeners, **kw)  # type: ignore[arg-type]


def test_what_changes_besides_services_is_built_again(dataplane: DataPlane) -> None:
    """A service that changes what the routes depend on (its mode), a new service, a new listener:
    compiled or built again, and nothing else."""
    services = [_service(f"s{i}", 2, mode="http" if i % 2 else "tcp") for i in range(20)]
    dataplane.publish(_table(services))
    assert dataplane.last_publish["compiled"] == 20
    services[3] = _service("s3", 2, mode="tcp")  # was http: the routes list it no more
    dataplane.publish(_table(services))
    assert dataplane.last_publish == {"services": 20, "compiled": 1, "listeners": "shared", "routes": "built"}
    services.insert(5, _service("s4b", 1))
    dataplane.publish(_table(services))
    assert dataplane.last_publish == {"services": 21, "compiled": 1, "listeners": "opened", "routes": "built"}
    dataplane.publish(_table(services, maxconn=7))
    assert dataplane.last_publish["compiled"] == 0
    assert set(dataplane.stats()["services"]) == {s.name for s in services}


def test_a_refused_table_leaves_the_next_publish_exact(dataplane: DataPlane) -> None:
    """A table refused half-way (a backend named with two addresses) changes nothing: the next
    publish still shares what serves, and compiles what changed."""
    services = [_service(f"s{i}", 2) for i in range(10)]
    dataplane.publish(_table(services))
    bad = list(services)
    bad[4] = spec.Service(name="s4", backends=(spec.Backend(id="s1.0", address="10.9.9.9:80"),))
    with pytest.raises(ValueError, match="two addresses"):
        dataplane.publish(_table(bad))
    services[4] = _service("s4", 3, version=1)
    dataplane.publish(_table(services))
    assert dataplane.last_publish["compiled"] == 1
    assert dataplane.stats()["backends"]["s4.2"]["address"] == "10.1.1.2:80"
    assert "s1.0" in dataplane.stats()["backends"]
