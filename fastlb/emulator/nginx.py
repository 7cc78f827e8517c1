"""Debian's nginx as a real HTTP backend for tests: started in the foreground with a generated
configuration in a directory of the caller's, stopped on exit.

``Nginx(workdir)`` listens on a free loopback port (``address``) and serves ``/id`` (the connection
number and that connection's request count), ``/ok`` ("ok") and the files under ``workdir/www``. It
counts the connections it accepted (``accepts()``, read from ``stub_status`` on a second port).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from fastlb.emulator.backends import stop_process

BINARY = shutil.which("nginx") or "/usr/sbin/nginx"


def available() -> bool:
    return os.path.exists(BINARY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    def __init__(
        self, workdir: Path, *, keepalive_requests: int = 1000, worker_connections: int = 1024, extra: str = ""
    ) -> None:
        self.dir = workdir
        self.port = _free_port()
        self.status_port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.keepalive_requests = keepalive_requests
        self.worker_connections = worker_connections
        self.extra = extra  # more directives for the server block
        self.proc: subprocess.Popen[bytes] | None = None

    def _conf(self) -> str:
        d = self.dir
        return f"""
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {self.worker_connections * 2 + 64};
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections {self.worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {d};
    proxy_temp_path {d};
    fastcgi_temp_path {d};
    uwsgi_temp_path {d};
    scgi_temp_path {d};
    keepalive_requests {self.keepalive_requests};
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{self.port};
        root {d}/www;
        location /id {{ return 200 "$connection $connection_requests $http_x_forwarded_for\\n"; }}
        location = /ok {{ return 200 "ok\\n"; }}
        {self.extra}
    }}
    server {{
        listen 127.0.0.1:{self.status_port};
        location / {{ stub_status; }}
    }}
}}
"""

    def __enter__(self) -> Self:
        (self.dir / "www").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(self._conf())
        with (self.dir / "stderr").open("wb") as log:
            self.proc = subprocess.Popen([BINARY, "-c", str(conf), "-p", str(self.dir)], stderr=log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.status_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError as e:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"nginx did not start: {(self.dir / 'stderr').read_text()}") from e
                time.sleep(0.05)
        return self

    def accepts(self) -> int:
        """Connections nginx accepted on either port, the status requests themselves included."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/", timeout=10) as r:
            text = r.read().decode()
        # "Active connections: 1 \nserver accepts handled requests\n 5 5 9 \n..."
        m = re.search(r"server accepts handled requests\s+(\d+)", text)
        if m is None:
            raise RuntimeError(f"unexpected stub_status answer: {text!r}")
        return int(m.group(1))

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
