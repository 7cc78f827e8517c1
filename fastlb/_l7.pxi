# HTTP mode's part of a compile: the L7 side of a table (per-service HTTP options, listener kinds,
# vhost and app-id routes), the DataPlane options of HTTP mode, and its stats. Included by _core.pyx.

from libc.stdlib cimport calloc
from libc.string cimport strlen

from fastlb.includes.cl7 cimport (FLB_L7_APPID, FLB_L7_SERVICE, FLB_L7_TCP, FLB_L7_VHOST, flb_l7, flb_l7_attach,
                                  flb_l7_cidr, flb_l7_cookie_value, flb_l7_epoch, flb_l7_str,
                                  flb_l7_listener, flb_l7_of, flb_l7_service, flb_l7_set_access_log, flb_l7_table_of,
                                  flb_l7_table_reuse_routes,
                                  flb_l7_set_cookie_key, flb_l7_table, flb_l7_table_new, flb_l7_user,
                                  flb_h1auth_cidr_parse, flb_vhost_add_app, flb_vhost_add_path, flb_vhost_build,
                                  flb_vhost_init, flb_vhost_set_route, flb_h1front, flb_h1front_fields,
                                  flb_h1front_new, flb_h1front_free, flb_h1front_set_regex)

import hashlib as _hashlib

from fastlb import spec as _spec

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:[]")
_REDIRECT_CODES = (301, 302, 303, 307, 308)
# The sticky cookie key when none is given: fixed, so that a backend's cookie value is the same in every
# fastlb, across restarts and hot upgrades, with no configuration (as HAProxy's cookie values are). A
# secret key (--cookie-secret-file, FASTLB_COOKIE_SECRET) makes the values unguessable as well.
DEFAULT_COOKIE_KEY = b"fastlb sticky cookie v1"


cdef _l7_configure(DataPlane dp, object access_log_fd, object cookie_key):
    """The DataPlane options of HTTP mode. <access_log_fd>: an fd the workers write the access log to
    (fastlb makes it non-blocking; a pipe is best, see _alog.h), None: no log. <cookie_key>: bytes that
    key the sticky cookie values (every fastlb given the same key gives a backend the same value),
    None: DEFAULT_COOKIE_KEY."""
    cdef flb_l7 *l = flb_l7_of(dp.e)
    if access_log_fd is not None:
        if not isinstance(access_log_fd, int) or access_log_fd < 0:
            raise ValueError(f"access_log_fd: {access_log_fd!r} is not a file descriptor")
        if flb_l7_set_access_log(l, access_log_fd) != FLB_OK:
            raise OSError(errno, f"{os.strerror(errno)}: access_log_fd {access_log_fd}")
    if cookie_key is None:
        cookie_key = DEFAULT_COOKIE_KEY
    if not isinstance(cookie_key, bytes) or not cookie_key:
        raise ValueError("cookie_key: expected non-empty bytes")
    flb_l7_set_cookie_key(l, int.from_bytes(_hashlib.blake2b(cookie_key, digest_size=8).digest(), "little"))


cdef char *_dup(str text) except NULL:
    cdef char *p = strdup(text.encode())
    if p == NULL:
        raise MemoryError()
    return p


cdef int _port(str address) except -1:
    return int(address.rsplit(":", 1)[1])


cdef _str(flb_l7_str *out, str text):
    out.s = _dup(text)
    out.len = len(text.encode())


def _visible(text):
    """Visible ASCII only: nothing that could end a field, a line or a request target."""
    return all(0x21 <= ord(c) <= 0x7e for c in text)


def _path_prefix(text):
    """A path prefix as the data plane keeps it: no trailing '/' ("/api/" is "/api")."""
    return text.rstrip("/")


def _host_only(text):
    """<text> ("name" or "name:port") without its port, lower case."""
    if not text.startswith("[") and text.count(":") == 1:
        text = text.rsplit(":", 1)[0]
    return text.lower().rstrip(".")


