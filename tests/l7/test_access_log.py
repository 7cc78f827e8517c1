"""The access log: off by default; on, one JSON line per request written by the workers to a
non-blocking fd; a reader that does not keep up costs dropped lines, never a stalled worker."""

from __future__ import annotations

import json
import os
import select
import time

from fastlb.emulator.backends import wait_until
from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, port_table, request


def read_lines(fd: int, n: int, timeout: float = 10.0) -> list[dict]:
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < n and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            buf += os.read(fd, 65536)
    return [json.loads(line) for line in buf.splitlines()]


def answer_bytes(r) -> bytes:
    """The bytes of a response fastlb wrote itself (its fields in order, as Reader parsed them)."""
    head = f"HTTP/1.1 {r.status} Bad Request\r\n" + "".join(f"{k}: {v}\r\n" for k, v in r.headers) + "\r\n"
    return head.encode() + r.body


def test_one_line_per_request(dataplane, ports):
    r, w = os.pipe()
    try:
        with HttpBackend("a") as a:
            # one worker: lines of different connections come in the order they were served
            dp = dataplane(workers=1, access_log_fd=w)
            front = ports()
            dp.publish(port_table(http_service("web", [a.address]), front))
            first_request = get('/x?q="1"')
            post = b"POST /big/10 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            with connect(front) as c:
                rd = Reader(c)
                c.sendall(first_request)
                rd.response()
                c.sendall(b"HEAD /big/10 HTTP/1.1\r\nHost: x\r\n\r\n")
                rd.response(head_request=True)
                c.sendall(post)
                assert rd.response().body == b"b" * 10
            bad = b"GET / HTTP/1.1\r\n\r\n"
            answer = request(front, bad)
            assert answer.status == 400
            lines = read_lines(r, 4)
        assert [x["method"] for x in lines] == ["GET", "HEAD", "POST", ""]
        first, head, posted, refused = lines
        assert first["path"] == '/x?q="1"' and first["status"] == 200
        assert first["service"] == "web" and first["backend"] == a.address
        assert first["listener"] == front and first["client"].startswith("127.0.0.1:")
        assert first["request_bytes"] == len(first_request) and first["response_bytes"] > 100
        assert 0 <= first["response_us"] <= first["duration_us"] and first["time"] > 1e9
        assert head["response_bytes"] < first["response_bytes"]
        # the head and its body, as the client sent them; the response head and its 10 bytes
        sized = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + b"b" * 10
        assert posted["request_bytes"] == len(post) and posted["response_bytes"] == len(sized)
        # fastlb's own answer: no backend answered
        assert refused["status"] == 400 and refused["service"] == "" and refused["backend"] == ""
        assert refused["response_us"] == -1 and refused["request_bytes"] == len(bad)
        assert refused["response_bytes"] == len(answer_bytes(answer))
        assert dp.stats()["access_log"] == {"lines": 4, "drops": 0}
    finally:
        os.close(r)
        os.close(w)


def test_a_full_pipe_drops_lines_and_never_blocks(dataplane, ports):
    r, w = os.pipe()
    try:
        with HttpBackend("a") as a:
            dp = dataplane(workers=1, access_log_fd=w)
            front = ports()
            dp.publish(port_table(http_service("web", [a.address]), front))
            long_path = "/" + "p" * 200
            with connect(front) as c:
                rd = Reader(c)
                for _ in range(1500):  # ~500 KB of log into a 64 KiB pipe nobody reads
                    c.sendall(get(long_path))
                    assert rd.response().status == 200
            # the last line is written just after its response went out
            assert wait_until(lambda: sum(dp.stats()["access_log"].values()) == 1500)
            assert dp.stats()["access_log"]["drops"] > 0
    finally:
        os.close(r)
        os.close(w)
    assert wait_until(lambda: dp.active_connections() == 0)


def test_log_is_off_by_default(dataplane, ports):
    with HttpBackend("a") as a:
        dp = dataplane()
        front = ports()
        dp.publish(port_table(http_service("web", [a.address]), front))
        request(front, get("/"))
        assert dp.stats()["access_log"] == {"lines": 0, "drops": 0}
