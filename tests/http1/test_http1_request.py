"""The request head parser (fastlb/_http1.c) through its test hooks: what it reports for valid heads,
and every rule that makes a head a refusal (each hostile case below is a request-smuggling or
desynchronisation vector, or a limit)."""

import random

import pytest

from fastlb import _testhooks

AGAIN = -2
ERR = -1

H_OTHER, H_HOST, H_CL, H_TE, H_CONNECTION, H_UPGRADE, H_EXPECT, H_COOKIE, H_APP_ID = range(9)


def parse(data: bytes, **kw):
    return _testhooks._http1_parse_request(data, **kw)


def req(*fields: str, start: str = "GET / HTTP/1.1", host: str | None = "example.com") -> bytes:
    lines = [start]
    if host is not None:
        lines.append(f"Host: {host}")
    lines.extend(fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --- valid heads -------------------------------------------------------------------------------


def test_simple_get():
    data = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"
    r = parse(data)
    assert r["rc"] == len(data) == r["head_len"]
    assert r["method"] == b"GET"
    assert r["target"] == b"/index.html?q=1"
    assert r["minor"] == 1
    assert r["host"] == b"example.com"
    assert r["framing"] == "none"
    assert r["keep_alive"] is True
    assert [(n, v) for n, v, *_ in r["headers"]] == [(b"Host", b"example.com"), (b"User-Agent", b"t")]


def test_results_point_into_the_callers_buffer():
    data = b"POST /p HTTP/1.1\r\nHost:   h.example   \r\nX-A:\t v \t\r\n\r\n"
    r = parse(data)
    assert r["target_offset"] == 5
    for name, value, _kind, noff, voff in r["headers"]:
        assert data[noff : noff + len(name)] == name
        assert data[voff : voff + len(value)] == value
    # OWS trimmed both sides, inner bytes kept
    assert [(n, v) for n, v, *_ in r["headers"]] == [(b"Host", b"h.example"), (b"X-A", b"v")]


def test_facts_gathered_in_one_pass():
    data = req(
        "Cookie: a=1",
        "content-length: 12",
        "CONNECTION: keep-alive, Upgrade, X-Foo",
        "Upgrade: websocket",
        "Expect: 100-Continue",
        "X-Marathon-App-Id: /group/app",
        "Cookie: b=2",
    )
    r = parse(data + b"hello world!")
    assert r["rc"] == len(data)
    assert r["framing"] == "length" and r["content_length"] == 12
    assert set(r["flags"]) == {"conn_keep_alive", "conn_upgrade", "conn_other", "upgrade", "expect_continue"}
    assert r["app_id"] == b"/group/app"
    assert r["cookies"] == 2 and r["cookie_first"] == 1
    kinds = [k for _n, _v, k, *_ in r["headers"]]
    assert kinds == [H_HOST, H_COOKIE, H_CL, H_CONNECTION, H_UPGRADE, H_EXPECT, H_APP_ID, H_COOKIE]


def test_chunked_framing():
    r = parse(req("Transfer-Encoding: chunked"))
    assert r["framing"] == "chunked"
    r = parse(req("Transfer-Encoding:  Chunked  "))
    assert r["framing"] == "chunked"


def test_keep_alive_rules():
    assert parse(req("Connection: close"))["keep_alive"] is False
    assert parse(req(start="GET / HTTP/1.0", host=None))["keep_alive"] is False
    r = parse(req("Connection: Keep-Alive", start="GET / HTTP/1.0", host=None))
    assert r["keep_alive"] is True and r["minor"] == 0 and r["host"] is None


@pytest.mark.parametrize(
    "start",
    [
        "OPTIONS * HTTP/1.1",
        "CONNECT example.com:443 HTTP/1.1",
        "GET http://example.com/a?b HTTP/1.1",
        "PURGE /x HTTP/1.1",  # any token is a method; the backend decides what it means
        "GET /%7Efoo;p?q=a/b&c=%20#frag HTTP/1.1",
    ],
)
def test_request_target_forms(start):
    r = parse(req(start=start))
    assert r["rc"] > 0, r


@pytest.mark.parametrize(
    "host", ["", "example.com:8080", "[::1]:80", "[fe80::1%25eth0]", "10.0.0.1", "a-b_c~d.e", "example.com:"]
)
def test_valid_hosts(host):
    r = parse(req(host=host))
    assert r["rc"] > 0, r
    assert r["host"] == host.encode()


def test_underscores_elsewhere_are_ordinary():
    r = parse(req("X_Forwarded_For: 10.0.0.1", "Content_Type: text/plain", "Content_Lengths: 5"))
    assert r["rc"] > 0 and r["framing"] == "none"


def test_obs_text_in_values_is_kept():
    r = parse(req("X-Name: caf\xe9"))
    assert r["headers"][1][1] == b"caf\xe9"


def test_content_length_limits():
    assert parse(req("Content-Length: 9223372036854775807"))["content_length"] == 2**63 - 1
    assert parse(req("Content-Length: 0007"))["content_length"] == 7
    assert parse(req("Content-Length: 0"))["framing"] == "length"


def test_pipelined_bytes_are_not_consumed():
    data = req() + b"GET /next HTTP/1.1\r\n"
    assert parse(data)["rc"] == len(req())


# --- hostile heads: refused, with the status to answer -------------------------------------------

HOSTILE = [
    # framing
    ("cl_and_te", req("Content-Length: 5", "Transfer-Encoding: chunked"), "cl_and_te", 400),
    ("te_and_cl", req("Transfer-Encoding: chunked", "Content-Length: 5"), "cl_and_te", 400),
    ("cl_differs", req("Content-Length: 5", "Content-Length: 6"), "content_length", 400),
    ("cl_repeated_same", req("Content-Length: 5", "Content-Length: 5"), "content_length", 400),
    ("cl_list", req("Content-Length: 5, 5"), "content_length", 400),
    ("cl_list_differs", req("Content-Length: 5, 6"), "content_length", 400),
    ("cl_negative", req("Content-Length: -5"), "content_length", 400),
    ("cl_plus", req("Content-Length: +5"), "content_length", 400),
    ("cl_hex", req("Content-Length: 0x5"), "content_length", 400),
    ("cl_inner_space", req("Content-Length: 5 5"), "content_length", 400),
    ("cl_empty", req("Content-Length:"), "content_length", 400),
    ("cl_float", req("Content-Length: 5.0"), "content_length", 400),
    ("cl_2_63", req("Content-Length: 9223372036854775808"), "content_length", 400),
    ("cl_overflow", req("Content-Length: 99999999999999999999999"), "content_length", 400),
    ("cl_vtab", req("Content-Length: \x0b5"), "header_value", 400),
    ("te_gzip", req("Transfer-Encoding: gzip"), "te_not_chunked", 400),
    ("te_identity", req("Transfer-Encoding: identity"), "te_not_chunked", 400),
    ("te_chunked_not_last", req("Transfer-Encoding: chunked, gzip"), "te_not_chunked", 400),
    ("te_chunked_twice", req("Transfer-Encoding: chunked, chunked"), "te_not_chunked", 400),
    ("te_chunked_two_fields", req("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
     "te_not_chunked", 400),
    ("te_chunked_param", req("Transfer-Encoding: chunked;q=1"), "te_not_chunked", 400),
    ("te_empty_element", req("Transfer-Encoding: , chunked"), "te_not_chunked", 400),
    ("te_trailing_comma", req("Transfer-Encoding: chunked,"), "te_not_chunked", 400),
    ("te_empty", req("Transfer-Encoding:"), "te_not_chunked", 400),
    ("te_xchunked", req("Transfer-Encoding: xchunked"), "te_not_chunked", 400),
    ("te_quoted", req('Transfer-Encoding: "chunked"'), "te_not_chunked", 400),
    ("te_space_inside", req("Transfer-Encoding: chun ked"), "te_not_chunked", 400),
    ("te_vtab", req("Transfer-Encoding: \x0bchunked"), "header_value", 400),
    # a tab around a framing value: white space to RFC 9110, not to every backend (smuggling)
    ("te_trailing_tab", req("Transfer-Encoding: chunked\t"), "header_value", 400),
    ("te_leading_tab", req("Transfer-Encoding:\tchunked"), "header_value", 400),
    ("cl_trailing_tab", req("Content-Length: 0\t"), "header_value", 400),
    ("te_gzip_chunked", req("Transfer-Encoding: gzip, chunked"), "te_unsupported", 501),
    ("te_deflate_chunked", req("Transfer-Encoding: deflate", "Transfer-Encoding: chunked"), "te_unsupported",
     501),
    ("te_identity_chunked", req("Transfer-Encoding: identity, chunked"), "te_unsupported", 501),
    ("te_http10", req("Transfer-Encoding: chunked", start="POST / HTTP/1.0"), "te_http10", 400),
    ("te_cl_http10", req("Transfer-Encoding: chunked", "Content-Length: 3", start="POST / HTTP/1.0"),
     "te_http10", 400),
    # line syntax
    ("obs_fold", req("X-A: b", " c"), "obs_fold", 400),
    ("obs_fold_tab", req("X-A: b", "\tc"), "obs_fold", 400),
    ("ws_after_start_line", req(" X-A: b", host=None), "obs_fold", 400),
    ("ws_before_colon", req("Content-Length : 5"), "header_name", 400),
    ("tab_before_colon", req("Transfer-Encoding\t: chunked"), "header_name", 400),
    ("empty_name", req(": value"), "header_name", 400),
    ("cl_underscore", req("Content_Length: 5"), "header_name", 400),
    ("te_underscore", req("transfer_encoding: chunked"), "header_name", 400),
    ("te_mixed_underscore", req("Transfer-Encoding: chunked", "Transfer_Encoding: chunked"), "header_name", 400),
    ("no_colon", req("X-A value"), "header_name", 400),
    ("bare_cr_in_value", req("X-A: a\rb"), "line_ending", 400),
    ("bare_cr_end", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", "line_ending", 400),
    ("cr_cr_lf", b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", "line_ending", 400),
    ("nul_in_value", req("X-A: a\x00b"), "header_value", 400),
    ("del_in_value", req("X-A: a\x7fb"), "header_value", 400),
    ("ctl_in_value", req("X-A: a\x01b"), "header_value", 400),
    ("esc_in_value", req("X-A: \x1b[31m"), "header_value", 400),
    ("nul_in_name", req("X-\x00A: b"), "header_name", 400),
    ("obs_text_in_name", req("X-\xe9: b"), "header_name", 400),
    ("bare_lf_everywhere", b"GET / HTTP/1.1\nHost: a\n\n", "line_ending", 400),
    ("bare_lf_field", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", "line_ending", 400),
    ("bare_lf_end", b"GET / HTTP/1.1\r\nHost: a\r\n\n", "line_ending", 400),
    ("bare_lf_start_line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", "line_ending", 400),
    ("leading_crlf", b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "method", 400),
    # start line
    ("nul_in_target", b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", "target", 400),
    ("obs_text_in_target", b"GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", "target", 400),
    ("tab_in_target", b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", "target", 400),
    ("space_in_target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", "version", 400),
    ("double_space", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "target", 400),
    ("no_version", b"GET /\r\nHost: a\r\n\r\n", "target", 400),
    ("relative_target", b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", "target", 400),
    ("asterisk_not_options", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "target", 400),
    ("connect_origin_form", b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", "target", 400),
    ("empty_method", b" / HTTP/1.1\r\nHost: a\r\n\r\n", "method", 400),
    ("bad_method", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "method", 400),
    ("lower_http", b"GET / http/1.1\r\nHost: a\r\n\r\n", "version", 400),
    ("short_version", b"GET / HTTP/1\r\nHost: a\r\n\r\n", "version", 400),
    ("long_version", b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", "version", 400),
    ("space_after_version", b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "version", 400),
    ("http_2_0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "version_unsupported", 505),
    ("http_1_2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", "version_unsupported", 505),
    ("http_0_9", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", "version_unsupported", 505),
    # Host and routing
    ("host_missing", req(host=None), "host", 400),
    ("host_twice", req("Host: example.com"), "host", 400),
    ("host_twice_http10", req("Host: a", "Host: b", start="GET / HTTP/1.0", host=None), "host", 400),
    ("host_space", req(host="a b"), "host", 400),
    ("host_slash", req(host="a/b"), "host", 400),
    ("host_userinfo", req(host="user@a"), "host", 400),
    ("host_bad_port", req(host="a:80x"), "host", 400),
    ("host_only_port", req(host=":80"), "host", 400),
    ("host_unclosed_bracket", req(host="[::1"), "host", 400),
    ("app_id_twice", req("X-Marathon-App-Id: /a", "X-Marathon-App-Id: /b"), "app_id", 400),
]


@pytest.mark.parametrize("name,data,error,status", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_request_is_refused(name, data, error, status):
    r = parse(data)
    assert r == {"rc": ERR, "error": error, "status": status}


@pytest.mark.parametrize("name,data,error,status", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_request_prefixes_never_accept(name, data, error, status):
    """A refused head is refused, never accepted, at every cut; once refused, every longer cut gives the
    same answer."""
    refused = False
    for i in range(len(data) + 1):
        r = parse(data[:i])
        assert r["rc"] in (AGAIN, ERR), (i, r)
        if refused:
            assert r["error"] == error, (i, r)
        refused = r["rc"] == ERR


# --- limits -----------------------------------------------------------------------------------


def test_head_too_large_is_431():
    data = req(*[f"X-Pad-{i}: {'v' * 200}" for i in range(90)])
    assert len(data) > 16384
    assert parse(data) == {"rc": ERR, "error": "head_too_large", "status": 431}
    # an endless head is refused as soon as it passes the limit, without an end in sight
    assert parse(data[:16385], max_headers=200)["error"] == "head_too_large"
    assert parse(data[:16384], max_headers=200)["rc"] == AGAIN
    # the limit is a parameter
    assert parse(data, max_headers=200, head_max=65536)["rc"] == len(data)
    small = req("X-A: " + "b" * 100)
    assert parse(small, head_max=len(small))["rc"] == len(small)
    assert parse(small, head_max=len(small) - 1)["error"] == "head_too_large"


def test_too_many_headers_is_431():
    data = req(*[f"X-{i}: v" for i in range(100)])  # Host + 100
    assert parse(data) == {"rc": ERR, "error": "too_many_headers", "status": 431}
    assert parse(data, max_headers=101)["rc"] == len(data)
    assert parse(req(), max_headers=0)["error"] == "too_many_headers"


def test_target_too_long_is_414():
    at_limit = req(start="GET /" + "a" * 8191 + " HTTP/1.1")
    assert parse(at_limit)["rc"] == len(at_limit)
    over = req(start="GET /" + "a" * 8192 + " HTTP/1.1")
    assert parse(over) == {"rc": ERR, "error": "target_too_long", "status": 414}
    # known before the request line ends
    assert parse(over[:8200])["error"] == "target_too_long"
    assert parse(req(start="GET /abcdef HTTP/1.1"), target_max=4)["error"] == "target_too_long"


# --- incomplete input ---------------------------------------------------------------------------

VALID = [
    req(),
    req("Content-Length: 3") + b"abc",
    req("Transfer-Encoding: chunked") + b"3\r\nabc\r\n0\r\n\r\n",
    req("Cookie: a=1; b=2", "User-Agent: Mozilla/5.0 (X11; Linux x86_64)", "Accept: */*", "X-Empty:"),
    req("Connection: close", start="GET / HTTP/1.0", host=None),
    req(start="CONNECT example.com:443 HTTP/1.1", host="example.com:443"),
    req("X-Long: " + "x" * 300, "X-Tab: a\tb"),
    b"GET / HTTP/1.1\r\nHost:a\r\n\r\n",
]


@pytest.mark.parametrize("data", VALID)
def test_every_cut_is_again_then_the_same_result(data):
    full = parse(data)
    assert full["rc"] > 0, full
    for i in range(full["rc"]):
        assert parse(data[:i]) == {"rc": AGAIN}, i
    for i in range(full["rc"], len(data) + 1):
        assert parse(data[:i]) == full


@pytest.mark.parametrize("data", VALID)
def test_byte_at_a_time_with_prev_len(data):
    full = parse(data)
    for i in range(1, full["rc"]):
        assert parse(data[:i], prev_len=i - 1) == {"rc": AGAIN}, i
    assert parse(data[: full["rc"]], prev_len=full["rc"] - 1) == full


def test_random_pieces_with_prev_len():
    rnd = random.Random(1234)
    for data in VALID * 5:
        full = parse(data)
        seen = 0
        while True:
            n = min(len(data), seen + rnd.randint(1, 9))
            r = parse(data[:n], prev_len=seen)
            if r["rc"] != AGAIN:
                assert r == full
                break
            seen = n


def test_prev_len_defers_an_error_to_the_end_of_the_head_at_most():
    data = b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n"
    assert parse(data[:8], prev_len=7) == {"rc": AGAIN}
    assert parse(data[:20], prev_len=19) == {"rc": AGAIN}
    assert parse(data, prev_len=len(data) - 1)["error"] == "target"
    # a bare LF is an error at once, and so is passing head_max
    assert parse(b"GET / HTTP/1.1\nHost", prev_len=10)["error"] == "line_ending"
    endless = b"GET /a\x00b HTTP/1.1\r\nX: " + b"a" * 20000
    assert parse(endless, prev_len=len(endless) - 1)["error"] == "target"
    assert parse(endless[:16000], prev_len=15999) == {"rc": AGAIN}


def test_errors_map_to_statuses():
    statuses = _testhooks._http1_errors()
    assert statuses["target_too_long"] == 414
    assert statuses["head_too_large"] == statuses["too_many_headers"] == 431
    assert statuses["te_unsupported"] == 501
    assert statuses["version_unsupported"] == 505
    assert {statuses[n] for n in ("cl_and_te", "content_length", "obs_fold", "host", "line_ending")} == {400}
