"""Interop with a real HTTP server: nginx (Debian's) as the backend, started with a generated
configuration in a temporary directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from .conftest import Reader, connect, get, http_service, port_table

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def nginx(tmp_path) -> Iterator[str]:
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (make deps)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "big").write_bytes(bytes(range(256)) * 4096)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path};
    proxy_temp_path {tmp_path};
    fastcgi_temp_path {tmp_path};
    uwsgi_temp_path {tmp_path};
    scgi_temp_path {tmp_path};
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port};
        root {tmp_path}/www;
        location /id {{ return 200 "$connection $connection_requests $http_x_forwarded_for\\n"; }}
    }}
}}
""")
    log = open(tmp_path / "stderr", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)], stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError as e:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"nginx did not start: {(tmp_path / 'stderr').read_text()}") from e
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_nginx_backend_keepalive_and_bodies(dataplane, ports, nginx):
    dp = dataplane(workers=1)
    front = ports()
    dp.publish(port_table(http_service("web", [nginx]), front))
    seen = []
    for _ in range(3):
        with connect(front) as c:
            rd = Reader(c)
            for _ in range(5):
                c.sendall(get("/id"))
                r = rd.response()
                assert r.status == 200
                conn, n, xff = r.body.decode().split()
                assert xff == "127.0.0.1"
                seen.append((conn, int(n)))
            c.sendall(get("/big"))
            assert rd.response().body == bytes(range(256)) * 4096
    # one backend connection served all fifteen, in order
    assert len({conn for conn, _ in seen}) == 1
    assert [n for _, n in seen] == sorted(n for _, n in seen)
    # nginx's own 404 passes through as an answer of the backend
    with connect(front) as c:
        c.sendall(get("/missing"))
        assert Reader(c).response().status == 404
    assert dp.stats()["services"]["web"]["http"]["4xx"] == 1
