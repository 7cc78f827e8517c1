"""Marathon events applied as deltas, with the real event fixtures (fastlb/emulator/fixtures/events)."""

from __future__ import annotations

import json
import logging

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import spec
from fastlb.marathon import tasks
from fastlb.marathon.models import EVENT_TYPES
from fastlb.marathon.state import NO_EFFECT, EventEffect, MarathonOptions, MarathonState

from .conftest import marathon_json, marathon_payload, mlb_payload

HOSTS = {f"agent-{i}.example.internal": f"10.0.1.1{i}" for i in range(1, 6)}
OLD1 = "shop_web.instance-0a1b2c3d-8452-11e9-bc42-526af7764f64._app.1"
OLD3 = "shop_web.instance-0a1b2c3f-8452-11e9-bc42-526af7764f64._app.1"  # TASK_KILLING in the snapshot
NEW1 = "shop_web.instance-3f0c1c2e-85e6-11e9-bc42-526af7764f64._app.1"  # RUNNING, readiness false


def web_state(**options) -> MarathonState:
    state = MarathonState(MarathonOptions(**options), HOSTS.get)
    state.replace_all(marathon_payload("v2_apps_embed_tasks_host"))
    state.table()  # what the client does: publish it; events then name backends of this table
    return state


def servers(state: MarathonState, service: str = "shop_web_10000") -> dict[str, tuple[str, str]]:
    for s in state.table().services:
        if s.name == service:
            return {b.id: (b.address, b.state) for b in s.backends}
    return {}


def event(name: str) -> bytes:
    return marathon_payload(name)


def test_snapshot_during_readiness_deployment() -> None:
    state = web_state()
    got = servers(state)
    assert got == {
        OLD1: ("10.0.1.11:31012", "ready"),
        "shop_web.instance-0a1b2c3e-8452-11e9-bc42-526af7764f64._app.1": ("10.0.1.12:31544", "ready"),
        OLD3: ("10.0.1.13:31201", "drain"),
    }  # NEW1 is not ready yet; the STAGING task is not served
    assert state.needs_deployment_poll()


def test_readiness_ignored_when_not_respected() -> None:
    got = servers(web_state(respect_readiness=False))
    assert got[NEW1] == ("10.0.1.14:31877", "ready")


def test_task_running_waits_for_readiness_then_joins() -> None:
    state = MarathonState(MarathonOptions(), HOSTS.get)
    doc = marathon_json("v2_apps_embed_tasks_host")
    doc["apps"][0]["tasks"] = [t for t in doc["apps"][0]["tasks"] if t["id"] != NEW1]
    state.replace_all(json.dumps(doc).encode())
    effect = state.apply_event("status_update_event", event("status_update_event"))
    assert effect.changed and effect.poll_deployments
    assert NEW1 not in servers(state)
    deployments = marathon_json("v2_deployments")
    deployments[0]["currentActions"][0]["readinessCheckResults"][0]["ready"] = True
    state.set_deployments(json.dumps(deployments).encode())
    assert servers(state)[NEW1] == ("10.0.1.14:31877", "ready")
    # Readiness only gates entry: results that vanish later do not take the task out.
    state.set_deployments(b"[]")
    assert NEW1 in servers(state)


def test_deployments_payload_with_not_ready_keeps_task_out() -> None:
    state = web_state()
    state.set_deployments(marathon_payload("v2_deployments"))
    assert NEW1 not in servers(state)


def test_running_adds_a_new_task_at_once() -> None:
    state = MarathonState(MarathonOptions(), {"agent1": "1.1.1.1", "agent2": "1.1.1.2"}.get)
    state.replace_all(mlb_payload("simple-http-healthcheck"))
    ev = json.loads(mlb_payload("sse-events-constructed"))["status_update_event_running"]
    ev.update(taskId="nginx.new", host="agent2", ports=[2048])
    effect = state.apply_event("status_update_event", json.dumps(ev).encode())
    assert effect.changed and not effect.refetch
    assert servers(state, "nginx_10000")["nginx.new"] == ("1.1.1.2:2048", "ready")


