#!/usr/bin/env python3
"""Serves one fastlb service straight from the data plane, without the control plane.

The benchmark's fallback for arm F while ``fastlb run`` is not available: it builds the same
``spec.RouteTable`` the static file would give (one service, one listener, round-robin), publishes it
into ``fastlb._core.DataPlane`` and serves until SIGTERM or SIGINT. ``--admin`` answers ``GET /stats``
with ``DataPlane.stats()`` as JSON (the harness saves it per run); nothing else runs in Python while
connections flow.

    python3 bench/fastlb_serve.py --listen 127.0.0.1:8000 --backend 127.0.0.1:9000 --mode tcp --workers 1
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastlb import _core, spec  # noqa: E402


def duration_ms(text: str) -> int:
    """"120s", "500ms" or a bare number of milliseconds."""
    if text.endswith("ms"):
        return int(text[:-2])
    if text.endswith("s"):
        return int(float(text[:-1]) * 1000)
    return int(text)


def build_table(listen: str, backends: list[str], mode: str,
                http_timeouts: dict[str, int] | None = None) -> spec.RouteTable:
    timeouts = spec.Timeouts(**{f"{k}_ms": v for k, v in (http_timeouts or {}).items()})
    service = spec.Service(
        name="bench", mode=mode, balance="roundrobin",  # type: ignore[arg-type]
        backends=tuple(spec.Backend(id=b, address=b) for b in backends), timeouts=timeouts,
    )
    return spec.RouteTable(services=(service,), listeners=(spec.Listener(address=listen, service="bench"),))


def serve_admin(address: str, dp: _core.DataPlane) -> ThreadingHTTPServer:
    host, port = address.rsplit(":", 1)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/stats":
                body, status = json.dumps(dp.stats()).encode(), 200
            elif self.path == "/_health":
                body, status = b"ok\n", 200
            else:
                body, status = b"not found\n", 404
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True)
    p.add_argument("--backend", action="append", required=True)
    p.add_argument("--mode", choices=("tcp", "http"), default="tcp")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--admin", default="")
    p.add_argument("--no-splice", action="store_true", help="pipe_max=0: every byte goes through recv/send")
    p.add_argument("--http-timeouts", default="", metavar="K=V,...",
                   help="http_request=120s,http_keepalive=120s: the service's HTTP timeouts (default fastlb's)")
    a = p.parse_args()
    http_timeouts = {k: duration_ms(v) for k, _, v in
                     (item.partition("=") for item in a.http_timeouts.split(",") if item)}
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    kwargs = {"pipe_max": 0} if a.no_splice else {}
    dp = _core.DataPlane(a.workers, **kwargs)
    admin = None
    try:
        dp.start()
        dp.publish(build_table(a.listen, a.backend, a.mode, http_timeouts))
        if a.admin:
            admin = serve_admin(a.admin, dp)
        print(f"fastlb_serve: {a.mode} {a.listen} -> {', '.join(a.backend)}, {a.workers} worker(s)", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        if admin is not None:
            admin.shutdown()
        dp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
