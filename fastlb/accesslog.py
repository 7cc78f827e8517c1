"""The access log's file: opened by the control plane, written by the data plane's workers.

The workers write whole JSON lines to one fd (``DataPlane(access_log_fd=...)``, see
``docs/logging.md``). This module opens that fd in append mode (several processes, an old and a new
fastlb during a hot upgrade, may append to one file without overwriting each other) and reopens it
for log rotation: the new file's fd is ``dup2``'d onto the one the workers hold, which atomically
points every later write at the new file; no worker is stopped, no line is split between two files.
"""

from __future__ import annotations

import os

STDOUT = "-"


def _open(path: str) -> int:
    if path == STDOUT:
        # A description of our own where the system allows it: the data plane makes the fd
        # non-blocking, which must not change the stdout the shell or the service manager holds.
        try:
            return os.open("/proc/self/fd/1", os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError:
            return os.dup(1)  # a socket (journald): shared, but fastlb itself never writes to stdout
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


class AccessLog:
    """The fd the workers write the access log to. Raises OSError when <path> cannot be opened."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = _open(path)
        self.reopened = 0

    def reopen(self) -> None:
        """Points the fd at the file now at <path> (after logrotate moved the old one away). stdout is
        never reopened. Raises OSError (the old file stays in use)."""
        if self.path == STDOUT or self.fd < 0:
            return
        fresh = _open(self.path)
        try:
            os.set_blocking(fresh, False)  # as the data plane set the fd it was given
            os.dup2(fresh, self.fd, inheritable=False)
        finally:
            os.close(fresh)
        self.reopened += 1

    def close(self) -> None:
        """Once the data plane is stopped: nothing writes to the fd any more."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
