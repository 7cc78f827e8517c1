"""Following a Marathon cluster: the asyncio glue between the event stream, the API and MarathonState.

What happens, in order of urgency:
1. An event is applied to the state the moment it is decoded. The backends of a task that starts
   KILLING are reported to ``on_backend_state(backend_id, "drain")`` right then, and those of a task
   that is gone for good to ``on_backend_state(backend_id, "maint")``, before anything is fetched or
   rebuilt, so the data plane stops sending them new connections within one event.
2. Changes are coalesced: the table is rebuilt and handed to ``on_change`` at most once per
   ``coalesce_ms`` window, however many events the window held (a deploy of 1,000 tasks is not 1,000
   builds), and only when it differs from the one last handed over. A change after a quiet window is
   built at once, with every event of the same loop turn (one read of the stream): a lone event
   waits for no window.
3. Apps an event names are re-fetched (``GET /v2/apps/<id>``), debounced by the same window.
4. A full resync (``GET /v2/apps?embed=apps.tasks&embed=apps.readiness``) runs after every (re)connect
   of the stream, every ``resync_interval`` seconds, and on ``resync()``. Events that arrive while it is
   in flight are applied at once and applied again on top of the snapshot, which may predate them.
5. ``/v2/deployments`` is polled while a deployment is active (readiness results have no event).

Nothing is published before the first full resync succeeded, and a failed or garbled fetch leaves the
state as it was: the last good table keeps serving while Marathon is down or answers garbage.

The stream has an idle deadline (Marathon writes a heartbeat every 10 s): a stream silent for
``idle_timeout`` seconds is dropped and opened again, as is one that ends or errs, after a jittered
exponential backoff capped at ``max_backoff`` (marathon-lb's ``--max-backoff``). Failover between the
members of the cluster and 302s to the leader are the client's work (``fastlb.marathon.client``).
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiohttp
import msgspec

from fastlb import logs
from fastlb.marathon.auth import Auth, AuthError
from fastlb.marathon.client import MarathonClient, MarathonError
from fastlb.marathon.options import FollowOptions
from fastlb.marathon.sse import SSEDecoder, SSEError, split_json
from fastlb.marathon.state import EventEffect, MarathonOptions, MarathonState
from fastlb.spec import RouteTable

log = logging.getLogger("fastlb.marathon")

# The event types fastlb asks Marathon for (server-side filter, Marathon >= 1.3.7).
EVENT_TYPES: tuple[str, ...] = (
    "event_stream_attached",
    "status_update_event",
    "instance_changed_event",
    "unknown_instance_terminated_event",
    "health_status_changed_event",
    "instance_health_changed_event",
    "unhealthy_instance_kill_event",
    "unhealthy_task_kill_event",
    "add_health_check_event",
    "remove_health_check_event",
    "api_post_event",
    "app_terminated_event",
    "deployment_info",
    "deployment_step_success",
    "deployment_step_failure",
    "deployment_success",
    "deployment_failed",
    "scheduler_registered_event",
    "scheduler_reregistered_event",
)

OnChange = Callable[[RouteTable], None]
# As fastlb.provider.OnBackendState: the controller's callback also takes the health checker's bool;
# this provider passes "drain" and "maint".
OnBackendState = Callable[[str, str | bool], None]


Lookup = Callable[[str], Awaitable[str | None]]


async def lookup_ipv4(name: str) -> str | None:
    """The first IPv4 address of ``name``, from the system resolver, off the event loop."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    return str(infos[0][4][0]) if infos else None


