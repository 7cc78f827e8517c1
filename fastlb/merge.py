"""The providers' tables merged into the one table the data plane serves. Pure: no I/O, no event loop.

``merge_tables`` makes it from scratch: a service name, backend id or listening address claimed twice
is skipped from the later provider, with a clear error. ``TableMerger`` gives the same result with work
that grows with what changed since its last merge, not with the tables.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Collection, Iterable
from typing import Any

import msgspec

from fastlb import config, spec


def merge_tables(parts: list[tuple[str, spec.RouteTable]]) -> tuple[spec.RouteTable, list[str]]:
    """One table from the providers' tables, in provider order. A service name, backend id or
    listening address that an earlier provider already claims is skipped from the later one, with one
    line each saying what and why. Shared listeners (vhost, appid) of the same kind on the same address
    are one listener whose routes come from every provider."""
    errors: list[str] = []
    services: list[spec.Service] = []
    listeners: list[spec.Listener] = []
    routes: list[spec.HttpRoute] = []
    sni_routes: list[spec.SniRoute] = []
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
                    and other.tls == listener.tls
                )
                if not shared:
                    errors.append(
                        f"{provider}: listener {listener.address} ({listener_what(listener)}) skipped: "
                        f"{other.address} is already {owner}'s ({listener_what(other)})"
                    )
                continue
            listen_owner[key] = (provider, listener)
            by_port.setdefault(port, []).append((ip, (provider, listener)))
            listeners.append(listener)
        routes.extend(r for r in table.http_routes if r.service in kept)
        sni_routes.extend(r for r in table.sni_routes if r.service in kept)
        if table.maxconn and not maxconn:
            maxconn = table.maxconn
    merged = spec.RouteTable(
        services=tuple(services),
        listeners=tuple(listeners),
        http_routes=tuple(routes),
        sni_routes=tuple(sni_routes),
        maxconn=maxconn,
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
        # No claim clashes, so every service is kept and every passthrough route with it.
        sni = tuple(itertools.chain.from_iterable(t.sni_routes for t in tables))
        merged = spec.RouteTable(
            services=services, listeners=listeners, http_routes=routes, sni_routes=sni, maxconn=maxconn
        )
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
                    or any(c.kind != first.kind or c.address != first.address or c.tls != first.tls for _, c in claims)
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


def listener_what(listener: spec.Listener) -> str:
    if listener.kind == "service":
        return f"service {listener.service!r}"
    return f"{listener.kind} (https) listener" if listener.tls else f"{listener.kind} listener"
