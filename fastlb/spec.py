"""The routing table fastlb serves, as frozen data: what every provider produces and what the data
plane compiles.

A ``RouteTable`` is a pure value. Providers (the static file, Marathon) build one whole; the control
plane hands it to ``fastlb._core.DataPlane.publish``, which compiles it into one C structure and
publishes it with one atomic store. Two tables built from the same state encode to the same bytes
(``encode``), which is what ``fastlb routes`` prints.

This module imports nothing from fastlb and no I/O: it is the vocabulary of the whole project.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

import msgspec

Mode = Literal["tcp", "http"]
Balance = Literal["roundrobin", "leastconn", "maglev", "source"]
AdminState = Literal["ready", "drain", "maint"]


U64_MAX = (1 << 64) - 1  # byte counts
U32_MAX = (1 << 32) - 1  # the data plane keeps counts and milliseconds in 32 bits


class EngineSetting(NamedTuple):
    """One setting of the data plane: a keyword of ``fastlb._core.DataPlane`` and a key of the static
    file's ``[engine]``. Declared once, in ``ENGINE_SETTINGS``: the file takes its default and refuses a
    value out of its range, and the data plane refuses the same values (it is given the file's)."""

    default: int
    low: int
    high: int | None  # None: no bound above
    power_of_two: bool = False

    def accepts(self, value: int) -> bool:
        return (self.low <= value and (self.high is None or value <= self.high)
                and not (self.power_of_two and value & (value - 1)))

    def range(self) -> str:
        """The range as docs/config.md writes it: ``0..1024``, ``>= 0``, ``a power of two in 4096..65536``."""
        bound = f"{self.low}..{self.high}" if self.high is not None else f">= {self.low}"
        return f"a power of two in {bound}" if self.power_of_two else bound

    def refusal(self, value: int) -> str | None:
        """Why <value> is refused, as an error line ends (``is out of range (0..1024)``); None: accepted."""
        if self.accepts(value):
            return None
        return f"is not {self.range()}" if self.power_of_two else f"is out of range ({self.range()})"


# The data plane's settings. ``workers`` 0 and ``maxconn`` 0 are the file's "choose for me" (one worker
# per CPU; as many connections as the open-files limit fits, at most DEFAULT_MAXCONN): the process
# resolves them before it makes the data plane, which takes 1.. workers and 0 as "no cap" for maxconn.
ENGINE_SETTINGS: dict[str, EngineSetting] = {
    "workers": EngineSetting(0, 0, 1024),
    "maxconn": EngineSetting(0, 0, U32_MAX),
    "pipe_max": EngineSetting(1024, 0, U32_MAX),
    "pipe_size": EngineSetting(262144, 4096, 1 << 30, power_of_two=True),
    "buffer_size": EngineSetting(16384, 1024, 1 << 24),
    "splice_threshold": EngineSetting(65536, 0, U64_MAX),
    "pool_max": EngineSetting(10000, 0, U32_MAX),
    "pool_idle_ms": EngineSetting(5000, 1, U32_MAX),
}
DEFAULT_MAXCONN = 100000  # maxconn when the file gives none and the open-files limit allows it


# The table's structs are gc=False: frozen values made of strings, numbers, tuples and such structs
# can form no cycle, and Python's cyclic collector would otherwise walk every one of a 10,000-app
# table at each of its full collections (see Controller._settle_gc).


class Backend(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One server of a service.

    ``id`` is the stable identity that state outliving a table is keyed by (active connections,
    health, counters): ``<service>/<address>`` for a static backend without an explicit id (an
    explicit id may name one backend in several services), the task id for Marathon tasks.
    """

    id: str
    address: str  # "ip:port", numeric; IPv6 as "[::1]:80"
    weight: int = 1  # 0..256; 0 takes no new connection
    state: AdminState = "ready"
    name: str = ""  # display name (marathon-lb's server name); defaults to id
    check: HealthCheck | None = None  # active health check of this server (issue: health checks)
    maxconn: int = 0  # connections (tcp) or requests (http) at once; 0: the service's backend_maxconn


class HealthCheck(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    kind: Literal["tcp", "http"] = "tcp"
    path: str = "/"
    port: int = 0  # 0: the backend's own port
    interval_ms: int = 2000
    timeout_ms: int = 1000
    rise: int = 2
    fall: int = 3
    expect_status: tuple[int, int] = (200, 399)
    require_pass: bool = False  # a new backend takes traffic only once a first check passed


class Timeouts(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    connect_ms: int = 3000
    client_ms: int = 30000  # idle client side (no byte either way for this long)
    server_ms: int = 30000  # idle server side
    tunnel_ms: int = 3600000  # idle once both sides are established (tcp mode, upgraded http)
    http_request_ms: int = 15000  # whole request head must arrive within this (slowloris)
    http_keepalive_ms: int = 1000  # idle between requests on a client connection
    queue_ms: int = 0  # longest wait for a slot (backend_maxconn, maxconn); 0: as connect_ms (HAProxy's)


class HttpOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
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
    # Traefik's frontend headers and redirect labels, served in the data plane.
    request_headers: tuple[tuple[str, str], ...] = ()  # (name, value) set on each request; value "": removed
    response_headers: tuple[tuple[str, str], ...] = ()  # the same on each response the client gets
    sts_seconds: int = 0  # Strict-Transport-Security: max-age=N on responses; 0: none
    sts_include_subdomains: bool = False
    sts_preload: bool = False
    sts_plain: bool = False  # sent on requests that came in plain too; else over TLS only (no TLS listener yet)
    redirect_to_https_code: int = 301  # redirect_to_https's status: 301 or 302
    redirect_regex: str = ""  # POSIX ERE over "http://<Host><path?query>"; a URL it changes is redirected
    redirect_replacement: str = ""  # what each match becomes: $1..$9 (or ${1}) its groups, $$ a '$'
    redirect_regex_code: int = 302  # 302, or 301 (permanent)


class ServiceTls(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """TLS a service terminates with certificates of its own: on its own listeners (``Listener.tls``),
    and for its vhosts on the shared https listener, where SNI picks its certificate for those names
    before any other."""

    certs: tuple[str, ...] = ()  # PEM files (certificate, chain, key) or directories of *.pem; the first the default
    alpn: tuple[str, ...] = ()  # ALPN protocols offered, in order; (): http/1.1
    min_version: str = ""  # "TLSv1.2" or "TLSv1.3"; "": TLSv1.2
    ciphers: str = ""  # TLS 1.2 cipher list, OpenSSL's syntax; "": fastlb's (ECDHE with AEAD)
    ciphersuites: str = ""  # TLS 1.3 suites, OpenSSL's syntax; "": OpenSSL's
    verify: str = ""  # client certificates: "optional" or "required", verified against ca_file; "": not asked
    ca_file: str = ""  # PEM file of the CAs that verify client certificates (with verify)


class Service(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
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
    tls: ServiceTls | None = None  # certificates of its own (its listeners are then TLS ones)


class Listener(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
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


class HttpRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A vhost rule: Host (exact, or "*.example.com") and optional path prefixes, to a service.

    Rules are tried in table order; ``fastlb.marathon.build`` sorts them (marathon-lb's BACKEND_WEIGHT, then
    longest path first)."""

    host: str
    service: str
    paths: tuple[str, ...] = ()  # path prefixes; empty matches every path
    weight: int = 0


class SniRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A passthrough vhost: on the https listener, a connection whose ClientHello names ``host`` (exact, or
    "*.example.com") goes to tcp service ``service`` untouched, its TLS not terminated. Tried before the
    certificates; the first in table order that matches wins."""

    host: str
    service: str


class RouteTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    services: tuple[Service, ...] = ()
    listeners: tuple[Listener, ...] = ()
    http_routes: tuple[HttpRoute, ...] = ()
    sni_routes: tuple[SniRoute, ...] = ()  # TLS passthrough on the https listener (tls listeners)
    maxconn: int = 0  # all listeners together; 0: unlimited


# Header fields a service may not set or remove (HttpOptions.request_headers, response_headers): they
# frame the message or belong to the connection, which fastlb handles itself; and a request's Host has
# routed it already.
FRAMING_FIELDS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "proxy-connection"}
)
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}")
_FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]{0,4096}")
# Go (RE2) syntax that POSIX ERE lacks or reads otherwise: class escapes and other backslash-letter
# escapes, (?flags) and (?P<name>), lazy quantifiers.
_GO_ONLY = re.compile(r"\\[A-Za-z0-9]|\(\?|[*+?}]\?")
_REPLACEMENT = re.compile(r"(?:[^$]|\$\$|\$[0-9](?![A-Za-z0-9_])|\$\{[0-9]\})*")


def header_field_problem(name: str, value: str, request: bool) -> str | None:
    """What makes (<name>, <value>) a field a service cannot set on each request (<request>) or
    response, or None. An empty value is a removal."""
    if not _TOKEN.fullmatch(name):
        return f"{name!r} is not a header field name"
    if name.lower() in FRAMING_FIELDS or (request and name.lower() == "host"):
        return f"{name} is fastlb's own to set (it frames the message, or has routed it)"
    if not _FIELD_VALUE.fullmatch(value):
        return f"{name}: {value!r} holds a line break or another control character, or passes 4096 characters"
    return None


def redirect_regex_problem(pattern: str) -> str | None:
    """What POSIX ERE <pattern> holds that the data plane would not serve as Go's regexp (Traefik's)
    does, or None. That it compiles is checked when it is compiled."""
    if "\0" in pattern or len(pattern) > 4096:
        return f"{pattern!r} holds a NUL or passes 4096 characters"
    go = _GO_ONLY.search(pattern)
    if go:
        return (
            f"{pattern!r}: {go.group()!r} is Go (RE2) syntax; the regex is POSIX extended (ERE): "
            "no \\d \\w \\s, no (?...), no lazy quantifiers ([0-9] for \\d, [[:alnum:]_] for \\w)"
        )
    return None


def redirect_replacement_problem(replacement: str) -> str | None:
    """What makes <replacement> one the data plane would not expand as Go's Regexp.Expand does, or None."""
    if not replacement.isascii() or not all(0x21 <= ord(c) <= 0x7E for c in replacement) or len(replacement) > 2048:
        return f"replacement {replacement!r} may hold visible ASCII only (no space), at most 2048 characters"
    if not _REPLACEMENT.fullmatch(replacement):
        return (
            f"replacement {replacement!r}: a '$' is $1..$9 (not followed by a letter, digit or '_'), "
            "${1}..${9} or $$"
        )
    return None


_encoder = msgspec.json.Encoder(order="sorted")


def encode(table: RouteTable) -> bytes:
    """Deterministic JSON of a table: the same table always gives the same bytes."""
    return _encoder.encode(table)


def decode(data: bytes) -> RouteTable:
    return msgspec.json.decode(data, type=RouteTable)
