"""The response head parser: status line, framing by RFC 9112 section 6.3, refusals."""

import pytest

from fastlb import _testhooks

AGAIN = -2
ERR = -1


def parse(data: bytes, **kw):
    return _testhooks._http1_parse_response(data, **kw)


def resp(*fields: str, start: str = "HTTP/1.1 200 OK") -> bytes:
    return ("\r\n".join([start, *fields]) + "\r\n\r\n").encode("latin-1")


def test_simple_response():
    data = resp("Content-Length: 5", "Server: x")
    r = parse(data + b"hello")
    assert r["rc"] == len(data) == r["head_len"]
    assert (r["minor"], r["status"], r["reason"]) == (1, 200, b"OK")
    assert r["framing"] == "length" and r["content_length"] == 5
    assert r["keep_alive"] is True
    assert [(n, v) for n, v, *_ in r["headers"]] == [(b"Content-Length", b"5"), (b"Server", b"x")]


@pytest.mark.parametrize(
    "start,reason",
    [
        ("HTTP/1.1 404 Not Found", b"Not Found"),
        ("HTTP/1.1 200 ", b""),
        ("HTTP/1.1 200", b""),
        ("HTTP/1.1 599 \xe9t\xe9\tok", b"\xe9t\xe9\tok"),
    ],
)
def test_reason_phrases(start, reason):
    r = parse(resp("Content-Length: 0", start=start))
    assert r["reason"] == reason


@pytest.mark.parametrize(
    "start,fields,kw,framing,length,flags",
    [
        ("HTTP/1.1 200 OK", ["Content-Length: 7"], {}, "length", 7, []),
        ("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked"], {}, "chunked", 0, []),
        ("HTTP/1.1 200 OK", ["Transfer-Encoding: gzip, chunked"], {}, "chunked", 0, []),
        ("HTTP/1.1 200 OK", ["Transfer-Encoding: gzip"], {}, "close", 0, []),
        ("HTTP/1.1 200 OK", [], {}, "close", 0, []),
        ("HTTP/1.0 200 OK", ["Content-Length: 2"], {}, "length", 2, []),
        ("HTTP/1.1 200 OK", ["Content-Length: 7"], {"head": True}, "none", 0, []),
        ("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked"], {"head": True}, "none", 0, []),
        ("HTTP/1.1 204 No Content", [], {}, "none", 0, []),
        ("HTTP/1.1 304 Not Modified", ["Content-Length: 10"], {}, "none", 0, []),
        ("HTTP/1.1 100 Continue", [], {}, "none", 0, []),
        ("HTTP/1.1 103 Early Hints", ["Link: </a>"], {}, "none", 0, []),
        ("HTTP/1.1 101 Switching Protocols", ["Connection: Upgrade", "Upgrade: websocket"], {}, "none", 0,
         ["conn_upgrade", "upgrade", "tunnel"]),
        ("HTTP/1.1 200 Connection established", [], {"connect": True}, "none", 0, ["tunnel"]),
        ("HTTP/1.1 407 Proxy Auth", ["Content-Length: 1"], {"connect": True}, "length", 1, []),
    ],
)
def test_framing(start, fields, kw, framing, length, flags):
    r = parse(resp(*fields, start=start), **kw)
    assert r["rc"] > 0, r
    assert (r["framing"], r["content_length"], r["flags"]) == (framing, length, flags)


def test_keep_alive():
    assert parse(resp("Content-Length: 0"))["keep_alive"] is True
    assert parse(resp("Content-Length: 0", "Connection: close"))["keep_alive"] is False
    assert parse(resp())["keep_alive"] is False  # close-delimited
    assert parse(resp("Content-Length: 0", start="HTTP/1.0 200 OK"))["keep_alive"] is False
    r = parse(resp("Content-Length: 0", "Connection: keep-alive", start="HTTP/1.0 200 OK"))
    assert r["keep_alive"] is True


HOSTILE = [
    ("cl_and_te", resp("Content-Length: 3", "Transfer-Encoding: chunked"), "cl_and_te"),
    ("cl_twice", resp("Content-Length: 3", "Content-Length: 4"), "content_length"),
    ("cl_bad", resp("Content-Length: 3a"), "content_length"),
    ("te_chunked_twice", resp("Transfer-Encoding: chunked, chunked"), "te_not_chunked"),
    ("te_http10", resp("Transfer-Encoding: chunked", start="HTTP/1.0 200 OK"), "te_http10"),
    ("obs_fold", resp("X-A: b", " c"), "obs_fold"),
    ("ws_before_colon", resp("Content-Length : 3"), "header_name"),
    ("bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "line_ending"),
    ("bare_cr", resp("X-A: a\rb"), "line_ending"),
    ("nul", resp("X-A: a\x00b"), "header_value"),
    ("two_digit_status", b"HTTP/1.1 20 OK\r\n\r\n", "status"),
    ("four_digit_status", b"HTTP/1.1 2000 OK\r\n\r\n", "status"),
    ("status_099", b"HTTP/1.1 099 OK\r\n\r\n", "status"),
    ("status_letters", b"HTTP/1.1 2xx OK\r\n\r\n", "status"),
    ("nul_in_reason", b"HTTP/1.1 200 O\x00K\r\n\r\n", "status"),
    ("no_space", b"HTTP/1.1200 OK\r\n\r\n", "status"),
    ("version", b"HTTP/2 200 OK\r\n\r\n", "version"),
    ("version_unsupported", b"HTTP/1.2 200 OK\r\n\r\n", "version_unsupported"),
]


@pytest.mark.parametrize("name,data,error", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_response_is_refused(name, data, error):
    assert parse(data) == {"rc": ERR, "error": error}
    for i in range(len(data)):
        assert parse(data[:i])["rc"] in (AGAIN, ERR)


def test_response_limits():
    big = resp(*[f"X-{i}: {'v' * 100}" for i in range(200)])
    assert parse(big, max_headers=250)["error"] == "head_too_large"
    assert parse(big, max_headers=250, head_max=len(big))["rc"] == len(big)
    assert parse(big, head_max=len(big))["error"] == "too_many_headers"


VALID = [
    resp("Content-Length: 5") + b"hello",
    resp("Transfer-Encoding: chunked", "Set-Cookie: a=b; Path=/") + b"0\r\n\r\n",
    resp(start="HTTP/1.1 204"),
    resp("Server: fastlb-test", "X-Tab: a\tb", start="HTTP/1.0 500 Internal Server Error"),
]


@pytest.mark.parametrize("data", VALID)
def test_every_cut_is_again_then_the_same_result(data):
    full = parse(data)
    assert full["rc"] > 0, full
    for i in range(full["rc"]):
        assert parse(data[:i]) == {"rc": AGAIN}, i
        if i:
            assert parse(data[:i], prev_len=i - 1) == {"rc": AGAIN}, i
    assert parse(data[: full["rc"]], prev_len=full["rc"] - 1) == full
    assert parse(data) == full
