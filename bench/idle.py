"""Memory per idle client connection: the proxy's memory growth per connection held open and idle.

The harness itself is the client: it opens N connections to the proxy and sends nothing, then sends one
keep-alive request on each, reads the response and leaves them idle again. Between the phases the
proxy's RSS (and the kernel's TCP counters) are read; the deltas divided by N are the figures. Every
loop here is bounded by a deadline and every socket is a loopback connection this process owns and
closes.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: fastlb-bench-idle\r\n\r\n"


class IdleFailed(RuntimeError):
    pass


def response_length(buf: bytes) -> int | None:
    """Length of the first complete HTTP/1.1 response in <buf> (head and Content-Length body), or None
    while it is incomplete. Raises ValueError on a response without Content-Length (the backend always
    sends one) or one whose status is not 200."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
        raise ValueError(f"unexpected status line {head[0]!r}")
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            total = end + 4 + int(value.strip())
            return total if len(buf) >= total else None
    raise ValueError("response without Content-Length")


def parse_sockstat(text: str) -> dict[str, int]:
    """/proc/net/sockstat's TCP line: inuse, orphan, tw, alloc, mem (pages)."""
    for line in text.splitlines():
        if line.startswith("TCP:"):
            vals = line.split()[1:]
            return {vals[i]: int(vals[i + 1]) for i in range(0, len(vals) - 1, 2)}
    return {}


def sockstat() -> dict[str, int]:
    try:
        return parse_sockstat(Path("/proc/net/sockstat").read_text())
    except OSError:
        return {}


def per_conn_kib(before_kib: int, after_kib: int, conns: int) -> float | None:
    """(after - before) / conns, in kB (KiB, as /proc reports it)."""
    return (after_kib - before_kib) / conns if conns > 0 else None


@dataclass
class IdleClients:
    """<n> client connections to host:port that this process opens, holds and closes."""

    host: str
    port: int
    n: int
    socks: list[socket.socket] = field(default_factory=list)
    connect_errors: int = 0

    def __enter__(self) -> IdleClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks.clear()

    def open(self, timeout: float) -> int:
        """Opens the connections (non-blocking connects, at most <timeout> s in all); returns how many
        connected. The proxy accepts them on its own time: see wait_accepted in the harness."""
        deadline = time.monotonic() + timeout
        pending: dict[int, socket.socket] = {}
        with selectors.DefaultSelector() as sel:
            for _ in range(self.n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex((self.host, self.port))
                if rc == 0:
                    self.socks.append(s)
                elif rc in (errno.EINPROGRESS, errno.EAGAIN):
                    pending[s.fileno()] = s
                    sel.register(s, selectors.EVENT_WRITE)
                else:
                    s.close()
                    self.connect_errors += 1
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                    s = pending.pop(key.fd)
                    sel.unregister(s)
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        self.socks.append(s)
                    else:
                        s.close()
                        self.connect_errors += 1
            for s in pending.values():
                sel.unregister(s)
                s.close()
                self.connect_errors += 1
        return len(self.socks)

    def request_all(self, timeout: float) -> int:
        """Sends one keep-alive GET on every connection and reads its response, at most <timeout> s in
        all; returns how many complete 200 responses came back. The connections stay open."""
        deadline = time.monotonic() + timeout
        bufs: dict[int, bytearray] = {}
        ok = 0
        with selectors.DefaultSelector() as sel:
            for s in self.socks:
                try:
                    s.send(REQUEST)
                except OSError:
                    continue
                bufs[s.fileno()] = bytearray()
                sel.register(s, selectors.EVENT_READ)
            while bufs and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                    s = key.fileobj
                    assert isinstance(s, socket.socket)
                    try:
                        chunk = s.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    buf = bufs[key.fd]
                    buf += chunk
                    try:
                        done = response_length(bytes(buf)) is not None
                    except ValueError:
                        done, chunk = False, b""
                    if done:
                        ok += 1
                    if done or not chunk:
                        sel.unregister(s)
                        del bufs[key.fd]
        return ok

    def still_open(self) -> int:
        """How many connections the proxy has not closed (a peek that would block: open and idle)."""
        alive = 0
        for s in self.socks:
            try:
                if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    alive += 1
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive


def wait_settled(read: Callable[[], int], at_least: int, timeout: float, quiet: float = 0.5, step: float = 0.05) -> int:
    """Polls read() until it is at least <at_least> and unchanged for <quiet> s, or <timeout> s pass;
    returns the last value."""
    deadline = time.monotonic() + timeout
    last = read()
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(step)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif now >= at_least and time.monotonic() - since >= quiet:
            break
    return last


@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """This process on <cpu> for a while (the idle client shares the load CPU, as wrk does)."""
    old = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)