def test_killed_removes_the_task() -> None:
    state = MarathonState(MarathonOptions(), {"agent1": "1.1.1.1"}.get)
    state.replace_all(mlb_payload("simple-http-healthcheck"))
    state.table()
    ev = json.loads(mlb_payload("sse-events-constructed"))["status_update_event_killed"]
    effect = state.apply_event("status_update_event", json.dumps(ev).encode())
    assert effect == EventEffect(changed=True, remove=("nginx.aaaa0001-0000-11ea-0000-000000000001",))
    assert state.table().services == ()  # its last server is gone: the service vanishes


def test_rolling_restart_sequence() -> None:
    """The recorded order of a one-instance replacement: attach, post, deployment, the new task
    starting, health, the old one killing (drain at once) then killed (removed)."""
    state = web_state(health_check=True)
    sequence = marathon_json("sse_sequence_rolling_restart")
    effects = []
    for frame in sequence:
        effect = state.apply_event(frame["event"], json.dumps(frame["data"]).encode())
        effects.append((frame["event"], frame["data"], effect))
        if frame["event"] == "status_update_event" and frame["data"]["taskStatus"] == "TASK_KILLING":
            # Drained in the table at once, on both of its ports.
            assert servers(state)[OLD3][1] == "drain"
            assert servers(state, "shop_web_10001")[OLD3 + "#1"][1] == "drain"
    by_kind = {}
    for name, data, effect in effects:
        key = name if name != "status_update_event" else data["taskStatus"]
        by_kind.setdefault(key, []).append(effect)
    assert by_kind["event_stream_attached"] == [NO_EFFECT]
    assert by_kind["api_post_event"] == [EventEffect(refetch=frozenset({"/shop/web"}))]
    assert by_kind["group_change_success"] == [NO_EFFECT]
    (info,) = by_kind["deployment_info"]
    assert info.refetch == {"/shop/web"} and info.poll_deployments
    assert all(not e.changed for e in by_kind["TASK_STAGING"] + by_kind["TASK_STARTING"])
    (running,) = by_kind["TASK_RUNNING"]
    assert running.changed and running.poll_deployments
    (health,) = by_kind["health_status_changed_event"]
    assert health.refetch == {"/shop/web"}
    # OLD3 was already KILLING in the snapshot, so the event changes nothing but lists it again.
    (killing,) = by_kind["TASK_KILLING"]
    assert killing.drain == () or set(killing.drain) == {OLD3, OLD3 + "#1"}
    (killed,) = by_kind["TASK_KILLED"]
    assert killed.changed and set(killed.remove) == {OLD3, OLD3 + "#1"}
    assert OLD3 not in servers(state)
    for name in ("deployment_step_success", "deployment_success"):
        (done,) = by_kind[name]
        assert done.refetch == {"/shop/web"}


def test_killing_drains_a_ready_task_at_once() -> None:
    state = web_state()
    data = json.loads(event("status_update_event"))
    data.update(taskId=OLD1, taskStatus="TASK_KILLING", host="agent-1.example.internal", ports=[31012, 31013])
    effect = state.apply_event("status_update_event", json.dumps(data).encode())
    assert effect.changed
    assert effect.drain == (OLD1, OLD1 + "#1")
    assert servers(state)[OLD1] == ("10.0.1.11:31012", "drain")


def test_all_draining_service_is_kept() -> None:
    state = MarathonState(MarathonOptions(), {"agent1": "1.1.1.1"}.get)
    state.replace_all(mlb_payload("simple-http-healthcheck"))
    state.table()
    ev = json.loads(mlb_payload("sse-events-constructed"))["status_update_event_killed"]
    ev["taskStatus"] = "TASK_KILLING"
    effect = state.apply_event("status_update_event", json.dumps(ev).encode())
    assert effect.drain == ("nginx.aaaa0001-0000-11ea-0000-000000000001",)
    assert [b.state for b in state.table().services[0].backends] == ["drain"]


@pytest.mark.parametrize("status", ["TASK_LOST", "TASK_UNREACHABLE"])
def test_lost_and_unreachable_are_kept(status: str) -> None:
    state = web_state()
    data = json.loads(event("status_update_event"))
    data.update(taskId=OLD1, taskStatus=status)
    effect = state.apply_event("status_update_event", json.dumps(data).encode())
    assert not effect.remove and not effect.drain
    assert servers(state)[OLD1][1] == "ready"


# Mesos' TaskState enum (mesos.proto), every value once.
MESOS_TASK_STATES = {
    "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED",
    "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
}


