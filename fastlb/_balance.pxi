# Test hooks for fastlb/_balance.c: standalone backend records (calloc'd here, not from the backend
# store) behind one balancer, so tests/balance can drive every algorithm from Python. Not an API:
# every name starts with _test_balance.

from libc.errno cimport errno
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport strdup, strerror

from fastlb.includes cimport cbackend as _cbe
from fastlb.includes cimport cbalance as _cbal

_test_balance_algos = {
    "roundrobin": _cbal.FLB_BAL_ROUNDROBIN,
    "leastconn": _cbal.FLB_BAL_LEASTCONN,
    "maglev": _cbal.FLB_BAL_MAGLEV,
    "source": _cbal.FLB_BAL_SOURCE,
}
_test_balance_admin = {
    "ready": _cbe.FLB_ADMIN_READY,
    "drain": _cbe.FLB_ADMIN_DRAIN,
    "maint": _cbe.FLB_ADMIN_MAINT,
}
_test_balance_health = {"up": _cbe.FLB_HEALTH_UP, "down": _cbe.FLB_HEALTH_DOWN}


cdef _test_balance_oserror():
    return OSError(errno, strerror(errno).decode())


def _test_balance_hash64(const unsigned char[:] data, uint64_t seed):
    """flb_hash64(data, len(data), seed)."""
    if data.shape[0] == 0:
        return _cbal.flb_hash64(NULL, 0, seed)
    return _cbal.flb_hash64(&data[0], data.shape[0], seed)


def _test_balance_next_prime(uint32_t x):
    """flb_next_prime(x)."""
    return _cbal.flb_next_prime(x)


cdef class _test_balancer:
    """A balancer over backends identified by <ids> (passed to C in the order given) with <weights>.

    Raises OSError with the errno of flb_balance_build when the build fails."""

    cdef _cbal.flb_balancer bal
    cdef _cbe.flb_backend **be
    cdef uint32_t n
    cdef bint built

    def __cinit__(self, str algo, ids, weights, uint32_t nworkers=1):
        ids = list(ids)
        weights = list(weights)
        if len(ids) != len(weights):
            raise ValueError("ids and weights differ in length")
        self.n = len(ids)
        self.be = <_cbe.flb_backend **>calloc(self.n + 1, sizeof(_cbe.flb_backend *))
        if self.be == NULL:
            raise MemoryError()
        cdef uint32_t i
        for i in range(self.n):
            self.be[i] = <_cbe.flb_backend *>calloc(1, sizeof(_cbe.flb_backend))
            if self.be[i] == NULL:
                raise MemoryError()
            encoded = ids[i].encode()
            self.be[i].id = strdup(encoded)
            if self.be[i].id == NULL:
                raise MemoryError()
            self.be[i].weight = weights[i]
        self.rebuild(algo, nworkers)

    def __dealloc__(self):
        cdef uint32_t i
        if self.built:
            _cbal.flb_balance_free(&self.bal)
        if self.be != NULL:
            for i in range(self.n):
                if self.be[i] != NULL:
                    free(self.be[i].id)
                    free(self.be[i])
            free(self.be)

    def rebuild(self, str algo, uint32_t nworkers=1):
        """Frees the balancer and builds it again from the backends' current weights."""
        if self.built:
            _cbal.flb_balance_free(&self.bal)
            self.built = False
        if _cbal.flb_balance_build(&self.bal, _test_balance_algos[algo], self.be, self.n, nworkers) != 0:
            raise _test_balance_oserror()
        self.built = True

    def set(self, uint32_t i, *, weight=None, admin=None, health=None, active=None):
        """Changes backend i's live state, as the control plane (or a worker) would."""
        if i >= self.n:
            raise IndexError(i)
        if weight is not None:
            self.be[i].weight = weight
        if admin is not None:
            self.be[i].admin = _test_balance_admin[admin]
        if health is not None:
            self.be[i].health = _test_balance_health[health]
        if active is not None:
            self.be[i].active = active

    def available(self, uint32_t i):
        if i >= self.n:
            raise IndexError(i)
        return bool(_cbe.flb_backend_available(self.be[i]))

    def pick(self, uint64_t key=0, uint32_t worker=0, exclude=()):
        """flb_balance_pick; raises OSError (EHOSTUNREACH, EINVAL) where it fails."""
        cdef uint32_t nexclude = len(exclude)
        cdef uint32_t k
        cdef int r
        cdef uint32_t *ex = <uint32_t *>malloc((nexclude + 1) * sizeof(uint32_t))
        if ex == NULL:
            raise MemoryError()
        try:
            for k in range(nexclude):
                ex[k] = exclude[k]
            r = _cbal.flb_balance_pick(&self.bal, key, worker, ex, nexclude)
        finally:
            free(ex)
        if r < 0:
            raise _test_balance_oserror()
        return r

    def picks(self, keys, uint32_t worker=0):
        """One pick per key, nothing excluded; a failed pick gives -1."""
        cdef list out = []
        cdef uint64_t key
        for key in keys:
            out.append(_cbal.flb_balance_pick(&self.bal, key, worker, NULL, 0))
        return out

    def picks_nogil(self, uint32_t count, uint32_t worker=0):
        """<count> picks (key = the pick's number) with the GIL released, so that several Python threads
        pick at once, each as its own worker; a failed pick gives -1."""
        cdef int *out = <int *>malloc((count + 1) * sizeof(int))
        cdef uint32_t k
        if out == NULL:
            raise MemoryError()
        with nogil:
            for k in range(count):
                out[k] = _cbal.flb_balance_pick(&self.bal, k, worker, NULL, 0)
        try:
            return [out[k] for k in range(count)]
        finally:
            free(out)

    @property
    def n(self):
        return self.bal.n

    @property
    def m(self):
        return self.bal.m

    @property
    def lookup(self):
        """The Maglev table, slot -> backend index (None for an empty slot)."""
        return [None if self.bal.lookup[s] == <uint32_t>-1 else self.bal.lookup[s] for s in range(self.bal.m)]

    @property
    def map(self):
        """The source map, slot -> backend index."""
        return [self.bal.map[s] for s in range(self.bal.map_len)]

    @property
    def static_weight(self):
        return [self.bal.static_weight[i] for i in range(self.bal.n)]

    @property
    def ids(self):
        return [self.be[i].id.decode() for i in range(self.n)]
