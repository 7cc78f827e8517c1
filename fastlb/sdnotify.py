"""systemd's notify protocol, spoken without a library: one datagram of ``KEY=value`` lines to the
Unix socket ``$NOTIFY_SOCKET`` names (a path, or an abstract name when it starts with ``@``).

``Type=notify`` units learn from it that fastlb serves (``READY=1``), reloads (``RELOADING=1`` then
``READY=1``), stops (``STOPPING=1``), what it is doing (``STATUS=``), that it is alive
(``WATCHDOG=1`` at half ``$WATCHDOG_USEC``), and which process is the service after a hot upgrade
(``MAINPID=``). Without ``$NOTIFY_SOCKET`` there is no notifier and nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

from fastlb import logs


class Notifier:
    """One socket to the service manager at <address> (``@name``: abstract). <watchdog_s>: the
    watchdog interval the manager asks for, 0 when it asks for none."""

    def __init__(self, address: str, watchdog_s: float = 0.0) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = watchdog_s
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setblocking(False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ, pid: int | None = None) -> Notifier | None:
        """The notifier $NOTIFY_SOCKET asks for, else None. The watchdog is on when $WATCHDOG_USEC is
        set and $WATCHDOG_PID, when set, is this process (<pid>, default ours)."""
        address = environ.get("NOTIFY_SOCKET", "")
        if not address or address[0] not in "/@":
            return None
        watchdog_s = 0.0
        owner = environ.get("WATCHDOG_PID", "")
        if owner in ("", str(pid if pid is not None else os.getpid())):
            try:
                watchdog_s = max(0, int(environ.get("WATCHDOG_USEC", "0"))) / 1e6
            except ValueError:
                watchdog_s = 0.0
        return cls(address, watchdog_s)

    def send(self, *lines: str) -> bool:
        """Sends <lines> (``KEY=value`` each) in one datagram; False (logged) when it could not go."""
        try:
            self.sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as e:
            logs.event(logging.WARNING, "notify_failed", socket=self.address.replace("\0", "@"), error=e.strerror)
            return False
        return True

    def ready(self, status: str, mainpid: int | None = None) -> bool:
        extra = [f"MAINPID={mainpid}"] if mainpid is not None else []
        return self.send("READY=1", f"STATUS={status}", *extra)

    def reloading(self) -> bool:
        # MONOTONIC_USEC: what Type=notify-reload wants beside RELOADING=1; plain Type=notify ignores it
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self, status: str) -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    @property
    def interval(self) -> float:
        """How often to send STATUS= and WATCHDOG=1: every 5 s, and at half the watchdog interval."""
        return min(STATUS_INTERVAL_S, self.watchdog_s / 2) if self.watchdog_s else STATUS_INTERVAL_S

    def close(self) -> None:
        self.sock.close()


STATUS_INTERVAL_S = 5.0


def status_line(generation: int, active: int, total: int) -> str:
    """The STATUS= text: the generation of the table serving, connections open and accepted."""
    return f"serving generation {generation}, {active} connections open, {total} accepted"