def test_every_mesos_task_state_is_in_exactly_one_set() -> None:
    sets = [tasks.STARTING_STATES, tasks.KEPT_STATES, tasks.DRAINING_STATES, tasks.TERMINAL_STATES]
    assert sorted(s for group in sets for s in group) == sorted(MESOS_TASK_STATES)
    assert tasks.EXCLUDED_STATES == tasks.STARTING_STATES | tasks.TERMINAL_STATES


@pytest.mark.parametrize("status", sorted(MESOS_TASK_STATES))
def test_a_snapshot_task_is_served_as_its_state_set_says(status: str) -> None:
    """The build's filter reads the same sets: kept states serve, TASK_KILLING drains, the others
    (starting, terminal) serve nothing."""
    doc = marathon_json("v2_apps_embed_tasks_host")
    for task in doc["apps"][0]["tasks"]:
        if task["id"] == OLD1:
            task["state"] = status
    state = MarathonState(MarathonOptions(), HOSTS.get)
    state.replace_all(json.dumps(doc).encode())
    expected = "ready" if status in tasks.KEPT_STATES else "drain" if status in tasks.DRAINING_STATES else None
    assert servers(state).get(OLD1, (None, None))[1] == expected


@pytest.mark.parametrize("status", sorted(tasks.TERMINAL_STATES))
def test_terminal_states_remove(status: str) -> None:
    state = web_state()
    data = json.loads(event("status_update_event"))
    data.update(taskId=OLD1, taskStatus=status)
    effect = state.apply_event("status_update_event", json.dumps(data).encode())
    assert effect.changed and effect.remove == (OLD1, OLD1 + "#1")
    assert OLD1 not in servers(state)


def test_instance_changed_killing_drains_and_killed_removes() -> None:
    state = web_state()
    data = json.loads(event("instance_changed_event"))
    data.update(instanceId=OLD1.split("._app.")[0], condition="Killing")
    effect = state.apply_event("instance_changed_event", json.dumps(data).encode())
    assert effect.drain == (OLD1, OLD1 + "#1")
    data["condition"] = "Killed"
    effect = state.apply_event("instance_changed_event", json.dumps(data).encode())
    assert effect.remove == (OLD1, OLD1 + "#1")
    assert OLD1 not in servers(state)


def test_instance_changed_running_for_an_unknown_instance_refetches() -> None:
    state = web_state()
    data = json.loads(event("instance_changed_event"))
    data["instanceId"] = "shop_web.instance-99999999-85e6-11e9-bc42-526af7764f64"
    effect = state.apply_event("instance_changed_event", json.dumps(data).encode())
    assert effect == EventEffect(refetch=frozenset({"/shop/web"}))


def test_unhealthy_kill_drains() -> None:
    state = MarathonState(MarathonOptions(groups=("*",)), {}.get)
    state.replace_all(marathon_payload("v2_apps_embed_tasks_bridge"))
    state.table()
    effect = state.apply_event("unhealthy_instance_kill_event", event("unhealthy_instance_kill_event"))
    task = "shop_api.instance-6b7d2e11-85e6-11e9-9d1e-0242ac110002._app.1"
    assert effect.drain == (task,)
    assert servers(state, "backend-shop-api-service-api")[task][1] == "drain"


def test_app_terminated_removes_every_backend() -> None:
    state = web_state()
    data = json.loads(event("app_terminated_event"))
    data["appId"] = "/shop/web"
    effect = state.apply_event("app_terminated_event", json.dumps(data).encode())
    assert effect.changed
    assert set(effect.remove) == {OLD1, OLD1 + "#1", OLD3, OLD3 + "#1", *(
        t + s for t in ["shop_web.instance-0a1b2c3e-8452-11e9-bc42-526af7764f64._app.1"] for s in ("", "#1"))}
    assert state.table().services == ()
    assert "/shop/web" not in state.apps()
    # The fixture's own event names an app fastlb does not hold: nothing to do.
    assert state.apply_event("app_terminated_event", event("app_terminated_event")) == NO_EFFECT


def test_health_events_matter_only_with_health_check() -> None:
    state = MarathonState(MarathonOptions(groups=("*",)), {}.get)
    state.replace_all(marathon_payload("v2_apps_embed_tasks_bridge"))
    for name in ("health_status_changed_event", "instance_health_changed_event", "failed_health_check_event"):
        assert state.apply_event(name, event(name)) == NO_EFFECT


