"""Loopback HTTP/1.1 backends for tests and demos: small real servers that identify themselves.

``HttpBackend(ident)`` binds 127.0.0.1 port 0 and serves each connection on its own thread, with
keep-alive, Content-Length and chunked request bodies, and ``Expect: 100-continue``. What it answers
depends on the path:

- any path: 200 with a JSON body ``{"backend", "method", "path", "headers", "body_len", "body_crc",
  "conn", "seq"}`` (``conn``: the connection's number at this backend, ``seq``: the request's number on
  that connection), framed by Content-Length (HEAD gets the head only);
- ``/chunked/N``: N bytes of body in chunks; ``/close/N``: N bytes delimited by closing the connection;
- ``/big/N``: N bytes with Content-Length;
- ``/status/C``: status C with no body (204, 304) or a short one;
- ``/slow/MS``: the JSON answer after MS milliseconds (``max_in_flight``: the most worked on at once);
  ``/never``: reads the request and never answers;
- ``/ws``: answers 101 to an Upgrade, then echoes every byte both ways until EOF;
- ``/early``: answers 413 at once, before reading the body, and closes.

Counters (``accepted``, ``active``, ``received``, ``requests``, ``max_in_flight``) let tests check what
reached the backend: a test of a refused request asserts that ``received`` stayed 0.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import zlib
from typing import Any, Self


class HttpBackend:
    def __init__(self, ident: str = "", *, extra_headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.ident = ident
        self.extra_headers = extra_headers
        self.address = ""
        self.accepted = 0
        self.received = 0
        self.requests: list[tuple[str, str]] = []
        self.in_flight = 0  # /slow/ requests being worked on now
        self.max_in_flight = 0  # the most at once
        self._lock = threading.Lock()
        self._lsock: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()

    def __enter__(self) -> Self:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(512)
        lsock.settimeout(0.2)
        self._lsock = lsock
        self.address = f"127.0.0.1:{lsock.getsockname()[1]}"
        if not self.ident:
            self.ident = self.address
        t = threading.Thread(target=self._accept_loop, name=f"http-{self.address}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def active(self) -> int:
        """Connections open now (each closes here once its peer closes it)."""
        with self._lock:
            return len(self._socks)

    def close(self) -> None:
        """Stops listening and closes every connection (a backend that goes away)."""
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in list(self._threads):
            t.join(10)
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None

    def _accept_loop(self) -> None:
        assert self._lsock is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                number = self.accepted
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, number), daemon=True)
            self._threads.append(t)
            t.start()

    # --- one connection ---------------------------------------------------------------------------

    def _recv(self, sock: socket.socket, buf: bytearray) -> bool:
        try:
            data = sock.recv(65536)
        except OSError:
            return False
        if not data:
            return False
        with self._lock:
            self.received += len(data)
        buf += data
        return True

    def _request(
        self, sock: socket.socket, buf: bytearray, method: str, path: str, version: str,
        headers: list[tuple[str, ...]], hmap: dict[str, str], number: int, seq: int,
    ) -> bool:
        """Answers one request whose head is read; False when the connection must close."""
        if path == "/early":
            sock.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        if hmap.get("expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self._read_body(sock, buf, hmap)
        if body is None:
            return False
        return self._answer(sock, method, path, version, headers, hmap, body, number, seq, buf)

    def _serve(self, sock: socket.socket, number: int) -> None:
        sock.settimeout(30)
        buf = bytearray()
        seq = 0
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    if not self._recv(sock, buf):
                        return
                head, _, rest = bytes(buf).partition(b"\r\n\r\n")
                buf = bytearray(rest)
                lines = head.decode("latin-1").split("\r\n")
                method, path, version = lines[0].split(" ", 2)
                headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
                hmap = {k.lower(): v for k, v in headers}
                seq += 1
                with self._lock:
                    self.requests.append((method, path))
                if not self._request(sock, buf, method, path, version, headers, hmap, number, seq):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._socks.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _read_body(self, sock: socket.socket, buf: bytearray, hmap: dict[str, str]) -> bytes | None:
        if "content-length" in hmap:
            n = int(hmap["content-length"])
            while len(buf) < n:
                if not self._recv(sock, buf):
                    return None
            whole = bytes(buf[:n])
            del buf[:n]
            return whole
        if hmap.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                while b"\r\n" not in buf:
                    if not self._recv(sock, buf):
                        return None
                line, _, rest = bytes(buf).partition(b"\r\n")
                size = int(line.split(b";")[0], 16)
                buf[:] = rest
                if size == 0:
                    while b"\r\n" not in buf:  # no trailers in these tests
                        if not self._recv(sock, buf):
                            return None
                    del buf[: buf.index(b"\r\n") + 2]
                    return bytes(body)
                while len(buf) < size + 2:
                    if not self._recv(sock, buf):
                        return None
                body += buf[:size]
                del buf[: size + 2]
        return b""

    def _answer(
        self,
        sock: socket.socket,
        method: str,
        path: str,
        version: str,
        headers: list[Any],
        hmap: dict[str, str],
        body: bytes,
        number: int,
        seq: int,
        buf: bytearray,
    ) -> bool:
        close = hmap.get("connection", "").lower() == "close" or (
            version == "HTTP/1.0" and hmap.get("connection", "").lower() != "keep-alive"
        )
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.extra_headers)
        conn_hdr = (
            "Connection: close\r\n"
            if close
            else ("Connection: keep-alive\r\n" if version == "HTTP/1.0" else "")
        )
        parts = path.split("/")
        if path == "/never":
            self._stop.wait(60)
            return False
        if path.startswith("/slow/"):
            # counted while it is worked on, and no longer once its answer can be on its way
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            time.sleep(int(parts[2]) / 1000)
            with self._lock:
                self.in_flight -= 1
        if path == "/ws" and hmap.get("upgrade"):
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                + b"hello from "
                + self.ident.encode()
                + b"\n"
            )
            if buf:
                sock.sendall(bytes(buf))
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return False
                if not data:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
                    return False
                with self._lock:
                    self.received += len(data)
                sock.sendall(data)
        if path.startswith("/chunked/"):
            n = int(parts[2])
            payload = (self.ident.encode() * (n // max(len(self.ident), 1) + 1))[:n]
            out = bytearray(
                f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{extra}{conn_hdr}\r\n".encode()
            )
            if method != "HEAD":
                for i in range(0, n, 1000):
                    piece = payload[i : i + 1000]
                    out += b"%x\r\n" % len(piece) + piece + b"\r\n"
                out += b"0\r\n\r\n"
            sock.sendall(out)
            return not close
        if path.startswith("/close/"):
            n = int(parts[2])
            sock.sendall(f"HTTP/1.1 200 OK\r\nConnection: close\r\n{extra}\r\n".encode() + b"c" * n)
            return False
        if path.startswith("/big/"):
            n = int(parts[2])
            sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n{extra}{conn_hdr}\r\n".encode())
            if method != "HEAD":
                sock.sendall(b"b" * n)
            return not close
        if path.startswith("/status/"):
            code = int(parts[2])
            if code in (204, 304):
                sock.sendall(f"HTTP/1.1 {code} X\r\n{extra}{conn_hdr}\r\n".encode())
            else:
                sock.sendall(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\n{extra}{conn_hdr}\r\nok".encode())
            return not close
        doc = json.dumps(
            {
                "backend": self.ident,
                "method": method,
                "path": path,
                "headers": headers,
                "body_len": len(body),
                "body_crc": zlib.crc32(body),
                "conn": number,
                "seq": seq,
            }
        ).encode()
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(doc)}\r\n"
            f"{extra}{conn_hdr}\r\n"
        )
        sock.sendall(head.encode() + (b"" if method == "HEAD" else doc))
        return not close
