"""Loopback test backends: small real TCP servers, each served by one thread.

Every backend is a context manager that binds 127.0.0.1 port 0 (the kernel picks a free port) and
reports where it listens as ``address`` ("127.0.0.1:PORT"):

- ``Echo``: sends back what it receives; passes the client's FIN on once everything is echoed.
- ``Greeter``: speaks first (``greeting``), then echoes; ``WhoAmI`` greets with its own id.
- ``Sink``: counts and checksums what it receives; on the client's FIN it answers
  ``b"<bytes> <crc32>\\n"`` and closes its side. ``greeting`` and ``shut_after_greeting`` make it a
  backend that speaks first and then shuts its sending side while still receiving.
- ``refused_address()``: an address where connects are refused (bound, never listening).
- ``Blackhole``: a listener whose accept queue is full, so that connects to it hang.
- ``reserve_port()``: a port held for a listener the code under test will bind (SO_REUSEPORT).

Counters (``accepted``, ``active``, ``received``) are updated by the backend's thread; tests read
them, waiting with ``wait_until``.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Self

_RECV = 262144
_HIGH_WATER = 4 << 20  # stop reading a connection whose replies pile up beyond this


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Polls <predicate> until it is true or <timeout> seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


def stop_process(proc: subprocess.Popen) -> None:
    """Ends a peer the tests started (nginx, HAProxy): SIGTERM, then SIGKILL if it has not gone in 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class _Conn:
    __slots__ = ("eof_in", "out", "shut_out", "sock", "state", "want_shut")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out = bytearray()
        self.eof_in = False
        self.shut_out = False
        self.want_shut = False
        self.state: dict[str, int] = {}


class Backend:
    """A loopback TCP server run by one selector thread. Subclasses say what a connection does."""

    def __init__(self, ident: str = "", backlog: int = 1024) -> None:
        self.ident = ident
        self._backlog = backlog
        self._lsock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._conns: set[_Conn] = set()
        self.address = ""
        self.accepted = 0
        self.active = 0
        self.received = 0

    # what a connection does: the defaults echo
    def on_open(self, conn: _Conn) -> bytes:
        return b""

    def on_data(self, conn: _Conn, data: bytes) -> bytes:
        return data

    def on_eof(self, conn: _Conn) -> bytes:
        """The client shut its side: returns the last bytes; the server side shuts after them."""
        return b""

    def __enter__(self) -> Self:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(self._backlog)
        lsock.setblocking(False)
        self._lsock = lsock
        self.address = f"127.0.0.1:{lsock.getsockname()[1]}"
        self._sel.register(lsock, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=f"backend-{self.address}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(10)
        for conn in list(self._conns):
            self._close(conn)
        self._sel.close()
        if self._lsock is not None:
            self._lsock.close()
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        while not self._stop:
            for key, mask in self._sel.select(timeout=1.0):
                if key.fileobj is self._lsock:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    return
                else:
                    conn = key.data
                    if conn in self._conns and mask & selectors.EVENT_READ:
                        self._read(conn)
                    if conn in self._conns and mask & selectors.EVENT_WRITE:
                        self._write(conn)

    def _accept(self) -> None:
        assert self._lsock is not None
        for _ in range(64):
            try:
                sock, _ = self._lsock.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            conn = _Conn(sock)
            self._conns.add(conn)
            self.accepted += 1
            self.active += 1
            self._sel.register(sock, selectors.EVENT_READ, conn)
            conn.out += self.on_open(conn)
            self._write(conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if data:
            self.received += len(data)
            conn.out += self.on_data(conn, data)
        else:
            conn.eof_in = True
            conn.out += self.on_eof(conn)
            conn.want_shut = True
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            while conn.out:
                n = conn.sock.send(conn.out)
                del conn.out[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._close(conn)
            return
        if not conn.out and conn.want_shut and not conn.shut_out:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            conn.shut_out = True
        if conn.eof_in and conn.shut_out:
            self._close(conn)
            return
        events = 0
        if not conn.eof_in and len(conn.out) < _HIGH_WATER:
            events |= selectors.EVENT_READ
        if conn.out:
            events |= selectors.EVENT_WRITE
        if events:
            self._sel.modify(conn.sock, events, conn)
        else:
            self._sel.unregister(conn.sock)

    def _close(self, conn: _Conn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        self.active -= 1
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()


class Echo(Backend):
    """Sends back every byte; passes the FIN on after the last echoed byte."""


class Greeter(Backend):
    """Speaks first with <greeting>, then echoes."""

    def __init__(self, greeting: bytes, ident: str = "", backlog: int = 1024) -> None:
        super().__init__(ident, backlog)
        self.greeting = greeting

    def on_open(self, conn: _Conn) -> bytes:
        return self.greeting


class WhoAmI(Greeter):
    """Greets every connection with its own id and a newline, then echoes."""

    def __init__(self, ident: str, backlog: int = 1024) -> None:
        super().__init__(ident.encode() + b"\n", ident, backlog)


class Sink(Backend):
    """Counts and checksums what it receives; at the client's FIN answers b"<bytes> <crc32>\\n".

    With <shut_after_greeting>, it sends <greeting> and then shuts its sending side at once: the
    client sees EOF while the backend still receives (the answer at FIN is then dropped)."""

    def __init__(
        self, greeting: bytes = b"", shut_after_greeting: bool = False, ident: str = "", backlog: int = 1024
    ) -> None:
        super().__init__(ident, backlog)
        self.greeting = greeting
        self.shut_after_greeting = shut_after_greeting
        self.finished: list[tuple[int, int]] = []  # (bytes, crc32) per connection, at its FIN

    def on_open(self, conn: _Conn) -> bytes:
        conn.state["bytes"] = 0
        conn.state["crc"] = 0
        if self.shut_after_greeting:
            conn.want_shut = True
        return self.greeting

    def on_data(self, conn: _Conn, data: bytes) -> bytes:
        conn.state["bytes"] += len(data)
        conn.state["crc"] = zlib.crc32(data, conn.state["crc"])
        return b""

    def on_eof(self, conn: _Conn) -> bytes:
        self.finished.append((conn.state["bytes"], conn.state["crc"]))
        if conn.shut_out:
            return b""
        return b"%d %d\n" % (conn.state["bytes"], conn.state["crc"])


@contextlib.contextmanager
def refused_address() -> Iterator[str]:
    """An address on which connects are refused at once: bound, so no one else takes the port,
    but never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


class Blackhole:
    """A listener whose accept queue is full and never drained: the kernel drops further SYNs, so a
    connect to ``address`` neither succeeds nor fails until the connector gives up."""

    def __init__(self) -> None:
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._fillers: list[socket.socket] = []
        self.address = ""

    def __enter__(self) -> Self:
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(0)
        port = self._lsock.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(("127.0.0.1", port))
            assert err in (0, errno.EINPROGRESS), err
            self._fillers.append(s)
        time.sleep(0.05)  # let the handshakes land in the queue
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self._fillers:
            s.close()
        self._lsock.close()


@contextlib.contextmanager
def reserve_port() -> Iterator[str]:
    """Holds a free port (bound with SO_REUSEADDR and SO_REUSEPORT, never listening) and yields
    "127.0.0.1:PORT": a listener opened there binds beside it (the data plane's check that nobody
    listens there passes too: nobody does), and no other test can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
