"""Memory per idle client connection: the proxy's memory growth per connection held open and idle.

The harness itself is the client: it opens N connections to the proxy and sends nothing, then sends one
keep-alive request on each, reads the response and leaves them idle again. Between the phases the
proxy's RSS (and the kernel's TCP counters) are read; the deltas divided by N are the figures. Over
TLS (bench/tls.py's tls_idle) each connection first completes its handshake, then idles. Every loop
here is bounded by a deadline and every socket is a loopback connection this process owns and closes.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
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

    def details(self) -> dict[str, object]:
        """What the run records besides the counts (TLS: handshakes and how they went)."""
        return {}

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


@dataclass
class _TlsConn:
    sock: socket.socket
    tls: ssl.SSLObject | None = None
    incoming: ssl.MemoryBIO = field(default_factory=ssl.MemoryBIO)
    outgoing: ssl.MemoryBIO = field(default_factory=ssl.MemoryBIO)
    unsent: bytes = b""
    eof: bool = False

    def pump_out(self) -> None:
        """Sends what TLS has to send (handshake flights and records are small: a full socket buffer
        keeps the rest in <unsent> for the next call)."""
        self.unsent += self.outgoing.read()
        while self.unsent:
            try:
                n = self.sock.send(self.unsent)
            except BlockingIOError:
                return
            self.unsent = self.unsent[n:]

    def pump_in(self) -> None:
        """Moves every byte the socket holds into TLS; <eof> once the peer has closed."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                return
            self.incoming.write(chunk)


@dataclass
class TlsIdleClients(IdleClients):
    """IdleClients over TLS: each connection completes a handshake (SNI <server_name>, no certificate
    check) before it idles, and sends its request as a TLS record. TLS runs over memory BIOs, so the
    plain sockets stay this class's own: still_open reads them without TLS's help."""

    server_name: str = ""
    request: bytes = REQUEST
    handshake_errors: int = 0
    resumed: int = 0  # no session is offered: a proxy that resumed one would be a surprise
    conns: dict[int, _TlsConn] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        self.conns.clear()
        super().close()

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def open(self, timeout: float) -> int:
        """Connects and completes every handshake (at most <timeout> s in all); returns how many did.
        A connect that fails counts in connect_errors, a handshake that fails in handshake_errors too."""
        deadline = time.monotonic() + timeout
        ctx = self._context()
        pending: dict[int, _TlsConn] = {}
        with selectors.DefaultSelector() as sel:
            for _ in range(self.n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex((self.host, self.port))
                if rc in (0, errno.EINPROGRESS, errno.EAGAIN):
                    pending[s.fileno()] = _TlsConn(s)
                    sel.register(s, selectors.EVENT_WRITE)
                else:
                    s.close()
                    self.connect_errors += 1
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                    c = pending[key.fd]
                    if c.tls is None:  # connected, or not
                        if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                            self._drop(sel, pending, c, handshake=False)
                            continue
                        c.tls = ctx.wrap_bio(c.incoming, c.outgoing, server_hostname=self.server_name or None)
                    else:
                        c.pump_in()
                    try:
                        c.tls.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        done = False
                    except (ssl.SSLError, OSError):
                        self._drop(sel, pending, c, handshake=True)
                        continue
                    try:
                        c.pump_out()
                    except OSError:
                        self._drop(sel, pending, c, handshake=True)
                        continue
                    if done and not c.unsent:
                        sel.unregister(c.sock)
                        del pending[key.fd]
                        self.socks.append(c.sock)
                        self.conns[c.sock.fileno()] = c
                        v = f"{c.tls.version()} {(c.tls.cipher() or ('?',))[0]}"
                        self.versions[v] = self.versions.get(v, 0) + 1
                        self.resumed += c.tls.session_reused
                    elif c.eof:
                        self._drop(sel, pending, c, handshake=True)
                    else:
                        sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.unsent else 0))
            for c in list(pending.values()):
                self._drop(sel, pending, c, handshake=c.tls is not None)
        return len(self.socks)

    def _drop(self, sel: selectors.BaseSelector, pending: dict[int, _TlsConn], c: _TlsConn, handshake: bool) -> None:
        sel.unregister(c.sock)
        del pending[c.sock.fileno()]
        c.sock.close()
        self.connect_errors += 1
        self.handshake_errors += handshake

    def request_all(self, timeout: float) -> int:
        """Sends one keep-alive GET on every connection and reads its response, at most <timeout> s in
        all; returns how many complete 200 responses came back. The connections stay open."""
        deadline = time.monotonic() + timeout
        bufs: dict[int, bytearray] = {}
        ok = 0
        with selectors.DefaultSelector() as sel:
            for fd, c in self.conns.items():
                assert c.tls is not None
                try:
                    c.tls.write(self.request)
                    c.pump_out()
                except (ssl.SSLError, OSError):
                    continue
                bufs[fd] = bytearray()
                sel.register(c.sock, selectors.EVENT_READ)
            while bufs and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                    c = self.conns[key.fd]
                    assert c.tls is not None
                    c.pump_in()
                    buf = bufs[key.fd]
                    failed = False
                    while True:
                        try:
                            chunk = c.tls.read(65536)
                        except ssl.SSLWantReadError:
                            break
                        except (ssl.SSLError, OSError):  # a close_notify (SSLZeroReturnError) included
                            failed = True
                            break
                        if not chunk:
                            failed = True
                            break
                        buf += chunk
                    try:
                        c.pump_out()  # what reading made TLS answer (a key update, say)
                        done = response_length(bytes(buf)) is not None
                    except (OSError, ValueError):
                        done, failed = False, True
                    if done:
                        ok += 1
                    if done or failed or c.eof:
                        sel.unregister(c.sock)
                        del bufs[key.fd]
        return ok

    def still_open(self) -> int:
        """How many connections the proxy has not closed: no end of stream and no close_notify read (what
        is waiting, the session tickets sent after a handshake say, is read and passed to TLS)."""
        alive = 0
        for c in self.conns.values():
            assert c.tls is not None
            c.pump_in()
            closed = c.eof
            while not closed:
                try:
                    if not c.tls.read(65536):
                        closed = True
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLError, OSError):
                    closed = True
            alive += not closed
        return alive

    def details(self) -> dict[str, object]:
        return {"handshake_errors": self.handshake_errors, "resumed": self.resumed, "tls": dict(self.versions)}