class HostCache:
    """Hostname → IPv4 address, resolved asynchronously, kept ``ttl`` seconds.

    ``resolve`` is synchronous (MarathonState calls it while building): it answers from the cache at
    once, starts a lookup for a name it does not hold or holds stale, and answers None for a name never
    resolved yet. When a lookup brings an address the cache did not have, ``on_new(name)`` is called so
    that the table is built again. A lookup that fails keeps the last address known (a resolver hiccup
    does not take backends away) and is retried after ``negative_ttl``.
    """

    def __init__(
        self,
        *,
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        on_new: Callable[[str], None] | None = None,
        lookup: Lookup = lookup_ipv4,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.on_new = on_new
        self._lookup_name = lookup
        self._entries: dict[str, tuple[str | None, float]] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}

    def resolve(self, name: str) -> str | None:
        try:
            return str(ipaddress.ip_address(name))
        except ValueError:
            pass
        entry = self._entries.get(name)
        if (entry is None or entry[1] <= time.monotonic()) and name not in self._pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._pending[name] = loop.create_task(self._lookup(name))
        return entry[0] if entry is not None else None

    async def _lookup(self, name: str) -> None:
        old = self._entries.get(name, (None, 0.0))[0]
        try:
            address = await self._lookup_name(name)
        except (OSError, UnicodeError) as e:
            logs.event(logging.WARNING, logs.DNS_FAILED, logger=log, host=name, error=e)
            address = None
        finally:
            self._pending.pop(name, None)
        if address is None:
            self._entries[name] = (old, time.monotonic() + self.negative_ttl)
            return
        self._entries[name] = (address, time.monotonic() + self.ttl)
        if address != old and self.on_new is not None:
            self.on_new(name)

    async def settle(self, names: Iterable[str], timeout: float) -> None:
        """Start lookups for ``names`` and wait, up to ``timeout``, for those never resolved yet, so
        that a table is not built without a task only because its host was not looked up in time.
        Names already known (even stale, being refreshed) do not wait."""
        waiting = []
        for name in names:
            if self.resolve(name) is None and name in self._pending:
                waiting.append(self._pending[name])
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)

    def close(self) -> None:
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()


class ProviderStatus(msgspec.Struct, frozen=True):
    """What /stats and /metrics show about the Marathon provider. Times are Unix seconds."""

    mode: str  # "sse" | "poll"
    connected: bool  # the event stream is open (always False in poll mode)
    synced: bool  # a full resync has succeeded at least once
    leader: str | None  # the member that answered last
    members: tuple[str, ...]
    last_event_at: float | None
    last_resync_at: float | None  # last successful resync
    last_resync_error: str | None  # the last resync's error, None when it succeeded
    resyncs: int
    resync_failures: int
    reconnects: int  # stream (re)connections after the first
    refetches: int
    malformed_events: int
    tables_published: int
    callback_errors: int  # on_change / on_backend_state raised (logged)
    events: dict[str, int]  # by event type
    event_latency_ms: float | None  # receipt of the last changing event → its table handed to on_change


def _is_empty_list(body: bytes) -> bool:
    try:
        return len(msgspec.json.decode(body, type=list[msgspec.Raw])) == 0
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


_FOLLOW = FollowOptions()


