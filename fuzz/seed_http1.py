"""Writes the unit tests' inputs (valid and hostile requests, responses and chunked bodies) and the
rewrites' edit heads into DIR (default fuzz/build/seeds), one file per case, named after it:

    python3 fuzz/seed_http1.py [DIR]

`make -C fuzz fuzz` and `make -C fuzz replay` run it, so the seeds always follow the tests and are not
stored; fuzz/corpus/http1 keeps what the fuzzer found (found-*, crash-*)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "fuzz" / "build" / "seeds"

sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "http1")]
import test_http1_chunked  # noqa: E402
import test_http1_request  # noqa: E402
import test_http1_response  # noqa: E402

# Heads for the rewrites' edits (PROXYPASS_PATH's "/api" off the target, REVPROXY_PATH's split of
# Location): targets at, around and past the prefix, in both forms, with bodies; Location values of
# every kind the split tells apart.
EDITS = [
    b"GET /api/x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /api HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /api?x=/api/y HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /api/u HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"GET http://a.example.com/api/x HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
    b"GET HTTP://a/api HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /apix HTTP/1.1\r\nHost: a\r\n\r\n",
    b"PUT /api/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET /api#x HTTP/1.0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 301 M\r\nLocation: http://a.example.com:8080/x\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 301 M\r\nLocation: HTTPS://u@a/x\r\nLocation: //evil/x\r\nLocation: http://a\\b/\r\n\r\n",
    b"HTTP/1.1 303 S\r\nLocation: https://[::1]:443/p?q\r\nLocation: http://:80/\r\nContent-Length: 0\r\n\r\n",
]


def main(out: Path = SEEDS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    modules = (("req", test_http1_request), ("resp", test_http1_response), ("chunk", test_http1_chunked))
    for prefix, module in modules:
        for name, data, *_ in module.HOSTILE:
            (out / f"{prefix}-bad-{name}").write_bytes(data)
        for i, data in enumerate(module.VALID):
            (out / f"{prefix}-ok-{i}").write_bytes(data)
    for i, data in enumerate(EDITS):
        (out / f"edit-{i}").write_bytes(data)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SEEDS)
