# TLS termination's part of the data plane: the certificate set the https listener serves (built once
# per change of certificates, each worker given its own contexts), attached to the TLS listeners of each
# published table; and the handshake counters. Included by _core.pyx.

from fastlb.includes.ctls cimport (flb_tls, flb_tls_counters, flb_tls_counters_of, flb_tls_get, flb_tls_new,
                                   flb_tls_loaded, flb_tls_set, flb_tls_set_from, flb_tls_tickets, flb_tls_verify, flb_tls_tickets_new, flb_tls_tickets_put,
                                   flb_tls_tickets_set,
                                   flb_tls_options, flb_tls_put)

# Why handshakes failed, in the order of enum flb_tls_fail.
TLS_FAILURES = ("timeout", "version", "no_shared_cipher", "http", "protocol", "eof", "certificate",
                "client_certificate")


cdef class _Certs:
    """One reference to a C certificate set (struct flb_tls)."""
    cdef flb_tls *t
    cdef dict parsed  # PEM bytes -> the index of the certificate read from them (a later set shares it)

    def __dealloc__(self):
        if self.t != NULL:
            flb_tls_put(self.t)
            self.t = NULL


cdef class _Tickets:
    """The data plane's session ticket keys (struct flb_tls_tickets), shared by every certificate set."""
    cdef flb_tls_tickets *k

    def __cinit__(self):
        self.k = flb_tls_tickets_new()
        if self.k == NULL:
            raise MemoryError()

    def __dealloc__(self):
        flb_tls_tickets_put(self.k)
        self.k = NULL

    cdef set(self, list keys, uint32_t enc):
        """<keys>: 48- or 80-byte keys (name, AES key, HMAC key), at most 3, all one size; <enc> the one
        new tickets are sealed with. ValueError when they are not that."""
        cdef bytes joined = b"".join(keys)
        size = len(keys[0]) if keys else 0
        if len(keys) > 3 or any(len(k) != size for k in keys) or (keys and size not in (48, 80)):
            raise ValueError("ticket keys: at most 3, each of 48 or 80 bytes, all the same size")
        if keys and not enc < len(keys):
            raise ValueError(f"ticket keys: no key {enc} to encrypt with")
        if flb_tls_tickets_set(self.k, <const unsigned char *>joined, len(keys), size, enc) != FLB_OK:
            raise ValueError("ticket keys: refused")


cdef const char **_c_names(list encoded) except NULL:
    cdef const char **names = <const char **>PyMem_Malloc((len(encoded) + 1) * sizeof(char *))
    if names == NULL:
        raise MemoryError()
    for j, n in enumerate(encoded):
        names[j] = n
    return names


cdef _tls_options(_Certs out, uint32_t i, dict opts):
    """Certificate <i>'s settings (before its flb_tls_set): claims (host names SNI gives it first), alpn
    (protocol names; an empty list: none named, for a tcp-mode service; absent: http/1.1), min_version
    ("TLSv1.2", "TLSv1.3"), ciphers, ciphersuites; verify ("optional", "required": client certificates)
    with ca (PEM bytes of the CAs that verify them)."""
    cdef char err[512]
    cdef const char **claims
    unknown = set(opts) - {"claims", "alpn", "min_version", "ciphers", "ciphersuites", "verify", "ca"}
    if unknown:
        raise ValueError(f"certificate {i}: unknown options {sorted(unknown)}")
    encoded = [n.encode("ascii") for n in opts.get("claims", ())]
    alpn = b"".join(bytes([len(p)]) + p for p in (a.encode("ascii") for a in opts.get("alpn", ())))
    if any(not 0 < len(a) < 256 for a in opts.get("alpn", ())):
        raise ValueError(f"certificate {i}: an ALPN protocol name is 1..255 bytes")
    version = opts.get("min_version") or None
    ciphers = opts.get("ciphers") or None
    suites = opts.get("ciphersuites") or None
    b_version = version.encode("ascii") if version is not None else None
    b_ciphers = ciphers.encode("ascii") if ciphers is not None else None
    b_suites = suites.encode("ascii") if suites is not None else None
    claims = _c_names(encoded)
    try:
        if flb_tls_options(out.t, i, claims, len(encoded),
                           <const unsigned char *>alpn if "alpn" in opts else NULL, len(alpn),
                           <const char *>b_version if b_version is not None else NULL,
                           <const char *>b_ciphers if b_ciphers is not None else NULL,
                           <const char *>b_suites if b_suites is not None else NULL, err, sizeof(err)) != FLB_OK:
            raise ValueError(f"certificate {i}: {err.decode(errors='replace')}")
    finally:
        PyMem_Free(claims)
    verify = opts.get("verify") or None
    if verify is not None:
        mode = {"optional": 1, "required": 2}.get(verify)
        ca = opts.get("ca")
        if mode is None or not isinstance(ca, bytes):
            raise ValueError(f"certificate {i}: verify is optional or required, with ca (PEM bytes)")
        if flb_tls_verify(out.t, i, mode, ca, len(ca), err, sizeof(err)) != FLB_OK:
            raise ValueError(f"certificate {i}: {err.decode(errors='replace')}")


