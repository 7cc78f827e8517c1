"""Interop with a real HTTP server: nginx (Debian's) as the backend, started with a generated
configuration in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fastlb.emulator import nginx as nginx_server

from .conftest import Reader, connect, get, http_service, port_table


@pytest.fixture
def nginx(tmp_path) -> Iterator[str]:
    if not nginx_server.available():
        pytest.skip("nginx is not installed (make deps)")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "big").write_bytes(bytes(range(256)) * 4096)
    with nginx_server.Nginx(tmp_path, worker_connections=64) as server:
        yield server.address


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
