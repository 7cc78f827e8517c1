"""The control loop: the one place where providers, routing tables and the data plane meet.

Providers (the static file, Marathon) each hand over whole ``spec.RouteTable``s. The ``Controller``
merges them (a name or an address claimed twice: the later provider's part is skipped with a clear
error), applies the operator's manual overrides (backend state and weight, set through the admin
API and re-applied on every publish), and publishes the result on the ``DataPlane`` when it differs
from the table last published. A table the data plane refuses is logged and the last good table keeps
serving; a new listener that cannot bind is left out of its table rather than holding the rest back.
Backend health comes from the providers and from the active health checks (``fastlb.health``), which
follow every published table; neither needs a new table.

``serve`` runs it all on one uvloop loop: the providers, the admin API, SIGHUP (re-read the static
file, resync Marathon), SIGTERM/SIGINT (stop accepting, drain up to a deadline, close what is left,
exit 0).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import itertools
import logging
import operator
import os
import signal
import socket
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from fastlb import accesslog, certs, config, limits, logs, spec

OnChange = Callable[[spec.RouteTable], None]
# (backend id, state): providers pass "ready" | "drain" | "maint" | "up" | "down", the health checker
# passes its verdict as a bool (True: up).
OnBackendState = Callable[[str, str | bool], None]

ADMIN_STATES = ("ready", "drain", "maint")
MAX_WEIGHT = 256
TRIM_INTERVAL_S = 2.0  # how often freed data-plane memory is given back (DataPlane.trim)


class DataPlaneLike(Protocol):
    """What the controller uses of ``fastlb._core.DataPlane`` (its contract: ``_core.pyi``)."""

    @property
    def generation(self) -> int: ...
    def start(self) -> None: ...
    def publish(self, table: spec.RouteTable) -> int: ...
    def set_backend_state(self, backend_id: str, state: str) -> bool: ...
    def set_backend_health(self, backend_id: str, up: bool) -> bool: ...
    def set_backend_weight(self, backend_id: str, weight: int) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    def stop_accepting(self) -> None: ...
    def active_connections(self) -> int: ...
    def close_all(self) -> None: ...
    def stop(self) -> None: ...
    def listener_fds(self) -> dict[str, list[int]]: ...
    def trim(self, min_free: int = ...) -> bool: ...  # optional: a stand-in without it is never asked
    def set_certificates(self, certs: list[tuple[bytes, tuple[str, ...]]], handshake_ms: int = ...) -> None: ...


class Provider(Protocol):
    """A source of routes. ``run`` calls <on_change> with every new whole table and <on_backend_state>
    with (backend id, "ready" | "drain" | "maint" | "up" | "down") for changes that need no new table;
    it returns only when cancelled. ``resync`` re-reads the source now and says whether that succeeded;
    a new table it brings goes to <on_change> as usual. ``table`` is the last table handed over. A
    provider whose class sets ``ready_at_start = True`` has its ``table()`` published before ``run``
    starts; the others serve nothing until their first ``on_change`` (Marathon: after its first full
    resync)."""

    async def run(self, on_change: OnChange, on_backend_state: OnBackendState) -> None: ...
    async def resync(self) -> bool: ...
    def table(self) -> spec.RouteTable | None: ...
    def app_errors(self) -> Any: ...
    def status(self) -> Any: ...


# -- the static provider -------------------------------------------------------------------------


class StaticProvider:
    """The static file (or the embedded default when <path> is None). The file is read once here, so
    that a bad file stops ``fastlb run`` before anything listens; ``resync`` (SIGHUP) re-reads it and
    keeps the last good table when the new one is wrong."""

    ready_at_start = True  # its table is published before anything starts (a bind error is fatal)

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.loaded = config.load(path) if path is not None else config.load_default()
        self.reloads = 0
        self.rejected = 0
        self.last_problems: list[str] = []
        self._on_change: OnChange | None = None

    def table(self) -> spec.RouteTable:
        return self.loaded.table

    def app_errors(self) -> list[str]:
        return []

    def status(self) -> dict[str, Any]:
        return {
            "file": self.path or "(embedded default)",
            "services": len(self.loaded.table.services),
            "reloads": self.reloads,
            "rejected": self.rejected,
            "last_problems": self.last_problems,
        }

    async def run(self, on_change: OnChange, on_backend_state: OnBackendState) -> None:
        self._on_change = on_change
        on_change(self.loaded.table)
        await asyncio.Event().wait()

    async def resync(self) -> bool:
        return self.reload()

    def reload(self) -> bool:
        """Re-reads the file; True when it was good (and handed on if it changed)."""
        if self.path is None:
            return True
        try:
            loaded = config.load(self.path)
        except config.ConfigError as e:
            self.rejected += 1
            self.last_problems = e.problems
            for problem in e.problems:
                logs.event(logging.ERROR, logs.CONFIG_REJECTED, file=self.path, problem=problem)
            logs.event(logging.WARNING, logs.CONFIG_REJECTED, file=self.path, keeping="last good table")
            return False
        self.reloads += 1
        self.last_problems = []
        if (
            loaded.engine != self.loaded.engine
            or loaded.admin_listen != self.loaded.admin_listen
            or loaded.access_log != self.loaded.access_log
        ):
            logs.event(
                logging.WARNING, logs.CONFIG_RELOAD, file=self.path,
                note="[engine], [admin] and [log] apply at start only",
            )
        self.loaded = config.StaticConfig(
            table=loaded.table, engine=self.loaded.engine, admin_listen=self.loaded.admin_listen,
            access_log=self.loaded.access_log, certs=loaded.certs, handshake_timeout_ms=loaded.handshake_timeout_ms,
        )
        logs.event(logging.INFO, logs.CONFIG_RELOAD, file=self.path, services=len(loaded.table.services))
        if self._on_change is not None:
            self._on_change(loaded.table)
        return True


# -- the Marathon provider (fastlb.marathon.provider), built lazily --------------------------------


class MarathonArgs(msgspec.Struct, frozen=True):
    """The Marathon options of ``fastlb run`` and ``fastlb routes``, marathon-lb's names."""

    urls: tuple[str, ...]
    groups: tuple[str, ...] = ("external",)
    sse: bool = True
    poll_interval: float = 60.0
    health_check: bool = False
    strict_mode: bool = False
    auth_credentials: str | None = None  # "user:pass"
    auth_credential_file: str | None = None  # a file holding "user:pass"
    dcos_auth_credentials: str | None = None  # DC/OS service account JSON: uid, private_key, login_endpoint
    ca_cert: str | None = None
    min_serv_port_ip_per_task: int = 10050
    max_serv_port_ip_per_task: int = 10100
    bind_addr: str = "0.0.0.0"
    http_port: int = 80
    https_port: int = 443
    appid_port: int = 9091
    dont_bind_http_https: bool = False
    max_backoff: float = 300.0


