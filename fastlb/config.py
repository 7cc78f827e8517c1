"""The static provider: a TOML file decoded into a ``spec.RouteTable`` and the engine's settings.

Pure: no asyncio, no sockets, no ``_core``. ``parse`` either returns a whole ``StaticConfig`` or raises
``ConfigError`` carrying every problem found, each one line that starts with its path in the file
(``services[1].backends[0]: "10.0.0.1" is not ip:port``). Decoding runs in two passes: the shape
(keys, types, allowed values) is walked field by field so that one bad value does not hide the
next, then the meaning (addresses, ports, ranges, duplicates) is checked on the decoded structs.

The file format, key by key, is ``docs/config.md``.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import types
import typing
from importlib import resources
from typing import Any, Literal, Union

import msgspec

from fastlb import certs, spec, tickets

# -- the file's shape ------------------------------------------------------------------------------
# Durations are an integer number of milliseconds or a string with a unit: "500ms", "3s", "2m", "1h".
Duration = int | str


# Subclasses repeat frozen=True: msgspec inherits it at run time, but type checkers read each class's
# own keywords (PEP 681) and would take a subclass without it for a mutable one.
class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class BackendEntry(_Struct, frozen=True):
    address: str
    weight: int = 1
    state: spec.AdminState = "ready"
    id: str = ""
    name: str = ""
    maxconn: int = 0  # 0: the service's backend_maxconn


class TimeoutsEntry(_Struct, frozen=True):
    connect: Duration | None = None
    client: Duration | None = None
    server: Duration | None = None
    tunnel: Duration | None = None
    http_request: Duration | None = None
    http_keepalive: Duration | None = None
    queue: Duration | None = None


class HealthEntry(_Struct, frozen=True):
    kind: Literal["tcp", "http"] = "tcp"
    path: str = "/"
    port: int = 0
    interval: Duration = 2000
    timeout: Duration = 1000
    rise: int = 2
    fall: int = 3
    expect_status: tuple[int, ...] = (200, 399)
    require_pass: bool = False


class AuthEntry(_Struct, frozen=True):
    users: tuple[str, ...]  # "user:crypt-hash"
    realm: str = "fastlb"


class HttpEntry(_Struct, frozen=True):
    sticky: bool = False
    sticky_cookie: str = "mesosphere_server_id"
    hsts: bool = False
    redirect_to_https: bool = False
    forwarded_headers: bool = True
    auth: AuthEntry | None = None
    allow: tuple[str, ...] = ()
    strip_prefix: str = ""
    set_host: str = ""
    location_prefix: str = ""
    redirect_root: str = ""
    redirect_root_code: int | None = None  # None: 301


class ServiceTlsEntry(_Struct, frozen=True):
    passthrough: bool = False  # on [https]: routed by SNI (the vhosts), forwarded untouched (not terminated)
    certs: tuple[str, ...] = ()  # PEM files (certificate, chain, key) or directories of *.pem; the first the default
    alpn: tuple[str, ...] = ()  # ALPN protocols offered; (): http/1.1
    min_version: str = ""  # "TLSv1.2" (the default) or "TLSv1.3"
    ciphers: str = ""  # TLS 1.2 cipher list, OpenSSL's syntax
    ciphersuites: str = ""  # TLS 1.3 suites, OpenSSL's syntax
    verify: str = ""  # client certificates: "optional" or "required" (with ca_file); "": not asked
    ca_file: str = ""  # PEM file of the CAs that verify client certificates


class ServiceEntry(_Struct, frozen=True):
    name: str
    listen: str | tuple[str, ...] = ()
    mode: spec.Mode | None = None  # None: "http" when vhosts are given, else "tcp"
    balance: spec.Balance = "roundrobin"
    backends: tuple[str | BackendEntry, ...] = ()
    timeouts: TimeoutsEntry = TimeoutsEntry()
    retries: int = 3
    maxconn: int = 0
    backend_maxconn: int = 0  # each backend's, unless it sets its own; past it, wait in a queue
    drain_timeout: Duration = 0  # a draining backend's open connections are closed after this; 0: never
    health: HealthEntry | None = None
    http: HttpEntry | None = None
    vhosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    tls: ServiceTlsEntry | None = None  # its own certificates (TLS on its listeners and its vhosts), or passthrough


class SharedHttpEntry(_Struct, frozen=True):
    listen: str | tuple[str, ...]
    maxconn: int = 0


class SharedHttpsEntry(_Struct, frozen=True):
    listen: str | tuple[str, ...]
    maxconn: int = 0
    certs: tuple[str, ...] = ()  # PEM files (certificate, chain, key) or directories of *.pem; the first is the default
    handshake_timeout: Duration = 10000  # a TLS handshake not over in this long is dropped
    ticket_keys: str | None = None  # session ticket key file (HAProxy's tls-ticket-keys); None: random, rotated


_ENGINE = spec.ENGINE_SETTINGS  # every engine setting's default and range, declared once


class EngineEntry(_Struct, frozen=True):
    workers: int = _ENGINE["workers"].default  # 0: one per CPU this process may run on
    maxconn: int = _ENGINE["maxconn"].default  # 0: as many as the open-files limit fits (fastlb.limits)
    pipe_max: int = _ENGINE["pipe_max"].default
    pipe_size: int = _ENGINE["pipe_size"].default
    buffer_size: int = _ENGINE["buffer_size"].default
    splice_threshold: int = _ENGINE["splice_threshold"].default
    pool_max: int = _ENGINE["pool_max"].default  # HTTP mode: idle backend connections kept, all workers together
    pool_idle: Duration = _ENGINE["pool_idle_ms"].default  # HTTP mode: an idle backend connection unused this long


class AdminEntry(_Struct, frozen=True):
    listen: str = "127.0.0.1:9090"


class LogEntry(_Struct, frozen=True):
    access: str | None = None  # the access log: a file (appended to) or "-" (stdout)


class FileEntry(_Struct, frozen=True):
    """The whole file. Decoded part by part (``_decode_parts``), so that a bad part hides no other."""

    engine: EngineEntry = EngineEntry()
    admin: AdminEntry | None = None
    log: LogEntry | None = None
    http: SharedHttpEntry | None = None
    https: SharedHttpsEntry | None = None
    services: tuple[ServiceEntry, ...] = ()


# -- what the rest of fastlb reads ----------------------------------------------------------------


class EngineSettings(msgspec.Struct, frozen=True):
    """Keyword arguments of ``fastlb._core.DataPlane`` (``workers`` 0: choose from the CPU count)."""

    workers: int = _ENGINE["workers"].default
    maxconn: int = _ENGINE["maxconn"].default  # 0: fitted to the open-files limit at start (limits.fit_engine)
    pipe_max: int = _ENGINE["pipe_max"].default
    pipe_size: int = _ENGINE["pipe_size"].default
    buffer_size: int = _ENGINE["buffer_size"].default
    splice_threshold: int = _ENGINE["splice_threshold"].default
    pool_max: int = _ENGINE["pool_max"].default
    pool_idle_ms: int = _ENGINE["pool_idle_ms"].default


class StaticConfig(msgspec.Struct, frozen=True):
    table: spec.RouteTable
    engine: EngineSettings
    admin_listen: str | None  # None: the file does not say
    access_log: str | None = None  # [log] access: a path, or "-" for stdout; None: the file does not say
    certs: tuple[certs.Certificate, ...] = ()  # [https] certs, read
    handshake_timeout_ms: int = 10000  # [https] handshake_timeout
    ticket_keys: str | None = None  # [https] ticket_keys: the key file (read, checked)


class ConfigError(Exception):
    """Every problem in a file, one line each, path first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# -- entry points --------------------------------------------------------------------------------


