"""fastlb._core: the only bridge between Python and the C data plane (hand-written stubs)."""

from collections.abc import Mapping, Sequence
from typing import Any

from fastlb.spec import RouteTable

DEFAULT_COOKIE_KEY: bytes  # the sticky cookie key when none is given: the same in every fastlb
TLS_FAILURES: tuple[str, ...]  # why TLS handshakes failed, as stats() names them

class DataPlane:
    """N worker threads, each an epoll loop with its own SO_REUSEPORT copy of every listener.

    One DataPlane per process. Every method is called from the control thread only.
    """

    def __init__(
        self,
        workers: int,
        *,
        # The engine settings: defaults and ranges are spec.ENGINE_SETTINGS' (maxconn: spec.DEFAULT_MAXCONN);
        # a value out of its range is a ValueError naming the setting.
        maxconn: int = ...,  # all listeners together (a table's maxconn may lower it; 0: no cap)
        pipe_max: int = ...,  # splice pipes alive at most (pooled); beyond it, recv/send copies
        pipe_size: int = ...,  # F_SETPIPE_SZ for pooled pipes
        buffer_size: int = ...,  # per-direction user-space buffer for small messages
        splice_threshold: int = ...,  # a direction switches to splice once this much has flowed in one go
        pool_max: int = ...,  # HTTP mode: idle backend connections kept, all workers together (0: none)
        pool_idle_ms: int = ...,  # HTTP mode: an idle backend connection unused this long is closed
        fd_max: int = 0,  # descriptors it may hold (2 per pipe); at it, listeners wait unpolled (0: no cap)
        inherit: dict[str, list[int]] | None = None,  # listening fds taken over from an old process (upgrade)
        access_log_fd: int | None = None,  # one JSON line per HTTP request, written without blocking
        cookie_key: bytes | None = None,  # keys sticky-cookie values (None: DEFAULT_COOKIE_KEY, a fixed one)
    ) -> None: ...
    @property
    def workers(self) -> int: ...
    @property
    def generation(self) -> int: ...  # generation of the table now published (0: none yet)
    def trim(self, min_free: int = 4 << 20) -> bool:
        """Gives the allocator's free memory back to the system when it holds at least <min_free>
        bytes (buffers freed after a burst). True when some was given back."""
    def start(self) -> None:
        """Starts the worker threads (GIL released while they run). Returns at once."""
    def publish(self, table: RouteTable, *, partial: bool = False, rebind: bool = False) -> int:
        """Compiles <table>, opens the listeners it adds (raising OSError for one that cannot bind,
        in which case nothing is published; with <partial> that listener is left out instead, see
        unbound(), and tried again by a publish with <rebind> or one whose listeners change),
        publishes it with one atomic store and wakes every worker. Only the services that differ
        from the table before are compiled; the others, and the listeners and routes when they
        are the same, are shared with it. Listeners the new table keeps are untouched; those it drops
        are closed once no worker uses them. Established connections are never touched. Returns the
        new generation."""
    def unbound(self) -> dict[str, str]:
        """address -> why (strerror), for each listener the last publish(partial=True) left out."""
    @property
    def last_publish(self) -> dict[str, Any]:
        """What the last publish did: services (in the table), compiled (of those), listeners
        ("shared" or "opened"), routes ("shared" or "built")."""
    def set_backend_state(self, backend_id: str, state: str) -> bool:
        """'ready' | 'drain' | 'maint'. False if no table names this backend."""
    def set_backend_health(self, backend_id: str, up: bool) -> bool:
        """Also resets the passive failure count (consecutive failed connects)."""
    def backend_health(self, backend_id: str) -> bool | None:
        """True (up), False (down, by an active or a passive check), None: no table names it."""
    def set_backend_weight(self, backend_id: str, weight: int) -> bool: ...
    def set_ticket_keys(self, keys: Sequence[bytes], enc: int = 0) -> None: ...
    def set_certificates(
        self,
        certs: Sequence[tuple[bytes, tuple[str, ...]] | tuple[bytes, tuple[str, ...], Mapping[str, Any]]],
        handshake_ms: int = 10000,
        listeners: Mapping[str, Sequence[tuple[bytes, tuple[str, ...], Mapping[str, Any]]]] | None = None,
    ) -> None:
        """The certificates the TLS listeners of the next publish serve, the first the default; each PEM
        holds a certificate, its chain and its key; no names: it serves every name. ValueError for one
        that cannot be used (nothing changes)."""
    def engine_counters(self) -> dict[str, Any]: ...
    def request_counts(self) -> dict[str, int]: ...
    def stats(self) -> dict[str, Any]:
        """A snapshot of the C counters, read without pausing the workers:
        {"generation", "swaps", "active", "total",
         "accepts_held": {"maxconn", "fds"} (times a worker held a listener out of epoll, its clients
         left in the backlog: at a maxconn; at fd_max or out of fds), "accept_emfile" (accepts that
         failed EMFILE/ENFILE), "fd_max",
         "listeners": {address: {"active", "total", "refused"}},
         "services": {name: {"active", "total", "bytes_in", "bytes_out", "connect_errors", "retries",
                             "timeouts", "no_backend", "denied",
                             "http": {"requests", "own", "1xx", "2xx", "3xx", "4xx", "5xx", "other"}}},
         "backends": {id: {"service", "address", "state", "health", "weight", "active", "total",
                           "bytes_in", "bytes_out", "connect_errors", "retries", "timeouts", "requests",
                           "idle", "reused", "drain_since_ms",
                           "responses": {"1xx", "2xx", "3xx", "4xx", "5xx", "other"}}}}"""
    def stop_accepting(self) -> None:
        """Closes every listener; open connections carry on."""
    def active_connections(self) -> int: ...
    def close_all(self) -> None:
        """Closes every open connection (the drain deadline has passed)."""
    def stop(self) -> None:
        """Stops and joins the workers, closes everything, frees every table. Idempotent."""
    def listener_fds(self) -> dict[str, list[int]]:
        """Listening fds by address (hot upgrade hands them to a new process)."""

def tls_reads() -> int: ...
def live_counts() -> dict[str, int]:
    """fds, pipes, conns, tables, backends, listeners alive in the C core (tests assert these return to
    their baseline)."""
