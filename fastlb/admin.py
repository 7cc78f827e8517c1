"""The admin HTTP API (aiohttp, on the control loop): health, stats (JSON, HAProxy CSV, Prometheus, as
``fastlb.stats`` renders them), the serving table, marathon-lb's endpoints, backend state and weight by
hand, and the dashboard.

Reading endpoints are open. Every endpoint that changes something (POST, and GET /_mlb_signal/*)
demands the admin token when one is set; ``fastlb run`` refuses a non-loopback admin address
without one. Paths and bodies are documented in docs/admin.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import re
import time
import urllib.parse
from importlib import resources
from typing import Any, Protocol

import msgspec
from aiohttp import web

from fastlb import spec
from fastlb.overrides import ADMIN_STATES
from fastlb.stats import RateMeter, StatsSource, metrics_text, rate_meter, request_counts, snapshot, stats_csv


class AdminTarget(StatsSource, Protocol):
    """What the admin API needs of the controller (``fastlb.controller.Controller`` is one): what the
    stats read, and the few calls that change something. ``fastlb.server`` hands one over."""

    async def resync(self) -> None: ...
    def set_state(self, backend_id: str, state: str) -> bool: ...
    def set_weight(self, backend_id: str, weight: int) -> bool: ...
    def clear_override(self, backend_id: str) -> bool: ...


CONTROLLER: web.AppKey[AdminTarget] = web.AppKey("controller")
TOKEN: web.AppKey[str | None] = web.AppKey("token", str)

_PLAIN_INT = re.compile(r"[0-9]{1,9}")


# -- handlers ------------------------------------------------------------------------------------


def _controller(request: web.Request) -> AdminTarget:
    return request.app[CONTROLLER]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    if _controller(request).serving_now:
        return web.Response(text="OK\n")
    return web.Response(text="not serving\n", status=503)


async def stats(request: web.Request) -> web.Response:
    return _json(snapshot(_controller(request)))


async def stats_csv_handler(request: web.Request) -> web.Response:
    return web.Response(text=stats_csv(snapshot(_controller(request))), content_type="text/csv")


async def haproxy(request: web.Request) -> web.StreamResponse:
    # marathon-lb's /haproxy?stats;csv (zdd); /haproxy?stats alone is the human page.
    if "csv" in request.query_string.split(";"):
        return await stats_csv_handler(request)
    raise web.HTTPFound("/")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=metrics_text(snapshot(_controller(request))).encode(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def routes(request: web.Request) -> web.Response:
    c = _controller(request)
    table = spec.encode(c.serving or spec.RouteTable())
    body = b'{"generation":' + str(c.dataplane.generation).encode() + b',"table":' + table + b"}"
    return web.Response(body=body, content_type="application/json")


async def vhost_map(request: web.Request) -> web.Response:
    table = _controller(request).serving or spec.RouteTable()
    return web.Response(text="".join(f"{r.host} {r.service}\n" for r in table.http_routes))


async def app_map(request: web.Request) -> web.Response:
    table = _controller(request).serving or spec.RouteTable()
    return web.Response(text="".join(f"{s.app_id} {s.name}\n" for s in table.services if s.app_id))


async def pids(request: web.Request) -> web.Response:
    return web.Response(text=f"{os.getpid()}\n")


async def hup(request: web.Request) -> web.Response:
    await _controller(request).resync()
    return web.Response(text="Resynced every provider (static file re-read, Marathon re-fetched)\n")


async def _value(request: web.Request, key: str) -> Any:
    """<key> from the query string, a JSON body {key: value}, or a plain-text body."""
    if key in request.query:
        return request.query[key]
    body = await request.read()
    if not body:
        return None
    if request.content_type == "application/json":
        try:
            # strict JSON: no Infinity or NaN; nesting bounded (a deep body is an error, not a 500)
            data = msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError):
            raise web.HTTPBadRequest(text="body is not JSON\n") from None
        return data.get(key) if isinstance(data, dict) else None
    return body.decode("utf-8", "replace").strip()


def _backend_reply(c: AdminTarget, backend_id: str) -> web.Response:
    snap = snapshot(c)
    for s in snap["services"]:
        for b in s["backends"]:
            if b["id"] == backend_id:
                return _json({"service": s["name"], **b})
    return _json({"id": backend_id})


async def set_state(request: web.Request) -> web.Response:
    c = _controller(request)
    backend_id = request.match_info["id"]
    state = await _value(request, "state")
    if state not in ADMIN_STATES:
        return _json({"error": f"state must be one of {', '.join(ADMIN_STATES)}"}, status=400)
    if not c.set_state(backend_id, state):
        return _json({"error": f"no backend {backend_id!r} in the serving table"}, status=404)
    return _backend_reply(c, backend_id)


async def set_weight(request: web.Request) -> web.Response:
    c = _controller(request)
    backend_id = request.match_info["id"]
    value = await _value(request, "weight")
    # a plain integer only: not a bool, a float (1.9), "1_0" or other digits ("٥") that int() takes
    if isinstance(value, int) and not isinstance(value, bool):
        weight = value
    elif isinstance(value, str) and _PLAIN_INT.fullmatch(value):
        weight = int(value)
    else:
        weight = -1
    if not 0 <= weight <= 256:
        return _json({"error": "weight must be an integer within 0..256"}, status=400)
    if not c.set_weight(backend_id, weight):
        return _json({"error": f"no backend {backend_id!r} in the serving table"}, status=404)
    return _backend_reply(c, backend_id)


async def clear_override(request: web.Request) -> web.Response:
    c = _controller(request)
    backend_id = request.match_info["id"]
    if not c.clear_override(backend_id):
        return _json({"error": f"no backend {backend_id!r} in the serving table"}, status=404)
    return _backend_reply(c, backend_id)


def _static(name: str, content_type: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = resources.files("fastlb").joinpath(f"static/{name}").read_bytes()
        return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-cache"})

    return handler


def _cross_site(request: web.Request) -> bool:
    """A request a web page on another site made the browser send: its Origin names another host than
    the one it was sent to, or the browser says so (Sec-Fetch-Site). Such a page can POST a plain-text
    body without asking, so without this a loopback admin would take orders from any site its user
    visits."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    return urllib.parse.urlsplit(origin).netloc.lower() != request.headers.get("Host", "").lower()


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Changing endpoints need the token (``Authorization: Bearer <token>``) when one is set, and are
    refused to requests a browser sends for another site."""
    token = request.app[TOKEN]
    changing = request.method not in ("GET", "HEAD") or request.path.startswith("/_mlb_signal/")
    if changing and _cross_site(request):
        return _json({"error": "a changing request from another site is refused"}, 403)
    if token is not None and changing:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return _json({"error": "this endpoint needs the admin token (Authorization: Bearer <token>)"}, 401)
    return await handler(request)


async def _sample_rates(controller: AdminTarget) -> None:
    """Samples the request counters once a second while someone reads the stats, so that req_rate is
    the rate over the last second whatever the readers' pace."""
    meter = rate_meter(controller)
    while True:
        await asyncio.sleep(RateMeter.WINDOW_S)
        now = time.monotonic()
        if meter.watched(now):
            # the data plane's own count when it has one: a whole stats() snapshot walks every
            # listener, service and backend, the control loop held meanwhile
            read = getattr(controller.dataplane, "request_counts", None)
            counts = read() if read is not None else request_counts(controller.dataplane.stats())
            meter.sample(now, counts)


