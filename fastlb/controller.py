"""The controller: the one place where a table is published on the data plane.

Providers (the static file, Marathon) each hand over whole ``spec.RouteTable``s. The ``Controller``
merges them (``fastlb.merge``: a name or an address claimed twice, the later provider's part is skipped
with a clear error), applies the operator's manual overrides (``fastlb.overrides``: backend state and
weight, set through the admin API and re-applied on every publish), and publishes the result on the
``DataPlane`` when it differs from the table last published. A table the data plane refuses is logged
and the last good table keeps serving; a new listener that cannot bind is left out of its table rather
than holding the rest back. Backend health comes from the providers and from the active health checks
(``fastlb.health``), which follow every published table; neither needs a new table.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import msgspec

from fastlb import accesslog, certs, config, limits, logs, spec, tickets
from fastlb.merge import TableMerger, listener_what, merge_tables
from fastlb.overrides import ADMIN_STATES, MAX_WEIGHT, Override, apply_overrides
from fastlb.provider import OnBackendState, OnChange, Provider

TRIM_INTERVAL_S = 2.0  # how often freed data-plane memory is given back (DataPlane.trim)
GC_FREEZE_SERVICES = 1000  # a table this large (and twice the last one frozen) is collected and frozen once
TICKET_CHECK_S = 5.0  # how often the ticket key file is looked at (and random keys maybe rotated)
BIND_RETRY_S = (1.0, 30.0)  # listeners left out are tried again after the first, doubling up to the second


class DataPlaneLike(Protocol):
    """What the controller uses of ``fastlb._core.DataPlane`` (its contract: ``_core.pyi``)."""

    @property
    def generation(self) -> int: ...
    def start(self) -> None: ...
    def publish(self, table: spec.RouteTable, *, partial: bool = ..., rebind: bool = ...) -> int: ...
    def set_backend_state(self, backend_id: str, state: str) -> bool: ...
    def set_backend_health(self, backend_id: str, up: bool) -> bool: ...
    def set_backend_weight(self, backend_id: str, weight: int) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    # optional, as trim: what the once-a-second readers take instead of a whole stats() snapshot
    # (limits.watch_fds, admin's request-rate sampler)
    def engine_counters(self) -> dict[str, Any]: ...
    def request_counts(self) -> dict[str, int]: ...
    def stop_accepting(self) -> None: ...
    def active_connections(self) -> int: ...
    def close_all(self) -> None: ...
    def stop(self) -> None: ...
    def listener_fds(self) -> dict[str, list[int]]: ...
    def trim(self, min_free: int = ...) -> bool: ...  # optional: a stand-in without it is never asked
    def set_ticket_keys(self, keys: list[bytes], enc: int = ...) -> None: ...  # optional, as trim
    def set_certificates(
        self, certs: list[Any], handshake_ms: int = ..., listeners: dict[str, list[Any]] | None = ...
    ) -> None: ...
    # optional: publish(table, partial=True) leaves out the listeners that cannot bind, unbound() says
    # which and why (address -> strerror), rebind=True tries them again; a stand-in without it is
    # probed instead (probe_bind)
    def unbound(self) -> dict[str, str]: ...


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


def _left_out(table: spec.RouteTable, unbound: dict[str, str]) -> tuple[spec.RouteTable, list[str]]:
    """<table> less the listeners at the addresses of <unbound> (address -> why), and a
    ``listen_errors`` line for each."""
    lines = [f"listener {x.address} ({listener_what(x)}) skipped: {unbound[x.address]}"
             for x in table.listeners if x.address in unbound]
    kept = tuple(x for x in table.listeners if x.address not in unbound)
    return msgspec.structs.replace(table, listeners=kept), lines


def backend_ids(table: spec.RouteTable) -> set[str]:
    return {b.id for s in table.services for b in s.backends}


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
        certificate_paths: Sequence[str] = (),
        ticket_keys: str | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.cert_sources = tuple(certificates)  # --ssl-certs and the environment, read at start
        self.cert_paths = tuple(certificate_paths)  # --ssl-certs, read again by resync() when a file changed
        self.cert_files = certs.Files()  # the files of --ssl-certs and of the services' tls, each last good one
        if self.cert_paths:
            self.cert_files.load(self.cert_paths, "--ssl-certs")
        self.certs_served: tuple[certs.Certificate, ...] = ()  # what the TLS listeners serve now
        self.cert_problems: tuple[str, ...] = ()  # files that cannot be used now (their last good one serves)
        self._self_signed: certs.Certificate | None = None
        self._certs_key: object = None
        self.tickets = tickets.TicketKeys(ticket_keys)  # session ticket keys: the key file's, or rotated
        self._gc_frozen_at = 0  # services in the table when the long-lived objects were last frozen
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
        self._unbound: dict[str, str] = {}  # those listeners' addresses -> why, as last logged
        self._bind_retry: asyncio.TimerHandle | None = None
        self._bind_backoff = BIND_RETRY_S[0]
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
            logs.event(logging.ERROR, logs.PUBLISH_FAILED, exc_info=True)

    def desired(self) -> tuple[spec.RouteTable, list[str]]:
        parts = [(name, self.tables[name]) for name in self.providers if name in self.tables]
        merged, conflicts = self._merger.merge(parts)
        return apply_overrides(merged, self.overrides), conflicts

    def publish(self, *, retry_skipped: bool = False) -> bool:
        """Publishes the desired table if it differs from the last one published. False when nothing
        changed or the data plane refused it (the last good table keeps serving).

        A listener that cannot bind does not hold the rest back: once the first table serves, the
        data plane binds what it can and leaves out the rest, each with a line in ``listen_errors``
        (one log line per listener and reason); <retry_skipped> (a resync, the retry timer) tries
        the left-out ones again when one of them can bind now. The first table is all or nothing:
        OSError with nothing serving yet."""
        desired, conflicts = self.desired()
        if conflicts != self.conflicts:
            for line in conflicts:
                if line not in self.conflicts:
                    logs.event(logging.ERROR, logs.ROUTE_CONFLICT, problem=line)
        self.conflicts = conflicts
        new_certs = self._set_certificates(desired)
        # Tables are values: equal tables encode alike, and those that share their unchanged services
        # compare in a pass over pointers.
        if self.serving is not None and desired == self.desired_table and not new_certs:
            if not (retry_skipped and self.listen_errors and self._any_bindable()):
                return False
        table = desired
        partial = hasattr(self.dataplane, "unbound") and not (self.serving is None and self.strict_binds)
        t0 = time.perf_counter()
        try:
            if partial:
                generation = self.dataplane.publish(table, partial=True, rebind=retry_skipped)
            else:
                generation = self.dataplane.publish(table)
            listen_errors: list[str] = []
        except (OSError, ValueError) as e:
            self.swap.failed += 1
            logs.event(logging.ERROR, logs.SWAP_FAILED, error=e, keeping=f"generation {self.dataplane.generation}")
            listen_errors = []
            unbound: dict[str, str] = {}
            if isinstance(e, OSError) and not partial and not (self.serving is None and self.strict_binds):
                unbound = self._unbindable(desired)
            if not unbound:
                if self.serving is None:
                    raise
                return False
            self._log_unbound(unbound)
            table, listen_errors = _left_out(desired, unbound)
            if table == self.serving:
                self.desired_table, self.listen_errors = desired, listen_errors
                self._retry_binds_later()
                return False  # still the same listeners left out: nothing new to serve
            t0 = time.perf_counter()
            try:
                generation = self.dataplane.publish(table)
            except (OSError, ValueError) as e2:
                self.swap.failed += 1
                logs.event(logging.ERROR, logs.SWAP_FAILED, error=e2, keeping=f"generation {self.dataplane.generation}")
                return False
        if partial:
            unbound = self.dataplane.unbound()
            self._log_unbound(unbound)
            if unbound:
                table, listen_errors = _left_out(desired, unbound)
        elapsed = time.perf_counter() - t0
        self.serving, self.desired_table = table, desired
        self._settle_gc(table)
        self.listen_errors = listen_errors
        self._retry_binds_later()
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
        loaded = getattr(self.providers.get("static"), "loaded", None)
        static = loaded if isinstance(loaded, config.StaticConfig) else None
        own = list(static.certs) if static is not None else []
        ms = static.handshake_timeout_ms if static is not None else 10000
        given = [c for c in self.cert_sources if c.source.startswith("--")]
        rest = [c for c in self.cert_sources if not c.source.startswith("--")]
        return given + own + rest, ms

    def _set_certificates(self, table: spec.RouteTable) -> bool:
        """Hands the data plane the certificates for <table>'s TLS listeners when they changed; True
        then. The shared ones (certificates()), each service's own (``Service.tls``: on its listeners,
        and claiming its vhosts on the shared https listener), read again when their file changed. A
        file that cannot be used is one error line, its last good certificate serving; a set the data
        plane refuses is one error line, the last good set serving."""
        if not any(lst.tls for lst in table.listeners):
            return False
        found, ms = self.certificates()
        problems: list[str] = []
        if self.cert_paths:
            given, problems = self.cert_files.load(self.cert_paths, "--ssl-certs")
            found = given + [c for c in found if not c.source.startswith("--ssl-certs")]
        own: dict[str, tuple[list[certs.Certificate], dict[str, Any]]] = {}
        for svc in table.services:
            if svc.tls is not None and svc.tls.certs:
                got, bad = self.cert_files.load(svc.tls.certs, f"service {svc.name}")
                problems.extend(bad)
                if got:
                    own[svc.name] = (got, _tls_options(svc.tls, svc.mode == "http", self.cert_files.ca))
                    if svc.tls.verify and not own[svc.name][1]["ca"]:
                        problems.append(f"service {svc.name}: ca_file {svc.tls.ca_file} cannot be read "
                                        "(client certificates are not verified without it)")
        self._cert_problems(problems)
        # Passthrough only (no Host-routed service): with no certificate given, a connection no
        # passthrough vhost names is closed, and none is made up.
        pass_only = bool(table.sni_routes) and not table.http_routes
        if not found and not pass_only:
            if self._self_signed is None:
                self._self_signed = certs.self_signed()
                logs.event(
                    logging.WARNING, logs.TLS_SELF_SIGNED,
                    note="no certificate given (--ssl-certs, [https] certs, HAPROXY_SSL_CERT): the https listener "
                    "serves a self-signed one made now, which no client trusts",
                )
            found = [self._self_signed]
        hosts: dict[str, list[str]] = {}
        for route in table.http_routes:
            if route.service in own and route.host not in hosts.setdefault(route.service, []):
                hosts[route.service].append(route.host)
        shared: list[tuple[Any, ...]] = [(c.pem, c.names) for c in found]
        served = list(found)
        for name, (got, opts) in own.items():
            claims = certs.claims(got, hosts.get(name, []))
            for cert, claimed in zip(got, claims, strict=True):
                if claimed:
                    shared.append((cert.pem, cert.names, {**opts, "claims": claimed}))
                    served.append(cert)
        listeners: dict[str, list[tuple[bytes, tuple[str, ...], dict[str, Any]]]] = {}
        for lst in table.listeners:
            if lst.tls and lst.kind == "service" and lst.service in own:
                got, opts = own[lst.service]
                listeners[lst.address] = [(c.pem, c.names, opts) for c in got]
                served.extend(got)
        key = (shared, listeners, ms)
        if key == self._certs_key:
            return False
        try:
            if listeners:
                self.dataplane.set_certificates(shared, ms, listeners)
            else:
                self.dataplane.set_certificates(shared, ms)
        except ValueError as e:
            logs.event(logging.ERROR, logs.TLS_REJECTED, error=e, keeping="the last good certificates")
            return False
        self.certs_served = tuple(dict.fromkeys(served))
        self._certs_key = key
        return True

    def _cert_problems(self, problems: list[str]) -> None:
        """Logs each certificate file's problem once, when it appears."""
        for line in problems:
            if line not in self.cert_problems:
                logs.event(logging.ERROR, logs.TLS_REJECTED, error=line)
        self.cert_problems = tuple(problems)

    def _settle_gc(self, table: spec.RouteTable) -> None:
        """Once a table is large (the first Marathon sync, a resync that brought thousands of apps):
        one full collection now, and what survives it is frozen (``gc.freeze``), out of the reach of
        Python's automatic full collections. Those walk every tracked object, and at 10,000 apps
        (providers' state, the plan, the caches) that is tens to hundreds of milliseconds at moments
        no one chooses: between an event and its swap. Objects frozen still go when their last
        reference does; only a cycle among them would stay, and the collection before the freeze
        clears those there are."""
        services = len(table.services)
        if services < GC_FREEZE_SERVICES or services < 2 * self._gc_frozen_at:
            return
        gc.collect()
        gc.freeze()
        self._gc_frozen_at = services

    def _log_unbound(self, unbound: dict[str, str]) -> None:
        """One line per listener left out and reason, when it is new; one when it binds (or goes)."""
        for address, why in unbound.items():
            if self._unbound.get(address) != why:
                logs.event(logging.ERROR, logs.LISTENER_SKIPPED, listener=address, error=why, retry="backoff, resync")
        for address in self._unbound.keys() - unbound.keys():
            logs.event(logging.INFO, logs.LISTENER_BOUND, listener=address)
        self._unbound = dict(unbound)

    def _any_bindable(self) -> bool:
        """Whether one of the listeners left out can bind now (else a retry would swap for nothing)."""
        by_port: dict[str, list[str]] = {}
        for x in self.serving.listeners if self.serving is not None else ():
            by_port.setdefault(x.address.rsplit(":", 1)[-1], []).append(x.address)
        return any(probe_bind(a, by_port.get(a.rsplit(":", 1)[-1], ())) is None for a in self._unbound)

    def _retry_binds_later(self) -> None:
        """Listeners left out are tried again after BIND_RETRY_S[0], then twice as long each time up
        to BIND_RETRY_S[1], until they all bind (and on every resync)."""
        if not self.listen_errors:
            if self._bind_retry is not None:
                self._bind_retry.cancel()
            self._bind_retry, self._bind_backoff = None, BIND_RETRY_S[0]
            return
        if self._bind_retry is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # published outside the control loop (a test's): resyncs retry
        self._bind_retry = loop.call_later(self._bind_backoff, self._retry_binds)
        self._bind_backoff = min(self._bind_backoff * 2, BIND_RETRY_S[1])

    def _retry_binds(self) -> None:
        self._bind_retry = None
        if self.draining:
            return
        try:
            self.publish(retry_skipped=True)
        except (OSError, ValueError):
            pass  # logged by publish()
        except Exception:  # the control loop must outlive one bad table
            logs.event(logging.ERROR, logs.PUBLISH_FAILED, exc_info=True)
        if self._bind_retry is None:
            self._retry_binds_later()

    def _unbindable(self, table: spec.RouteTable) -> dict[str, str]:
        """The new listeners of <table> that cannot bind (address -> why), as probe_bind finds them:
        for a data plane that cannot leave them out itself."""
        serving: dict[str, list[str]] = {}  # port -> addresses
        for x in self.serving.listeners if self.serving is not None else ():
            serving.setdefault(x.address.rsplit(":", 1)[-1], []).append(x.address)
        out = {}
        for listener in table.listeners:
            same_port = serving.get(listener.address.rsplit(":", 1)[-1], [])
            error = None if listener.address in same_port else probe_bind(listener.address, same_port)
            if error is not None:
                out[listener.address] = error
        return out

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
                logs.event(logging.ERROR, logs.ACCESS_LOG_REOPEN_FAILED, path=self.access_log.path, error=e.strerror,
                           keeping="the file open before")
        if hasattr(self.dataplane, "set_ticket_keys"):
            self.set_ticket_keys()
        for name, provider in self.providers.items():
            try:
                await provider.resync()
            except Exception as e:  # one provider failing must not stop the others
                logs.event(logging.ERROR, logs.RESYNC_FAILED, provider=name, error=e)
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
        if hasattr(self.dataplane, "set_ticket_keys"):
            self._tasks.append(asyncio.create_task(self._rotate_tickets(), name="tickets"))
        if hasattr(self.dataplane, "stats"):
            self._tasks.append(asyncio.create_task(limits.watch_fds(self.dataplane), name="fds"))

    async def _rotate_tickets(self) -> None:
        """Keeps the session ticket keys current: random ones rotated every tickets.ROTATE_S, or the key
        file's, looked at every TICKET_CHECK_S (and on every resync) and read again when it changed."""
        while True:
            self.set_ticket_keys()
            await asyncio.sleep(TICKET_CHECK_S)

    def set_ticket_keys(self) -> None:
        """Hands the data plane the ticket keys when they changed; a key file that cannot be used is one
        error line, the last good keys (or this process's own) serving."""
        before = self.tickets.problem
        if self.tickets.refresh():
            try:
                self.dataplane.set_ticket_keys(self.tickets.keys, self.tickets.enc)
            except ValueError as e:  # read_key_file checks what the data plane does: a bug
                logs.event(logging.ERROR, logs.TLS_REJECTED, error=e, keeping="the last good ticket keys")
                return
            if self.tickets.path is not None:
                logs.event(logging.INFO, logs.TLS_TICKET_KEYS, file=self.tickets.path, keys=len(self.tickets.keys))
        if self.tickets.problem is not None and self.tickets.problem != before:
            logs.event(
                logging.ERROR, logs.TLS_REJECTED, error=self.tickets.problem, keeping="the last good ticket keys"
            )

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
            logs.event(logging.ERROR, logs.PROVIDER_STOPPED, exc_info=True, provider=name)
            logs.event(logging.ERROR, logs.PROVIDER_STOPPED, provider=name, error=e, keeping="its last table")

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
        if self._bind_retry is not None:
            self._bind_retry.cancel()
            self._bind_retry = None
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


def _tls_options(tls: spec.ServiceTls, http: bool, read_ca: Callable[[str], bytes]) -> dict[str, Any]:
    """A service's handshake settings as the data plane takes them (set_certificates' options);
    <read_ca> reads a CA file (certs.Files.ca: again only when it changed). A tcp-mode service (not
    <http>) names no ALPN protocol unless its settings list some: what its bytes speak is its own."""
    opts: dict[str, Any] = {}
    if tls.alpn or not http:
        opts["alpn"] = list(tls.alpn)
    for field in ("min_version", "ciphers", "ciphersuites"):
        if getattr(tls, field):
            opts[field] = getattr(tls, field)
    if tls.verify:
        opts["verify"] = tls.verify
        try:
            opts["ca"] = read_ca(tls.ca_file)  # with the certificates, at each publish: a changed file swaps too
        except certs.CertError:
            # Never served unverified: the data plane refuses the set, the last good one keeps serving.
            opts["ca"] = b""
    return opts
