"""SSE framing as Marathon writes it, cut at every byte."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb.marathon.sse import MAX_EVENT_BYTES, SSEDecoder, SSEError, SSEEvent, split_json

STATUS = json.dumps({"taskId": "a.1", "taskStatus": "TASK_RUNNING", "appId": "/a"}).encode()
POST = json.dumps({"appDefinition": {"id": "/a"}, "eventType": "api_post_event"}).encode()

MARATHON_STREAM = (
    b"event: event_stream_attached\r\ndata: {\"remoteAddress\":\"127.0.0.1\"}\r\n\r\n"
    b"\r\n"  # heartbeat
    b"event: status_update_event\r\ndata: " + STATUS + b"\r\n\r\n"
    b"\r\n\r\n"  # two heartbeats
    b"event: api_post_event\r\ndata: " + POST + b"\r\n\r\n"
)
EXPECTED = [
    SSEEvent("event_stream_attached", b'{"remoteAddress":"127.0.0.1"}'),
    SSEEvent("status_update_event", STATUS),
    SSEEvent("api_post_event", POST),
]


def feed_all(decoder: SSEDecoder, chunks: list[bytes]) -> list[SSEEvent]:
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def test_crlf_stream_whole() -> None:
    assert SSEDecoder().feed(MARATHON_STREAM) == EXPECTED


@pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending(newline: bytes) -> None:
    stream = MARATHON_STREAM.replace(b"\r\n", newline)
    assert SSEDecoder().feed(stream) == EXPECTED


@pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"])
def test_cut_at_every_byte(newline: bytes) -> None:
    stream = MARATHON_STREAM.replace(b"\r\n", newline)
    for cut in range(len(stream) + 1):
        assert feed_all(SSEDecoder(), [stream[:cut], stream[cut:]]) == EXPECTED, cut
    assert feed_all(SSEDecoder(), [stream[i : i + 1] for i in range(len(stream))]) == EXPECTED


def test_heartbeats_alone_dispatch_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\r\n" * 50) == []
    assert decoder.feed(b"\n\r\n\r") == []
    assert decoder.feed(b"\nevent: x\r\ndata: 1\r\n\r\n") == [SSEEvent("x", b"1")]


def test_comments_unknown_fields_and_defaults() -> None:
    stream = b": a comment\r\nid: 7\r\nretry: 10\r\nfoo: bar\r\ndata:1\r\n\r\ndata\r\n\r\n"
    # no event field: "message"; no space after the colon; a bare "data" line is an empty data line
    assert SSEDecoder().feed(stream) == [SSEEvent("message", b"1"), SSEEvent("message", b"")]


def test_event_without_data_is_not_dispatched() -> None:
    assert SSEDecoder().feed(b"event: lonely\r\n\r\nevent: b\r\ndata: 2\r\n\r\n") == [SSEEvent("b", b"2")]


def test_several_data_lines_join_and_split_into_objects() -> None:
    stream = b"event: status_update_event\r\ndata: " + STATUS + b"\r\ndata: " + STATUS + b"\r\n\r\n"
    [event] = SSEDecoder().feed(stream)
    assert event.data == STATUS + b"\n" + STATUS
    assert split_json(event.data) == ([STATUS, STATUS], [])


def test_objects_back_to_back_on_one_line() -> None:
    values, bad = split_json(STATUS + POST + b" " + STATUS)
    assert values == [STATUS, POST, STATUS] and bad == []


def test_split_json_single_object_untouched() -> None:
    assert split_json(POST) == ([POST], [])


def test_split_json_reports_garbage_and_keeps_the_rest() -> None:
    values, bad = split_json(STATUS + b"\n{not json\n" + POST)
    assert values == [STATUS, POST]
    assert bad == [b"{not json"]
    values, bad = split_json(b"garbage\xff")
    assert values == [] and bad == ["garbage\ufffd".encode()]


def test_oversized_event_is_refused() -> None:
    decoder = SSEDecoder()
    line = b"data: " + b"x" * (1024 * 1024) + b"\r\n"
    with pytest.raises(SSEError):
        for _ in range(MAX_EVENT_BYTES // (1024 * 1024) + 2):
            decoder.feed(line)


def test_unterminated_line_is_bounded() -> None:
    with pytest.raises(SSEError):
        SSEDecoder().feed(b"data: " + b"x" * (MAX_EVENT_BYTES + 1))


_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20)
_payload = st.dictionaries(_name, st.one_of(st.integers(), _name), max_size=4).map(
    lambda d: json.dumps(d).encode()
)


@given(
    events=st.lists(st.tuples(_name, _payload), max_size=8),
    heartbeats=st.lists(st.integers(0, 3), min_size=9, max_size=9),
    newline=st.sampled_from([b"\r\n", b"\n", b"\r"]),
    cuts=st.lists(st.integers(0, 2000), max_size=12),
)
@settings(max_examples=200, deadline=None)
def test_any_stream_any_cuts(events, heartbeats, newline, cuts) -> None:
    stream = b""
    for (name, payload), beats in zip(events, heartbeats):
        stream += newline * beats + b"event: " + name.encode() + newline + b"data: " + payload + newline + newline
    stream += newline * heartbeats[-1]
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    assert feed_all(SSEDecoder(), chunks) == [SSEEvent(n, p) for n, p in events]