async def _rate_sampler(app: web.Application) -> Any:
    task = asyncio.get_running_loop().create_task(_sample_rates(app[CONTROLLER]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_app(controller: AdminTarget, token: str | None = None) -> web.Application:
    app = web.Application(middlewares=[_guard])
    app[CONTROLLER] = controller
    app[TOKEN] = token
    app.cleanup_ctx.append(_rate_sampler)
    r = app.router
    r.add_get("/_health", health)
    r.add_get("/_haproxy_health_check", health)
    r.add_get("/stats", stats)
    r.add_get("/stats.csv", stats_csv_handler)
    r.add_get("/haproxy", haproxy)
    r.add_get("/metrics", metrics)
    r.add_get("/routes", routes)
    r.add_get("/_haproxy_getconfig", routes)
    r.add_get("/_haproxy_getvhostmap", vhost_map)
    r.add_get("/_haproxy_getappmap", app_map)
    r.add_get("/_haproxy_getpids", pids)
    for signal_name in ("hup", "usr1"):
        r.add_get(f"/_mlb_signal/{signal_name}", hup)
        r.add_post(f"/_mlb_signal/{signal_name}", hup)
    r.add_post("/backends/{id:.+}/state", set_state)
    r.add_post("/backends/{id:.+}/weight", set_weight)
    r.add_delete("/backends/{id:.+}/override", clear_override)
    r.add_get("/", _static("index.html", "text/html"))
    r.add_get("/static/dashboard.js", _static("dashboard.js", "application/javascript"))
    r.add_get("/static/dashboard.css", _static("dashboard.css", "text/css"))
    return app


async def start(controller: AdminTarget, host: str, port: int, token: str | None) -> web.AppRunner:
    """Serves the admin API on host:port on the running loop; ``await runner.cleanup()`` stops it."""
    runner = web.AppRunner(make_app(controller, token), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner
