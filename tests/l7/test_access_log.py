"""The access log: off by default; on, one JSON line per request written by the workers to a
non-blocking fd; a reader that does not keep up costs dropped lines, never a stalled worker."""

from __future__ import annotations

import json
import os
import select
import time

from fastlb.testing.backends import wait_until
from fastlb.testing.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, port_table, request


def read_lines(fd: int, n: int, timeout: float = 10.0) -> list[dict]:
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < n and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            buf += os.read(fd, 65536)
    return [json.loads(line) for line in buf.splitlines()]


def test_one_line_per_request(dataplane, ports):
    r, w = os.pipe()
    try:
        with HttpBackend("a") as a:
            # one worker: lines of different connections come in the order they were served
            dp = dataplane(workers=1, access_log_fd=w)
            front = ports()
            dp.publish(port_table(http_service("web", [a.address]), front))
            with connect(front) as c:
                rd = Reader(c)
                c.sendall(get('/x?q="1"'))
                rd.response()
                c.sendall(b"HEAD /big/10 HTTP/1.1\r\nHost: x\r\n\r\n")
                rd.response(head_request=True)
            assert request(front, b"GET / HTTP/1.1\r\n\r\n").status == 400
            lines = read_lines(r, 3)
        assert [x["method"] for x in lines] == ["GET", "HEAD", ""]
        first = lines[0]
        assert first["path"] == '/x?q="1"' and first["status"] == 200
        assert first["service"] == "web" and first["backend"] == a.address
        assert first["listener"] == front and first["client"].startswith("127.0.0.1:")
        assert first["bytes"] > 0 and first["duration_us"] >= 0 and first["time"] > 1e9
        assert lines[2]["status"] == 400 and lines[2]["service"] == ""
        assert dp.stats()["access_log"] == {"lines": 3, "drops": 0}
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