def _rewrite_problem(o):
    """What is wrong with the rewrite options of HttpOptions <o> ("key: why"), or None."""
    for key in ("strip_prefix", "location_prefix"):
        v = getattr(o, key)
        if v and (not v.startswith("/") or not _visible(v) or "?" in v or "#" in v or len(v) > 1024):
            return f"{key}: {v!r} is not a path prefix (starts with '/', visible ASCII, no '?' or '#')"
        if v and not _path_prefix(v):
            return f"{key}: {v!r} is the root: there is no prefix to take off or put on"
    if o.set_host and (not set(o.set_host) <= _HOST_CHARS or len(o.set_host) > 255):
        return f"set_host: {o.set_host!r} is not host[:port]"
    for name in o.hosts:
        if not isinstance(name, str) or not name or not set(name) <= _HOST_CHARS or len(name) > 255:
            return f"hosts: {name!r} is not a host name"
    if o.redirect_root and (not _visible(o.redirect_root) or len(o.redirect_root) > 2048):
        return f"redirect_root: {o.redirect_root!r} may hold visible ASCII only (no space), at most 2048 characters"
    if o.redirect_root_code not in _REDIRECT_CODES:
        return f"redirect_root_code: {o.redirect_root_code!r} is not one of 301, 302, 303, 307, 308"
    return None


def _front_problem(o):
    """What is wrong with the header and redirect options of HttpOptions <o> ("key: why"), or None."""
    for key, request in (("request_headers", True), ("response_headers", False)):
        seen = set()
        for entry in getattr(o, key):
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                return f"{key}: {entry!r} is not (name, value)"
            name, value = entry
            why = _spec.header_field_problem(name, value, request)
            if why is not None:
                return f"{key}: {why}"
            if name.lower() in seen:
                return f"{key}: {name} is set twice"
            seen.add(name.lower())
        if not request and o.location_prefix and "location" in seen:
            return f"{key}: Location is set while location_prefix rewrites it"
    if not 0 <= o.sts_seconds < 1 << 63:
        return f"sts_seconds: {o.sts_seconds!r} is not a number of seconds"
    if o.sts_seconds and o.hsts:
        return "sts_seconds: hsts sends Strict-Transport-Security already"
    for key in ("redirect_to_https_code", "redirect_regex_code"):
        if getattr(o, key) not in (301, 302):
            return f"{key}: {getattr(o, key)!r} is not 301 or 302"
    if o.redirect_replacement and not o.redirect_regex:
        return "redirect_replacement: no redirect_regex to apply it with"
    if o.redirect_regex:
        why = _spec.redirect_regex_problem(o.redirect_regex)
        if why is not None:
            return f"redirect_regex: {why}"
        why = _spec.redirect_replacement_problem(o.redirect_replacement)
        if why is not None:
            return f"redirect_replacement: {why}"
        return _regex_error(o.redirect_regex)
    return None


cdef _regex_error(str pattern):
    """"redirect_regex: why" when <pattern> is not a POSIX ERE regcomp(3) compiles, or None."""
    cdef flb_h1front *f = flb_h1front_new()
    cdef char err[256]
    if f == NULL:
        raise MemoryError()
    try:
        if flb_h1front_set_regex(f, pattern.encode(), err, sizeof(err)) != FLB_OK:
            return f"redirect_regex: {pattern!r} is not a POSIX extended regular expression: {err.decode(errors='replace')}"
        return None
    finally:
        flb_h1front_free(f)


cdef _front_fields(flb_h1front_fields *f, tuple fields):
    f.names = <flb_l7_str *>calloc(max(len(fields), 1), sizeof(flb_l7_str))
    if f.names == NULL:
        raise MemoryError()
    for j, (name, value) in enumerate(fields):
        _str(&f.names[j], name.lower())
        f.n = j + 1
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields if value)
    if lines:
        _str(&f.lines, lines)
    names = {name.lower() for name, _ in fields}
    f.xfp = "x-forwarded-proto" in names
    f.xfport = "x-forwarded-port" in names


