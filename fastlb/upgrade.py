"""Hot binary upgrade: a new fastlb takes the listening sockets over from the running one.

The running ``fastlb run --upgrade-socket PATH`` listens on a Unix socket (SOCK_SEQPACKET: one
message is one message). A new ``fastlb run --takeover PATH ...`` connects to it and receives, over
SCM_RIGHTS, every listening socket of the table now serving: for each address, one message
``{"address": A}`` carrying that address's sockets (one per worker; at most ``_FDS_PER_MESSAGE`` per
message, more messages for more), then ``{"end": true}``. The new process starts its data plane on
those very sockets (``DataPlane(inherit={address: [fd, ...]})``; see docs/upgrade.md for how they
are shared among its workers), publishes its first table and sends ``ready``. Only then does the old
process stop accepting and drain: it closes its own copies of the sockets, which the new process
still holds, so no socket is closed, no accept queue is lost and no port is rebound. It drains as on
SIGTERM (docs/operations.md): kept-alive HTTP connections end after their request under way, idle
ones at once; what is still open when its ``--drain-timeout`` passes is closed; it exits 0.

If the new process goes away before ``ready``, the old one carries on serving as if nothing happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import msgspec

from fastlb import logs

log = logging.getLogger("fastlb")

_FDS_PER_MESSAGE = 250  # the kernel takes at most 253 (SCM_MAX_FD) in one message
_MESSAGE_MAX = 65536
_READY = b"ready"
_MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"

UPGRADE_HANDED_OVER = "upgrade_handed_over"
UPGRADE_TAKEN_OVER = "upgrade_taken_over"
UPGRADE_ABANDONED = "upgrade_abandoned"


class UpgradeError(Exception):
    """The takeover could not happen; the message says why."""


class _Header(msgspec.Struct, frozen=True, omit_defaults=True):
    address: str = ""
    end: bool = False


def enable_migrate_req() -> bool:
    """Sets net.ipv4.tcp_migrate_req=1 where it is writable (Linux >= 5.14, this network namespace):
    connections queued on a SO_REUSEPORT socket that closes move to a sibling rather than being reset.
    Returns whether it is on."""
    try:
        with open(_MIGRATE_REQ, "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
        return True
    except OSError:
        return False


# -- the running process ---------------------------------------------------------------------------


class UpgradeServer:
    """Listens on <path> and hands the listening sockets of <listener_fds()> to the first process that
    asks; once that one says ready, calls <on_handed_over()> (which stops accepting and drains)."""

    def __init__(
        self, path: str, listener_fds: Callable[[], dict[str, list[int]]], on_handed_over: Callable[[], Any]
    ) -> None:
        self.path = path
        self._listener_fds = listener_fds
        self._on_handed_over = on_handed_over
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.handed_over = False

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a stale socket of a process that is gone, or our predecessor's
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.bind(self.path)
            os.chmod(self.path, 0o600)  # fds of every listener: only this user may ask for them
            sock.listen(1)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self._serve())
        migrate = enable_migrate_req()
        logs.event(
            logging.INFO, "upgrade_socket", path=self.path, tcp_migrate_req="on" if migrate else "unavailable"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            # Unlink only our own socket: a successor may have bound a new one at this path.
            if not self.handed_over:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            with conn:
                try:
                    ready = await self._hand_over(conn)
                except OSError as e:
                    logs.event(logging.WARNING, UPGRADE_ABANDONED, error=e)
                    continue
            if ready:
                self.handed_over = True
                logs.event(logging.INFO, UPGRADE_HANDED_OVER, path=self.path)
                self._on_handed_over()
                return
            logs.event(logging.WARNING, UPGRADE_ABANDONED, reason="the new process left before it was ready")

    async def _hand_over(self, conn: socket.socket) -> bool:
        loop = asyncio.get_running_loop()
        # Read on the control thread, like every data plane call, and duplicated there: a publish
        # meanwhile may close a listener, never the copies being sent.
        fds = {address: [os.dup(fd) for fd in group] for address, group in self._listener_fds().items()}
        conn.setblocking(True)

        def send() -> None:
            for address, group in fds.items():
                for i in range(0, len(group), _FDS_PER_MESSAGE):
                    header = msgspec.json.encode(_Header(address=address))
                    socket.send_fds(conn, [header], group[i : i + _FDS_PER_MESSAGE])
            conn.send(msgspec.json.encode(_Header(end=True)))

        try:
            await loop.run_in_executor(None, send)
        finally:
            for group in fds.values():
                for fd in group:
                    os.close(fd)
        conn.setblocking(False)
        answer = await loop.sock_recv(conn, 64)
        return answer == _READY


# -- the new process -------------------------------------------------------------------------------


class Takeover:
    """The new process's side: ``receive()`` the sockets, then ``ready()`` once it serves them."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._conn: socket.socket | None = None

    def receive(self) -> dict[str, list[int]]:
        """Connects and returns the listening sockets by address. Raises UpgradeError."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.settimeout(self.timeout)
        fds: dict[str, list[int]] = {}
        try:
            conn.connect(self.path)
            while True:
                data, got, flags, _ = socket.recv_fds(conn, _MESSAGE_MAX, _FDS_PER_MESSAGE)
                if flags & socket.MSG_CTRUNC:
                    raise UpgradeError("the running fastlb sent more sockets than could be received")
                if not data:
                    raise UpgradeError("the running fastlb closed the upgrade socket")
                header = msgspec.json.decode(data, type=_Header)
                if header.end:
                    break
                fds.setdefault(header.address, []).extend(got)
        except (OSError, msgspec.DecodeError, UpgradeError) as e:
            conn.close()
            for group in fds.values():
                for fd in group:
                    os.close(fd)
            if isinstance(e, UpgradeError):
                raise
            raise UpgradeError(f"--takeover {self.path}: {e}") from None
        self._conn = conn
        logs.event(
            logging.INFO,
            UPGRADE_TAKEN_OVER,
            path=self.path,
            listeners=len(fds),
            sockets=sum(map(len, fds.values())),
        )
        return fds

    def ready(self) -> None:
        """Tells the old process that this one serves: it stops accepting and drains."""
        if self._conn is None:
            return
        try:
            self._conn.send(_READY)
        except OSError as e:
            logs.event(logging.WARNING, UPGRADE_ABANDONED, error=e)
        finally:
            self._conn.close()
            self._conn = None

    def abandon(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