class MarathonProvider:
    def __init__(
        self,
        urls: Sequence[str],
        options: MarathonOptions,
        *,
        sse: bool = _FOLLOW.sse,
        poll_interval: float = _FOLLOW.poll_interval,
        coalesce_ms: float = 20.0,
        auth: Auth | None = None,
        ca_cert: str | None = None,
        resync_interval: float = 60.0,
        idle_timeout: float = 30.0,
        max_backoff: float = _FOLLOW.max_backoff,
        initial_backoff: float = 1.0,
        stable_after: float = 60.0,
        deployments_interval: float = 2.0,
        dns_ttl: float = 60.0,
        dns_wait: float = 2.0,
        dns_lookup: Lookup = lookup_ipv4,
        event_types: Iterable[str] = EVENT_TYPES,
        connect_timeout: float = 3.05,
        read_timeout: float = 46.0,
        state_factory: Callable[[Any, Callable[[str], str | None]], MarathonState] = MarathonState,
    ) -> None:
        self.options = options
        self.sse = sse
        self.poll_interval = poll_interval
        self.coalesce = coalesce_ms / 1000.0
        self.resync_interval = resync_interval
        self.idle_timeout = idle_timeout
        self.max_backoff = max_backoff
        self.initial_backoff = initial_backoff
        self.stable_after = stable_after
        self.deployments_interval = deployments_interval
        self.event_types = tuple(event_types)
        self.dns_wait = dns_wait
        self.client = MarathonClient(
            urls, auth=auth, ca_cert=ca_cert, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.hosts = HostCache(ttl=dns_ttl, on_new=self._host_resolved, lookup=dns_lookup)
        self._state = state_factory(options, self.hosts.resolve)
        self._on_change: OnChange | None = None
        self._on_backend_state: OnBackendState | None = None
        self._published: RouteTable | None = None
        self._synced = False
        self._dirty = asyncio.Event()
        self._pending_event_t: float | None = None  # monotonic receipt of the last changing event
        self._resync_lock = asyncio.Lock()
        self._resync_wanted = asyncio.Event()
        self._replay: list[tuple[str, bytes]] | None = None  # events seen while a resync is in flight
        self._refetch: set[str] = set()
        self._refetch_wanted = asyncio.Event()
        self._deployments_wanted = asyncio.Event()
        # status
        self._connected = False
        self._last_event_at: float | None = None
        self._last_resync_at: float | None = None
        self._last_resync_error: str | None = None
        self._resyncs = 0
        self._resync_failures = 0
        self._connections = 0
        self._refetches = 0
        self._malformed = 0
        self._tables = 0
        self._callback_errors = 0
        self._events: collections.Counter[str] = collections.Counter()
        self._latency_ms: float | None = None

    # -- the public face ------------------------------------------------------------------------

    async def run(self, on_change: OnChange, on_backend_state: OnBackendState) -> None:
        """Follow Marathon until cancelled, calling back as described in the module docstring."""
        self._on_change = on_change
        self._on_backend_state = on_backend_state
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._resync_worker())
                tg.create_task(self._refetch_worker())
                tg.create_task(self._deployments_worker())
                tg.create_task(self._publisher())
                if self.sse:
                    tg.create_task(self._stream_loop())
                    tg.create_task(self._periodic(self.resync_interval, first=False))
                else:
                    tg.create_task(self._periodic(self.poll_interval, first=True))
        finally:
            self.hosts.close()
            self._connected = False
            await self.client.close()

    async def resync(self) -> bool:
        """A full resync now (SIGHUP, /_mlb_signal/hup); True when it succeeded. The resulting table
        is handed to on_change at the end of the coalesce window, like any other change."""
        return await self._do_resync()

    def table(self) -> RouteTable:
        """The table last handed to on_change (an empty one before the first)."""
        return self._published if self._published is not None else RouteTable()

    def app_errors(self) -> dict[str, str]:
        return self._state.app_errors()

    def status(self) -> ProviderStatus:
        return ProviderStatus(
            mode="sse" if self.sse else "poll",
            connected=self._connected,
            synced=self._synced,
            leader=self.client.last_good,
            members=self.client.members,
            last_event_at=self._last_event_at,
            last_resync_at=self._last_resync_at,
            last_resync_error=self._last_resync_error,
            resyncs=self._resyncs,
            resync_failures=self._resync_failures,
            reconnects=max(0, self._connections - 1),
            refetches=self._refetches,
            malformed_events=self._malformed,
            tables_published=self._tables,
            callback_errors=self._callback_errors,
            events=dict(self._events),
            event_latency_ms=self._latency_ms,
        )

    # -- events ---------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        """Full jitter over an exponential window: reconnecting fleets do not stampede the leader."""
        window = min(self.max_backoff, self.initial_backoff * (1.5 ** max(0, attempt - 1)))
        return random.uniform(0.0, window)

    async def _stream_loop(self) -> None:
        attempt = 0
        while True:
            try:
                stream = await self.client.open_events(self.event_types)
            except (MarathonError, AuthError) as e:
                logs.event(logging.WARNING, logs.MARATHON_STREAM_FAILED, logger=log, error=e)
                if not self._synced:
                    self._resync_wanted.set()  # the API may work where the stream does not
                attempt += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            self._connections += 1
            self._connected = True
            opened = time.monotonic()
            logs.event(logging.INFO, logs.MARATHON_STREAM_OPEN, logger=log, url=stream.base)
            self._resync_wanted.set()  # every (re)connect: events were missed meanwhile
            decoder = SSEDecoder()
            try:
                while True:
                    try:
                        async with asyncio.timeout(self.idle_timeout):
                            chunk = await stream.read()
                    except TimeoutError:
                        logs.event(
                            logging.WARNING, logs.MARATHON_STREAM_FAILED, logger=log, url=stream.base,
                            error=f"silent for {self.idle_timeout:.0f} s (no heartbeat)", then="reconnecting",
                        )
                        break
                    if not chunk:
                        logs.event(
                            logging.WARNING, logs.MARATHON_STREAM_FAILED, logger=log,
                            url=stream.base, error="closed", then="reconnecting",
                        )
                        break
                    for event in decoder.feed(chunk):
                        self._on_event(event.event, event.data)
            except (aiohttp.ClientError, OSError, SSEError) as e:
                logs.event(
                    logging.WARNING, logs.MARATHON_STREAM_FAILED, logger=log,
                    url=stream.base, error=e, then="reconnecting",
                )
            finally:
                stream.close()
                self._connected = False
            if time.monotonic() - opened >= self.stable_after:
                attempt = 0
            attempt += 1
            await asyncio.sleep(self._backoff(attempt))

    def _on_event(self, event_type: str, data: bytes) -> None:
        received = time.monotonic()
        self._last_event_at = time.time()
        self._events[event_type] += 1
        if event_type == "event_stream_attached":
            return  # our own attach already asked for a resync; another client's needs none
        values, bad = split_json(data)
        for piece in bad:
            self._malformed += 1
            logs.event(
                logging.WARNING, logs.MARATHON_EVENT_SKIPPED, logger=log,
                type=event_type, error="data is not JSON", data=f"{piece!r:.200}",
            )
        for value in values:
            if self._replay is not None:
                self._replay.append((event_type, value))
            self._apply(self._state.apply_event(event_type, value), received)

    def _apply(self, effect: EventEffect, received: float, *, notify: bool = True) -> None:
        if notify and self._on_backend_state is not None:
            for backend_id in effect.drain:
                self._tell_backend_state(backend_id, "drain")
            for backend_id in effect.remove:
                self._tell_backend_state(backend_id, "maint")
        if effect.refetch:
            self._refetch.update(effect.refetch)
            self._refetch_wanted.set()
        if effect.resync:
            self._resync_wanted.set()
        if effect.poll_deployments:
            self._deployments_wanted.set()
        if effect.changed:
            self._pending_event_t = received
            self._mark_dirty()

    def _tell_backend_state(self, backend_id: str, state: str) -> None:
        assert self._on_backend_state is not None
        try:
            self._on_backend_state(backend_id, state)
        except Exception:  # the consumer's failure must not stop the events that follow
            self._callback_errors += 1
            logs.event(
                logging.ERROR, logs.CALLBACK_FAILED, logger=log,
                exc_info=True, callback="on_backend_state", backend=backend_id, state=state,
            )

    # -- publishing -----------------------------------------------------------------------------

    def _host_resolved(self, name: str) -> None:
        # A host got an address after the table was built without it (the lookup outlasted
        # ``dns_wait``) or a new one (TTL refresh): the state sees its build is stale on the next
        # table(), which this asks for.
        self._mark_dirty()

    def _mark_dirty(self) -> None:
        self._dirty.set()

    async def _publisher(self) -> None:
        """At most one table per coalesce window: a change after a quiet window is built at once
        (the events of the loop turn that made it ride along), one made within a window of the last
        build waits for the window to end, with every change made meanwhile."""
        built_at = -self.coalesce
        while True:
            await self._dirty.wait()
            await asyncio.sleep(max(0.0, built_at + self.coalesce - time.monotonic()))
            built_at = time.monotonic()
            self._dirty.clear()
            if not self._synced:
                continue  # the first resync marks dirty again
            await self.hosts.settle(self._state.hostnames(), self.dns_wait)
            self._publish()
            # after the controller's publish of it (scheduled first), before the next event
            asyncio.get_running_loop().call_soon(self._state.warm)

    def _publish(self) -> None:
        try:
            table = self._state.table()
        except Exception:  # a bug in building must not stop following Marathon
            logs.event(logging.ERROR, logs.MARATHON_BUILD_FAILED, logger=log, exc_info=True, keeping="the last table")
            return
        event_t, self._pending_event_t = self._pending_event_t, None
        if table == self._published:
            return
        # Marked published even if on_change fails: the same table would fail the same way again,
        # and the next different one is tried.
        self._published = table
        self._tables += 1
        if self._on_change is not None:
            try:
                self._on_change(table)
            except Exception:
                self._callback_errors += 1
                logs.event(
                    logging.ERROR, logs.CALLBACK_FAILED, logger=log,
                    exc_info=True, callback="on_change", keeping="the table before it",
                )
                return
        if event_t is not None:
            self._latency_ms = (time.monotonic() - event_t) * 1000.0

    # -- fetching -------------------------------------------------------------------------------

    async def _periodic(self, interval: float, *, first: bool) -> None:
        if not first:
            await asyncio.sleep(interval)
        while True:
            self._resync_wanted.set()
            await asyncio.sleep(interval)

    async def _resync_worker(self) -> None:
        failures = 0
        period = self.resync_interval if self.sse else self.poll_interval
        while True:
            await self._resync_wanted.wait()
            self._resync_wanted.clear()
            if await self._do_resync():
                failures = 0
                continue
            # Events may be applied on a stale snapshot until a resync succeeds: retry sooner than
            # the period, backing off, rather than wait a whole period.
            failures += 1
            await asyncio.sleep(min(period, self._backoff(failures)))
            self._resync_wanted.set()

    async def _do_resync(self) -> bool:
        async with self._resync_lock:
            self._replay = []
            try:
                body = await self.client.apps()
            except (MarathonError, AuthError) as e:
                return self._resync_failed(f"fetching apps: {e}")
            finally:
                replay, self._replay = self._replay, None
            try:
                self._state.replace_all(body)
            except ValueError as e:
                return self._resync_failed(f"malformed /v2/apps answer, ignored: {e}")
            received = time.monotonic()
            for event_type, value in replay or ():
                self._apply(self._state.apply_event(event_type, value), received, notify=False)
            self._resyncs += 1
            self._last_resync_at = time.time()
            self._last_resync_error = None
            self._synced = True
            self._deployments_wanted.set()  # a deployment may be running that no event told of
            self._mark_dirty()
            return True

    def _resync_failed(self, error: str) -> bool:
        self._resync_failures += 1
        self._last_resync_error = error
        logs.event(
            logging.WARNING, logs.RESYNC_FAILED, logger=log,
            provider="marathon", error=error, keeping="the last good table",
        )
        return False

    async def _refetch_worker(self) -> None:
        failures = 0
        while True:
            await self._refetch_wanted.wait()
            await asyncio.sleep(self.coalesce)  # the events of one app in a burst make one fetch
            self._refetch_wanted.clear()
            app_ids, self._refetch = sorted(self._refetch), set()
            failed = [app_id for app_id in app_ids if not await self._refetch_app(app_id)]
            if not failed:
                failures = 0
                continue
            # Marathon could not answer: what the event could not say (new labels, ports) is tried
            # again with backoff rather than left to the next periodic resync.
            failures += 1
            await asyncio.sleep(min(self.resync_interval, self._backoff(failures)))
            self._refetch.update(failed)
            self._refetch_wanted.set()

    async def _refetch_app(self, app_id: str) -> bool:
        """Re-fetch one app into the state; False when Marathon could not be asked (retry)."""
        try:
            body = await self.client.app(app_id)
        except (MarathonError, AuthError) as e:
            logs.event(logging.WARNING, logs.MARATHON_APP_REFETCH_FAILED, logger=log, app=app_id, error=e)
            return False
        self._refetches += 1
        if body is None:
            self._state.remove_app(app_id)
        else:
            try:
                self._state.put_app(body)
            except ValueError as e:
                logs.event(
                    logging.WARNING, logs.MARATHON_APP_REFETCH_FAILED, logger=log,
                    app=app_id, error=f"malformed answer, ignored: {e}",
                )
                return True  # asking again would bring the same answer; the resync heals
        self._mark_dirty()
        return True

    async def _deployments_worker(self) -> None:
        while True:
            await self._deployments_wanted.wait()
            self._deployments_wanted.clear()
            try:
                body = await self.client.deployments()
            except (MarathonError, AuthError) as e:
                logs.event(logging.WARNING, logs.MARATHON_DEPLOYMENTS_FAILED, logger=log, error=e)
                await asyncio.sleep(self.deployments_interval)
                self._deployments_wanted.set()
                continue
            try:
                self._state.set_deployments(body)
            except ValueError as e:
                logs.event(
                    logging.WARNING, logs.MARATHON_DEPLOYMENTS_FAILED, logger=log,
                    error=f"malformed answer, ignored: {e}",
                )
            else:
                self._mark_dirty()
            if not _is_empty_list(body):
                await asyncio.sleep(self.deployments_interval)
                self._deployments_wanted.set()  # readiness results have no event: poll while one runs
