"""fd_max: the data plane holds at most that many descriptors (two per proxied connection, two per
pipe, its epolls, eventfds and listeners). At it, a worker stops polling its listeners: clients past it
wait in the kernel's backlog, none is accepted only to be closed for want of a backend socket, and
they are served as soon as connections close."""

from __future__ import annotations

import select
import time

from fastlb import _core
from fastlb.emulator.backends import Echo, wait_until

from .conftest import TIMEOUT, connect, recv_exactly, service, table


def _settled_fds() -> int:
    """The C core's descriptors once an earlier test's closing ones are gone (fd_max counts from here:
    one that closes later would leave more room than the test means)."""
    last = -1
    while (now := _core.live_counts()["fds"]) != last:
        last = now
        time.sleep(0.2)
    return now


def test_clients_past_fd_max_wait_in_the_backlog_and_are_served_later(dataplane, ports):
    room = 3  # connections
    with Echo() as echo:
        base = _settled_fds()
        # 2 workers: an epoll and an eventfd each, and one listening socket each
        dp = dataplane(workers=2, fd_max=base + 6 + 2 * room)
        front = ports()
        dp.publish(table([service("echo", [echo.address])], {front: "echo"}))
        assert _core.live_counts()["fds"] == base + 6
        clients = [connect(front) for _ in range(2 * room)]
        try:
            for c in clients:
                c.sendall(b"x")
            assert wait_until(lambda: dp.stats()["active"] == room, TIMEOUT)
            # a worker that found no room counts it as it stops polling: after the accepts, not with them
            assert wait_until(lambda: dp.stats()["accepts_held"]["fds"] >= 1, TIMEOUT), dp.stats()["accepts_held"]
            assert dp.stats()["fd_max"] == base + 6 + 2 * room
            waiting = list(clients)
            while waiting:
                ready, _, _ = select.select(waiting, [], [], TIMEOUT)
                assert ready, f"{len(waiting)} clients got no answer"
                for c in ready:
                    assert recv_exactly(c, 1) == b"x"  # never closed unserved
                    assert _core.live_counts()["fds"] <= base + 6 + 2 * room
                    waiting.remove(c)
                    c.close()
        finally:
            for c in clients:
                c.close()
        assert dp.stats()["total"] == 2 * room