cdef _Certs _tls_build(uint32_t nworkers, object certs, object handshake_ms, _Tickets tickets,
                       object previous=()):
    """A certificate set from <certs>, [(PEM bytes, host names[, options])], the first the default
    (options: see _tls_options); ValueError names the certificate that cannot be used and why (the
    default one is parsed now; the others when SNI first picks them, flb_tls_set). A PEM that one of
    the <previous> sets (_Certs), or an earlier entry, has parsed is not parsed again: it is shared (a
    change of one certificate among 10,000 parses that one)."""
    cdef _Certs out = _Certs()
    cdef _Certs before
    cdef char err[512]
    cdef const char **names
    cdef uint32_t ms = _u32(handshake_ms, "handshake_ms")
    cdef int rc
    certs = list(certs)
    if not certs:
        raise ValueError("certificates: none given")
    if ms == 0:
        raise ValueError("handshake_ms: 0 is not a duration")
    out.t = flb_tls_new(nworkers, len(certs), ms, tickets.k)
    if out.t == NULL:
        raise MemoryError()
    out.parsed = {}
    sources = [p for p in previous if p is not None]
    for i, entry in enumerate(certs):
        pem = entry[0]
        if not isinstance(pem, bytes):
            raise ValueError(f"certificate {i}: expected PEM bytes")
        if len(entry) > 2 and entry[2]:
            _tls_options(out, i, dict(entry[2]))
        encoded = [n.encode("ascii") for n in entry[1]]
        names = _c_names(encoded)
        try:
            for before in (*sources, out):
                j = before.parsed.get(pem)
                if j is not None and flb_tls_loaded(before.t, j):
                    rc = flb_tls_set_from(out.t, i, before.t, j, names, len(encoded), err, sizeof(err))
                    break
            else:
                rc = flb_tls_set(out.t, i, pem, len(pem), names, len(encoded), err, sizeof(err))
            if rc != FLB_OK:
                raise ValueError(f"certificate {i}: {err.decode(errors='replace')}")
        finally:
            PyMem_Free(names)
        out.parsed.setdefault(pem, i)
    return out


cdef _tls_listener(DataPlane dp, flb_l7_table *lt, flb_l7_listener *ll, object lst, bint pass_only):
    """Makes <ll> a TLS listener of its own certificates (a service's, set_certificates' <listeners>), else
    of the DataPlane's shared ones; with <pass_only> (it passes every connection through, _pass.pxi) it
    may have none, and closes what it cannot pass."""
    ll.handshake_ms = dp.handshake_ms
    own = dp.listener_certs.get(lst.address) if dp.listener_certs else None
    certs = own if own is not None else dp.certs
    if certs is None:
        if pass_only:
            return
        raise ValueError(f"listener {lst.address!r}: a TLS listener needs certificates (set_certificates)")
    ll.tls = flb_tls_get((<_Certs>certs).t)
    if own is not None:
        return  # a service's own TLS port: redirect_to_https names the shared https listener
    if lt.https_port == 0:
        lt.https_port = ll.port


cdef dict _tls_counters(void *listener):
    cdef flb_tls_counters *c = flb_tls_counters_of(listener)
    return {"handshakes": c.handshakes, "resumed": c.resumed, "failed": {TLS_FAILURES[k]: c.failed[k] for k in range(len(TLS_FAILURES))}}
