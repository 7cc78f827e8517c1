# TLS termination's part of the data plane: the certificate set the https listener serves (built once
# per change of certificates, each worker given its own contexts), attached to the TLS listeners of each
# published table; and the handshake counters. Included by _core.pyx.

from fastlb.includes.ctls cimport (flb_tls, flb_tls_counters, flb_tls_counters_of, flb_tls_get, flb_tls_new,
                                   flb_tls_put, flb_tls_set)

# Why handshakes failed, in the order of enum flb_tls_fail.
TLS_FAILURES = ("timeout", "version", "no_shared_cipher", "http", "protocol", "eof")


cdef class _Certs:
    """One reference to a C certificate set (struct flb_tls)."""
    cdef flb_tls *t

    def __dealloc__(self):
        if self.t != NULL:
            flb_tls_put(self.t)
            self.t = NULL


cdef _Certs _tls_build(uint32_t nworkers, object certs, object handshake_ms):
    """A certificate set from <certs>, [(PEM bytes, host names)], the first the default; ValueError
    names the certificate that cannot be used and why."""
    cdef _Certs out = _Certs()
    cdef char err[512]
    cdef const char **names
    cdef uint32_t ms = _u32(handshake_ms, "handshake_ms")
    certs = list(certs)
    if not certs:
        raise ValueError("certificates: none given")
    if ms == 0:
        raise ValueError("handshake_ms: 0 is not a duration")
    out.t = flb_tls_new(nworkers, len(certs), ms)
    if out.t == NULL:
        raise MemoryError()
    for i, (pem, hostnames) in enumerate(certs):
        if not isinstance(pem, bytes):
            raise ValueError(f"certificate {i}: expected PEM bytes")
        encoded = [n.encode("ascii") for n in hostnames]
        names = <const char **>PyMem_Malloc((len(encoded) + 1) * sizeof(char *))
        if names == NULL:
            raise MemoryError()
        try:
            for j, n in enumerate(encoded):
                names[j] = n
            if flb_tls_set(out.t, i, pem, len(pem), names, len(encoded), err, sizeof(err)) != FLB_OK:
                raise ValueError(f"certificate {i}: {err.decode(errors='replace')}")
        finally:
            PyMem_Free(names)
    return out


cdef _tls_listener(DataPlane dp, flb_l7_table *lt, flb_l7_listener *ll, object lst, bint pass_only):
    """Makes <ll> a TLS listener of the DataPlane's certificates; with <pass_only> (it passes every
    connection through, _pass.pxi) it may have none, and closes what it cannot pass."""
    ll.handshake_ms = dp.handshake_ms
    if dp.certs is None:
        if pass_only:
            return
        raise ValueError(f"listener {lst.address!r}: a TLS listener needs certificates (set_certificates)")
    ll.tls = flb_tls_get((<_Certs>dp.certs).t)
    if lt.https_port == 0:
        lt.https_port = ll.port


cdef dict _tls_counters(void *listener):
    cdef flb_tls_counters *c = flb_tls_counters_of(listener)
    return {"handshakes": c.handshakes, "failed": {TLS_FAILURES[k]: c.failed[k] for k in range(len(TLS_FAILURES))}}
