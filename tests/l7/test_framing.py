"""Bodies framed in both directions: Content-Length, chunked, close-delimited, bodiless answers
(HEAD, 204, 304), Expect: 100-continue, and big bodies that take many reads."""

from __future__ import annotations

import os
import zlib

from fastlb.emulator.http_backends import HttpBackend

from .conftest import Reader, connect, get, http_service, port_table


def proxy(dataplane, ports, backend):
    dp = dataplane()
    front = ports()
    dp.publish(port_table(http_service("web", [backend.address]), front))
    return front


def test_chunked_request_and_response(dataplane, ports):
    with HttpBackend("a") as a:
        front = proxy(dataplane, ports, a)
        body = os.urandom(50000)
        chunks = b"".join(
            b"%x\r\n" % len(body[i : i + 7000]) + body[i : i + 7000] + b"\r\n"
            for i in range(0, len(body), 7000)
        )
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(
                b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
            )
            doc = rd.response().json()
            assert doc["body_len"] == len(body) and doc["body_crc"] == zlib.crc32(body)
            c.sendall(get("/chunked/30000"))
            r = rd.response()
            assert r.header("Transfer-Encoding") == "chunked" and len(r.body) == 30000
            c.sendall(get("/after"))  # the connection is still in step
            assert rd.response().json()["path"] == "/after"


def test_big_content_length_bodies_both_ways(dataplane, ports):
    with HttpBackend("a") as a:
        front = proxy(dataplane, ports, a)
        body = os.urandom(3 << 20)
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            doc = rd.response().json()
            assert doc["body_len"] == len(body) and doc["body_crc"] == zlib.crc32(body)
            c.sendall(get("/big/5000000"))
            assert rd.response().body == b"b" * 5000000


def test_close_delimited_response(dataplane, ports):
    with HttpBackend("a") as a:
        front = proxy(dataplane, ports, a)
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(get("/close/70000"))
            r = rd.response()
            assert r.status == 200 and r.body == b"c" * 70000  # read until fastlb closed


def test_head_204_304_have_no_body(dataplane, ports):
    with HttpBackend("a") as a:
        front = proxy(dataplane, ports, a)
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(b"HEAD /big/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
            r = rd.response(head_request=True)
            assert r.status == 200 and r.header("Content-Length") == "1000"
            for code in (204, 304):
                c.sendall(get(f"/status/{code}"))
                assert rd.response().status == code
            c.sendall(get("/after"))
            assert rd.response().json()["path"] == "/after"


def test_expect_100_continue_passes_through(dataplane, ports):
    with HttpBackend("a") as a:
        front = proxy(dataplane, ports, a)
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            interim = rd.response()
            assert interim.status == 100
            c.sendall(b"body")
            doc = rd.response().json()
            assert doc["body_len"] == 4


def test_early_answer_before_the_body_closes_the_client(dataplane, ports):
    with HttpBackend("a") as a:
        front = proxy(dataplane, ports, a)
        with connect(front) as c:
            rd = Reader(c)
            c.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            assert rd.response().status == 413
            assert rd.at_eof()


def test_no_interim_answer_to_an_http10_client(dataplane, ports):
    with HttpBackend("a") as a:
        front = proxy(dataplane, ports, a)
        with connect(front) as c:
            # the backend sends 100 Continue to whoever asks; an HTTP/1.0 client must not see it
            c.sendall(b"POST /e HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi")
            rd = Reader(c)
            r = rd.response()
            assert r.status == 200 and r.json()["body_len"] == 2
            assert rd.at_eof()
