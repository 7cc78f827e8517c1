"""The chunked body decoder: where a chunked body ends, how much of it is payload, and what it refuses.
A proxy forwards the bytes as they came, so the decoder's one job is to find the end exactly."""

import pytest

from fastlb import _testhooks

AGAIN = -2
ERR = -1


def feed(*pieces: bytes):
    return _testhooks._http1_chunked(list(pieces))


def test_simple_body():
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    r = feed(body)
    assert r == {"rc": len(body), "consumed": len(body), "calls": 1, "data_bytes": 11, "error": None}


def test_body_end_leaves_the_next_message():
    body = b"3\r\nabc\r\n0\r\n\r\n"
    r = feed(body + b"GET / HTTP/1.1\r\n")
    assert r["rc"] == len(body)


@pytest.mark.parametrize(
    "body,data",
    [
        (b"A\r\n0123456789\r\n0\r\n\r\n", 10),
        (b"a\r\n0123456789\r\n0\r\n\r\n", 10),
        (b"0000000003\r\nabc\r\n000\r\n\r\n", 3),
        (b"3;name=value;x=\"quoted; \\\" str\"\r\nabc\r\n0;last\r\n\r\n", 3),
        (b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Checksum: abc\t1\r\n\r\n", 3),
        (b"0\r\n\r\n", 0),
        (b"1\r\n\x00\r\n0\r\n\r\n", 1),  # chunk data is never looked at
    ],
)
def test_valid_bodies(body, data):
    r = feed(body)
    assert (r["rc"], r["data_bytes"], r["error"]) == (len(body), data, None)


def test_large_chunk_size_is_taken():
    # 60 bits: the largest size accepted
    r = feed(b"fffffffffffffff\r\n" + b"x" * 100)
    assert r["rc"] == AGAIN and r["data_bytes"] == 100


HOSTILE = [
    ("size_overflow_16_digits", b"10000000000000000\r\n", "chunk_size"),
    ("size_overflow_64_bits", b"ffffffffffffffff\r\n", "chunk_size"),
    ("size_overflow_wraps_to_small", b"10000000000000005\r\nhello\r\n0\r\n\r\n", "chunk_size"),
    ("size_negative", b"-1\r\n", "chunk_size"),
    ("size_hex_prefix", b"0x5\r\nhello\r\n", "chunk_size"),
    ("size_empty", b"\r\nhello\r\n", "chunk_size"),
    ("size_space", b"5 \r\nhello\r\n0\r\n\r\n", "chunk_size"),
    ("size_space_before_ext", b"5 ;a\r\nhello\r\n0\r\n\r\n", "chunk_size"),
    ("size_leading_space", b" 5\r\nhello\r\n", "chunk_size"),
    ("size_bare_lf", b"5\nhello\r\n0\r\n\r\n", "chunk_size"),
    ("size_bare_cr", b"5\rhello\r\n", "chunk_size"),
    ("size_plus", b"+5\r\nhello\r\n", "chunk_size"),
    ("ext_ctl", b"5;a\x00b\r\nhello\r\n", "chunk_ext"),
    ("ext_bare_lf", b"5;a\nhello\r\n", "chunk_ext"),
    ("ext_too_long", b"5;" + b"a" * 5000 + b"\r\nhello\r\n", "chunk_ext"),
    ("zeros_too_long", b"0" * 5000 + b"5\r\nhello\r\n", "chunk_ext"),
    ("data_too_long", b"5\r\nhello!\r\n0\r\n\r\n", "chunk_data"),
    ("data_bare_lf", b"5\r\nhello\n0\r\n\r\n", "chunk_data"),
    ("data_no_crlf", b"5\r\nhello0\r\n\r\n", "chunk_data"),
    ("trailer_cl", b"0\r\nContent-Length: 5\r\n\r\n", "trailer"),
    ("trailer_te", b"0\r\ntransfer-encoding: chunked\r\n\r\n", "trailer"),
    ("trailer_host", b"0\r\nHOST: evil\r\n\r\n", "trailer"),
    ("trailer_obs_fold", b"0\r\nX: a\r\n b\r\n\r\n", "trailer"),
    ("trailer_ws_before_colon", b"0\r\nX : a\r\n\r\n", "trailer"),
    ("trailer_empty_name", b"0\r\n: a\r\n\r\n", "trailer"),
    ("trailer_bare_lf", b"0\r\nX: a\n\r\n", "trailer"),
    ("trailer_nul", b"0\r\nX: a\x00\r\n\r\n", "trailer"),
    ("end_bare_lf", b"0\r\n\n", "trailer"),
    ("end_bare_cr", b"0\r\n\rX", "trailer"),
    ("trailers_too_large", b"0\r\n" + b"X-Pad: " + b"p" * 17000 + b"\r\n\r\n", "trailers_too_large"),
]


@pytest.mark.parametrize("name,body,error", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_body_is_refused(name, body, error):
    r = feed(body)
    assert (r["rc"], r["error"]) == (ERR, error)
    # byte by byte: the same refusal, never an end
    r = feed(*[body[i : i + 1] for i in range(len(body))])
    assert (r["rc"], r["error"]) == (ERR, error)


def test_a_refused_decoder_stays_refused():
    r = feed(b"5\n", b"0\r\n\r\n")
    assert (r["rc"], r["calls"]) == (ERR, 1)


VALID = [
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"1a;ext=1\r\n" + b"z" * 26 + b"\r\n0\r\nX-T: v\r\nY: \r\n\r\n",
    b"0\r\n\r\n",
]


@pytest.mark.parametrize("body", VALID)
def test_every_cut_gives_the_same_end(body):
    whole = feed(body + b"NEXT")
    assert whole["rc"] == len(body)
    for i in range(len(body) + 1):
        r = feed(body[:i], body[i:] + b"NEXT")
        assert (r["consumed"], r["data_bytes"], r["error"]) == (len(body), whole["data_bytes"], None), i
        if i < len(body):
            assert r["calls"] == 2
    r = feed(*[body[i : i + 1] for i in range(len(body))], b"NEXT")
    assert (r["rc"], r["consumed"], r["calls"]) == (1, len(body), len(body))


@pytest.mark.parametrize("body", VALID)
def test_every_prefix_is_again(body):
    for i in range(len(body)):
        r = feed(body[:i])
        assert r["rc"] == AGAIN and r["consumed"] == i, i