def parse(text: str) -> StaticConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"toml: {e}"]) from None
    except RecursionError:
        raise ConfigError(["toml: arrays or tables nested too deeply"]) from None
    problems: list[str] = []
    bad: set[str] = set()
    parts = _decode_parts(raw, problems, bad)
    shape = len(problems)
    result = _build(parts, problems, bad)
    if problems:
        # what a value of the wrong shape made of its neighbours (a default in its place) is no problem
        raise ConfigError(problems[:shape] + [p for p in problems[shape:] if not _follows(p, bad)])
    assert result is not None
    return result


def load(path: str) -> StaticConfig:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError([f"{path}: {e.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 ({e.reason} at byte {e.start})"]) from None
    return parse(text)


def check(path: str) -> list[str]:
    """The problems of a file; empty when it is good."""
    try:
        load(path)
    except ConfigError as e:
        return e.problems
    return []


def default_text() -> str:
    """The embedded default that a plain ``fastlb run`` serves."""
    return resources.files("fastlb").joinpath("data/default.toml").read_text("utf-8")


def load_default() -> StaticConfig:
    return parse(default_text())


# -- pass 1: the shape, every field on its own ----------------------------------------------------

_TOML_TYPES = {
    str: "string",
    int: "integer",
    float: "float",
    bool: "boolean",
    list: "array",
    dict: "table",
}


def _toml_type(value: Any) -> str:
    return _TOML_TYPES.get(type(value), type(value).__name__)