def test_health_status_changed_applies_at_once_and_refetches() -> None:
    state = MarathonState(MarathonOptions(groups=("*",), health_check=True), {}.get)
    state.replace_all(marathon_payload("v2_apps_embed_tasks_bridge"))
    task = "shop_api.instance-6b7d2e11-85e6-11e9-9d1e-0242ac110002._app.1"
    assert task not in servers(state, "backend-shop-api-service-api")  # alive: false
    data = json.loads(event("health_status_changed_event"))
    data["alive"] = True
    effect = state.apply_event("health_status_changed_event", json.dumps(data).encode())
    assert effect.changed and effect.refetch == {"/shop/api"}
    assert task in servers(state, "backend-shop-api-service-api")


@pytest.mark.parametrize(
    "name,refetch",
    [
        ("add_health_check_event", {"/shop/web"}),
        ("remove_health_check_event", {"/shop/web"}),
        ("api_post_event", {"/shop/web"}),
        ("deployment_step_failure", {"/shop/web"}),
        ("deployment_failed", {"/shop/web"}),
    ],
)
def test_refetch_events(name: str, refetch: set[str]) -> None:
    state = web_state()
    before = spec.encode(state.table())
    effect = state.apply_event(name, event(name))
    assert effect.refetch == refetch and not effect.changed and not effect.remove
    assert spec.encode(state.table()) == before


@pytest.mark.parametrize(
    "name",
    [
        "event_stream_attached",
        "event_stream_detached",
        "group_change_success",
        "group_change_failed",
        "pod_created_event",
        "pod_updated_event",
        "pod_deleted_event",
        "subscribe_event",
        "unsubscribe_event",
        "framework_message_event",
        "scheduler_disconnected_event",
        "unknown_instance_terminated_event",
    ],
)
def test_events_without_effect(name: str) -> None:
    assert web_state().apply_event(name, event(name)) == NO_EFFECT


@pytest.mark.parametrize("name", ["scheduler_registered_event", "scheduler_reregistered_event"])
def test_failover_events_resync(name: str) -> None:
    assert web_state().apply_event(name, event(name)) == EventEffect(resync=True)


def test_unknown_event_type_is_ignored() -> None:
    assert web_state().apply_event("brand_new_event", b'{"eventType": "brand_new_event"}') == NO_EFFECT


@pytest.mark.parametrize(
    "data,where",
    [
        (b"{not json", "malformed"),
        (b'{"taskId": 5, "taskStatus": "TASK_KILLED", "appId": "/shop/web"}', "$.taskId"),
        (b'{"eventType": "api_post_event"}', "eventType"),
        (b"\xff\xfe", ""),
    ],
)
def test_malformed_event_is_logged_and_changes_nothing(data: bytes, where: str, caplog) -> None:
    state = web_state()
    before = spec.encode(state.table())
    with caplog.at_level(logging.WARNING, logger="fastlb.marathon"):
        assert state.apply_event("status_update_event", data) == NO_EFFECT
    assert spec.encode(state.table()) == before
    assert "status_update_event" in caplog.text and where in caplog.text


def test_garbage_snapshot_raises_with_path_and_keeps_state() -> None:
    state = web_state()
    before = spec.encode(state.table())
    doc = marathon_json("v2_apps_embed_tasks_host")
    doc["apps"][0]["tasks"][1]["ports"] = ["x"]
    with pytest.raises(ValueError, match=r"\$\.apps\[0\]\.tasks\[1\]\.ports\[0\]"):
        state.replace_all(json.dumps(doc).encode())
    with pytest.raises(ValueError, match=r"\$\.app\.id"):
        state.put_app(b'{"app": {"id": 7}}')
    with pytest.raises(ValueError):
        state.set_deployments(b"{}")
    assert spec.encode(state.table()) == before


def test_put_app_and_remove_app() -> None:
    state = web_state()
    doc = marathon_json("v2_apps_embed_tasks_host")["apps"][0]
    doc["labels"]["HAPROXY_0_VHOST"] = "www.example.com"
    doc["readinessCheckResults"] = None  # /v2/apps/<id> without embed: earlier results are kept
    state.put_app(json.dumps({"app": doc}).encode())
    assert [r.host for r in state.table().http_routes] == ["www.example.com"]
    assert NEW1 not in servers(state)
    state.remove_app("/shop/web")
    assert state.table().services == ()


