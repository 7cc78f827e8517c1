# cython: language_level=3
"""fastlb._core: the only bridge between Python and the C data plane.

Each concept's Cython lives in its own _<concept>.pxi, included here so that everything compiles into
one C unit (the uvloop way). The hooks through which tests reach single C units are not here: they are
fastlb._testhooks (_testhooks.pyx), a separate extension that only tests import. This file holds the engine's face, ``DataPlane``: it compiles a
``spec.RouteTable`` into a ``struct flb_table`` and drives the workers; the workers run C only."""

import ipaddress
import os
import time

from fastlb import spec

from libc.errno cimport errno
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc
from libc.string cimport memcpy, memset, strdup


from fastlb.includes.caddr cimport (FLB_ADDR_TEXT, flb_addr_format, flb_addr_parse, sockaddr,
                                    sockaddr_storage, socklen_t)
from fastlb.includes.capi cimport FLB_ERR, FLB_OK, flb_live
from fastlb.includes.ctls cimport flb_tls_live, flb_tls_reads
from fastlb.includes.cbackend cimport (FLB_ADMIN_DRAIN, FLB_ADMIN_MAINT, FLB_ADMIN_READY, FLB_HEALTH_DOWN,
                                       FLB_HEALTH_UP, flb_backend, flb_backend_find, flb_backend_get)
from fastlb.includes.cbalance cimport (FLB_BAL_LEASTCONN, FLB_BAL_MAGLEV, FLB_BAL_ROUNDROBIN, FLB_BAL_SOURCE,
                                       flb_balance_algo, flb_balance_build)
from fastlb.includes.cdrain cimport flb_drains, flb_drains_free, flb_drains_new, flb_drains_sort
from fastlb.includes.cengine cimport (flb_engine, flb_engine_accepting, flb_engine_close_all, flb_engine_set_drains,
                                      flb_engine_free, flb_engine_new,
                                      flb_engine_options, flb_engine_publish, flb_engine_start,
                                      flb_engine_stop, flb_engine_stop_accepting, flb_engine_sweep, flb_engine_trim,
                                      flb_engine_table)
from fastlb.includes.clistener cimport (flb_listener, flb_listener_adopt, flb_listener_get, flb_listener_new,
                                        flb_listener_open, flb_listener_overlap, flb_listener_probe,
                                        flb_listener_put)
from fastlb.includes.cevloop cimport flb_now_ms
from fastlb.includes.croute cimport (FLB_MODE_HTTP, FLB_MODE_TCP, flb_counters_get, flb_cidr, flb_mode, flb_service,
                                     flb_service_alloc, flb_service_counters, flb_table, flb_table_new, flb_table_put,
                                     flb_table_reuse)


def live_counts():
    """fds, pipes, conns, tables, backends, listeners alive in the C core."""
    return {
        "fds": flb_live.fds,
        "pipes": flb_live.pipes,
        "conns": flb_live.conns,
        "tables": flb_live.tables,
        "backends": flb_live.backends,
        "listeners": flb_live.listeners,
        "tls": flb_tls_live,
    }


def tls_reads():
    """PEMs the data plane has parsed so far (certificate, chain and key each): a set made again reads
    only the PEMs the sets serving now do not hold."""
    return flb_tls_reads


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


# The engine settings' defaults and ranges are declared once, in spec.ENGINE_SETTINGS; the keywords
# below default to them and are held to them (the static file is checked against the same ranges).
_ENGINE = spec.ENGINE_SETTINGS
_DEFAULT = {name: setting.default for name, setting in _ENGINE.items()}


cdef object _setting(str name, object value):
    if not isinstance(value, int):
        raise ValueError(f"{name}: {value!r} is not an integer")
    refusal = _ENGINE[name].refusal(value)
    if refusal is not None:
        raise ValueError(f"{name}: {value!r} {refusal}")
    return value


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