def _expected(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(f'"{a}"' for a in typing.get_args(tp))
    if origin is tuple:
        return "an array"
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return "a table"
    name = _TOML_TYPES.get(tp, getattr(tp, "__name__", str(tp)))
    return ("an " if name[0] in "aeiou" else "a ") + name


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Parts(msgspec.Struct):
    """The parts of a file, each value of the wrong shape (or missing) replaced by its default or a zero
    value, so that the meaning of everything else is still checked; their paths are kept aside."""

    engine: EngineEntry | None
    admin: AdminEntry | None
    log: LogEntry | None
    http: SharedHttpEntry | None
    https: SharedHttpsEntry | None
    http_given: bool  # [http] or [https] is in the file, even if it is wrong
    services: list[tuple[int, ServiceEntry]]


def _decode_parts(raw: dict[str, Any], problems: list[str], bad: set[str]) -> _Parts:
    fields = {f.encode_name: f for f in msgspec.structs.fields(FileEntry)}
    for key in raw:
        if key not in fields:
            problems.append(f"{key}: unknown key")

    def part(tp: Any, value: Any, path: str) -> Any:
        return msgspec.convert(_walk(value, tp, path, problems, bad), tp)

    engine = part(EngineEntry, raw.get("engine", {}), "engine")
    admin = part(AdminEntry, raw["admin"], "admin") if "admin" in raw else None
    log = part(LogEntry, raw["log"], "log") if "log" in raw else None
    http = part(SharedHttpEntry, raw["http"], "http") if "http" in raw else None
    https = part(SharedHttpsEntry, raw["https"], "https") if "https" in raw else None
    services: list[tuple[int, ServiceEntry]] = []
    raw_services = raw.get("services", [])
    if not isinstance(raw_services, list):
        problems.append(f"services: expected an array of tables ([[services]]), got {_toml_type(raw_services)}")
    else:
        for i, value in enumerate(raw_services):
            services.append((i, part(ServiceEntry, value, f"services[{i}]")))
    return _Parts(
        engine=engine, admin=admin, log=log, http=http, https=https, http_given="http" in raw or "https" in raw,
        services=services,
    )


_DROP = object()  # a value of the wrong shape whose key is left out: its default applies


def _walk(value: Any, tp: Any, path: str, problems: list[str], bad: set[str]) -> Any:
    """Appends a line for every problem in <value> against the annotation <tp>, and returns <value>
    with each wrong part replaced (a key with a default left out, anything else a zero value of its
    type), the path of each replaced part added to <bad>."""
    where = path or "toml"
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a table, got {_toml_type(value)}")
            return _zero(tp, path, bad)
        fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
        out: dict[str, Any] = {}
        for key in value:
            if key not in fields:
                problems.append(f"{_join(path, key)}: unknown key")
        for name, field in fields.items():
            if name in value:
                got = _walk(value[name], field.type, _join(path, name), problems, bad)
                if got is _DROP and field.required:
                    got = _zero(field.type, _join(path, name), bad)
                if got is not _DROP:
                    out[name] = got
            elif field.required:
                problems.append(f"{_join(path, name)}: missing")
                out[name] = _zero(field.type, _join(path, name), bad)
        return out
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(value, dict):
            match = [a for a in args if isinstance(a, type) and issubclass(a, msgspec.Struct)]
        elif isinstance(value, list):
            match = [a for a in args if typing.get_origin(a) is tuple]
        else:
            match = [a for a in args if _accepts(a, value)]
        if match:
            return _walk(value, match[0], path, problems, bad)
        problems.append(f"{where}: expected {_expected(tp)}, got {_toml_type(value)}")
        return _bad(path, bad)
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"{where}: expected an array, got {_toml_type(value)}")
            return _bad(path, bad)
        items = typing.get_args(tp)
        out_items = []
        for i, item in enumerate(value):
            item_tp = items[0] if items[-1] is Ellipsis else items[min(i, len(items) - 1)]
            got = _walk(item, item_tp, f"{path}[{i}]", problems, bad)
            out_items.append(_zero(item_tp, f"{path}[{i}]", bad) if got is _DROP else got)  # keeps the indices
        return out_items
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or not isinstance(value, str):
            problems.append(f"{where}: {_show(value)} is not {_expected(tp)}")
            return _bad(path, bad)
        return value
    if not _accepts(tp, value):
        problems.append(f"{where}: expected {_expected(tp)}, got {_toml_type(value)}")
        return _bad(path, bad)
    return value


def _bad(path: str, bad: set[str]) -> Any:
    bad.add(path)
    return _DROP


