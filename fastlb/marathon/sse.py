"""Server-sent events framing, as Marathon writes it on ``GET /v2/events``: bytes in, events out.

Marathon (Jetty's EventSourceServlet) writes each event as ``event: <type>\\r\\n`` ``data: <json>\\r\\n``
``\\r\\n`` and a bare ``\\r\\n`` every 10 s as a heartbeat. The decoder follows the SSE grammar: a line ends
with CRLF, LF or a lone CR (a CR at the end of one chunk may be the first half of a CRLF split across two
reads); ``field: value`` with one optional space after the colon; several ``data:`` lines of one event are
joined with LF; a line starting with ``:`` is a comment; an empty line dispatches the event, and an empty
line with nothing buffered (the heartbeat) dispatches nothing.

Marathon sometimes packs several JSON objects into one event (one per ``data:`` line, or back to back on
one line); ``split_json`` cuts an event's data into the objects it holds.

Pure: no I/O, no asyncio. Any cut of the input into chunks gives the same events.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import msgspec

# An event larger than this is not Marathon talking (its biggest, deployment plans, stay far below):
# the decoder refuses to buffer it rather than grow without bound.
MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEError(ValueError):
    """The stream cannot be decoded any further; the connection should be dropped."""


class SSEEvent(NamedTuple):
    event: str  # the ``event:`` field; "message" when the frame has none (the SSE default)
    data: bytes  # the ``data:`` lines joined with LF


class SSEDecoder:
    """Incremental decoder. ``feed`` returns the events completed by ``chunk``, in order."""

    __slots__ = ("_buf", "_skip_lf", "_event", "_data", "_data_len", "_has_data")

    def __init__(self) -> None:
        self._buf = b""  # an incomplete line
        self._skip_lf = False  # the previous chunk ended with CR: an LF first in this one belongs to it
        self._event = ""
        self._data: list[bytes] = []
        self._data_len = 0
        self._has_data = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        if not chunk:
            return out
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        pos = 0
        end = len(buf)
        while pos < end:
            cr = buf.find(b"\r", pos)
            lf = buf.find(b"\n", pos)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                line = buf[pos:lf]
                pos = lf + 1
            else:
                line = buf[pos:cr]
                if cr + 1 < end:
                    pos = cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
                else:
                    pos = cr + 1
                    self._skip_lf = True
            self._line(line, out)
        self._buf = buf[pos:]
        if len(self._buf) + self._data_len > MAX_EVENT_BYTES:
            raise SSEError(f"event larger than {MAX_EVENT_BYTES} bytes")
        return out

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            if self._has_data:
                out.append(SSEEvent(self._event or "message", b"\n".join(self._data)))
            self._event = ""
            self._data = []
            self._data_len = 0
            self._has_data = False
            return
        if line[:1] == b":":
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._data_len += len(value) + 1
            self._has_data = True
            if self._data_len > MAX_EVENT_BYTES:
                raise SSEError(f"event larger than {MAX_EVENT_BYTES} bytes")
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id" and "retry" mean nothing to Marathon's stream (it sends neither); other fields are ignored


_raw = msgspec.json.Decoder(msgspec.Raw)
_scanner = json.JSONDecoder()


def split_json(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The JSON values an event's data holds, each as its own bytes, in order; and the pieces that are
    not JSON, so that the consumer reports them and goes on with the rest.

    One value (the common case) is returned as is after one validating pass. Otherwise every line is
    cut into the values written back to back on it.
    """
    try:
        _raw.decode(data)
        return [data], []
    except msgspec.DecodeError:
        pass
    values: list[bytes] = []
    bad: list[bytes] = []
    for line in data.split(b"\n"):
        text = line.decode("utf-8", "replace").strip()
        pos = 0
        while pos < len(text):
            try:
                _, stop = _scanner.raw_decode(text, pos)
            except ValueError:
                bad.append(text[pos:].encode())
                break
            values.append(text[pos:stop].encode())
            while stop < len(text) and text[stop] in " \t\r":
                stop += 1
            pos = stop
    return values, bad
