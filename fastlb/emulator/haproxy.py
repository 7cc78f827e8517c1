"""Debian's HAProxy as another process that listens where fastlb might: started in the foreground
with a generated configuration in a directory of the caller's, stopped on exit.

``HAProxy(workdir, listen, backend)`` forwards TCP from ``listen`` ("ip:port") to ``backend``. HAProxy
binds with SO_REUSEPORT unless told ``noreuseport``, as nginx does with ``listen ... reuseport``: a
second process of the same user that also sets it binds beside it, and the kernel splits new
connections between the two.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from fastlb.emulator.backends import stop_process

BINARY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def available() -> bool:
    return os.path.exists(BINARY)


class HAProxy:
    def __init__(self, workdir: Path, listen: str, backend: str) -> None:
        self.dir = workdir
        self.address = listen
        self.backend = backend
        self.proc: subprocess.Popen[bytes] | None = None

    def _conf(self) -> str:
        return f"""
global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind {self.address}
    default_backend back
backend back
    server only {self.backend}
"""

    def __enter__(self) -> Self:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "haproxy.cfg"
        conf.write_text(self._conf())
        host, port = self.address.rsplit(":", 1)
        with (self.dir / "haproxy.stderr").open("wb") as log:
            self.proc = subprocess.Popen([BINARY, "-db", "-f", str(conf)], stderr=log, stdout=log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
                break
            except OSError as e:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"haproxy did not start: {(self.dir / 'haproxy.stderr').read_text()}") from e
                time.sleep(0.05)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