def _zero(tp: Any, path: str, bad: set[str]) -> Any:
    """A value of type <tp> standing in for a wrong or missing one at <path> (added to <bad>)."""
    bad.add(path)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _zero(next(a for a in typing.get_args(tp) if a is not type(None)), path, bad)
    if origin is Literal:
        return typing.get_args(tp)[0]
    if origin is tuple:
        return []
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return {f.encode_name: _zero(f.type, _join(path, f.encode_name), bad)
                for f in msgspec.structs.fields(tp) if f.required}
    return {str: "", int: 0, bool: False}.get(tp)


def _follows(problem: str, bad: set[str]) -> bool:
    """Whether <problem> (found after the shape) is about a value that stands in for a wrong one.
    (Checks across keys skip a replaced key themselves: see ``known`` in ``_service``.)"""
    where = problem.split(": ", 1)[0]
    # the value itself, a part of it, or the array it is an item of
    return any(where == b or where.startswith((b + ".", b + "[")) or b.startswith(where + "[") for b in bad)


def _accepts(tp: Any, value: Any) -> bool:
    if typing.get_origin(tp) is Literal:
        return isinstance(value, str)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return False


def _show(value: Any) -> str:
    if isinstance(value, str):
        # as TOML would write it, control characters escaped: one problem stays on one line
        text = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", text) + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


# -- pass 2: the meaning -------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOST = re.compile(r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}
_MAX_WEIGHT = 256
_U32 = spec.U32_MAX


