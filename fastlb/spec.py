"""The routing table fastlb serves, as frozen data: what every provider produces and what the data
plane compiles.

A ``RouteTable`` is a pure value. Providers (the static file, Marathon) build one whole; the control
plane hands it to ``fastlb._core.DataPlane.publish``, which compiles it into one C structure and
publishes it with one atomic store. Two tables built from the same state encode to the same bytes
(``encode``), which is what ``fastlb routes`` prints.

This module imports nothing from fastlb and no I/O: it is the vocabulary of the whole project.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Mode = Literal["tcp", "http"]
Balance = Literal["roundrobin", "leastconn", "maglev", "source"]
AdminState = Literal["ready", "drain", "maint"]


class Backend(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One server of a service.

    ``id`` is the stable identity that state outliving a table is keyed by (active connections,
    health, counters): the address for static services, the task id for Marathon tasks.
    """

    id: str
    address: str  # "ip:port", numeric; IPv6 as "[::1]:80"
    weight: int = 1  # 0..256; 0 takes no new connection
    state: AdminState = "ready"
    name: str = ""  # display name (marathon-lb's server name); defaults to id
    check: HealthCheck | None = None  # active health check of this server (issue: health checks)
    maxconn: int = 0  # connections (tcp) or requests (http) at once; 0: the service's backend_maxconn


class HealthCheck(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: Literal["tcp", "http"] = "tcp"
    path: str = "/"
    port: int = 0  # 0: the backend's own port
    interval_ms: int = 2000
    timeout_ms: int = 1000
    rise: int = 2
    fall: int = 3
    expect_status: tuple[int, int] = (200, 399)
    require_pass: bool = False  # a new backend takes traffic only once a first check passed


class Timeouts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    connect_ms: int = 3000
    client_ms: int = 30000  # idle client side (no byte either way for this long)
    server_ms: int = 30000  # idle server side
    tunnel_ms: int = 3600000  # idle once both sides are established (tcp mode, upgraded http)
    http_request_ms: int = 15000  # whole request head must arrive within this (slowloris)
    http_keepalive_ms: int = 1000  # idle between requests on a client connection
    queue_ms: int = 0  # longest wait for a slot (backend_maxconn, maxconn); 0: as connect_ms (HAProxy's)


class HttpOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """HTTP-mode behaviour of a service (marathon-lb's per-port HTTP labels)."""

    sticky: bool = False  # insert cookie mesosphere_server_id
    sticky_cookie: str = "mesosphere_server_id"
    hsts: bool = False
    redirect_to_https: bool = False
    auth_realm: str = ""
    auth_users: tuple[tuple[str, str], ...] = ()  # (user, hash: crypt(3)'s, or htpasswd's $apr1$ or {SHA})
    auth_remove_header: bool = False  # with auth_users: the Authorization header is not forwarded to the backends
    allow_cidrs: tuple[str, ...] = ()  # empty: everyone
    # http mode: a client outside allow_cidrs is also admitted when an address its X-Forwarded-For lists is
    # in them (Traefik's useXForwardedFor; any client can write that header)
    allow_forwarded_for: bool = False
    forwarded_headers: bool = True  # X-Forwarded-For/-Proto/-Port
    # marathon-lb's HTTP_BACKEND_PROXYPASS_PATH, REVPROXY_PATH and REDIR, served in the data plane.
    strip_prefix: str = ""  # taken off the request path at a "/" boundary: "/api/x" -> "/x", "/api" -> "/"
    set_host: str = ""  # the Host header the backends get; "": the client's
    location_prefix: str = ""  # put before the path of a Location answer ("/x", or a URL of hosts/set_host)
    redirect_root: str = ""  # a request for "/" (for one of hosts, or any host when there are none) goes here
    redirect_root_code: int = 301  # 301, 302, 303, 307 or 308
    hosts: tuple[str, ...] = ()  # the service's own host names (its exact vhosts), for the two above


class Service(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A balanced pool: what marathon-lb calls a backend (``<app>_<servicePort>``)."""

    name: str
    mode: Mode = "tcp"
    balance: Balance = "roundrobin"
    backends: tuple[Backend, ...] = ()
    timeouts: Timeouts = Timeouts()
    retries: int = 3  # connect attempts on other backends after a failure
    maxconn: int = 0  # 0: unlimited
    backend_maxconn: int = 0  # each backend's limit unless it sets its own; past it, wait in a queue. 0: none
    drain_timeout_ms: int = 0  # a draining backend's open connections are closed after this; 0: never
    http: HttpOptions = HttpOptions()
    app_id: str = ""  # Marathon app id, for X-Marathon-App-Id routing and /stats


class Listener(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An address fastlb accepts on.

    ``kind`` says how a connection finds its service:
    - "service": every connection goes to ``service`` (tcp or http mode, per marathon-lb's per-port frontend);
    - "vhost": http, per request, by Host header and path over ``RouteTable.http_routes``;
    - "appid": http, per request, by the X-Marathon-App-Id header over the services' ``app_id``.
    """

    address: str  # "ip:port"
    kind: Literal["service", "vhost", "appid"] = "service"
    service: str = ""  # for kind == "service"
    maxconn: int = 0  # 0: unlimited
    tls: bool = False  # https listener (SNI routing), once TLS exists


class HttpRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A vhost rule: Host (exact, or "*.example.com") and optional path prefixes, to a service.

    Rules are tried in table order; ``fastlb.routes`` sorts them (marathon-lb's BACKEND_WEIGHT, then
    longest path first)."""

    host: str
    service: str
    paths: tuple[str, ...] = ()  # path prefixes; empty matches every path
    weight: int = 0


class RouteTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    services: tuple[Service, ...] = ()
    listeners: tuple[Listener, ...] = ()
    http_routes: tuple[HttpRoute, ...] = ()
    maxconn: int = 0  # all listeners together; 0: unlimited


_encoder = msgspec.json.Encoder(order="sorted")


def encode(table: RouteTable) -> bytes:
    """Deterministic JSON of a table: the same table always gives the same bytes."""
    return _encoder.encode(table)


def decode(data: bytes) -> RouteTable:
    return msgspec.json.decode(data, type=RouteTable)
