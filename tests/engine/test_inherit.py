"""Listening sockets handed over by another process (hot upgrade): the data plane serves on them
rather than binding, and closes what it does not use once its first table serves."""

from __future__ import annotations

import os
import socket

import pytest

from fastlb.emulator.backends import WhoAmI

from .conftest import connect, recv_line, service, table


def _listening(address: str | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if address is None:
        s.bind(("127.0.0.1", 0))
    else:
        host, port = address.rsplit(":", 1)
        s.bind((host, int(port)))
    s.listen(128)
    return s


def _open(fd: int, inode: int | None = None) -> bool:
    """Whether <fd> is open (and, given <inode>, still that socket: a closed number is soon reused)."""
    try:
        return inode is None or os.fstat(fd).st_ino == inode
    except OSError:
        return False


@pytest.mark.parametrize("given", [1, 2, 3])
def test_a_handed_over_socket_serves_and_its_queue_is_kept(dataplane, given):
    with WhoAmI("b") as be:
        first = _listening()
        front = f"127.0.0.1:{first.getsockname()[1]}"
        socks = [first] + [_listening(front) for _ in range(given - 1)]
        # A client queued before the hand-over is served by the new data plane.
        early = connect(front)
        fds = [s.detach() for s in socks]
        inodes = [os.fstat(fd).st_ino for fd in fds]
        dp = dataplane(workers=2, inherit={front: fds, "127.0.0.1:1": []})
        dp.publish(table([service("s", [be.address])], {front: "s"}))
        # Duplicates serve; the originals are closed.
        assert not any(_open(fd, ino) for fd, ino in zip(fds, inodes, strict=True))
        with early:
            assert recv_line(early) == b"b\n"
        for _ in range(6):
            with connect(front) as c:
                assert recv_line(c) == b"b\n"
        assert len(dp.listener_fds()[front]) == 2


def test_a_socket_that_does_not_listen_is_refused(dataplane):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    front = f"127.0.0.1:{s.getsockname()[1]}"
    fd = s.detach()  # the data plane owns it from here
    inode = os.fstat(fd).st_ino
    dp = dataplane(workers=1, inherit={front: [fd]})
    with WhoAmI("b") as be, pytest.raises(OSError, match="cannot listen on"):
        dp.publish(table([service("s", [be.address])], {front: "s"}))
    assert dp.generation == 0
    dp.stop()
    assert not _open(fd, inode)


def test_inherit_is_checked():
    from fastlb._core import DataPlane

    with pytest.raises(ValueError, match="inherit"):
        DataPlane(1, inherit={"127.0.0.1:80": [-1]})