def parse_address(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int] | None:
    """"ip:port" (IPv6 as "[ip]:port") to (ip, port); None when it is not one. Port may be 0 here."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            return None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            return None
    if not port.isdigit() or len(port) > 5:
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if text.startswith("[") != (ip.version == 6):
        return None
    return ip, int(port)


def format_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def parse_duration(value: int | str) -> int | None:
    """Milliseconds, or None when <value> is not a duration."""
    if isinstance(value, int):
        return value if value >= 0 else None
    m = _DURATION.match(value.strip())
    if m is None:
        return None
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def _address(text: str, path: str, problems: list[str]) -> str | None:
    """The canonical "ip:port" of <text>, or None after reporting why it is not one."""
    parsed = parse_address(text)
    if parsed is None:
        problems.append(f"{path}: {_show(text)} is not ip:port")
        return None
    ip, port = parsed
    if not 1 <= port <= 65535:
        problems.append(f"{path}: port {port} is out of range (1..65535)")
        return None
    return format_address(ip, port)


def _listens(value: str | tuple[str, ...]) -> list[tuple[str, str]]:
    """(address, path suffix) pairs of a ``listen`` key, a string or an array."""
    if isinstance(value, str):
        return [(value, "")]
    return [(v, f"[{i}]") for i, v in enumerate(value)]


class _Listens:
    """Listening addresses seen so far, to report a duplicate or an overlap with a wildcard once."""

    def __init__(self) -> None:
        self.seen: dict[tuple[Any, int], str] = {}

    def add(self, address: str, path: str, problems: list[str]) -> bool:
        parsed = parse_address(address)
        assert parsed is not None
        ip, port = parsed
        if (ip, port) in self.seen:
            problems.append(f"{path}: {address} is already listened on by {self.seen[(ip, port)]}")
            return False
        for (other_ip, other_port), other in self.seen.items():
            if other_port == port and other_ip.version == ip.version and (ip.is_unspecified or other_ip.is_unspecified):
                problems.append(f"{path}: {address} overlaps {format_address(other_ip, other_port)} ({other})")
                return False
        self.seen[(ip, port)] = path
        return True


def _build(entry: _Parts, problems: list[str], bad: set[str]) -> StaticConfig | None:
    engine = _engine(entry.engine, problems) if entry.engine is not None else EngineSettings()
    listens = _Listens()
    admin_listen = None
    if entry.admin is not None:
        admin_listen = _address(entry.admin.listen, "admin.listen", problems)
        if admin_listen is not None:
            listens.add(admin_listen, "admin.listen", problems)

    access_log = None
    if entry.log is not None and entry.log.access is not None:
        access_log = entry.log.access
        if not access_log.strip() or "\0" in access_log:
            problems.append(f'log.access: {_show(access_log)} is not a path (a file, or "-" for stdout)')

    listeners: list[spec.Listener] = []
    if entry.http is not None:
        _positive("http.maxconn", entry.http.maxconn, problems, zero=True, top=_U32)
        for text, suffix in _listens(entry.http.listen):
            path = f"http.listen{suffix}"
            address = _address(text, path, problems)
            if address is not None and listens.add(address, path, problems):
                listeners.append(spec.Listener(address=address, kind="vhost", maxconn=max(entry.http.maxconn, 0)))
    tls_certs: list[certs.Certificate] = []
    handshake_ms = 10000
    ticket_keys: str | None = None
    if entry.https is not None:
        _positive("https.maxconn", entry.https.maxconn, problems, zero=True, top=_U32)
        for text, suffix in _listens(entry.https.listen):
            path = f"https.listen{suffix}"
            address = _address(text, path, problems)
            if address is not None and listens.add(address, path, problems):
                listeners.append(
                    spec.Listener(address=address, kind="vhost", maxconn=max(entry.https.maxconn, 0), tls=True)
                )
        ms = _ms(entry.https.handshake_timeout, "https.handshake_timeout", problems)
        if ms is not None and ms > _U32:
            problems.append(f"https.handshake_timeout: {_show(entry.https.handshake_timeout)} is longer than 49 days")
        elif ms is not None:
            handshake_ms = ms
        try:
            tls_certs = certs.from_paths(entry.https.certs, "https.certs")
        except certs.CertError as e:
            problems.extend(e.problems)
        if entry.https.ticket_keys is not None:
            try:
                tickets.read_key_file(entry.https.ticket_keys)
                ticket_keys = entry.https.ticket_keys
            except tickets.KeyFileError as e:
                problems.append(f"https.ticket_keys: {e}")

    services: list[spec.Service] = []
    routes: list[spec.HttpRoute] = []
    names: dict[str, str] = {}
    backend_ids: dict[str, tuple[str, str | None]] = {}  # id -> (the first backend giving it, its address)
    rules: dict[tuple[str, tuple[str, ...]], str] = {}
    sni_rules: dict[str, str] = {}  # passthrough host -> the vhost naming it
    sni_routes: list[spec.SniRoute] = []
    for i, s in entry.services:
        path = f"services[{i}]"
        if not _NAME.match(s.name):
            problems.append(f'{path}.name: {_show(s.name)} is not a name (letters, digits, "_", ".", "-")')
        elif s.name in names:
            problems.append(f"{path}.name: {_show(s.name)} is already the name of {names[s.name]}")
        else:
            names[s.name] = path
        service = _service(s, path, entry.http_given, entry.https is not None, backend_ids, problems, bad)
        passthrough = s.tls is not None and s.tls.passthrough
        service_tls = s.tls is not None and not passthrough
        for text, suffix in _listens(s.listen):
            lpath = f"{path}.listen{suffix}"
            address = _address(text, lpath, problems)
            if address is not None and listens.add(address, lpath, problems):
                listeners.append(spec.Listener(address=address, service=s.name, tls=service_tls))
        for j, host in enumerate(s.vhosts):
            # The same host and paths twice: the later rule could never match.
            key = (host.lower(), tuple(sorted(s.paths)))
            if passthrough:
                if host.lower() in sni_rules:
                    holder = sni_rules[host.lower()]
                    problems.append(f"{path}.vhosts[{j}]: {_show(host)} is already passed through by {holder}")
                else:
                    sni_rules[host.lower()] = f"{path}.vhosts[{j}]"
            elif key in rules:
                what = "every path" if not s.paths else "the same paths"
                problems.append(f"{path}.vhosts[{j}]: {_show(host)} ({what}) is already routed by {rules[key]}")
            else:
                rules[key] = f"{path}.vhosts[{j}]"
        if service is None:
            continue
        services.append(service)
        for host in s.vhosts:
            if passthrough:
                sni_routes.append(spec.SniRoute(host=host.lower(), service=s.name))
            else:
                routes.append(spec.HttpRoute(host=host.lower(), service=s.name, paths=s.paths))
    if problems:
        return None
    table = spec.RouteTable(
        services=tuple(services), listeners=tuple(listeners), http_routes=tuple(routes), sni_routes=tuple(sni_routes)
    )
    return StaticConfig(
        table=table, engine=engine, admin_listen=admin_listen, access_log=access_log, certs=tuple(tls_certs),
        handshake_timeout_ms=handshake_ms, ticket_keys=ticket_keys,
    )


def _positive(path: str, value: int, problems: list[str], *, zero: bool = False, top: int | None = None) -> None:
    low = 0 if zero else 1
    if value < low or (top is not None and value > top):
        bound = f"{low}..{top}" if top is not None else f">= {low}"
        problems.append(f"{path}: {value} is out of range ({bound})")


def _engine(e: EngineEntry, problems: list[str]) -> EngineSettings:
    for name, setting in _ENGINE.items():
        if name == "pool_idle_ms":  # a duration in the file: pool_idle
            continue
        value = getattr(e, name)
        refusal = setting.refusal(value)
        if refusal is not None:
            problems.append(f"engine.{name}: {value} {refusal}")
    pool_idle_ms = _ms(e.pool_idle, "engine.pool_idle", problems)
    if pool_idle_ms is not None and not _ENGINE["pool_idle_ms"].accepts(pool_idle_ms):
        problems.append(f"engine.pool_idle: {_show(e.pool_idle)} is longer than 49 days")
        pool_idle_ms = None
    return EngineSettings(
        workers=e.workers,
        maxconn=e.maxconn,
        pipe_max=e.pipe_max,
        pipe_size=e.pipe_size,
        buffer_size=e.buffer_size,
        splice_threshold=e.splice_threshold,
        pool_max=e.pool_max,
        pool_idle_ms=pool_idle_ms or _ENGINE["pool_idle_ms"].default,
    )


def _service(
    s: ServiceEntry,
    path: str,
    shared_http: bool,
    shared_https: bool,
    backend_ids: dict[str, tuple[str, str | None]],
    problems: list[str],
    bad: set[str],
) -> spec.Service | None:
    def known(*keys: str) -> bool:
        """None of <keys> stands in for a wrong value: a check across keys can trust them."""
        return not any(f"{path}.{key}" in bad for key in keys)

    before = len(problems)
    passthrough = s.tls is not None and s.tls.passthrough
    mode: spec.Mode = s.mode or ("http" if s.vhosts and not passthrough else "tcp")
    mode_known = known("mode") and (s.mode is not None or known("vhosts"))
    if passthrough:
        if mode != "tcp" and mode_known:
            problems.append(f'{path}.tls.passthrough: a passthrough service is mode = "tcp" (its bytes are not read)')
        if not s.vhosts and known("vhosts"):
            problems.append(f"{path}.tls.passthrough: passthrough needs vhosts (the names a ClientHello is routed by)")
        if s.paths:
            problems.append(f"{path}.paths: a passthrough service is routed by name only (no paths)")
        if not shared_https:
            problems.append(f"{path}.tls.passthrough: passthrough needs the shared https listener ([https] listen)")
    elif s.vhosts and mode != "http" and mode_known:
        problems.append(f'{path}.vhosts: vhosts need mode = "http"')
    if s.paths and not s.vhosts and known("vhosts") and not passthrough:
        problems.append(f"{path}.paths: paths need vhosts")
    if s.http is not None and mode != "http" and mode_known:
        problems.append(f'{path}.http: http options need mode = "http"')
    if s.vhosts and not shared_http:
        problems.append(f"{path}.vhosts: vhosts need a shared http listener ([http] or [https] listen)")
    if not s.listen and not s.vhosts and known("listen", "vhosts") and not passthrough:
        problems.append(f"{path}: neither listen nor vhosts: nothing routes to this service")
    for j, host in enumerate(s.vhosts):
        if not _HOST.match(host) or len(host) > 253:
            problems.append(f"{path}.vhosts[{j}]: {_show(host)} is not a host name")
    for j, prefix in enumerate(s.paths):
        if not prefix.startswith("/") or any(c.isspace() for c in prefix):
            problems.append(f'{path}.paths[{j}]: {_show(prefix)} is not a path (starts with "/", no spaces)')
    _positive(f"{path}.retries", s.retries, problems, zero=True, top=100)
    _positive(f"{path}.maxconn", s.maxconn, problems, zero=True, top=_U32)
    _positive(f"{path}.backend_maxconn", s.backend_maxconn, problems, zero=True, top=_U32)
    timeouts = _timeouts(s.timeouts, f"{path}.timeouts", problems)
    drain_timeout_ms = _ms(s.drain_timeout, f"{path}.drain_timeout", problems, zero=True) or 0
    check = _health(s.health, f"{path}.health", problems, bad) if s.health is not None else None
    http = _http(s.http, f"{path}.http", s.vhosts, problems, bad) if s.http is not None else spec.HttpOptions()
    tls = None
    if s.tls is not None and passthrough:
        if s.tls.certs or s.tls.alpn or s.tls.min_version or s.tls.ciphers or s.tls.ciphersuites or s.tls.verify:
            problems.append(f"{path}.tls: a passthrough service terminates nothing (no certs or handshake settings)")
    elif s.tls is not None and not any(p.startswith(f"{path}.tls") for p in (*bad, *problems)):
        tls = _service_tls(s.tls, f"{path}.tls", mode == "http", problems)

    backends: list[spec.Backend] = []
    own_ids: dict[str, str] = {}
    for j, b in enumerate(s.backends):
        bpath = f"{path}.backends[{j}]"
        if isinstance(b, str):
            b = BackendEntry(address=b)
            apath = bpath
        else:
            apath = f"{bpath}.address"
        address = _address(b.address, apath, problems)
        if not 0 <= b.weight <= _MAX_WEIGHT:
            problems.append(f"{bpath}.weight: {b.weight} is out of range (0..{_MAX_WEIGHT})")
        _positive(f"{bpath}.maxconn", b.maxconn, problems, zero=True, top=_U32)
        # A backend's own identity is <service>/<address>: the same server behind two services is two
        # backends. An explicit id names one backend on purpose, in as many services as give it.
        bid = b.id or f"{s.name}/{address or b.address}"
        if b.id and (not b.id.strip() or any(c.isspace() or c == "," for c in b.id)):
            problems.append(f"{bpath}.id: {_show(b.id)} is not an id (no spaces or commas)")
        elif bid in own_ids:
            problems.append(f"{bpath}: backend id {_show(bid)} is already used by {own_ids[bid]} (set id)")
        elif address is not None and backend_ids.get(bid, ("", address))[1] != address:
            first, at = backend_ids[bid]
            problems.append(f"{bpath}.id: {_show(bid)} is already {first}'s, at {at} (one id, one address)")
        else:
            own_ids[bid] = bpath
            backend_ids.setdefault(bid, (bpath, address))
        if address is not None:
            backends.append(
                spec.Backend(
                    id=bid, address=address, weight=b.weight, state=b.state, name=b.name or b.id or address,
                    check=check, maxconn=b.maxconn,
                )
            )
    if len(problems) > before:
        return None
    return spec.Service(
        name=s.name,
        mode=mode,
        balance=s.balance,
        backends=tuple(backends),
        timeouts=timeouts,
        retries=s.retries,
        maxconn=s.maxconn,
        backend_maxconn=s.backend_maxconn,
        drain_timeout_ms=drain_timeout_ms,
        http=http,
        tls=tls,
    )


def _service_tls(t: ServiceTlsEntry, path: str, http: bool, problems: list[str]) -> spec.ServiceTls | None:
    """A service's own TLS: its certificates are read now (a missing or bad one is an error here, as
    [https] certs), its handshake settings checked."""
    before = len(problems)
    if not t.certs:
        problems.append(f"{path}.certs: a service terminating TLS needs at least one certificate")
    else:
        try:
            certs.from_paths(t.certs, f"{path}.certs")
        except certs.CertError as e:
            problems.extend(e.problems)
    settings = certs.option_problems(t.alpn, t.min_version, t.ciphers, t.ciphersuites, http)
    settings += certs.verify_problems(t.verify, t.ca_file)
    problems.extend(f"{path}.{p}" for p in settings)
    if len(problems) > before:
        return None
    return spec.ServiceTls(
        certs=t.certs, alpn=t.alpn, min_version=t.min_version, ciphers=t.ciphers, ciphersuites=t.ciphersuites,
        verify=t.verify, ca_file=t.ca_file,
    )


def _ms(value: Duration, path: str, problems: list[str], *, zero: bool = False) -> int | None:
    """Every duration of the file, in milliseconds: the data plane keeps them in 32 bits."""
    ms = parse_duration(value)
    if ms is None:
        problems.append(f'{path}: {_show(value)} is not a duration (milliseconds, or "500ms", "3s", "2m", "1h")')
        return None
    if ms == 0 and not zero:
        problems.append(f"{path}: must be above zero")
        return None
    if ms > _U32:
        problems.append(f"{path}: {_show(value)} is longer than 49 days")
        return None
    return ms


def _timeouts(t: TimeoutsEntry, path: str, problems: list[str]) -> spec.Timeouts:
    values: dict[str, int] = {}
    for key in ("connect", "client", "server", "tunnel", "http_request", "http_keepalive", "queue"):
        value = getattr(t, key)
        if value is not None:
            ms = _ms(value, f"{path}.{key}", problems)
            if ms is not None:
                values[f"{key}_ms"] = ms
    return spec.Timeouts(**values)


def _health(h: HealthEntry, path: str, problems: list[str], bad: set[str]) -> spec.HealthCheck:
    interval = _ms(h.interval, f"{path}.interval", problems) or 2000
    timeout = _ms(h.timeout, f"{path}.timeout", problems) or 1000
    _positive(f"{path}.port", h.port, problems, zero=True, top=65535)
    _positive(f"{path}.rise", h.rise, problems, top=100)
    _positive(f"{path}.fall", h.fall, problems, top=100)
    if not h.path.startswith("/"):
        problems.append(f'{path}.path: {_show(h.path)} does not start with "/"')
    if h.kind == "tcp" and h.path != "/" and f"{path}.kind" not in bad:
        problems.append(f'{path}.path: a path needs kind = "http"')
    low, high = 200, 399
    if len(h.expect_status) != 2:
        problems.append(f"{path}.expect_status: expected [low, high]")
    else:
        low, high = h.expect_status
        if not 100 <= low <= high <= 599:
            problems.append(f"{path}.expect_status: [{low}, {high}] is not a status range within 100..599")
    return spec.HealthCheck(
        kind=h.kind,
        path=h.path,
        port=h.port,
        interval_ms=interval,
        timeout_ms=timeout,
        rise=h.rise,
        fall=h.fall,
        expect_status=(low, high),
        require_pass=h.require_pass,
    )


_VISIBLE = re.compile(r"^[\x21-\x7e]*$")  # visible ASCII: nothing that ends a field, a line or a target
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_PORT = re.compile(rf"^{_LABEL}(\.{_LABEL})*(:[0-9]{{1,5}})?$")
_REDIRECT = re.compile(r"^(/|https?://[^/?#]+(/|$))", re.IGNORECASE)
_REDIRECT_CODES = (301, 302, 303, 307, 308)


def _path_prefix(value: str, path: str, problems: list[str]) -> None:
    if not value:
        return
    if not value.startswith("/") or not _VISIBLE.match(value) or "?" in value or "#" in value or len(value) > 1024:
        problems.append(f'{path}: {_show(value)} is not a path prefix (starts with "/"; no spaces, "?" or "#")')
    elif not value.strip("/"):
        problems.append(f'{path}: {_show(value)} is the root: there is no prefix to take off or put on')


def _rewrites(h: HttpEntry, path: str, vhosts: tuple[str, ...], problems: list[str], bad: set[str]) -> dict[str, Any]:
    """The HttpOptions fields of the rewrites (marathon-lb's PROXYPASS_PATH, REVPROXY_PATH, REDIR)."""
    _path_prefix(h.strip_prefix, f"{path}.strip_prefix", problems)
    _path_prefix(h.location_prefix, f"{path}.location_prefix", problems)
    if h.set_host and (not _HOST_PORT.match(h.set_host) or len(h.set_host) > 255):
        problems.append(f"{path}.set_host: {_show(h.set_host)} is not a host name (with an optional :port)")
    target = h.redirect_root
    if target and (not _REDIRECT.match(target) or not _VISIBLE.match(target) or len(target) > 2048):
        problems.append(
            f'{path}.redirect_root: {_show(h.redirect_root)} is not a path ("/...") or an http(s) URL without spaces'
        )
    code = 301
    if h.redirect_root_code is not None:
        if not h.redirect_root:
            if f"{path}.redirect_root" not in bad:
                problems.append(f"{path}.redirect_root_code: needs redirect_root")
        elif h.redirect_root_code not in _REDIRECT_CODES:
            problems.append(f"{path}.redirect_root_code: {h.redirect_root_code} is not one of 301, 302, 303, 307, 308")
        else:
            code = h.redirect_root_code
    hosts = tuple(v.lower() for v in vhosts if not v.startswith("*.")) if h.location_prefix or h.redirect_root else ()
    return {
        "strip_prefix": h.strip_prefix,
        "set_host": h.set_host,
        "location_prefix": h.location_prefix,
        "redirect_root": h.redirect_root,
        "redirect_root_code": code,
        "hosts": hosts,
    }


def _http(h: HttpEntry, path: str, vhosts: tuple[str, ...], problems: list[str], bad: set[str]) -> spec.HttpOptions:
    users: list[tuple[str, str]] = []
    realm = ""
    if h.auth is not None:
        realm = h.auth.realm
        if not h.auth.users:
            problems.append(f"{path}.auth.users: empty: nobody could log in")
        for k, text in enumerate(h.auth.users):
            user, sep, hashed = text.partition(":")
            if not sep or not user or not hashed:
                problems.append(f'{path}.auth.users[{k}]: expected "user:crypt-hash"')
            else:
                users.append((user, hashed))
        if not realm or '"' in realm:
            problems.append(f"{path}.auth.realm: {_show(realm)} is not a realm (non-empty, no quotes)")
    cidrs: list[str] = []
    for k, cidr in enumerate(h.allow):
        try:
            cidrs.append(str(ipaddress.ip_network(cidr, strict=False)))
        except ValueError:
            problems.append(f"{path}.allow[{k}]: {_show(cidr)} is not an address or CIDR")
    if not re.match(r"^[A-Za-z0-9_-]+$", h.sticky_cookie):
        problems.append(f"{path}.sticky_cookie: {_show(h.sticky_cookie)} is not a cookie name")
    return spec.HttpOptions(
        sticky=h.sticky,
        sticky_cookie=h.sticky_cookie,
        hsts=h.hsts,
        redirect_to_https=h.redirect_to_https,
        auth_realm=realm,
        auth_users=tuple(users),
        allow_cidrs=tuple(cidrs),
        forwarded_headers=h.forwarded_headers,
        **_rewrites(h, path, vhosts, problems, bad),
    )
