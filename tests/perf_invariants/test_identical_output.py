"""The Marathon provider's speed-ups change no output: for every fixture, a mixed cluster with
events, and the resync benchmark's 10,000-app cluster, the table (``spec.encode``), errors,
warnings, backend ids and host lookups hash to what the build produced before them
(``golden.json``, see ``workloads.py``); a table built from the last build's memo equals one built
from nothing; the controller's merge names the same clashes; and the IP literal shortcut agrees
with ``ipaddress`` everywhere."""

from __future__ import annotations

import ipaddress
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import spec
from fastlb.marathon import build, incremental, tasks
from fastlb.marathon.state import MarathonOptions, MarathonState
from fastlb.merge import merge_tables

from . import workloads

GOLDEN: dict[str, list[str]] = json.loads(workloads.GOLDEN.read_text())


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("fastlb.marathon").setLevel(logging.CRITICAL)  # bad apps are the point here
    yield
    logging.getLogger("fastlb.marathon").setLevel(logging.NOTSET)


CASES = [
    (f"{name}|{opt_name}", body, events, options)
    for name, body, events in workloads.workloads()
    for opt_name, options in workloads.OPTION_SETS.items()
]


def test_golden_covers_every_case() -> None:
    assert sorted(GOLDEN) == sorted([c[0] for c in CASES] + [f"bench-{workloads.BENCH_APPS}"])


@pytest.mark.parametrize(("key", "body", "events", "options"), CASES, ids=[c[0] for c in CASES])
def test_same_output_as_before(key: str, body: bytes, events: list, options: MarathonOptions) -> None:
    assert workloads.run(body, events, options, workloads.resolver) == GOLDEN[key]


def test_bench_cluster_same_output_as_before() -> None:
    body = workloads.bench_payload(workloads.BENCH_APPS)
    options = MarathonOptions(bind_addr="127.0.77.1", http_port=0, https_port=0, appid_port=0)
    events = workloads.events_for(body, 7)[:5]
    assert workloads.run(body, events, options, lambda host: host) == GOLDEN[f"bench-{workloads.BENCH_APPS}"]


def _from_nothing(state: MarathonState) -> str:
    """The digest of a build that reuses nothing from the builds before it."""
    state._memo = incremental.BuildMemo()
    state._built = None
    return workloads.digest(state)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_build_equals_full_build(seed: int) -> None:
    body = workloads.mixed_payload(400, seed)
    for options in workloads.OPTION_SETS.values():
        state = MarathonState(options, workloads.resolver)
        state.replace_all(body)
        state.table()
        for event_type, data in workloads.events_for(body, seed):
            state.apply_event(event_type, data)
            incremental = workloads.digest(state)
            assert _from_nothing(state) == incremental


@pytest.mark.parametrize("seed", [4, 5])
def test_patched_table_equals_full_build(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster of plain marathon-lb apps most events patch the last table (``_patch``);
    every patched table is the one a build from nothing makes."""
    patched = []
    real_patch = build._patch

    def counting_patch(*args):  # type: ignore[no-untyped-def]
        result = real_patch(*args)
        patched.append(result is not None)
        return result

    monkeypatch.setattr(build, "_patch", counting_patch)
    body = workloads.mixed_payload(300, seed, plain=True)
    for options in (workloads.OPTION_SETS["default"], workloads.OPTION_SETS["all-groups-hc"]):
        state = MarathonState(options, workloads.resolver)
        state.replace_all(body)
        state.table()
        for event_type, data in workloads.events_for(body, seed):
            state.apply_event(event_type, data)
            incremental = workloads.digest(state)
            memo = state._memo
            assert _from_nothing(state) == incremental
            state._memo = memo  # keep patching from the last build, as the state would
            state._built = None
            assert workloads.digest(state) == incremental
    assert sum(patched) >= 20  # the patch path was taken, not only the whole build


def test_merge_wildcard_clashes_name_the_first_holder() -> None:
    """The index by port finds the same clash as a scan of every address taken: the first one
    taken on that port and family, in provider order."""
    first = spec.RouteTable(
        services=(spec.Service(name="a"), spec.Service(name="b"), spec.Service(name="c")),
        listeners=(
            spec.Listener(address="10.0.0.1:80", kind="service", service="a"),
            spec.Listener(address="10.0.0.2:80", kind="service", service="b"),
            spec.Listener(address="[::1]:80", kind="service", service="c"),
        ),
    )
    second = spec.RouteTable(
        services=(spec.Service(name="w4"), spec.Service(name="w6"), spec.Service(name="other")),
        listeners=(
            spec.Listener(address="0.0.0.0:80", kind="service", service="w4"),
            spec.Listener(address="[::]:80", kind="service", service="w6"),
            spec.Listener(address="0.0.0.0:81", kind="service", service="other"),
        ),
    )
    merged, errors = merge_tables([("static", first), ("marathon", second)])
    assert [x.address for x in merged.listeners] == ["10.0.0.1:80", "10.0.0.2:80", "[::1]:80", "0.0.0.0:81"]
    assert errors == [
        "marathon: listener 0.0.0.0:80 (service 'w4') skipped: 10.0.0.1:80 is already static's (service 'a')",
        "marathon: listener [::]:80 (service 'w6') skipped: [::1]:80 is already static's (service 'c')",
    ]


def _reference_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789.", max_size=17),
        st.lists(st.integers(0, 300).map(str), min_size=3, max_size=5).map(".".join),
        st.ip_addresses().map(str),
        st.text(max_size=20),
    )
)
def test_ip_literal_agrees_with_ipaddress(text: str) -> None:
    assert tasks._ip_literal(text) == _reference_ip(text)


@pytest.mark.parametrize(
    "text", ["1.2.3.4", "01.2.3.4", "1.2.3.04", "256.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.4\n", " 1.2.3.4",
             "\u0661.2.3.4", "::1", "FD00::1", "::ffff:1.2.3.4", "fe80::1%eth0", "", "host.example"]
)
def test_ip_literal_edge_cases(text: str) -> None:
    assert tasks._ip_literal(text) == _reference_ip(text)
