# TLS passthrough's part of a compile: the passthrough vhosts of the https listener (spec.SniRoute, read
# from each connection's ClientHello before anything is terminated: _pass.h) and their counters. Included
# by _core.pyx.

from fastlb.includes.cpass cimport (flb_pass_counters, flb_pass_counters_of, flb_pass_routes, flb_pass_set_sni,
                                    flb_pass_sni)


cdef _pass_check(object table, _Plan plan):
    """ValueError for a passthrough vhost the data plane cannot serve."""
    cdef list specs = []
    cdef _Svc entry
    if not table.sni_routes:
        return
    for entry in plan.services:
        specs.append(entry.svc)
    for i, r in enumerate(table.sni_routes):
        where = f"sni_routes[{i}]"
        index = plan.service_index.get(r.service)
        if index is None:
            raise ValueError(f"{where}: no service named {r.service!r}")
        if specs[index].mode != "tcp":
            raise ValueError(f"{where}: service {r.service!r} is in http mode; a passthrough service is tcp")
        host = r.host[2:] if r.host.startswith("*.") else r.host
        if not host or any(c in host for c in " \t\r\n*/:") or len(host) > 255:
            raise ValueError(f"{where}: host {r.host!r} is not a host name (or '*.' and a domain)")


cdef bint _pass_only(object table):
    """Whether an https listener of <table> passes every connection through: passthrough vhosts, and
    nothing it would terminate (no Host-routed service)."""
    return bool(table.sni_routes) and not table.http_routes


cdef _pass_listener(flb_l7_listener *ll, object table):
    """Makes TLS listener <ll> read each ClientHello first, when <table> has passthrough vhosts."""
    if table.sni_routes:
        flb_pass_set_sni(ll)


cdef _pass_compile(flb_l7_table *lt, object table, _Plan plan):
    """The passthrough vhosts of <lt>, when <table> has any."""
    if not table.sni_routes:
        return
    if flb_vhost_init(flb_pass_routes(lt), len(table.sni_routes), 0) != FLB_OK:
        raise MemoryError()
    for i, r in enumerate(table.sni_routes):
        if flb_vhost_set_route(flb_pass_routes(lt), i, r.host.lower().encode(), plan.service_index[r.service]) != FLB_OK:
            raise MemoryError()
    if flb_vhost_build(flb_pass_routes(lt)) != FLB_OK:
        raise MemoryError()


cdef dict _pass_counters(void *listener):
    cdef flb_pass_counters *c = flb_pass_counters_of(listener)
    return {"connections": c.passthrough, "unknown_sni": c.unknown_sni}
