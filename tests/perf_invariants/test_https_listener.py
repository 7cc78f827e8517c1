"""The Marathon build's shared https listener (``--https-port``) adds that listener and nothing else:
for every fixture and the mixed clusters with their events, under each option set, the table built
with the https listener less that listener is the table built without it (``--https-port 0``); and
with ``--http-port 0`` the https listener alone carries the vhost routes."""

from __future__ import annotations

import logging

import msgspec
import pytest

from fastlb import spec
from fastlb.marathon.state import MarathonState

from . import workloads


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("fastlb.marathon").setLevel(logging.CRITICAL)  # bad apps are the point here
    yield
    logging.getLogger("fastlb.marathon").setLevel(logging.NOTSET)


CASES = [
    (f"{name}|{opt_name}", body, events[:8], options)
    for name, body, events in workloads.workloads()
    for opt_name, options in workloads.OPTION_SETS.items()
]


def _tables(body: bytes, events: list[tuple[str, bytes]], options) -> list[spec.RouteTable]:
    state = MarathonState(options, workloads.resolver)
    state.replace_all(body)
    out = [state.table()]
    for event_type, data in events:
        state.apply_event(event_type, data)
        out.append(state.table())
    return out


@pytest.mark.parametrize(("name", "body", "events", "options"), CASES, ids=[c[0] for c in CASES])
def test_the_https_listener_is_the_only_difference(name, body, events, options):
    with_https = _tables(body, events, options)
    without = _tables(body, events, msgspec.structs.replace(options, https_port=0))
    https = f"{options.bind_addr}:{options.https_port}"
    for a, b in zip(with_https, without, strict=True):
        tls = [x for x in a.listeners if x.tls]
        assert tls == [spec.Listener(address=https, kind="vhost", tls=True)]
        stripped = msgspec.structs.replace(a, listeners=tuple(x for x in a.listeners if not x.tls))
        if options.http_port:
            assert spec.encode(stripped) == spec.encode(b)
        else:  # the vhost routes exist for the https listener only
            assert stripped.services == b.services and stripped.listeners == b.listeners
            assert not b.http_routes


def test_without_the_http_port_the_https_listener_routes_the_vhosts():
    body = workloads.mixed_payload(400, 1)
    options = workloads.OPTION_SETS["strict-no-http"]
    (table,) = _tables(body, [], options)
    assert [x.tls for x in table.listeners if x.kind == "vhost"] == [True]
    assert table.http_routes
    (plain,) = _tables(body, [], msgspec.structs.replace(options, http_port=80, bind_addr=options.bind_addr))
    assert plain.http_routes == table.http_routes


def test_dont_bind_http_https_keeps_both_off():
    body = workloads.mixed_payload(40, 1)
    options = workloads.OPTION_SETS["default"]
    for table in _tables(body, [], msgspec.structs.replace(options, dont_bind_http_https=True)):
        assert not [x for x in table.listeners if x.kind == "vhost"]
        assert not table.http_routes
