"""Helpers of the engine tests: tables for a real DataPlane (tests/conftest.py starts it) in front of real
loopback backends."""

from __future__ import annotations

import socket

from fastlb import spec

TIMEOUT = 20.0  # generous: the test machine is small and shared


def service(name: str, backends: list[str] | list[spec.Backend], **kw: object) -> spec.Service:
    """A service over <backends> (addresses, used as ids too, or spec.Backend values)."""
    bes = tuple(b if isinstance(b, spec.Backend) else spec.Backend(id=b, address=b) for b in backends)
    return spec.Service(name=name, backends=bes, **kw)  # type: ignore[arg-type]


def table(services: list[spec.Service], listeners: dict[str, str], **kw: object) -> spec.RouteTable:
    """A table with <services> and <listeners> (address -> service name)."""
    lst = tuple(spec.Listener(address=a, service=s) for a, s in listeners.items())
    return spec.RouteTable(services=tuple(services), listeners=lst, **kw)  # type: ignore[arg-type]


def connect(address: str, timeout: float = TIMEOUT) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_line(sock: socket.socket) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise EOFError(f"EOF after {bytes(buf)!r}")
        buf += chunk
    return bytes(buf)


def recv_all(sock: socket.socket) -> bytes:
    """Everything until EOF."""
    buf = bytearray()
    while chunk := sock.recv(65536):
        buf += chunk
    return bytes(buf)