def _accepted(target: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of <values> that <target> (a msgspec Struct or a callable) takes by keyword."""
    if isinstance(target, type) and issubclass(target, msgspec.Struct):
        names = {f.name for f in msgspec.structs.fields(target)}
    else:
        params = inspect.signature(target).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return values
        names = set(params)
    return {k: v for k, v in values.items() if k in names}


def marathon_provider(args: MarathonArgs) -> Provider:
    """A ``fastlb.marathon.provider.MarathonProvider`` for <args>. Raises ImportError when this build has
    no Marathon provider, ValueError (the message says why) for credentials that cannot be used."""
    from fastlb.marathon.auth import BasicAuth, ServiceAccountAuth  # noqa: PLC0415 (only with --marathon)
    from fastlb.marathon.provider import MarathonProvider  # noqa: PLC0415
    from fastlb.marathon.state import MarathonOptions  # noqa: PLC0415

    values = msgspec.structs.asdict(args)
    credentials = values.pop("auth_credentials")
    credential_file = values.pop("auth_credential_file")
    service_account = values.pop("dcos_auth_credentials")
    if service_account is not None:
        values["auth"] = ServiceAccountAuth.parse(service_account)
    elif credential_file is not None:
        values["auth"] = BasicAuth.from_file(credential_file)
    elif credentials is not None:
        values["auth"] = BasicAuth.parse(credentials)
    options = MarathonOptions(**_accepted(MarathonOptions, values))
    kwargs = _accepted(MarathonProvider, {k: v for k, v in values.items() if k != "urls"})
    kwargs.pop("options", None)
    return MarathonProvider(list(args.urls), options, **kwargs)


# -- pure: merging tables and applying overrides --------------------------------------------------


def merge_tables(parts: list[tuple[str, spec.RouteTable]]) -> tuple[spec.RouteTable, list[str]]:
    """One table from the providers' tables, in provider order. A service name, backend id or
    listening address that an earlier provider already claims is skipped from the later one, with one
    line each saying what and why. Shared listeners (vhost, appid) of the same kind on the same address
    are one listener whose routes come from every provider."""
    errors: list[str] = []
    services: list[spec.Service] = []
    listeners: list[spec.Listener] = []
    routes: list[spec.HttpRoute] = []
    service_owner: dict[str, str] = {}
    backend_owner: dict[str, str] = {}
    listen_owner: dict[tuple[int, bytes, int], tuple[str, spec.Listener]] = {}
    # Port -> the addresses taken on it, in the order they were taken: a wildcard address clashes
    # with every address of its family on the same port, and the first one taken is named.
    by_port: dict[int, list[tuple[Any, tuple[str, spec.Listener]]]] = {}
    maxconn = 0
    for provider, table in parts:
        kept: set[str] = set()
        for s in table.services:
            if s.name in service_owner:
                errors.append(f"{provider}: service {s.name!r} skipped: the name is already {service_owner[s.name]}'s")
                continue
            owned_by = f"{provider} service {s.name!r}"
            claimed = dict.fromkeys([b.id for b in s.backends], owned_by)
            if len(claimed) == len(s.backends) and backend_owner.keys().isdisjoint(claimed):
                backend_owner.update(claimed)  # the usual case, checked and claimed in bulk
            else:
                # One provider may give a backend's id in several services on purpose (the static
                # file's explicit id: one server, one state); another provider's is a clash.
                backends = []
                own: set[str] = set()
                for b in s.backends:
                    owner = backend_owner.get(b.id)
                    if owner is not None and not (owner.startswith(f"{provider} service ") and b.id not in own):
                        errors.append(
                            f"{provider}: backend {b.id!r} of {s.name!r} skipped: the id is already {owner}'s"
                        )
                        continue
                    backend_owner.setdefault(b.id, owned_by)
                    own.add(b.id)
                    backends.append(b)
                if len(backends) != len(s.backends):
                    s = msgspec.structs.replace(s, backends=tuple(backends))
            service_owner[s.name] = provider
            kept.add(s.name)
            services.append(s)
        for listener in table.listeners:
            if listener.kind == "service" and listener.service not in kept:
                continue
            parsed = _parse_address(listener.address)
            if parsed is None:
                errors.append(f"{provider}: listener {listener.address!r} skipped: not ip:port")
                continue
            ip, port, key = parsed
            clash = listen_owner.get(key)
            if clash is None and port in by_port:
                clash = next(
                    (
                        v
                        for oip, v in by_port[port]
                        if oip.version == ip.version and (oip.is_unspecified or ip.is_unspecified)
                    ),
                    None,
                )
            if clash is not None:
                owner, other = clash
                shared = (
                    listener.kind != "service" and other.kind == listener.kind and other.address == listener.address
                )
                if not shared:
                    errors.append(
                        f"{provider}: listener {listener.address} ({_listener_what(listener)}) skipped: "
                        f"{other.address} is already {owner}'s ({_listener_what(other)})"
                    )
                continue
            listen_owner[key] = (provider, listener)
            by_port.setdefault(port, []).append((ip, (provider, listener)))
            listeners.append(listener)
        routes.extend(r for r in table.http_routes if r.service in kept)
        if table.maxconn and not maxconn:
            maxconn = table.maxconn
    merged = spec.RouteTable(
        services=tuple(services), listeners=tuple(listeners), http_routes=tuple(routes), maxconn=maxconn
    )
    return merged, errors


@functools.lru_cache(maxsize=1 << 16)
def _parse_address(address: str) -> tuple[Any, int, tuple[int, bytes, int]] | None:
    """``config.parse_address`` and a key that names the same socket address (an ipaddress
    object hashes in Python, the key in C), remembered: every merge sees the same addresses."""
    parsed = config.parse_address(address)
    if parsed is None:
        return None
    ip, port = parsed
    return ip, port, (ip.version, ip.packed, port)


_Key = tuple[int, bytes, int]
# A provider's services, listeners and routes as last merged: the tuples, and each as id() -> item.
_Items = tuple[tuple[tuple[Any, ...], ...], tuple[dict[int, Any], ...]]
_EMPTY: _Items = (((), (), ()), ({}, {}, {}))


def _by_identity(items: tuple[Any, ...]) -> dict[int, Any] | None:
    """id() -> item, or None when an item is there twice (its claims cannot be told apart)."""
    out = dict(zip(map(id, items), items, strict=True))
    return out if len(out) == len(items) else None


def _store(counts: dict[Any, int], key: Any, n: int) -> None:
    if n:
        counts[key] = n
    else:
        del counts[key]


class TableMerger:
    """``merge_tables`` kept up to date item by item, so that the Python work of a merge grows with
    what changed since the last one, not with the tables.

    It counts every claim the tables make (service names, backend ids, listening sockets and the
    ports they take, the services each provider's listeners and routes name), adding the claims of
    the items that came and taking back those of the items that went. Items are told apart by
    identity: a provider that rebuilds only what changed hands the rest over as the same objects, and
    finding them costs a pass in C over each changed tuple. While no claim clashes, ``merge_tables``
    keeps every item (a socket that listeners of several providers share goes to the first), and the
    merge is the providers' tables end to end; while one does, the merge is ``merge_tables`` itself,
    errors and all. Either way the result is ``merge_tables(parts)``."""

    def __init__(self) -> None:
        self._reset()
        self.touched = 0  # items whose claims the last merge counted: the work done, for tests

    def _reset(self) -> None:
        self._counted = False  # the counts are those of the last merged table
        self._items: dict[str, _Items] = {}
        self._names: dict[str, int] = {}  # service name -> services so named, every provider
        self._backends: dict[str, int] = {}  # backend id -> backends with it, every service
        self._checked = 0  # backends with an active health check
        self._own: dict[tuple[str, str], int] = {}  # (provider, service name) -> its services so named
        self._refs: dict[tuple[str, str], int] = {}  # (provider, service name) -> listeners, routes naming it
        self._claims: dict[_Key, list[tuple[str, spec.Listener]]] = {}  # socket -> (provider, listener)
        self._ports: dict[tuple[int, int], dict[_Key, int]] = {}  # (port, IP version) -> sockets on it
        self._unparsed = 0  # listeners whose address is not ip:port
        self._bad: set[tuple[Any, ...]] = set()  # the claims that clash now
        self._shared: set[_Key] = set()  # sockets that several listeners claim without a clash

    def merge(self, parts: list[tuple[str, spec.RouteTable]]) -> tuple[spec.RouteTable, list[str]]:
        """``merge_tables(parts)``."""
        self.touched = 0
        touched: set[tuple[Any, ...]] = set()
        names = [name for name, _ in parts]
        if len(set(names)) != len(names) or not self._update(dict(parts), touched):
            self._reset()  # counted again from nothing next time
            return merge_tables(parts)
        self._counted = True
        for claim in touched:
            self._judge(claim)
        if self._bad:
            return merge_tables(parts)
        tables = [table for _, table in parts]
        if len(tables) == 1 and not self._shared:
            services, listeners, routes = tables[0].services, tables[0].listeners, tables[0].http_routes
        else:
            services = tuple(itertools.chain.from_iterable(t.services for t in tables))
            listeners = self._listeners(parts)
            routes = tuple(itertools.chain.from_iterable(t.http_routes for t in tables))
        maxconn = next((t.maxconn for t in tables if t.maxconn), 0)
        merged = spec.RouteTable(services=services, listeners=listeners, http_routes=routes, maxconn=maxconn)
        return merged, []

    def backend_ids(self) -> Collection[str] | None:
        """The backend ids of the last merged table; None when a claim clashes (not counted then)."""
        return None if self._bad or not self._counted else self._backends.keys()

    def health_checked(self) -> bool | None:
        """Whether a backend of the last merged table has an active check; None when a claim clashes."""
        return None if self._bad or not self._counted else self._checked > 0

    # -- the counts ----------------------------------------------------------------------------

    def _update(self, tables: dict[str, spec.RouteTable], touched: set[tuple[Any, ...]]) -> bool:
        """Counts the claims of what changed; False when a table holds an item twice."""
        counters = (self._count_services, self._count_listeners, self._count_routes)
        for provider in self._items.keys() | tables.keys():
            old_tuples, old_maps = self._items.get(provider, _EMPTY)
            table = tables.get(provider)
            tuples = (table.services, table.listeners, table.http_routes) if table is not None else _EMPTY[0]
            maps: list[dict[int, Any]] = []
            for count, before, items, was in zip(counters, old_tuples, tuples, old_maps, strict=True):
                if items is before:  # the provider handed the same tuple over again
                    maps.append(was)
                    continue
                now = _by_identity(items)
                if now is None:
                    return False
                if was:
                    count(provider, [was[key] for key in was.keys() - now.keys()], -1, touched)
                    count(provider, [now[key] for key in now.keys() - was.keys()], 1, touched)
                else:
                    count(provider, items, 1, touched)
                maps.append(now)
            if table is None:
                del self._items[provider]
            else:
                self._items[provider] = (tuples, tuple(maps))
        return True

    # Each counter keeps self._bad for the claims it counts: a name or backend id is bad from its
    # second claimant on, a (provider, service name) while named by listeners or routes but not by
    # a service. Sockets and ports are judged once all is counted (``_judge``).

    def _count_services(self, provider: str, items: Iterable[Any], step: int, touched: set[tuple[Any, ...]]) -> None:
        names, own, backends, bad = self._names, self._own, self._backends, self._bad
        for s in items:
            self.touched += 1
            name = s.name
            n = names.get(name, 0) + step
            _store(names, name, n)
            if step > 0 and n == 2:
                bad.add(("name", name))
            elif step < 0 and n == 1:
                bad.discard(("name", name))
            key = (provider, name)
            n = own.get(key, 0) + step
            _store(own, key, n)
            if step > 0 and n == 1:
                bad.discard(("ref", *key))
            elif step < 0 and n == 0 and key in self._refs:
                bad.add(("ref", *key))
            for b in s.backends:
                bid = b.id
                n = backends.get(bid, 0) + step
                _store(backends, bid, n)
                if step > 0 and n == 2:
                    bad.add(("backend", bid))
                elif step < 0 and n == 1:
                    bad.discard(("backend", bid))
                if b.check is not None:
                    self._checked += step

    def _count_routes(self, provider: str, items: Iterable[Any], step: int, touched: set[tuple[Any, ...]]) -> None:
        for r in items:
            self.touched += 1
            self._count_ref((provider, r.service), step)

    def _count_listeners(self, provider: str, items: Iterable[Any], step: int, touched: set[tuple[Any, ...]]) -> None:
        claimed, ports = self._claims, self._ports
        for item in items:
            self.touched += 1
            if item.kind == "service":
                self._count_ref((provider, item.service), step)
            parsed = _parse_address(item.address)
            if parsed is None:
                self._unparsed += step
                (self._bad.add if self._unparsed else self._bad.discard)(("unparsed",))
                continue
            key = parsed[2]  # (IP version, packed address, port)
            claims = claimed.setdefault(key, [])
            if step > 0:
                claims.append((provider, item))
            else:
                # Providers may hand over the same object; one provider holds an object once.
                claims[:] = [c for c in claims if c[1] is not item or c[0] != provider]
                if not claims:
                    del claimed[key]
            on_port = ports.setdefault((key[2], key[0]), {})
            _store(on_port, key, on_port.get(key, 0) + step)
            touched.add(("socket", key))
            touched.add(("port", key[2], key[0]))

    def _count_ref(self, key: tuple[str, str], step: int) -> None:
        n = self._refs.get(key, 0) + step
        _store(self._refs, key, n)
        if step > 0 and n == 1 and key not in self._own:
            self._bad.add(("ref", *key))
        elif step < 0 and n == 0:
            self._bad.discard(("ref", *key))

    def _judge(self, claim: tuple[Any, ...]) -> None:
        """Whether a socket or port claim clashes now, that is whether ``merge_tables`` would skip a
        listener for it."""
        if claim[0] == "socket":  # several listeners on one socket: only the same vhost or appid one is shared
            claims = self._claims.get(claim[1], [])
            first = claims[0][1] if claims else None
            bad = (
                first is not None
                and len(claims) > 1
                and (
                    first.kind == "service"
                    or any(c.kind != first.kind or c.address != first.address for _, c in claims)
                )
            )
            if len(claims) > 1 and not bad:
                self._shared.add(claim[1])
            else:
                self._shared.discard(claim[1])
        else:  # a wildcard address takes its port from every other address of its IP version
            ports = self._ports.get((claim[1], claim[2]), {})
            bad = len(ports) > 1 and any(not any(packed) for _, packed, _ in ports)
            if not ports:
                self._ports.pop((claim[1], claim[2]), None)
        if bad:
            self._bad.add(claim)
        else:
            self._bad.discard(claim)

    def _listeners(self, parts: list[tuple[str, spec.RouteTable]]) -> tuple[spec.Listener, ...]:
        """Every provider's listeners, end to end, less the later claimants of a shared socket."""
        if not self._shared:
            return tuple(itertools.chain.from_iterable(t.listeners for _, t in parts))
        order = {name: n for n, (name, _) in enumerate(parts)}
        lists = {name: list(t.listeners) for name, t in parts}
        for key in self._shared:
            claims = self._claims[key]
            first = min(order[p] for p, _ in claims)
            firsts = [c for c in claims if order[c[0]] == first]
            if len(firsts) > 1:  # one provider claims it twice: the first in its table keeps it
                provider = firsts[0][0]
                ids = {id(c[1]) for c in firsts}
                kept = next(x for x in lists[provider] if id(x) in ids)
                lists[provider] = [x for x in lists[provider] if x is kept or id(x) not in ids]
            for provider, listener in claims:
                if order[provider] != first:
                    # A listener equal to this one claims the same socket, and goes too: which of
                    # them is deleted first does not change the list.
                    del lists[provider][operator.indexOf(lists[provider], listener)]
        return tuple(itertools.chain.from_iterable(lists[name] for name, _ in parts))


def probe_bind(address: str, own: Iterable[str] = ()) -> str | None:
    """Why <address> cannot be listened on, or None when it can. As the data plane checks it: a bind
    without SO_REUSEPORT fails on any socket listening there, another process's SO_REUSEPORT one
    included; beside <own> (addresses this process listens on) that cannot tell whose a socket is,
    and the bind is tried as the listeners bind (SO_REUSEPORT)."""
    parsed = config.parse_address(address)
    if parsed is None:
        return "not ip:port"
    ip, port = parsed
    beside = False
    for other in own:
        o = config.parse_address(other)
        beside = beside or (
            o is not None and o[0].version == ip.version and o[1] == port
            and (o[0] == ip or o[0].is_unspecified or ip.is_unspecified)
        )
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if beside:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if ip.version == 6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((str(ip), port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def _listener_what(listener: spec.Listener) -> str:
    return f"service {listener.service!r}" if listener.kind == "service" else f"{listener.kind} listener"


class Override(msgspec.Struct, frozen=True):
    """What an operator set on a backend by hand; None: not set."""

    state: str | None = None
    weight: int | None = None


def apply_overrides(table: spec.RouteTable, overrides: dict[str, Override]) -> spec.RouteTable:
    if not overrides:
        return table
    services = []
    for s in table.services:
        backends = []
        for b in s.backends:
            o = overrides.get(b.id)
            if o is not None:
                changes: dict[str, Any] = {}
                if o.state is not None:
                    changes["state"] = o.state
                if o.weight is not None:
                    changes["weight"] = o.weight
                b = msgspec.structs.replace(b, **changes)
            backends.append(b)
        services.append(msgspec.structs.replace(s, backends=tuple(backends)))
    return msgspec.structs.replace(table, services=tuple(services))


def backend_ids(table: spec.RouteTable) -> set[str]:
    return {b.id for s in table.services for b in s.backends}


# -- the controller ------------------------------------------------------------------------------


class SwapStats(msgspec.Struct):
    count: int = 0
    failed: int = 0
    last_s: float = 0.0
    max_s: float = 0.0
    sum_s: float = 0.0
    last_at: float = 0.0  # time.time() of the last swap
    event_to_swap_s: float | None = None  # Marathon: event received -> table serving


class Controller:
    """Owns the data plane's table: every publish goes through here, from the control loop only."""

    def __init__(
        self,
        dataplane: DataPlaneLike,
        providers: dict[str, Provider],
        *,
        drain_timeout: float = 30.0,
        access_log: accesslog.AccessLog | None = None,
        certificates: Sequence[certs.Certificate] = (),
    ) -> None:
        self.dataplane = dataplane
        self.cert_sources = tuple(certificates)  # --ssl-certs and the environment, read at start
        self.certs_served: tuple[certs.Certificate, ...] = ()  # what the TLS listeners serve now
        self._self_signed: certs.Certificate | None = None
        self._handshake_ms = 0
        self.access_log = access_log  # the file the data plane logs requests to; reopened by resync()
        self.providers = providers  # name -> provider, in merge order (earlier wins a clash)
        self.drain_timeout = drain_timeout
        self.tables: dict[str, spec.RouteTable] = {}
        self.changed_at: dict[str, float] = {}  # provider -> time.monotonic() of its last table
        self._app_errors: dict[str, dict[str, Any]] = {}  # provider -> app -> error, as last logged
        self._reconnects: dict[str, int] = {}
        self.overrides: dict[str, Override] = {}
        self.health: dict[str, bool] = {}  # backend id -> up, as providers and health checks last said
        self.serving: spec.RouteTable | None = None
        self.desired_table: spec.RouteTable | None = None  # last published (listeners left out or not)
        self._merger = TableMerger()
        self._checks_followed = False  # the health checker was last given a table with checks
        self.listen_errors: list[str] = []  # listeners of the desired table left out: cannot bind
        self.strict_binds = False  # start(): the first table is all or nothing
        self.conflicts: list[str] = []
        self.swap = SwapStats()
        self.started_at = time.time()
        self.health_checker: Any = None  # fastlb.health.HealthChecker, made by start()
        self.draining = False
        self._publish_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    # -- tables in ------------------------------------------------------------------------------

    def on_change(self, provider: str) -> OnChange:
        def changed(table: spec.RouteTable) -> None:
            self.tables[provider] = table
            self.changed_at[provider] = time.monotonic()
            self._log_news(provider)
            self._schedule_publish()

        return changed

    def _log_news(self, provider: str) -> None:
        """One line per app a provider newly leaves out (or takes back), and per stream reconnect."""
        p = self.providers.get(provider)
        if p is None:
            return
        errors = p.app_errors()
        errors = dict(errors) if isinstance(errors, dict) else {str(e): "" for e in errors or ()}
        before = self._app_errors.get(provider, {})
        for app, why in errors.items():
            if before.get(app) != why:
                logs.event(logging.WARNING, logs.APP_DISABLED, provider=provider, app=app, error=why)
        for app in before.keys() - errors.keys():
            logs.event(logging.INFO, logs.APP_ENABLED, provider=provider, app=app)
        self._app_errors[provider] = errors
        reconnects = getattr(p.status(), "reconnects", None)
        if isinstance(reconnects, int) and reconnects > self._reconnects.get(provider, 0):
            logs.event(logging.WARNING, logs.MARATHON_RECONNECT, provider=provider, reconnects=reconnects)
            self._reconnects[provider] = reconnects

    def on_backend_state(self, provider: str) -> OnBackendState:
        def changed(backend_id: str, state: str | bool) -> None:
            if isinstance(state, bool):  # the health checker says up (True) or down (False)
                state = "up" if state else "down"
            if state in ("up", "down"):
                up = state == "up"
                # The checker also says "up" for a backend it sees up that the data plane's passive
                # health took down: forward that even though this map already says up.
                if self.health.get(backend_id) != up or (up and provider == "health"):
                    self.health[backend_id] = up
                    self.dataplane.set_backend_health(backend_id, up)
                    logs.event(
                        logging.INFO, logs.BACKEND_UP if up else logs.BACKEND_DOWN, backend=backend_id, by=provider
                    )
            elif state in ADMIN_STATES:
                o = self.overrides.get(backend_id)
                if o is not None and o.state is not None:
                    logs.event(
                        logging.INFO, logs.BACKEND_STATE, backend=backend_id, state=state, by=provider,
                        ignored=f"manual override {o.state}",
                    )
                    return
                self.dataplane.set_backend_state(backend_id, state)
                logs.event(logging.INFO, logs.BACKEND_STATE, backend=backend_id, state=state, by=provider)
            else:
                logs.event(
                    logging.WARNING, logs.BACKEND_STATE, backend=backend_id, state=state, ignored="unknown state"
                )

        return changed

    def _schedule_publish(self) -> None:
        # A burst of changes within one loop iteration becomes one swap.
        if not self._publish_scheduled:
            self._publish_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_publish)

    def _scheduled_publish(self) -> None:
        self._publish_scheduled = False
        try:
            self.publish()
        except (OSError, ValueError):
            pass  # logged by publish(); nothing serves yet, the next change tries again
        except Exception:  # the control loop must outlive one bad table
            logging.getLogger("fastlb").exception("publish failed")

    def desired(self) -> tuple[spec.RouteTable, list[str]]:
        parts = [(name, self.tables[name]) for name in self.providers if name in self.tables]
        merged, conflicts = self._merger.merge(parts)
        return apply_overrides(merged, self.overrides), conflicts

    def publish(self, *, retry_skipped: bool = False) -> bool:
        """Publishes the desired table if it differs from the last one published. False when nothing
        changed or the data plane refused it (the last good table keeps serving).

        A listener that cannot bind does not hold the rest back: once the first table serves, new
        listeners of a refused table are tried one by one, those that cannot bind are left out (each
        with a line in ``listen_errors``) and the rest is published; <retry_skipped> (a resync) tries
        the left-out ones again. The first table is all or nothing: OSError with nothing serving yet."""
        desired, conflicts = self.desired()
        if conflicts != self.conflicts:
            for line in conflicts:
                if line not in self.conflicts:
                    logs.event(logging.ERROR, logs.ROUTE_CONFLICT, problem=line)
        self.conflicts = conflicts
        new_certs = self._set_certificates(desired)
        # Tables are values: equal tables encode alike, and those that share their unchanged services
        # compare in a pass over pointers.
        if (
            self.serving is not None and desired == self.desired_table and not new_certs
            and not (retry_skipped and self.listen_errors)
        ):
            return False
        table = desired
        t0 = time.perf_counter()
        try:
            generation = self.dataplane.publish(table)
            listen_errors: list[str] = []
        except (OSError, ValueError) as e:
            self.swap.failed += 1
            logs.event(logging.ERROR, logs.SWAP_FAILED, error=e, keeping=f"generation {self.dataplane.generation}")
            listen_errors = []
            if isinstance(e, OSError) and not (self.serving is None and self.strict_binds):
                table, listen_errors = self._without_unbindable(desired)
            if not listen_errors:
                if self.serving is None:
                    raise
                return False
            for line in listen_errors:
                logs.event(logging.ERROR, logs.LISTENER_SKIPPED, problem=line)
            if table == self.serving:
                self.desired_table, self.listen_errors = desired, listen_errors
                return False  # still the same listeners left out: nothing new to serve
            t0 = time.perf_counter()
            try:
                generation = self.dataplane.publish(table)
            except (OSError, ValueError) as e2:
                self.swap.failed += 1
                logs.event(logging.ERROR, logs.SWAP_FAILED, error=e2, keeping=f"generation {self.dataplane.generation}")
                return False
        elapsed = time.perf_counter() - t0
        self.serving, self.desired_table = table, desired
        self.listen_errors = listen_errors
        self.swap.count += 1
        self.swap.last_s = elapsed
        self.swap.max_s = max(self.swap.max_s, elapsed)
        self.swap.sum_s += elapsed
        self.swap.last_at = time.time()
        self.swap.event_to_swap_s = self._event_to_swap()
        # State set by hand outlives tables: say it again, whatever the data plane does with a new table.
        if self.overrides or self.health:
            present = self._merger.backend_ids()
            if present is None:
                present = backend_ids(table)
            for bid in [b for b in self.overrides if b not in present]:
                del self.overrides[bid]
            for bid in [b for b in self.health if b not in present]:
                del self.health[bid]
        for bid, o in self.overrides.items():
            if o.state is not None:
                self.dataplane.set_backend_state(bid, o.state)
            if o.weight is not None:
                self.dataplane.set_backend_weight(bid, o.weight)
        if self.health_checker is not None:
            # Active checks follow the table now serving; with none in it nor in the one before,
            # there is nothing to follow.
            checked = self._merger.health_checked()
            if checked is not False or self._checks_followed:
                self.health_checker.update(table)
            self._checks_followed = checked is not False
        # Downs outlive tables (a new record starts up, or down when its check must pass first);
        # ups are not said again, so as not to undo what passive health took down.
        for bid, up in self.health.items():
            if not up:
                self.dataplane.set_backend_health(bid, False)
        logs.event(
            logging.INFO, logs.SWAP, generation=generation, services=len(table.services),
            listeners=len(table.listeners), ms=f"{elapsed * 1000:.3f}",
        )
        return True

    def certificates(self) -> tuple[list[certs.Certificate], int]:
        """The certificates the TLS listeners are to serve, the default first (--ssl-certs, [https] certs,
        then the environment), and the handshake timeout."""
        static = self.providers.get("static")
        loaded = static.loaded if isinstance(static, StaticProvider) else None
        own = list(loaded.certs) if loaded is not None else []
        ms = loaded.handshake_timeout_ms if loaded is not None else 10000
        given = [c for c in self.cert_sources if c.source.startswith("--")]
        rest = [c for c in self.cert_sources if not c.source.startswith("--")]
        return given + own + rest, ms

    def _set_certificates(self, table: spec.RouteTable) -> bool:
        """Hands the data plane the certificates for <table>'s TLS listeners when they changed; True
        then. A set the data plane refuses is one error line: the last good one keeps serving."""
        if not any(lst.tls for lst in table.listeners):
            return False
        found, ms = self.certificates()
        if not found:
            if self._self_signed is None:
                self._self_signed = certs.self_signed()
                logs.event(
                    logging.WARNING, logs.TLS_SELF_SIGNED,
                    note="no certificate given (--ssl-certs, [https] certs, HAPROXY_SSL_CERT): the https listener "
                    "serves a self-signed one made now, which no client trusts",
                )
            found = [self._self_signed]
        if tuple(found) == self.certs_served and ms == self._handshake_ms:
            return False
        try:
            self.dataplane.set_certificates([(c.pem, c.names) for c in found], ms)
        except ValueError as e:
            logs.event(logging.ERROR, logs.TLS_REJECTED, error=e, keeping="the last good certificates")
            return False
        self.certs_served = tuple(found)
        self._handshake_ms = ms
        return True

    def _without_unbindable(self, table: spec.RouteTable) -> tuple[spec.RouteTable, list[str]]:
        """<table> less its new listeners that cannot bind, and a line for each."""
        serving = {x.address for x in self.serving.listeners} if self.serving is not None else set()
        keep: list[spec.Listener] = []
        errors: list[str] = []
        for listener in table.listeners:
            error = None if listener.address in serving else probe_bind(listener.address, serving)
            if error is None:
                keep.append(listener)
            else:
                errors.append(f"listener {listener.address} ({_listener_what(listener)}) skipped: {error}")
        if not errors:
            return table, []
        return msgspec.structs.replace(table, listeners=tuple(keep)), errors

    def _event_to_swap(self) -> float | None:
        """Marathon's event → table latency (its status' ``event_latency_ms``) plus table → serving."""
        provider = self.providers.get("marathon")
        if provider is None or "marathon" not in self.changed_at:
            return None
        latency_ms = getattr(provider.status(), "event_latency_ms", None)
        if not isinstance(latency_ms, (int, float)):
            return None
        return latency_ms / 1000.0 + (time.monotonic() - self.changed_at["marathon"])

    # -- by hand (admin API) -------------------------------------------------------------------

    def known(self, backend_id: str) -> bool:
        return self.serving is not None and backend_id in backend_ids(self.serving)

    def set_state(self, backend_id: str, state: str) -> bool:
        """False when no table names <backend_id>. <state> must be one of ADMIN_STATES."""
        if state not in ADMIN_STATES:
            raise ValueError(f"state must be one of {', '.join(ADMIN_STATES)}")
        if not self.known(backend_id):
            return False
        o = self.overrides.get(backend_id, Override())
        self.overrides[backend_id] = msgspec.structs.replace(o, state=state)
        self.dataplane.set_backend_state(backend_id, state)
        logs.event(logging.INFO, logs.BACKEND_STATE, backend=backend_id, state=state, by="admin")
        return True

    def set_weight(self, backend_id: str, weight: int) -> bool:
        if not 0 <= weight <= MAX_WEIGHT:
            raise ValueError(f"weight must be within 0..{MAX_WEIGHT}")
        if not self.known(backend_id):
            return False
        o = self.overrides.get(backend_id, Override())
        self.overrides[backend_id] = msgspec.structs.replace(o, weight=weight)
        self.dataplane.set_backend_weight(backend_id, weight)
        logs.event(logging.INFO, logs.BACKEND_WEIGHT, backend=backend_id, weight=weight, by="admin")
        return True

    def clear_override(self, backend_id: str) -> bool:
        """Drops what was set by hand: the backend goes back to what its provider says."""
        if not self.known(backend_id):
            return False
        had = self.overrides.pop(backend_id, None)
        if had is not None:
            for s in self.tables_merged().services:
                for b in s.backends:
                    if b.id == backend_id:
                        self.dataplane.set_backend_state(backend_id, b.state)
                        self.dataplane.set_backend_weight(backend_id, b.weight)
            logs.event(logging.INFO, logs.BACKEND_STATE, backend=backend_id, override="cleared", by="admin")
        return True

    def tables_merged(self) -> spec.RouteTable:
        parts = [(name, self.tables[name]) for name in self.providers if name in self.tables]
        return merge_tables(parts)[0]

    async def resync(self) -> None:
        """SIGHUP, SIGUSR1 and /_mlb_signal/hup: the access log is reopened (log rotation), every
        provider re-reads its source."""
        if self.access_log is not None:
            try:
                self.access_log.reopen()
            except OSError as e:
                logs.event(logging.ERROR, "access_log_reopen_failed", path=self.access_log.path, error=e.strerror,
                           keeping="the file open before")
        for name, provider in self.providers.items():
            try:
                await provider.resync()
            except Exception as e:  # one provider failing must not stop the others
                logs.event(logging.ERROR, "resync_failed", provider=name, error=e)
        try:
            self.publish(retry_skipped=True)  # what could not bind before may bind now
        except (OSError, ValueError):
            pass  # logged by publish()

    def app_errors(self) -> dict[str, Any]:
        return {name: msgspec.to_builtins(p.app_errors()) for name, p in self.providers.items()}

    def provider_status(self) -> dict[str, Any]:
        return {name: msgspec.to_builtins(p.status()) for name, p in self.providers.items()}

    @property
    def serving_now(self) -> bool:
        return self.serving is not None and not self.draining

    # -- lifetime ------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the data plane and every provider. The static provider's first table is published
        before this returns (a listener that cannot bind raises OSError here)."""
        for name, provider in self.providers.items():
            if getattr(provider, "ready_at_start", False):
                table = provider.table()
                if table is None:
                    raise RuntimeError(f"provider {name!r} sets ready_at_start but has no table to publish")
                self.tables[name] = table
        from fastlb.health import HealthChecker  # noqa: PLC0415 (asyncio: made on the running loop)

        self.health_checker = HealthChecker(
            self.on_backend_state("health"), get_health=getattr(self.dataplane, "backend_health", None)
        )
        if self.tables:
            self.strict_binds = True
            try:
                self.publish()
            finally:
                self.strict_binds = False
        self.dataplane.start()
        for name, provider in self.providers.items():
            self._tasks.append(asyncio.create_task(self._run_provider(name, provider), name=f"provider-{name}"))
        if hasattr(self.dataplane, "trim"):
            self._tasks.append(asyncio.create_task(self._trim_memory(), name="trim"))
        if hasattr(self.dataplane, "stats"):
            self._tasks.append(asyncio.create_task(limits.watch_fds(self.dataplane), name="fds"))

    async def _trim_memory(self) -> None:
        """Now and then, gives the memory the data plane freed after a burst back to the system (the
        allocator keeps freed buffers resident otherwise: 2,000 clients that each made a request
        would leave ~10 kB each behind)."""
        while True:
            await asyncio.sleep(TRIM_INTERVAL_S)
            self.dataplane.trim()

    async def _run_provider(self, name: str, provider: Provider) -> None:
        try:
            await provider.run(self.on_change(name), self.on_backend_state(name))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            logging.getLogger("fastlb").exception("provider %s stopped", name)
            logs.event(logging.ERROR, "provider_stopped", provider=name, error=e, keeping="its last table")

    def request_stop(self) -> None:
        """SIGTERM/SIGINT: the first starts the drain; a second one while draining closes what is open."""
        if self._stop.is_set() and self.draining:
            logs.event(
                logging.WARNING, logs.DRAINING, closing=self.dataplane.active_connections(), reason="second signal"
            )
            self.dataplane.close_all()
        self._stop.set()

    async def wait_stop_requested(self) -> None:
        await self._stop.wait()

    async def drain(self) -> None:
        """Stops accepting, waits for open connections to finish up to the drain timeout, then closes
        what is left and stops the data plane."""
        self.draining = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.health_checker is not None:
            await self.health_checker.close()
        self.dataplane.stop_accepting()
        active = self.dataplane.active_connections()
        logs.event(logging.INFO, logs.DRAINING, active=active, deadline_s=self.drain_timeout)
        deadline = time.monotonic() + self.drain_timeout
        while active > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            active = self.dataplane.active_connections()
        if active > 0:
            logs.event(logging.WARNING, logs.DRAINING, closing=active, reason="drain deadline")
            self.dataplane.close_all()
        self.dataplane.stop()
        if self.access_log is not None:
            self.access_log.close()
        logs.event(logging.INFO, logs.STOPPED, swaps=self.swap.count)


# -- fastlb run ----------------------------------------------------------------------------------


class RunOptions(msgspec.Struct, frozen=True):
    config_path: str | None = None
    marathon: MarathonArgs | None = None
    workers: int | None = None  # None: the file's [engine] workers, else one per CPU
    admin: str | None = None  # None: the file's [admin] listen, else 127.0.0.1:9090
    admin_token: str | None = None
    drain_timeout: float = 30.0
    upgrade_socket: str | None = None  # hand the listening sockets to a new fastlb that asks here
    takeover: str | None = None  # take the listening sockets over from the fastlb serving here
    cookie_secret_file: str | None = None  # keys sticky cookie values; else $FASTLB_COOKIE_SECRET, else fixed
    access_log: str | None = None  # a file (appended to) or "-" (stdout); None: the file's [log] access, else off
    ssl_certs: tuple[str, ...] = ()  # --ssl-certs: PEM files or directories of *.pem, the first the default


DEFAULT_ADMIN = "127.0.0.1:9090"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_dataplane_class() -> Any:
    from fastlb import _core  # noqa: PLC0415 (the extension is optional for `fastlb check`)

    cls = getattr(_core, "DataPlane", None)
    if cls is None:
        raise ImportError("this build of fastlb._core has no DataPlane")
    return cls


class StartError(Exception):
    """``fastlb run`` cannot start; the message says why (one line per problem)."""


COOKIE_SECRET_ENV = "FASTLB_COOKIE_SECRET"


def cookie_secret(path: str | None, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The key of the sticky cookie values: the bytes of <path> (whitespace around them cut), else
    $FASTLB_COOKIE_SECRET, else None (the data plane's fixed default key). Every fastlb given the same
    key gives a backend the same value. Raises StartError for an unreadable or empty secret."""
    if path is not None:
        try:
            with open(path, "rb") as f:
                secret = f.read().strip()
        except OSError as e:
            raise StartError(f"--cookie-secret-file: {path}: {e.strerror}") from None
        if not secret:
            raise StartError(f"--cookie-secret-file: {path} is empty")
        return secret
    value = environ.get(COOKIE_SECRET_ENV)
    if value is None:
        return None
    if not value.strip():
        raise StartError(f"{COOKIE_SECRET_ENV} is set but empty")
    return value.strip().encode()


def build(
    options: RunOptions, dataplane_class: Any = None, inherit: dict[str, list[int]] | None = None
) -> tuple[Controller, str, str | None]:
    """The controller for <options> (providers loaded, data plane made, nothing started), the admin
    address and token. <inherit>: listening sockets taken over from a running fastlb, by address.
    Raises StartError."""
    providers: dict[str, Provider] = {}
    static: StaticProvider | None = None
    if options.config_path is not None or options.marathon is None:
        try:
            static = StaticProvider(options.config_path)
        except config.ConfigError as e:
            raise StartError("\n".join(e.problems)) from None
        providers["static"] = static
    if options.marathon is not None:
        try:
            providers["marathon"] = marathon_provider(options.marathon)
        except ImportError as e:
            raise StartError(f"--marathon: this build has no Marathon provider ({e})") from None
        except ValueError as e:
            raise StartError(f"--marathon: {e}") from None

    engine = static.loaded.engine if static is not None else config.EngineSettings()
    workers = options.workers or engine.workers or cpu_count()
    admin = options.admin or (static.loaded.admin_listen if static is not None else None) or DEFAULT_ADMIN
    token = options.admin_token or os.environ.get("FASTLB_ADMIN_TOKEN") or None
    parsed = config.parse_address(admin)
    if parsed is None:
        raise StartError(f"--admin: {admin!r} is not ip:port")
    if not 1 <= parsed[1] <= 65535:
        raise StartError(f"--admin: port {parsed[1]} is not in 1..65535")
    if not parsed[0].is_loopback and token is None:
        raise StartError(
            f"--admin: {admin} is not a loopback address; give --admin-token or FASTLB_ADMIN_TOKEN "
            "so that nobody else can change routes"
        )
    if dataplane_class is None:
        try:
            dataplane_class = load_dataplane_class()
        except ImportError as e:
            raise StartError(f"the data plane is not available: {e}") from None
    settings = limits.fit_engine(engine, workers)
    if inherit:
        settings["inherit"] = inherit
    secret = cookie_secret(options.cookie_secret_file)
    if secret is not None:
        settings["cookie_key"] = secret
    try:
        given = certs.from_paths(options.ssl_certs, "--ssl-certs") + certs.from_environ(os.environ)
    except certs.CertError as e:
        raise StartError("\n".join(e.problems)) from None
    log = _access_log(options, static)
    if log is not None:
        settings["access_log_fd"] = log.fd
    try:
        dataplane = dataplane_class(workers, **settings)
    except BaseException:
        if log is not None:
            log.close()
        raise
    controller = Controller(
        dataplane, providers, drain_timeout=options.drain_timeout, access_log=log, certificates=given
    )
    return controller, admin, token


def _access_log(options: RunOptions, static: StaticProvider | None) -> accesslog.AccessLog | None:
    """The access log --access-log names, else the static file's [log] access; None: off."""
    flag = options.access_log is not None
    path = options.access_log if flag else static.loaded.access_log if static is not None else None
    if path is None:
        return None
    try:
        return accesslog.AccessLog(path)
    except OSError as e:
        raise StartError(f"{'--access-log' if flag else 'log.access'}: {path}: {e.strerror}") from None


async def serve(
    controller: Controller, admin_address: str, token: str | None, *, takeover: Any = None,
    upgrade_socket: str | None = None,
) -> int:
    """Runs until SIGTERM/SIGINT (or until a new fastlb has taken the listeners over), then drains.
    Returns the exit status. <takeover>: a fastlb.upgrade.Takeover whose sockets the data plane was
    made with; the old process is told once this one serves."""
    from fastlb import admin as admin_api  # noqa: PLC0415 (aiohttp only where it serves)
    from fastlb import upgrade  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    try:
        controller.start()
    except OSError as e:
        logs.event(logging.ERROR, logs.SWAP_FAILED, error=e, at="start")
        controller.dataplane.stop()
        if takeover is not None:
            takeover.abandon()
        return 1
    if takeover is not None:
        while controller.serving is None:  # a Marathon-only start serves once its first table is in
            await asyncio.sleep(0.05)
        takeover.ready()
    ip, port = config.parse_address(admin_address) or (None, 0)
    try:
        # After a takeover the old process frees the admin address as it starts draining.
        attempts = 100 if takeover is not None else 1
        for attempt in range(attempts):
            try:
                runner = await admin_api.start(controller, str(ip), port, token)
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.1)
    except OSError as e:
        logs.event(logging.ERROR, "admin_failed", address=admin_address, error=e)
        controller.request_stop()
        await controller.drain()
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.request_stop)
    # SIGHUP, and SIGUSR1 as marathon-lb (its "reload"): reopen the access log, re-read, resync
    for sig in (signal.SIGHUP, signal.SIGUSR1):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(controller.resync()))
    server = None
    if upgrade_socket is not None:
        server = upgrade.UpgradeServer(upgrade_socket, controller.dataplane.listener_fds, controller.request_stop)
        try:
            await server.start()
        except OSError as e:
            logs.event(logging.ERROR, "upgrade_socket_failed", path=upgrade_socket, error=e)
            server = None
    logs.event(
        logging.INFO, logs.SERVING, pid=os.getpid(), admin=admin_address, generation=controller.dataplane.generation,
        providers=",".join(controller.providers),
    )
    await controller.wait_stop_requested()
    loop.remove_signal_handler(signal.SIGHUP)
    loop.remove_signal_handler(signal.SIGUSR1)
    if server is not None:
        await server.close()
        if server.handed_over:
            await runner.cleanup()  # the new process takes the admin address over
    await controller.drain()
    await runner.cleanup()
    return 0


def run(options: RunOptions) -> int:
    """``fastlb run``: builds everything, serves on uvloop, returns the exit status."""
    from fastlb import upgrade  # noqa: PLC0415

    takeover = None
    inherit = None
    try:
        if options.takeover is not None:
            takeover = upgrade.Takeover(options.takeover)
            try:
                inherit = takeover.receive()
            except upgrade.UpgradeError as e:
                raise StartError(str(e)) from None
        controller_args = build(options, inherit=inherit)
    except StartError as e:
        for line in str(e).splitlines():
            logs.event(logging.ERROR, "start_failed", problem=line)
        if takeover is not None:
            takeover.abandon()
        for fds in (inherit or {}).values():
            for fd in fds:
                os.close(fd)
        return 1
    main = serve(*controller_args, takeover=takeover, upgrade_socket=options.upgrade_socket)
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