cdef _l7_front(flb_l7_service *hs, object o):
    """The header and redirect options of HttpOptions <o> (checked by _l7_check) into hs.front."""
    cdef flb_h1front *f
    cdef char err[256]
    if not (o.request_headers or o.response_headers or o.sts_seconds or o.redirect_regex
            or o.redirect_to_https_code != 301):
        return
    f = flb_h1front_new()
    if f == NULL:
        raise MemoryError()
    hs.front = f
    _front_fields(&f.req, o.request_headers)
    _front_fields(&f.resp, o.response_headers)
    if o.sts_seconds:
        sts = f"Strict-Transport-Security: max-age={o.sts_seconds}"
        sts += "; includeSubDomains" if o.sts_include_subdomains else ""
        sts += "; preload" if o.sts_preload else ""
        _str(&f.sts, sts + "\r\n")
        f.sts_plain = o.sts_plain
    f.https_code = o.redirect_to_https_code
    if o.redirect_regex:
        if flb_h1front_set_regex(f, o.redirect_regex.encode(), err, sizeof(err)) != FLB_OK:
            raise ValueError(f"redirect_regex: {o.redirect_regex!r}: {err.decode(errors='replace')}")
        _str(&f.repl, o.redirect_replacement)
        f.re_code = o.redirect_regex_code


cdef _l7_check_service(object svc):
    """Everything in the HTTP options of <svc> HTTP mode could refuse, found before any C state is
    built (once per spec.Service: see _Svc)."""
    o = svc.http
    where = f"service {svc.name!r} http"
    if not o.sticky_cookie or not set(o.sticky_cookie) <= _TOKEN or len(o.sticky_cookie) > 128:
        raise ValueError(f"{where}.sticky_cookie: {o.sticky_cookie!r} is not a cookie name")
    if any(c in o.auth_realm for c in '"\\\r\n') or len(o.auth_realm) > 1024:
        raise ValueError(f"{where}.auth_realm: {o.auth_realm!r} may not hold quotes, backslashes or line breaks, nor pass 1024 characters")
    for user, digest in o.auth_users:
        if not user or ":" in user or "\0" in user:
            raise ValueError(f"{where}.auth_users: user {user!r} is empty or holds ':'")
        if not digest or "\0" in digest:
            raise ValueError(f"{where}.auth_users: user {user!r} has no password hash")
    problem = _rewrite_problem(o)
    if problem is not None:
        raise ValueError(f"{where}.{problem}")
    problem = _front_problem(o)
    if problem is not None:
        raise ValueError(f"{where}.{problem}")
    for t in ("http_request_ms", "http_keepalive_ms"):
        _u32(getattr(svc.timeouts, t), f"service {svc.name!r} timeouts.{t}")


