"""Fixtures of the HTTP-mode tests: a real DataPlane in front of real loopback HTTP backends, and a
small client that reads responses off a raw socket (so keep-alive and pipelining stay visible)."""

from __future__ import annotations

import json
import socket
from typing import Any

import msgspec

from fastlb import spec

TIMEOUT = 20.0  # generous: the test machine is small and shared


def http_service(name: str, backends: list[str], **kw: Any) -> spec.Service:
    """An http-mode service over backend addresses (used as ids too)."""
    bes = tuple(spec.Backend(id=b, address=b) for b in backends)
    return spec.Service(name=name, mode="http", backends=bes, **kw)


def options(**kw: Any) -> spec.HttpOptions:
    return spec.HttpOptions(**kw)


def timeouts(**kw: Any) -> spec.Timeouts:
    return spec.Timeouts(**kw)


def port_table(svc: spec.Service, front: str) -> spec.RouteTable:
    """A table with one service and its per-port listener."""
    return spec.RouteTable(services=(svc,), listeners=(spec.Listener(address=front, service=svc.name),))


def connect(address: str, timeout: float = TIMEOUT) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Response(msgspec.Struct):
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


class Reader:
    """Reads HTTP responses off one client socket, keeping what follows a response for the next."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            if not self._more():
                raise EOFError(f"EOF with {len(self.buf)} of {n} bytes")

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._more():
                raise EOFError(f"EOF in a line: {bytes(self.buf)!r}")
        line, _, rest = bytes(self.buf).partition(b"\r\n")
        self.buf[:] = rest
        return line

    def response(self, head_request: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                raise EOFError(f"EOF before a response head: {bytes(self.buf)!r}")
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf[:] = rest
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:])]
        hmap = {k.lower(): v for k, v in headers}
        if head_request or status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, b"")
        if "content-length" in hmap:
            n = int(hmap["content-length"])
            self._need(n)
            body = bytes(self.buf[:n])
            del self.buf[:n]
            return Response(status, headers, body)
        if hmap.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    return Response(status, headers, bytes(body))
                self._need(size + 2)
                body += self.buf[:size]
                del self.buf[: size + 2]
        while self._more():
            pass
        body = bytes(self.buf)
        self.buf.clear()
        return Response(status, headers, body)

    def at_eof(self) -> bool:
        """True when the server has closed (nothing more comes)."""
        if self.buf:
            return False
        try:
            return not self._more()
        except ConnectionResetError:
            return True


def request(address: str, raw: bytes, head_request: bool = False) -> Response:
    """One request on a fresh connection."""
    with connect(address) as c:
        c.sendall(raw)
        return Reader(c).response(head_request)


def get(path: str = "/", host: str = "example.com", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