cdef class _Svc:
    """One spec.Service checked and flattened into C-ready arrays (backends sorted by id). Frozen
    services are often handed over again unchanged from one table to the next: a publish reuses the
    previous publish's _Svc of the very same object instead of checking it again."""
    cdef object svc
    cdef bytes name
    cdef int mode
    cdef int algo
    cdef uint32_t connect_ms, idle_ms, retries, maxconn, drain_ms, queue_ms
    cdef uint32_t n
    cdef uint32_t *bemax      # [n] each backend's maxconn (0: none); NULL when none has one
    cdef list ids             # [bytes] backend ids, sorted
    cdef dict addresses       # backend id -> address, for the cross-service check
    cdef sockaddr_storage *sa # [n]
    cdef socklen_t *salen     # [n]
    cdef uint32_t *weight     # [n]
    cdef uint32_t *admin      # [n]
    cdef uint32_t *fall       # [n] passive health threshold: the active check's fall, 0 without a check
    cdef uint8_t *start_down  # [n] a new record starts down (its check has require_pass)
    cdef uint32_t nallow
    cdef flb_cidr *allow      # [nallow] the source allow-list (tcp mode; http mode answers itself)
    cdef list drained         # [str] the ids of the backends the service drains
    cdef int slot             # its index in the table last published, -1: not in it (compiled anew)

    def __dealloc__(self):
        PyMem_Free(self.sa)
        PyMem_Free(self.salen)
        PyMem_Free(self.weight)
        PyMem_Free(self.admin)
        PyMem_Free(self.fall)
        PyMem_Free(self.start_down)
        PyMem_Free(self.bemax)
        PyMem_Free(self.allow)

    def __init__(self, svc):
        cdef uint32_t j = 0
        name = svc.name
        self.svc = svc
        self.name = name.encode()
        mode = _MODES.get(svc.mode)
        if mode is None:
            raise ValueError(f"service {name!r}: unknown mode {svc.mode!r}")
        algo = _ALGOS.get(svc.balance)
        if algo is None:
            raise ValueError(f"service {name!r}: unknown balance {svc.balance!r}")
        self.mode = mode
        self.algo = algo
        t = svc.timeouts
        for field in ("connect_ms", "client_ms", "server_ms", "tunnel_ms"):
            _u32(getattr(t, field), f"service {name!r} timeouts.{field}")
        self.connect_ms = t.connect_ms
        self.idle_ms = _idle_ms(t)
        self.retries = _u32(svc.retries, f"service {name!r} retries")
        self.maxconn = _u32(svc.maxconn, f"service {name!r} maxconn")
        self.drain_ms = _u32(svc.drain_timeout_ms, f"service {name!r} drain_timeout_ms")
        # HAProxy's default: a queue timeout as long as the connect timeout
        self.queue_ms = _u32(t.queue_ms or t.connect_ms or 3000, f"service {name!r} timeouts.queue_ms")
        _u32(svc.backend_maxconn, f"service {name!r} backend_maxconn")
        cidrs = svc.http.allow_cidrs
        self.allow = <flb_cidr *>PyMem_Malloc((len(cidrs) or 1) * sizeof(flb_cidr))
        if self.allow == NULL:
            raise MemoryError()
        for k, text in enumerate(cidrs):
            try:
                network = ipaddress.ip_network(text, strict=False)
            except (ValueError, TypeError):
                raise ValueError(f"service {name!r}: allow_cidrs[{k}] {text!r} is not an address or CIDR") from None
            packed = network.network_address.packed
            self.allow[k].len = len(packed)
            self.allow[k].bits = network.prefixlen
            memset(self.allow[k].net, 0, 16)
            memcpy(self.allow[k].net, <const char *>packed, len(packed))
        self.nallow = len(cidrs)
        backends = svc.backends
        if len(backends) > 65536:
            raise ValueError(f"service {name!r}: {len(backends)} backends, at most 65536")
        self.n = len(backends)
        self.sa = <sockaddr_storage *>PyMem_Malloc((self.n or 1) * sizeof(sockaddr_storage))
        self.salen = <socklen_t *>PyMem_Malloc((self.n or 1) * sizeof(socklen_t))
        self.weight = <uint32_t *>PyMem_Malloc((self.n or 1) * sizeof(uint32_t))
        self.admin = <uint32_t *>PyMem_Malloc((self.n or 1) * sizeof(uint32_t))
        self.fall = <uint32_t *>PyMem_Malloc((self.n or 1) * sizeof(uint32_t))
        self.start_down = <uint8_t *>PyMem_Malloc((self.n or 1) * sizeof(uint8_t))
        if (self.sa == NULL or self.salen == NULL or self.weight == NULL or self.admin == NULL or
                self.fall == NULL or self.start_down == NULL):
            raise MemoryError()
        self.ids = []
        self.addresses = {}
        self.drained = []
        self.slot = -1
        if svc.backend_maxconn or any(be.maxconn for be in backends):
            self.bemax = <uint32_t *>PyMem_Malloc((self.n or 1) * sizeof(uint32_t))
            if self.bemax == NULL:
                raise MemoryError()
        for be in sorted(backends, key=_backend_id):
            bid = be.id
            address = be.address
            if bid in self.addresses:
                raise ValueError(f"service {name!r}: backend {bid!r} is listed twice")
            self.addresses[bid] = address
            self.ids.append(bid.encode())
            if flb_addr_parse(address.encode(), &self.sa[j], &self.salen[j]) != FLB_OK:
                raise ValueError(f"service {name!r} backend {bid!r} address {address!r}: "
                                 f"expected a numeric 'ip:port' or '[ipv6]:port'")
            weight = be.weight
            if not isinstance(weight, int) or not 0 <= weight <= 256:
                raise ValueError(f"service {name!r} backend {bid!r}: weight {weight!r} is not in 0..256")
            self.weight[j] = weight
            admin = _ADMIN.get(be.state)
            if admin is None:
                raise ValueError(f"service {name!r} backend {bid!r}: unknown state {be.state!r}")
            self.admin[j] = admin
            if admin == FLB_ADMIN_DRAIN:
                self.drained.append(bid)
            if self.bemax != NULL:
                self.bemax[j] = _u32(be.maxconn or svc.backend_maxconn, f"service {name!r} backend {bid!r} maxconn")
            check = be.check
            if check is None:
                self.fall[j] = 0
                self.start_down[j] = 0
            else:
                self.fall[j] = _u32(check.fall, f"service {name!r} backend {bid!r} check.fall")
                self.start_down[j] = bool(check.require_pass)
            j += 1
        _l7_check_service(svc)