def test_null_label_values_are_absent_labels() -> None:
    """Marathon <= 1.4 writes explicit nulls (marathon-lb strips them): a null label is no label."""
    doc = marathon_json("v2_apps_embed_tasks_host")
    doc["apps"][0]["labels"]["HAPROXY_0_VHOST"] = None
    doc["apps"][0]["portDefinitions"][0]["labels"] = {"VIP_0": None}
    state = MarathonState(MarathonOptions(), HOSTS.get)
    state.replace_all(json.dumps(doc).encode())
    assert state.table().http_routes == ()
    assert [s.mode for s in state.table().services] == ["tcp", "http"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
_fields = st.sampled_from(
    ["taskId", "taskStatus", "appId", "host", "ports", "instanceId", "condition", "runSpecId", "alive",
     "healthy", "plan", "currentStep", "appDefinition", "uri", "ipAddresses", "version", "eventType"]
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(EVENT_TYPES) + ["nope"]), st.dictionaries(_fields, _json, max_size=6) | _json)
def test_apply_event_never_raises(event_type: str, data) -> None:
    state = web_state()
    effect = state.apply_event(event_type, json.dumps(data).encode())
    assert isinstance(effect, EventEffect)
    spec.decode(spec.encode(state.table()))


def test_events_name_backends_of_the_table_handed_out_and_do_not_rebuild() -> None:
    """A burst of events costs no rebuild each: drain and remove name the backends of the last
    table handed out (the one the data plane serves); the next table() builds once."""
    asked: list[str] = []

    def resolve(host: str) -> str | None:
        asked.append(host)
        return HOSTS.get(host)

    state = MarathonState(MarathonOptions(), resolve)
    state.replace_all(marathon_payload("v2_apps_embed_tasks_host"))
    data = json.loads(event("status_update_event"))
    data.update(taskId=OLD1, taskStatus="TASK_KILLING")
    # Nothing handed out yet: nothing to drain in the data plane, but the table will say "drain".
    assert state.apply_event("status_update_event", json.dumps(data).encode()).drain == ()
    assert servers(state)[OLD1][1] == "drain"
    calls = len(asked)
    for status in ("TASK_KILLED",):
        data.update(taskStatus=status)
        effect = state.apply_event("status_update_event", json.dumps(data).encode())
        assert effect.remove == (OLD1, OLD1 + "#1")
    data.update(taskId=OLD3, taskStatus="TASK_FAILED")
    assert state.apply_event("status_update_event", json.dumps(data).encode()).remove == (OLD3, OLD3 + "#1")
    assert len(asked) == calls  # no rebuild happened
    assert OLD1 not in servers(state) and OLD3 not in servers(state)
    assert len(asked) > calls


def test_a_state_after_events_builds_what_a_fresh_state_builds() -> None:
    """Tables built incrementally (apps reused from the previous build when unchanged) equal a
    table built from scratch from the same apps, after every event of a restart."""
    names = dict(HOSTS)
    state = MarathonState(MarathonOptions(health_check=True), names.get)
    state.replace_all(marathon_payload("v2_apps_embed_tasks_host"))
    state.put_app(json.dumps({"app": json.loads(mlb_payload("simple-http-healthcheck"))["apps"][0]}).encode())
    state.table()
    frames = marathon_json("sse_sequence_rolling_restart")
    steps = [(f["event"], json.dumps(f["data"]).encode()) for f in frames]
    steps.insert(3, ("resolve", b"agent1"))
    for name, data in steps:
        if name == "resolve":
            names["agent1"] = "1.1.1.1"
        else:
            state.apply_event(name, data)
        fresh = MarathonState(MarathonOptions(health_check=True), names.get)
        snapshot = {"apps": [msgspec.to_builtins(a) for a in state.apps().values()]}
        fresh.replace_all(json.dumps(snapshot).encode())
        # The fresh state lacks what only events taught (health results kept across snapshots).
        fresh._alive.update(state._alive)
        fresh._once_ready.update(state._once_ready)
        assert spec.encode(state.table()) == spec.encode(fresh.table()), name
    assert any(s.name == "nginx_10000" for s in state.table().services)  # agent1 resolved meanwhile