cdef _l7_routes(DataPlane dp, flb_l7_table *lt, object table, _Plan plan, list served):
    """The listeners' HTTP side (<served>: the listeners of the table, as _Plan lists them) and the
    vhost and app-id routes of <lt>. Raises on a bad route (<lt>, attached, is freed with its table)."""
    cdef flb_l7_listener *ll
    cdef _Svc entry
    _pass_check(table, plan)
    for i, r in enumerate(table.http_routes):
        where = f"http_routes[{i}]"
        if r.service not in plan.service_index:
            raise ValueError(f"{where}: no service named {r.service!r}")
        host = r.host[2:] if r.host.startswith("*.") else r.host
        if not host or any(c in host for c in " \t\r\n*/:") or len(host) > 255:
            raise ValueError(f"{where}: host {r.host!r} is not a host name (or '*.' and a domain)")
        for p in r.paths:
            if not p.startswith("/") or any(ord(c) <= 0x20 or ord(c) >= 0x7f for c in p):
                raise ValueError(f"{where}: path prefix {p!r} must start with '/' and hold no space or control")
    specs = [entry.svc for entry in plan.services]
    http_services = [svc for svc in specs if svc.mode == "http"]
    # vhost and appid listeners have no service of their own: their timeouts are the tightest of
    # the http services' (spec defaults when there is none)
    request_ms = min((s.timeouts.http_request_ms for s in http_services if s.timeouts.http_request_ms > 0),
                     default=15000)
    keepalive_ms = min((s.timeouts.http_keepalive_ms for s in http_services if s.timeouts.http_keepalive_ms > 0),
                       default=1000)
    listeners = {x.address: x for x in table.listeners}
    for i, (address, service, _, kind) in enumerate(served):
        ll = &lt.lst[i]
        lst = listeners[address]
        ll.port = _port(address)
        if kind == "service":
            svc = specs[service]
            ll.kind = FLB_L7_SERVICE if svc.mode == "http" else FLB_L7_TCP
            ll.request_ms = svc.timeouts.http_request_ms
            ll.keepalive_ms = svc.timeouts.http_keepalive_ms
        else:
            ll.kind = FLB_L7_VHOST if kind == "vhost" else FLB_L7_APPID
            ll.request_ms = request_ms
            ll.keepalive_ms = keepalive_ms
        if lst.tls:
            _tls_listener(dp, lt, ll, lst, _pass_only(table))
            if kind == "vhost":  # passthrough vhosts share the https listener, never a service's own port
                _pass_listener(ll, table)
    apps = [(svc.app_id, plan.service_index[svc.name]) for svc in http_services if svc.app_id]
    if flb_vhost_init(&lt.vhost, len(table.http_routes), len(apps)) != FLB_OK:
        raise MemoryError()
    for i, r in enumerate(table.http_routes):
        if flb_vhost_set_route(&lt.vhost, i, r.host.encode(), plan.service_index[r.service]) != FLB_OK:
            raise MemoryError()
        for p in r.paths:
            if flb_vhost_add_path(&lt.vhost, i, p.encode()) != FLB_OK:
                raise MemoryError()
    for app_id, index in apps:
        if flb_vhost_add_app(&lt.vhost, app_id.encode(), index) != FLB_OK:
            raise MemoryError()
    if flb_vhost_build(&lt.vhost) != FLB_OK:
        raise MemoryError()
    _pass_compile(lt, table, plan)


cdef _l7_service(flb_l7 *l, flb_l7_service *hs, object svc, list ids, flb_service_counters *c):
    """<ids>: the service's backend ids (bytes), sorted as the C backend array is; <c>: the service's
    counters, which hold its HTTP ones too."""
    o = svc.http
    tm = svc.timeouts
    hs.c = c
    hs.http = svc.mode == "http"
    hs.hsts = o.hsts
    hs.redirect_https = o.redirect_to_https
    hs.forwarded = o.forwarded_headers
    hs.request_ms = tm.http_request_ms
    hs.keepalive_ms = tm.http_keepalive_ms
    hs.server_ms = tm.server_ms
    hs.client_ms = tm.client_ms
    hs.tunnel_ms = tm.tunnel_ms
    hs.connect_ms = tm.connect_ms
    hs.auth_epoch = flb_l7_epoch(l)
    if o.sticky:
        hs.sticky = 1
        hs.cookie = _dup(o.sticky_cookie)
        hs.cookie_len = len(o.sticky_cookie.encode())
        hs.cookie_val = <char (*)[17]>calloc(max(len(ids), 1), 17)
        if hs.cookie_val == NULL:
            raise MemoryError()
        for j, bid in enumerate(ids):
            flb_l7_cookie_value(l, bid, hs.cookie_val[j])
    if o.auth_users:
        hs.realm = _dup(o.auth_realm or "fastlb")
        hs.auth_remove = o.auth_remove_header
        hs.users = <flb_l7_user *>calloc(len(o.auth_users), sizeof(flb_l7_user))
        if hs.users == NULL:
            raise MemoryError()
        for j, (user, digest) in enumerate(o.auth_users):
            hs.users[j].name = _dup(user)
            hs.users[j].hash = _dup(digest)
            hs.nusers = j + 1
    if o.allow_cidrs:
        hs.cidrs = <flb_l7_cidr *>calloc(len(o.allow_cidrs), sizeof(flb_l7_cidr))
        if hs.cidrs == NULL:
            raise MemoryError()
        for j, cidr in enumerate(o.allow_cidrs):
            if not isinstance(cidr, str) or flb_h1auth_cidr_parse(cidr.encode(), &hs.cidrs[j]) != FLB_OK:
                raise ValueError(f"service {svc.name!r} http.allow_cidrs: {cidr!r} is not an address or CIDR")
        hs.ncidrs = len(o.allow_cidrs)
        hs.allow_xff = o.allow_forwarded_for
    if hs.http:
        _l7_rewrites(hs, o)
        _l7_front(hs, o)


