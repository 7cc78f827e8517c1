"""Writes seeds for the ClientHello reader's fuzz target into DIR (default fuzz/build/seeds-hello): real
ClientHellos from Python's ssl (with and without a server name, TLS 1.2 and 1.3, cut at a few places and
framed again into small records) and a few hostile inputs, one file per case:

    python3 fuzz/seed_hello.py [DIR]

`make -C fuzz fuzz` and `make -C fuzz replay` run it, so the seeds follow what clients send today."""

import ssl
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "fuzz" / "build" / "seeds-hello"


def client_hello(server_name: str | None, version: ssl.TLSVersion | None = None) -> bytes:
    """What Python's ssl sends first, over memory BIOs (nothing answers it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.maximum_version = version
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def reframe(wire: bytes, size: int) -> bytes:
    msg = b""
    while len(wire) >= 5:
        n = int.from_bytes(wire[3:5], "big")
        msg += wire[5 : 5 + n]
        wire = wire[5 + n :]
    pieces = [msg[i : i + size] for i in range(0, len(msg), size)]
    return b"".join(b"\x16\x03\x01" + len(p).to_bytes(2, "big") + p for p in pieces)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else SEEDS
    out.mkdir(parents=True, exist_ok=True)
    cases = {
        "sni13": client_hello("api.example.com"),
        "sni12": client_hello("db.example.com", ssl.TLSVersion.TLSv1_2),
        "nosni": client_hello(None),
        "http": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "sslv2": b"\x80\x2e\x01\x00\x02\x00\x15",
        "huge": b"\x16\x03\x01\x00\x04\x01\x00\x40\x00",
    }
    hello = cases["sni13"]
    for size in (1, 7, 100, 300):
        cases[f"records{size}"] = reframe(hello, size)
    for cut in (5, 9, 50, len(hello) - 1):
        cases[f"cut{cut}"] = hello[:cut]
    for name, data in cases.items():
        (out / name).write_bytes(data)


if __name__ == "__main__":
    main()
