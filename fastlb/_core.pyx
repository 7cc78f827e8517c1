# cython: language_level=3
"""fastlb._core: the only bridge between Python and the C data plane.

Each concept's Cython lives in its own _<concept>.pxi, included here so that everything compiles into
one C unit (the uvloop way). This file holds the engine's face, ``DataPlane``: it compiles a
``spec.RouteTable`` into a ``struct flb_table`` and drives the workers; the workers run C only."""

import os

from libc.errno cimport errno
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, strdup


from fastlb.includes.caddr cimport (FLB_ADDR_TEXT, flb_addr_format, flb_addr_parse, sockaddr,
                                    sockaddr_storage, socklen_t)
from fastlb.includes.capi cimport FLB_OK, flb_live
from fastlb.includes.cbackend cimport (FLB_ADMIN_DRAIN, FLB_ADMIN_MAINT, FLB_ADMIN_READY, FLB_HEALTH_DOWN,
                                       FLB_HEALTH_UP, flb_backend, flb_backend_find, flb_backend_get)
from fastlb.includes.cengine cimport (flb_engine, flb_engine_accepting, flb_engine_close_all,
                                      flb_engine_free, flb_engine_listener, flb_engine_new,
                                      flb_engine_options, flb_engine_publish, flb_engine_start,
                                      flb_engine_stop, flb_engine_stop_accepting, flb_engine_sweep,
                                      flb_engine_table)
from fastlb.includes.clistener cimport (flb_listener, flb_listener_get, flb_listener_new, flb_listener_open,
                                        flb_listener_put)
from fastlb.includes.croute cimport (FLB_BAL_LEASTCONN, FLB_BAL_MAGLEV, FLB_BAL_ROUNDROBIN, FLB_BAL_SOURCE,
                                     FLB_MODE_HTTP, FLB_MODE_TCP, flb_balance_build, flb_counters_get,
                                     flb_service, flb_service_alloc, flb_table, flb_table_new, flb_table_put)


def live_counts():
    """fds, pipes, conns, tables, backends, listeners alive in the C core."""
    return {
        "fds": flb_live.fds,
        "pipes": flb_live.pipes,
        "conns": flb_live.conns,
        "tables": flb_live.tables,
        "backends": flb_live.backends,
        "listeners": flb_live.listeners,
    }


_ALGOS = {
    "roundrobin": FLB_BAL_ROUNDROBIN,
    "leastconn": FLB_BAL_LEASTCONN,
    "maglev": FLB_BAL_MAGLEV,
    "source": FLB_BAL_SOURCE,
}
_MODES = {"tcp": FLB_MODE_TCP, "http": FLB_MODE_HTTP}
_ADMIN = {"ready": FLB_ADMIN_READY, "drain": FLB_ADMIN_DRAIN, "maint": FLB_ADMIN_MAINT}
_ADMIN_NAMES = {v: k for k, v in _ADMIN.items()}
_U32_MAX = 0xFFFFFFFF


cdef _parse(str address, sockaddr_storage *sa, socklen_t *length, str what):
    if flb_addr_parse(address.encode(), sa, length) != FLB_OK:
        raise ValueError(f"{what} address {address!r}: expected a numeric 'ip:port' or '[ipv6]:port'")


cdef str _format(const sockaddr *sa):
    cdef char text[FLB_ADDR_TEXT]
    if flb_addr_format(sa, text) != FLB_OK:
        return ""
    return text.decode()


cdef uint32_t _u32(object value, str what) except? 0:
    if not isinstance(value, int) or value < 0 or value > _U32_MAX:
        raise ValueError(f"{what}: {value!r} is not a count in 0..{_U32_MAX}")
    return value


cdef uint32_t _idle_ms(object t):
    """Idle limit of an established connection: the tunnel timeout, else the shorter of client and
    server (0: none)."""
    if t.tunnel_ms > 0:
        return t.tunnel_ms
    limits = [ms for ms in (t.client_ms, t.server_ms) if ms > 0]
    return min(limits) if limits else 0


cdef class _Plan:
    """A RouteTable checked and flattened: everything that can be wrong is found before any C state
    changes."""
    cdef list services      # [(service, [backend sorted by id])]
    cdef dict service_index # name -> index
    cdef list listeners     # [(address, service index, maxconn)]
    cdef dict addresses     # backend id -> address

    def __init__(self, table):
        cdef sockaddr_storage sa
        cdef socklen_t length
        self.services = []
        self.service_index = {}
        self.listeners = []
        self.addresses = {}
        _u32(table.maxconn, "table maxconn")
        for svc in table.services:
            if svc.name in self.service_index:
                raise ValueError(f"service {svc.name!r} is defined twice")
            if svc.mode not in _MODES:
                raise ValueError(f"service {svc.name!r}: unknown mode {svc.mode!r}")
            if svc.balance not in _ALGOS:
                raise ValueError(f"service {svc.name!r}: unknown balance {svc.balance!r}")
            for field in ("connect_ms", "client_ms", "server_ms", "tunnel_ms"):
                _u32(getattr(svc.timeouts, field), f"service {svc.name!r} timeouts.{field}")
            _u32(svc.retries, f"service {svc.name!r} retries")
            _u32(svc.maxconn, f"service {svc.name!r} maxconn")
            if len(svc.backends) > 65536:
                raise ValueError(f"service {svc.name!r}: {len(svc.backends)} backends, at most 65536")
            seen = set()
            for be in svc.backends:
                if be.id in seen:
                    raise ValueError(f"service {svc.name!r}: backend {be.id!r} is listed twice")
                seen.add(be.id)
                _parse(be.address, &sa, &length, f"service {svc.name!r} backend {be.id!r}")
                known = self.addresses.setdefault(be.id, be.address)
                if known != be.address:
                    raise ValueError(f"backend {be.id!r} names two addresses: {known!r} and {be.address!r}")
                if not isinstance(be.weight, int) or not 0 <= be.weight <= 256:
                    raise ValueError(f"service {svc.name!r} backend {be.id!r}: weight {be.weight!r} is not in 0..256")
                if be.state not in _ADMIN:
                    raise ValueError(f"service {svc.name!r} backend {be.id!r}: unknown state {be.state!r}")
            self.service_index[svc.name] = len(self.services)
            self.services.append((svc, sorted(svc.backends, key=lambda b: b.id)))
        seen_addresses = set()
        for lst in table.listeners:
            if lst.kind not in ("service", "vhost", "appid"):
                raise ValueError(f"listener {lst.address!r}: unknown kind {lst.kind!r}")
            _parse(lst.address, &sa, &length, "listener")
            if lst.address in seen_addresses:
                raise ValueError(f"listener {lst.address!r} is defined twice")
            seen_addresses.add(lst.address)
            _u32(lst.maxconn, f"listener {lst.address!r} maxconn")
            if lst.kind != "service":
                # vhost and appid listeners route each request on their own (_l7.pxi)
                self.listeners.append((lst.address, _U32_MAX, lst.maxconn))
                continue
            if lst.service not in self.service_index:
                raise ValueError(f"listener {lst.address!r}: no service named {lst.service!r}")
            self.listeners.append((lst.address, self.service_index[lst.service], lst.maxconn))


cdef class DataPlane:
    """N worker threads, each an epoll loop with its own SO_REUSEPORT copy of every listener.

    One DataPlane per process. Every method is called from the control thread only."""

    cdef flb_engine *e
    cdef uint32_t nworkers
    cdef bint started
    cdef bint stopped

    def __cinit__(self, int workers, *, maxconn=100000, pipe_max=1024, pipe_size=262144,
                  buffer_size=16384, splice_threshold=65536, access_log_fd=None, cookie_key=None):
        cdef flb_engine_options o
        if workers < 1 or workers > 1024:
            raise ValueError(f"workers: {workers!r} is not in 1..1024")
        o.workers = workers
        o.maxconn = _u32(maxconn, "maxconn")
        if not isinstance(pipe_max, int) or pipe_max < 0:
            raise ValueError(f"pipe_max: {pipe_max!r} is not a count")
        o.pipe_max = pipe_max
        if not isinstance(pipe_size, int) or not 0 <= pipe_size <= (1 << 30):
            raise ValueError(f"pipe_size: {pipe_size!r} is not in 0..2**30")
        o.pipe_size = pipe_size
        if not isinstance(buffer_size, int) or not 1024 <= buffer_size <= (1 << 26):
            raise ValueError(f"buffer_size: {buffer_size!r} is not in 1024..2**26")
        o.buffer_size = buffer_size
        if not isinstance(splice_threshold, int) or splice_threshold < 0:
            raise ValueError(f"splice_threshold: {splice_threshold!r} is not a count")
        o.splice_threshold = splice_threshold
        self.nworkers = workers
        self.e = flb_engine_new(&o)
        if self.e == NULL:
            raise OSError(errno, os.strerror(errno))
        _l7_configure(self, access_log_fd, cookie_key)

    def __dealloc__(self):
        if self.e != NULL:
            with nogil:
                flb_engine_free(self.e)
            self.e = NULL

    @property
    def workers(self):
        return self.nworkers

    @property
    def generation(self):
        return self.e.generation

    def start(self):
        """Starts the worker threads (GIL released while they run). Returns at once."""
        if self.stopped:
            raise RuntimeError("this DataPlane has been stopped")
        if self.started:
            raise RuntimeError("this DataPlane is already started")
        if flb_engine_start(self.e) != FLB_OK:
            raise OSError(errno, os.strerror(errno))
        self.started = True

    def publish(self, table):
        """Compiles <table>, opens the listeners it adds (raising OSError for one that cannot bind,
        in which case nothing is published), publishes it with one atomic store and wakes every
        worker; returns once every worker has adopted it. Returns the new generation."""
        cdef flb_table *t
        cdef flb_listener *l
        cdef uint64_t gen
        cdef list opened = []
        cdef list kept = []
        if self.stopped:
            raise RuntimeError("this DataPlane has been stopped")
        plan = _Plan(table)
        # Listeners first: the only step that can fail for reasons outside the table.
        try:
            for address, _, _ in plan.listeners:
                l = flb_engine_listener(self.e, address.encode())
                if l != NULL:
                    kept.append(<size_t>flb_listener_get(l))
                    continue
                l = _listener_new(address, self.nworkers)
                opened.append(<size_t>l)
                if flb_engine_accepting(self.e) and flb_listener_open(l) != FLB_OK:
                    err = errno
                    raise OSError(err, f"{os.strerror(err)}: cannot listen on {address}", address)
        except BaseException:
            for p in opened:
                flb_listener_put(<flb_listener *><size_t>p)
            for p in kept:
                flb_listener_put(<flb_listener *><size_t>p)
            raise
        t = flb_table_new(len(plan.services), len(plan.listeners))
        if t == NULL:
            for p in opened + kept:
                flb_listener_put(<flb_listener *><size_t>p)
            raise MemoryError()
        # From here on the listeners belong to the table: freeing it closes and puts them.
        by_address = {}
        for p in opened + kept:
            l = <flb_listener *><size_t>p
            by_address[l.address.decode()] = p
        for i, (address, service, maxconn) in enumerate(plan.listeners):
            t.lst[i].l = <flb_listener *><size_t>by_address[address]
            t.lst[i].service = service
            t.lst[i].maxconn = maxconn
        t.maxconn = table.maxconn
        try:
            for i, (svc, backends) in enumerate(plan.services):
                self._compile_service(&t.svc[i], svc, backends)
            _l7_compile(self, t, table, plan)
        except BaseException:
            flb_table_put(t)
            flb_engine_sweep(self.e)
            raise
        with nogil:
            gen = flb_engine_publish(self.e, t)
        return gen

    cdef _compile_service(self, flb_service *s, object svc, list backends):
        cdef flb_backend *b
        s.name = strdup(svc.name.encode())
        s.c = flb_counters_get(self.e.counters, svc.name.encode())
        if s.name == NULL or s.c == NULL or flb_service_alloc(s, len(backends)) != FLB_OK:
            raise MemoryError()
        s.mode = _MODES[svc.mode]
        s.connect_ms = svc.timeouts.connect_ms
        s.idle_ms = _idle_ms(svc.timeouts)
        s.retries = svc.retries
        s.maxconn = svc.maxconn
        for j, be in enumerate(backends):
            b = flb_backend_get(self.e.backends, be.id.encode())
            if b == NULL:
                raise MemoryError()
            s.be[j] = b
            _parse(be.address, &s.addr[j], &s.addrlen[j], "backend")
            # The record's address is for stats and the control plane; workers connect to the
            # table's copy, so changing it never races with a connect.
            memcpy(&b.addr, &s.addr[j], sizeof(sockaddr_storage))
            b.addrlen = s.addrlen[j]
            b.weight = be.weight
            b.admin = _ADMIN[be.state]
        if s.nbe > 0:
            if flb_balance_build(&s.bal, _ALGOS[svc.balance], s.be, s.nbe, self.nworkers) != FLB_OK:
                raise OSError(errno, f"{os.strerror(errno)}: cannot build the balancer of {svc.name}")
            s.bal_built = 1

    cdef flb_backend *_backend(self, str backend_id):
        cdef flb_backend *b = flb_backend_find(self.e.backends, backend_id.encode())
        if b == NULL or b.refs == 0:
            return NULL
        return b

    def set_backend_state(self, str backend_id, str state):
        """'ready' | 'drain' | 'maint'. False if no table names this backend."""
        if state not in _ADMIN:
            raise ValueError(f"backend state {state!r}: expected one of {sorted(_ADMIN)}")
        cdef flb_backend *b = self._backend(backend_id)
        if b == NULL:
            return False
        b.admin = _ADMIN[state]
        return True

    def set_backend_health(self, str backend_id, bint up):
        cdef flb_backend *b = self._backend(backend_id)
        if b == NULL:
            return False
        b.health = FLB_HEALTH_UP if up else FLB_HEALTH_DOWN
        return True

    def set_backend_weight(self, str backend_id, int weight):
        if not 0 <= weight <= 256:
            raise ValueError(f"backend weight {weight!r} is not in 0..256")
        cdef flb_backend *b = self._backend(backend_id)
        if b == NULL:
            return False
        b.weight = weight
        return True

    def stats(self):
        """A snapshot of the C counters, read without pausing the workers."""
        cdef flb_table *t = flb_engine_table(self.e)
        cdef flb_service *s
        cdef flb_backend *b
        cdef flb_listener *l
        out = {
            "generation": self.e.generation,
            "swaps": self.e.swaps,
            "active": self.e.active,
            "total": self.e.total,
            "listeners": {},
            "services": {},
            "backends": {},
        }
        if t == NULL:
            return out
        try:
            for i in range(t.nlst):
                l = t.lst[i].l
                out["listeners"][l.address.decode()] = {
                    "active": l.active, "total": l.total, "refused": l.refused,
                }
            for i in range(t.nsvc):
                s = &t.svc[i]
                name = s.name.decode()
                out["services"][name] = {
                    "active": s.c.active, "total": s.c.total,
                    "bytes_in": s.c.bytes_in, "bytes_out": s.c.bytes_out,
                    "connect_errors": s.c.connect_errors, "retries": s.c.retries,
                    "timeouts": s.c.timeouts, "no_backend": s.c.no_backend,
                }
                for j in range(s.nbe):
                    b = s.be[j]
                    bid = b.id.decode()
                    if bid in out["backends"]:
                        continue
                    out["backends"][bid] = {
                        "service": name,
                        "address": _format(<const sockaddr *>&b.addr),
                        "state": _ADMIN_NAMES.get(b.admin, "ready"),
                        "health": "down" if b.health == FLB_HEALTH_DOWN else "up",
                        "weight": b.weight,
                        "active": b.active,
                        "total": b.c.conn_total,
                        "bytes_in": b.c.bytes_in,
                        "bytes_out": b.c.bytes_out,
                        "connect_errors": b.c.connect_errors,
                        "retries": b.c.retries,
                        "timeouts": b.c.timeouts,
                        "requests": b.c.requests,
                    }
            _l7_stats(self, out, t)
        finally:
            flb_table_put(t)
        return out

    def stop_accepting(self):
        """Closes every listener; open connections carry on."""
        with nogil:
            flb_engine_stop_accepting(self.e)

    def active_connections(self):
        return self.e.active

    def close_all(self):
        """Closes every open connection (the drain deadline has passed)."""
        with nogil:
            flb_engine_close_all(self.e)

    def stop(self):
        """Stops and joins the workers, closes everything, frees every table. Idempotent."""
        with nogil:
            flb_engine_stop(self.e)
        self.stopped = True

    def listener_fds(self):
        """Listening fds by address (hot upgrade hands them to a new process)."""
        cdef flb_table *t = flb_engine_table(self.e)
        cdef flb_listener *l
        out = {}
        if t == NULL:
            return out
        for i in range(t.nlst):
            l = t.lst[i].l
            fds = [l.fd[k] for k in range(l.nworkers) if l.fd[k] != -1]
            if fds:
                out[l.address.decode()] = fds
        flb_table_put(t)
        return out


cdef flb_listener *_listener_new(str address, uint32_t nworkers) except NULL:
    cdef sockaddr_storage sa
    cdef socklen_t length
    _parse(address, &sa, &length, "listener")
    cdef flb_listener *l = flb_listener_new(address.encode(), <const sockaddr *>&sa, length, nworkers)
    if l == NULL:
        raise MemoryError()
    return l


include "_balance.pxi"
include "_http1.pxi"
include "_l7.pxi"