cdef _l7_rewrites(flb_l7_service *hs, object o):
    """The rewrite options of HttpOptions <o> (checked by _l7_check)."""
    if o.strip_prefix:
        _str(&hs.strip, _path_prefix(o.strip_prefix))
    if o.set_host:
        _str(&hs.host_line, f"Host: {o.set_host}\r\n")
    if o.location_prefix:
        _str(&hs.loc_prefix, _path_prefix(o.location_prefix))
    if o.redirect_root:
        _str(&hs.redir, o.redirect_root)
    hs.redir_code = o.redirect_root_code
    if not (o.location_prefix or o.redirect_root):
        return
    vhosts = []
    for name in o.hosts:
        if _host_only(name) not in vhosts:
            vhosts.append(_host_only(name))
    hosts = list(vhosts)
    if o.set_host and _host_only(o.set_host) not in hosts:
        hosts.append(_host_only(o.set_host))
    if not hosts:
        return
    hs.hosts = <flb_l7_str *>calloc(len(hosts), sizeof(flb_l7_str))
    if hs.hosts == NULL:
        raise MemoryError()
    for j, name in enumerate(hosts):
        _str(&hs.hosts[j], name)
        hs.nhosts = j + 1
    hs.nvhosts = len(vhosts)


cdef _l7_request_counts(DataPlane dp, dict out, flb_table *t):
    """HTTP requests per service of <t>, as "s:<name>" (0 for a tcp-mode one; DataPlane.request_counts)."""
    cdef flb_l7_service *hs
    cdef flb_l7_table *lt = flb_l7_table_of(t)
    for i in range(t.nsvc):
        hs = &lt.svc[i] if lt != NULL else NULL
        out["s:" + t.svc[i].name.decode()] = hs.c.requests if hs != NULL and hs.http and hs.c != NULL else 0


cdef _l7_stats(DataPlane dp, dict out, flb_table *t):
    """Adds HTTP mode's counters to a stats() snapshot: per http service "http" (requests, responses
    by class, answered by fastlb itself), and "access_log" (lines written, dropped)."""
    cdef flb_l7 *l = flb_l7_of(dp.e)
    cdef flb_l7_service *hs
    cdef flb_l7_table *lt = flb_l7_table_of(t)
    out["access_log"] = {"lines": l.log_lines, "drops": l.log_drops}
    if lt == NULL:
        return
    for i in range(t.nsvc):
        hs = &lt.svc[i]
        if not hs.http or hs.c == NULL:
            continue
        entry = {"requests": hs.c.requests, "own": hs.c.own}
        for k in range(6):
            entry[_CLASSES[k]] = hs.c.status[k]
        out["services"][t.svc[i].name.decode()]["http"] = entry