def _backend_id(be):
    return be.id


cdef void _restate(flb_service *s, _Svc v) noexcept:
    """The table's weight and state of each backend of <s> (shared, not compiled again) back on its
    record, as a compile puts them: a publish says them again, whatever was set since."""
    cdef uint32_t j
    for j in range(v.n):
        s.be[j].weight = v.weight[j]
        s.be[j].admin = v.admin[j]


cdef uint32_t _shorter(uint32_t a, uint32_t b):
    """The shorter of two limits where 0 means none."""
    if a == 0 or (b != 0 and b < a):
        return b
    return a


cdef class _Plan:
    """A RouteTable checked and flattened: everything that can be wrong is found before any C state
    changes. Made from the last publish's plan by _patch when only services changed in place."""
    cdef object table
    cdef list services      # [_Svc]
    cdef dict service_index # name -> index
    cdef list listeners     # [(address, service index, maxconn, kind)]
    cdef dict addresses     # backend id -> address
    cdef set drained        # indices of the services that drain a backend
    cdef list changed       # _patch: the indices of the services compiled anew; None: a whole plan
    cdef bint same_routes   # _patch: the listeners' HTTP side and the routes are the last plan's
    cdef list undo          # _patch: [(backend id, its address before or None)]: <addresses> is the
                            # last plan's, changed in place, and restored if this one is not published

    cdef rollback(self):
        for bid, address in reversed(self.undo or ()):
            if address is None:
                self.addresses.pop(bid, None)
            else:
                self.addresses[bid] = address
        self.undo = None

    def __init__(self, table, dict previous):
        """<previous>: id(service) -> _Svc of the last publish, reused for the same objects."""
        cdef sockaddr_storage sa
        cdef socklen_t length
        cdef _Svc entry
        self.table = table
        self.services = []
        self.service_index = {}
        self.listeners = []
        self.addresses = {}
        self.drained = set()
        self.changed = None
        self.same_routes = False
        _u32(table.maxconn, "table maxconn")
        for svc in table.services:
            entry = previous.get(id(svc))
            if entry is None or entry.svc is not svc:
                entry = _Svc(svc)
            name = svc.name
            if name in self.service_index:
                raise ValueError(f"service {name!r} is defined twice")
            # A backend named by several services must name one address (one record, one address).
            for bid in self.addresses.keys() & entry.addresses.keys():
                if self.addresses[bid] != entry.addresses[bid]:
                    raise ValueError(f"backend {bid!r} names two addresses: {self.addresses[bid]!r} and "
                                     f"{entry.addresses[bid]!r}")
            self.addresses.update(entry.addresses)
            if entry.drained:
                self.drained.add(len(self.services))
            self.service_index[name] = len(self.services)
            self.services.append(entry)
        seen_addresses = set()
        for lst in table.listeners:
            if lst.kind not in ("service", "vhost", "appid"):
                raise ValueError(f"listener {lst.address!r}: unknown kind {lst.kind!r}")
            if lst.tls and lst.kind == "appid":
                raise ValueError(f"listener {lst.address!r}: TLS is terminated on vhost and service listeners "
                                 "(an appid listener's requests are routed by a header)")
            _parse(lst.address, &sa, &length, "listener")
            if lst.address in seen_addresses:
                raise ValueError(f"listener {lst.address!r} is defined twice")
            seen_addresses.add(lst.address)
            _u32(lst.maxconn, f"listener {lst.address!r} maxconn")
            if lst.kind != "service":
                # vhost and appid listeners route each request on their own (_l7.pxi)
                self.listeners.append((lst.address, _U32_MAX, lst.maxconn, lst.kind))
                continue
            if lst.service not in self.service_index:
                raise ValueError(f"listener {lst.address!r}: no service named {lst.service!r}")
            self.listeners.append((lst.address, self.service_index[lst.service], lst.maxconn, lst.kind))


cdef tuple _http_shape(object svc):
    """What of a service the listeners' HTTP side and the routes depend on (_l7_compile)."""
    t = svc.timeouts
    return (svc.mode, svc.app_id, t.http_request_ms, t.http_keepalive_ms)


cdef _Plan _patch(_Plan last, object table):
    """The plan of <table> made from <last> when the two differ only in services replaced in place
    (same names at the same indices; the listeners and routes equal): the work is that of the
    services that changed, a pointer comparison for the others. None when the table differs
    otherwise (then a whole plan is made)."""
    cdef _Plan plan
    cdef _Svc old, entry
    cdef Py_ssize_t i
    before = last.table
    if (table.maxconn != before.maxconn or len(table.services) != len(before.services)
            or not (table.listeners is before.listeners or table.listeners == before.listeners)):
        return None
    changed = [i for i, (a, b) in enumerate(zip(table.services, before.services)) if a is not b]
    plan = _Plan.__new__(_Plan)
    plan.table = table
    plan.service_index = last.service_index
    plan.listeners = last.listeners
    plan.changed = changed
    plan.same_routes = ((table.http_routes is before.http_routes or table.http_routes == before.http_routes)
                        and (table.sni_routes is before.sni_routes or table.sni_routes == before.sni_routes))
    if not changed:
        plan.services, plan.addresses, plan.drained = last.services, last.addresses, last.drained
        return plan
    plan.services = list(last.services)
    plan.addresses = last.addresses
    plan.undo = undo = []
    plan.drained = set(last.drained)
    for i in changed:
        svc = table.services[i]
        old = last.services[i]
        if svc.name != old.svc.name:
            plan.rollback()
            return None
        entry = _Svc(svc)
        for bid in old.addresses.keys() - entry.addresses.keys():
            undo.append((bid, plan.addresses.pop(bid, None)))
        for bid, address in entry.addresses.items():
            before = plan.addresses.get(bid)
            if before is not None and before != address:
                plan.rollback()
                return None  # perhaps two addresses for one backend: the whole plan says
            undo.append((bid, before))
            plan.addresses[bid] = address
        if _http_shape(svc) != _http_shape(old.svc):
            plan.same_routes = False
        plan.drained.discard(i)
        if entry.drained:
            plan.drained.add(i)
        plan.services[i] = entry
    return plan


cdef class DataPlane:
    """N worker threads, each an epoll loop with its own SO_REUSEPORT copy of every listener.

    One DataPlane per process. Every method is called from the control thread only."""

    cdef flb_engine *e
    cdef uint32_t nworkers
    cdef bint started
    cdef bint stopped
    cdef _Plan plan     # of the table last published (None: none yet); the next one is made from it
    cdef dict _unbound  # address -> why: the listeners of that table left out, as they could not bind
    cdef dict work      # what the last publish did (last_publish)
    cdef list served    # its listeners, as _Plan lists them, less those left out
    cdef bint restate   # a backend's weight or state was set since the last publish (see _restate)
    cdef dict inherited # address -> [listening fd] handed over by a running fastlb (hot upgrade)
    cdef dict draining # backend id -> [since (flb_now_ms), since (unix ms), drain_ms]: see _drain.h
    cdef object certs  # _Certs the TLS listeners of the next publish serve (_tls.pxi), or None
    cdef uint32_t handshake_ms  # the TLS listeners' handshake timeout (a ClientHello's, when passed through)
    cdef bint certs_changed  # set_certificates since the last publish: the listeners' TLS side is built again
    cdef dict listener_certs  # address -> _Certs of a listener with certificates of its own (a service's)
    cdef object tickets  # _Tickets: the session ticket keys of every certificate set (_tls.pxi)

    def __cinit__(self, int workers, *, maxconn=spec.DEFAULT_MAXCONN, pipe_max=_DEFAULT["pipe_max"],
                  pipe_size=_DEFAULT["pipe_size"], buffer_size=_DEFAULT["buffer_size"],
                  splice_threshold=_DEFAULT["splice_threshold"], pool_max=_DEFAULT["pool_max"],
                  pool_idle_ms=_DEFAULT["pool_idle_ms"], fd_max=0, inherit=None, access_log_fd=None,
                  cookie_key=None):
        cdef flb_engine_options o
        if workers < 1:  # the file's 0 (one per CPU) is resolved before
            raise ValueError(f"workers: {workers!r} is out of range (1..{_ENGINE['workers'].high})")
        o.workers = _setting("workers", workers)
        o.maxconn = _setting("maxconn", maxconn)
        o.pipe_max = _setting("pipe_max", pipe_max)
        o.pipe_size = _setting("pipe_size", pipe_size)
        o.buffer_size = _setting("buffer_size", buffer_size)
        o.splice_threshold = _setting("splice_threshold", splice_threshold)
        o.pool_max = _setting("pool_max", pool_max)
        o.pool_idle_ms = _setting("pool_idle_ms", pool_idle_ms)
        o.fd_max = _u32(fd_max, "fd_max")
        self.nworkers = workers
        self.handshake_ms = 10000
        self.certs_changed = False
        self.tickets = _Tickets()
        (<_Tickets>self.tickets).set([os.urandom(80)], 0)  # until set_ticket_keys: one key of this process's
        self.plan = None
        self.served = []
        self.work = {}
        self._unbound = {}
        self.draining = {}
        self.inherited = {}
        for address, fds in (inherit or {}).items():
            if not isinstance(address, str) or not all(isinstance(fd, int) and fd >= 0 for fd in fds):
                raise ValueError(f"inherit: expected {{address: [fd, ...]}}, got {address!r}: {fds!r}")
            self.inherited[address] = list(fds)
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

    def publish(self, table, *, partial=False, rebind=False):
        """Compiles <table>, opens the listeners it adds, publishes it with one atomic store and
        wakes every worker; returns once every worker has adopted it. Returns the new generation.

        A listener that cannot bind raises OSError, and nothing is published; with <partial>, it is
        left out of the table instead (unbound() says which and why), and tried again by a publish
        with <rebind> or one whose listeners change. Only the services that differ from the table last published are compiled: the
        others, and the listeners and routes when they are the same, are shared with it."""
        cdef flb_table *t
        cdef flb_table *old
        cdef flb_l7_table *lt
        cdef flb_listener *l
        cdef uint64_t gen
        cdef uint32_t i
        cdef _Svc entry
        cdef _Plan plan = None
        if self.stopped:
            raise RuntimeError("this DataPlane has been stopped")
        if self.plan is not None:
            plan = _patch(self.plan, table)
        if plan is None:
            plan = _Plan(table, {id((<_Svc>e).svc): e for e in self.plan.services} if self.plan is not None else {})
        old = flb_engine_table(self.e)
        published_ok = False
        try:
            if (plan.changed is not None and old != NULL and old.nlst == len(self.served)
                    and not (self._unbound and (rebind or not partial))):
                # The very listeners of the table serving (those left out still out): shared as they are.
                t = flb_table_new(len(plan.services), old.nlst)
                if t == NULL:
                    raise MemoryError()
                for i in range(old.nlst):
                    t.lst[i] = old.lst[i]
                    flb_listener_get(t.lst[i].l)
                served = self.served
                unbound = self._unbound
                listeners = "shared"
            else:
                address_t, served, unbound = self._open_listeners(plan, partial)
                t = <flb_table *><size_t>address_t
                plan.same_routes = False
                listeners = "opened"
            t.maxconn = table.maxconn
            try:
                lt = flb_l7_table_new(len(plan.services), t.nlst)
                if lt == NULL:
                    raise MemoryError()
                flb_l7_attach(t, lt)
                compiled = 0
                for i in range(len(plan.services)):
                    entry = plan.services[i]
                    if entry.slot >= 0 and old != NULL and <uint32_t>entry.slot < old.nsvc:
                        flb_table_reuse(t, i, old, entry.slot)
                        if self.restate:
                            _restate(&t.svc[i], entry)
                    else:
                        self._compile_service(&t.svc[i], entry)
                        _l7_service(flb_l7_of(self.e), &lt.svc[i], entry.svc, entry.ids, t.svc[i].c)
                        compiled += 1
                if plan.same_routes and not self.certs_changed and old != NULL and flb_l7_table_of(old) != NULL:
                    flb_l7_table_reuse_routes(lt, flb_l7_table_of(old))
                    routes = "shared"
                else:
                    _l7_routes(self, lt, table, plan, served)
                    routes = "built"
            except BaseException:
                flb_table_put(t)
                flb_engine_sweep(self.e)
                raise
            published_ok = True
            self.certs_changed = False
        finally:
            if old != NULL:
                flb_table_put(old)
            if not published_ok:
                plan.rollback()
        with nogil:
            gen = flb_engine_publish(self.e, t)
        # The services now serving are where the next publish finds them.
        if plan.changed is None:
            for i in range(len(plan.services)):
                (<_Svc>plan.services[i]).slot = i
        else:
            for i in plan.changed:
                (<_Svc>plan.services[i]).slot = i
        plan.undo = None
        self.plan = plan
        self.served = served
        self.restate = False
        self._unbound = unbound
        self.work = {"services": len(plan.services), "compiled": compiled, "listeners": listeners, "routes": routes}
        self._follow_drains(plan)
        self._close_inherited()
        return gen

    def unbound(self):
        """address -> why, for each listener of the table published that was left out because it
        could not bind (publish(partial=True))."""
        return dict(self._unbound)

    @property
    def last_publish(self):
        """What the last publish did: {"services": in the table, "compiled": of those, compiled (the
        others were shared with the table before), "listeners": "shared" (the table before's, as
        they were) or "opened" (each looked up, the new ones opened), "routes": "shared" or
        "built" (the listeners' HTTP side and the vhost and app-id routes)}."""
        return dict(self.work or {})

    cdef tuple _open_listeners(self, _Plan plan, bint partial):
        """A new table holding the listeners of <plan>: those the table serving has, and the new
        ones opened. Returns (the table's address, the listeners in it, address -> why for those left out)."""
        cdef flb_listener *l
        cdef flb_table *t
        cdef list opened = []
        cdef list kept = []
        cdef list served = []
        cdef dict unbound = {}
        published = self._published_listeners()
        by_port = {}
        for address, p in published.items():
            by_port.setdefault(_port(address), []).append(p)
        # Listeners first: the only step that can fail for reasons outside the table.
        try:
            for entry in plan.listeners:
                address = entry[0]
                p = published.get(address)
                if p is not None:
                    kept.append(<size_t>flb_listener_get(<flb_listener *><size_t>p))
                    served.append(entry)
                    continue
                l = _listener_new(address, self.nworkers)
                if flb_engine_accepting(self.e) and self._listener_open(l, address, by_port) != FLB_OK:
                    err = errno
                    flb_listener_put(l)
                    if not partial:
                        raise OSError(err, f"{os.strerror(err)}: cannot listen on {address}", address)
                    unbound[address] = os.strerror(err)
                    continue
                opened.append(<size_t>l)
                by_port.setdefault(_port(address), []).append(<size_t>l)
                served.append(entry)
        except BaseException:
            for p in opened:
                flb_listener_put(<flb_listener *><size_t>p)
            for p in kept:
                flb_listener_put(<flb_listener *><size_t>p)
            raise
        t = flb_table_new(len(plan.services), len(served))
        if t == NULL:
            for p in opened + kept:
                flb_listener_put(<flb_listener *><size_t>p)
            raise MemoryError()
        # From here on the listeners belong to the table: freeing it closes and puts them.
        by_address = {}
        for p in opened + kept:
            l = <flb_listener *><size_t>p
            by_address[l.address.decode()] = p
        for i, (address, service, maxconn, _) in enumerate(served):
            t.lst[i].l = <flb_listener *><size_t>by_address[address]
            t.lst[i].service = service
            t.lst[i].maxconn = maxconn
        return <size_t>t, served, unbound

    cdef int _listener_open(self, flb_listener *l, str address, dict by_port) except? -1:
        """Opens <l>, on the sockets a running fastlb handed over for its address if there are any.
        An address another process listens on is refused (EADDRINUSE), as a plain conflict is, even
        where SO_REUSEPORT would bind beside it and share its connections unseen. <by_port>: port ->
        [listener] of this process (those it serves, those this publish opened)."""
        cdef int fds[1024]
        cdef uint32_t n = 0
        inherited = self.inherited.get(address)
        if not inherited:
            if not self._beside_own(l, by_port.get(_port(address), ())) and flb_listener_probe(l) != FLB_OK:
                return FLB_ERR
            return flb_listener_open(l)
        for fd in inherited[:1024]:
            fds[n] = fd
            n += 1
        return flb_listener_adopt(l, fds, n)

    cdef bint _beside_own(self, flb_listener *l, object same_port) except -1:
        """Whether <l> overlaps a socket of this process's own (<same_port>: the listeners it serves
        or has just opened on its port; one handed over): the probe cannot tell those from another
        process's, and binding beside them is what SO_REUSEPORT is for here."""
        cdef sockaddr_storage sa
        cdef socklen_t length
        cdef flb_listener *other
        for p in same_port:
            other = <flb_listener *><size_t>p
            if other != l and flb_listener_overlap(&l.addr, &other.addr):
                return True
        for address in self.inherited:
            if flb_addr_parse(address.encode(), &sa, &length) == FLB_OK and flb_listener_overlap(&l.addr, &sa):
                return True
        return False

    cdef _close_inherited(self):
        """Once a table serves, the handed-over sockets it adopted are held by the listeners (as
        duplicates); the originals, and those of addresses it does not serve, are closed."""
        for fds in self.inherited.values():
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.inherited = {}

    cdef _follow_drains(self, _Plan plan):
        """Drain deadlines after a publish: a backend the table drains starts its clock (or keeps the
        one it had); one the table names in another state stops it; one no table names any more is
        forgotten once its record is gone (its last connection ended)."""
        cdef _Svc v
        cdef uint32_t j
        cdef dict ms = {}
        changed = False
        for i in plan.drained:
            v = plan.services[i]
            for bid in v.drained:
                ms[bid] = _shorter(ms.get(bid, 0), v.drain_ms)
        for bid in list(self.draining):
            if (bid in plan.addresses and bid not in ms) or flb_backend_find(self.e.backends, bid.encode()) == NULL:
                del self.draining[bid]
                changed = True
        for bid, limit in ms.items():
            entry = self.draining.get(bid)
            if entry is None:
                self.draining[bid] = [flb_now_ms(), int(time.time() * 1000), limit]
                changed = True
            elif entry[2] != limit:
                entry[2] = limit
                changed = True
        if changed:
            self._push_drains()

    cdef uint32_t _drain_ms(self, flb_backend *b):
        """The drain limit of <b> in the published table: the shortest non-zero one of the services
        naming it (0: none names one)."""
        cdef flb_table *t = flb_engine_table(self.e)
        cdef uint32_t i, j, out = 0
        if t == NULL:
            return 0
        for i in range(t.nsvc):
            if t.svc[i].drain_ms == 0:
                continue
            for j in range(t.svc[i].nbe):
                if t.svc[i].be[j] == b and (out == 0 or t.svc[i].drain_ms < out):
                    out = t.svc[i].drain_ms
        flb_table_put(t)
        return out

    cdef _push_drains(self):
        """Hands the workers the deadlines of the draining backends that have one."""
        cdef flb_drains *d
        cdef flb_backend *b
        cdef uint32_t k = 0
        entries = [(bid, e) for bid, e in self.draining.items() if e[2] > 0]
        d = NULL
        if entries:
            d = flb_drains_new(len(entries))
            if d == NULL:
                raise MemoryError()
            for bid, (since, _, limit) in entries:
                b = flb_backend_find(self.e.backends, bid.encode())
                if b != NULL:
                    d.d[k].b = b
                    d.d[k].deadline_ms = since + limit
                    k += 1
            d.n = k
            flb_drains_sort(d)
        with nogil:
            flb_engine_set_drains(self.e, d)

    cdef dict _published_listeners(self):
        """The listener registry, by address: the listeners of the published table (one pass, so
        that a publish finds each of its listeners in constant time)."""
        cdef flb_table *t = flb_engine_table(self.e)
        cdef dict out = {}
        if t == NULL:
            return out
        for i in range(t.nlst):
            out[t.lst[i].l.address.decode()] = <size_t>t.lst[i].l
        # The engine's reference keeps them alive: only this thread publishes or closes them.
        flb_table_put(t)
        return out

    cdef _compile_service(self, flb_service *s, _Svc v):
        cdef flb_backend *b
        cdef uint32_t j
        cdef bint new
        s.name = strdup(v.name)
        s.c = flb_counters_get(self.e.counters, v.name)
        if s.name == NULL or s.c == NULL or flb_service_alloc(s, v.n) != FLB_OK:
            raise MemoryError()
        s.mode = <flb_mode>v.mode
        s.connect_ms = v.connect_ms
        s.idle_ms = v.idle_ms
        s.retries = v.retries
        s.maxconn = v.maxconn
        s.queue_ms = v.queue_ms
        s.drain_ms = v.drain_ms
        if v.bemax != NULL:
            s.bemax = <uint32_t *>malloc((v.n or 1) * sizeof(uint32_t))
            if s.bemax == NULL:
                raise MemoryError()
            memcpy(s.bemax, v.bemax, v.n * sizeof(uint32_t))
        if v.nallow > 0:
            s.allow = <flb_cidr *>malloc(v.nallow * sizeof(flb_cidr))
            if s.allow == NULL:
                raise MemoryError()
            memcpy(s.allow, v.allow, v.nallow * sizeof(flb_cidr))
            s.nallow = v.nallow
        for j in range(v.n):
            bid = <bytes>v.ids[j]
            if v.start_down[j]:
                b = flb_backend_find(self.e.backends, bid)
                new = b == NULL or b.refs == 0  # none, or one no table names any more
            else:
                new = False
            b = flb_backend_get(self.e.backends, bid)
            if b == NULL:
                raise MemoryError()
            s.be[j] = b
            s.addr[j] = v.sa[j]
            s.addrlen[j] = v.salen[j]
            s.fall[j] = v.fall[j]
            # The record's address is for stats and the control plane; workers connect to the
            # table's copy, so changing it never races with a connect.
            memcpy(&b.addr, &v.sa[j], sizeof(sockaddr_storage))
            b.addrlen = v.salen[j]
            b.weight = v.weight[j]
            b.admin = v.admin[j]
            if new:
                # Its check requires a first pass: no window in which it takes a connection.
                b.health = FLB_HEALTH_DOWN
        if s.nbe > 0:
            if flb_balance_build(&s.bal, <flb_balance_algo>v.algo, s.be, s.nbe, self.nworkers) != FLB_OK:
                raise OSError(errno, f"{os.strerror(errno)}: cannot build the balancer of {v.name.decode()}")
            s.bal_built = 1
            s.bal.maxconn = s.bemax

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
        self.restate = True
        if state == "drain" and backend_id not in self.draining:
            self.draining[backend_id] = [flb_now_ms(), int(time.time() * 1000), self._drain_ms(b)]
            self._push_drains()
        elif state != "drain" and backend_id in self.draining:
            del self.draining[backend_id]
            self._push_drains()
        return True

    def set_backend_health(self, str backend_id, bint up):
        cdef flb_backend *b = self._backend(backend_id)
        if b == NULL:
            return False
        if up:
            b.fails = 0  # passive health counts afresh from an active check's pass
        b.health = FLB_HEALTH_UP if up else FLB_HEALTH_DOWN
        return True

    def backend_health(self, str backend_id):
        """True (up) or False (down, by an active check or by passive health), None when no
        published table names this backend. Cheap: the health checker asks it on each pass."""
        cdef flb_backend *b = self._backend(backend_id)
        if b == NULL:
            return None
        return b.health != FLB_HEALTH_DOWN

    def set_backend_weight(self, str backend_id, int weight):
        if not 0 <= weight <= 256:
            raise ValueError(f"backend weight {weight!r} is not in 0..256")
        cdef flb_backend *b = self._backend(backend_id)
        if b == NULL:
            return False
        b.weight = weight
        self.restate = True
        return True

    def set_certificates(self, certs, handshake_ms=10000, listeners=None):
        """The certificates the TLS listeners of the next publish serve: [(PEM bytes, host names[,
        options])], the first the default one (a certificate with no names serves every name). Each PEM
        holds a certificate, its chain and its key; options (a dict): claims (host names SNI gives this
        certificate before any other's names: a service's vhosts), alpn, min_version ("TLSv1.2",
        "TLSv1.3"), ciphers, ciphersuites. <listeners>: {address: [entries]}, the TLS listeners serving
        certificates of their own (a service's) instead. <handshake_ms>: a handshake not over in this
        long is dropped. Raises ValueError (nothing changes) for a certificate that cannot be used. No
        shared certificate at all: an https listener that only passes connections through (TLS
        passthrough)."""
        certs = list(certs)
        ms = _u32(handshake_ms, "handshake_ms")
        if ms == 0:
            raise ValueError("handshake_ms: 0 is not a duration")
        # The sets serving now lend their parsed certificates to the new ones: only new PEMs are read.
        previous = [self.certs, *(self.listener_certs or {}).values()]
        shared = _tls_build(self.nworkers, certs, handshake_ms, <_Tickets>self.tickets, previous) if certs else None
        own = {address: _tls_build(self.nworkers, entries, handshake_ms, <_Tickets>self.tickets, previous)
               for address, entries in (listeners or {}).items()}
        self.certs = shared
        self.listener_certs = own
        self.handshake_ms = ms
        self.certs_changed = True

    def set_ticket_keys(self, keys, enc=0):
        """Rotates the session ticket keys every TLS listener's handshakes use, at once (no publish):
        <keys> up to 3 keys of 48 or 80 bytes (16 bytes of name, the AES key, the HMAC key: HAProxy's
        tls-ticket-keys), all one size; key <enc> seals new tickets, each opens the tickets it sealed.
        [] stops issuing tickets. ValueError (nothing changes) for keys that are not that."""
        (<_Tickets>self.tickets).set([bytes(k) for k in keys], _u32(enc, "enc"))

    def engine_counters(self):
        """The engine's own counters (stats() less its listeners, services and backends): what a
        once-a-second watch reads, whatever the size of the table."""
        return {
            "generation": self.e.generation,
            "swaps": self.e.swaps,
            "active": self.e.active,
            "total": self.e.total,
            "accepts_held": {"maxconn": self.e.held_maxconn, "fds": self.e.held_fds},
            "accept_emfile": self.e.accept_emfile,
            "fd_max": self.e.opt.fd_max,
        }

    def request_counts(self):
        """HTTP requests so far per http service ("s:<name>") and per backend ("b:<id>"): what the
        request-rate sampler reads once a second, without the rest of a stats() snapshot."""
        cdef flb_table *t = flb_engine_table(self.e)
        cdef flb_service *s
        cdef flb_backend *b
        out = {}
        if t == NULL:
            return out
        try:
            _l7_request_counts(self, out, t)
            for i in range(t.nsvc):
                s = &t.svc[i]
                for j in range(s.nbe):
                    b = s.be[j]
                    out.setdefault("b:" + b.id.decode(), b.c.requests)
        finally:
            flb_table_put(t)
        return out

    def stats(self):
        """A snapshot of the C counters, read without pausing the workers."""
        cdef flb_table *t = flb_engine_table(self.e)
        cdef flb_service *s
        cdef flb_backend *b
        cdef flb_listener *l
        out = self.engine_counters()
        out.update({"listeners": {}, "services": {}, "backends": {}})
        if t == NULL:
            return out
        drain_since = {bid: e[1] for bid, e in self.draining.items()}
        try:
            for i in range(t.nlst):
                l = t.lst[i].l
                out["listeners"][l.address.decode()] = {
                    "active": l.active, "total": l.total, "refused": l.refused,
                }
                if flb_l7_table_of(t) != NULL and (flb_l7_table_of(t).lst[i].tls != NULL
                                                   or flb_pass_sni(&flb_l7_table_of(t).lst[i])):
                    out["listeners"][l.address.decode()]["tls"] = _tls_counters(l)
                if flb_l7_table_of(t) != NULL and flb_pass_sni(&flb_l7_table_of(t).lst[i]):
                    out["listeners"][l.address.decode()]["passthrough"] = _pass_counters(l)
            for i in range(t.nsvc):
                s = &t.svc[i]
                name = s.name.decode()
                out["services"][name] = {
                    "active": s.c.active, "total": s.c.total,
                    "bytes_in": s.c.bytes_in, "bytes_out": s.c.bytes_out,
                    "connect_errors": s.c.connect_errors, "retries": s.c.retries,
                    "timeouts": s.c.timeouts, "no_backend": s.c.no_backend, "denied": s.c.denied,
                    "queued": s.c.queued, "queued_max": s.c.queued_max, "queue_total": s.c.queue_total,
                    "queue_timeouts": s.c.queue_timeouts, "queue_wait_ms": s.c.queue_wait_ms,
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
                        "idle": b.c.idle,
                        "reused": b.c.reused,
                        "responses": {_CLASSES[k]: b.c.status[k] for k in range(6)},
                        "drain_since_ms": drain_since.get(bid, 0),
                    }
            _l7_stats(self, out, t)
        finally:
            flb_table_put(t)
        return out

    def trim(self, min_free=4 << 20):
        """Gives the allocator's free memory back to the system when it holds at least <min_free>
        bytes (buffers freed after a burst). True when some was given back."""
        cdef size_t m = min_free
        cdef int r
        with nogil:
            r = flb_engine_trim(m)
        return r == 1

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
        self._close_inherited()
        self.certs = None  # the tables are freed: the certificates go with them
        self.listener_certs = None
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


include "_l7.pxi"
include "_tls.pxi"
include "_pass.pxi"
