"""Traefik 1.x's Marathon labels (``traefik.*``): the default segment and ``traefik.<segment>.*``,
the frontend rule, access (source ranges, basic auth), custom headers and redirects.

Parsing never raises, as in ``labels.py``: each parser returns what it understood plus ``errors``
(the app cannot be served as labelled) and ``warnings`` (a label accepted and ignored, or served
approximately). Booleans and durations are read as Go reads them, since Traefik is written in Go.
The access labels are Traefik's part of ``labels.RESTRICTING_LABELS``: served, or an error.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import re
from collections.abc import Mapping

import msgspec

from fastlb import spec
from fastlb.marathon.labels import _COOKIE, _HOSTNAME, RESTRICTING_LABELS, parse_int, split_csv
from fastlb.spec import Balance

# Properties that make ``traefik.<segment>.<property>`` a segment label (Traefik's segment.go).
_SEGMENT_PROPS = ("port", "portIndex", "portName", "weight", "protocol", "backend")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")

# Every property of Traefik 1.7's labels (provider/label/names.go, Marathon's ipAddressIdx and the
# prefixed families below): a label outside them is not Traefik's, and its warning says so.
TRAEFIK_PROPS = frozenset(
    {
        "enable",
        "domain",
        "tags",
        "ipAddressIdx",
        "port",
        "portIndex",
        "portName",
        "protocol",
        "weight",
        "backend",
        "backend.id",
        "backend.circuitbreaker",
        "backend.circuitbreaker.expression",
        "backend.healthcheck.scheme",
        "backend.healthcheck.path",
        "backend.healthcheck.port",
        "backend.healthcheck.interval",
        "backend.healthcheck.hostname",
        "backend.healthcheck.headers",
        "backend.loadbalancer",
        "backend.loadbalancer.method",
        "backend.loadbalancer.sticky",
        "backend.loadbalancer.stickiness",
        "backend.loadbalancer.stickiness.cookieName",
        "backend.maxconn.amount",
        "backend.maxconn.extractorfunc",
        "backend.buffering",
        "backend.buffering.maxRequestBodyBytes",
        "backend.buffering.memRequestBodyBytes",
        "backend.buffering.maxResponseBodyBytes",
        "backend.buffering.memResponseBodyBytes",
        "backend.buffering.retryExpression",
        "backend.responseForwarding.flushInterval",
        "frontend.rule",
        "frontend.priority",
        "frontend.entryPoints",
        "frontend.passHostHeader",
        "frontend.passTLSCert",
        "frontend.rateLimit.extractorFunc",
        "frontend.redirect.permanent",
        "frontend.headers.customRequestHeaders",
        "frontend.headers.customResponseHeaders",
        "frontend.headers.STSSeconds",
        "frontend.headers.STSIncludeSubdomains",
        "frontend.headers.STSPreload",
        "frontend.headers.forceSTSHeader",
        "frontend.headers.frameDeny",
        "frontend.headers.customFrameOptionsValue",
        "frontend.headers.contentTypeNosniff",
        "frontend.headers.browserXSSFilter",
        "frontend.headers.customBrowserXSSValue",
        "frontend.headers.contentSecurityPolicy",
        "frontend.headers.publicKey",
        "frontend.headers.referrerPolicy",
        "frontend.headers.isDevelopment",
    }
    | {label.removeprefix("traefik.") for label in RESTRICTING_LABELS if label.startswith("traefik.")}
)
_TRAEFIK_PROP_FAMILIES = re.compile(
    r"frontend\.(errors\.[^.]+\.(status|backend|query)|rateLimit\.rateSet\.[^.]+\.(period|average|burst)"
    r"|pass(TLS|SSL)ClientCert(\..+)?)"
)

# The Traefik properties the access rules below read, each segment's own.
_TRAEFIK_ACCESS_PROPS = frozenset(
    label.removeprefix("traefik.") for label in RESTRICTING_LABELS if label.startswith("traefik.")
)
TRAEFIK_REALM = "traefik"  # Traefik 1.7's basic auth realm
# Password hashes the data plane checks: crypt(3)'s (libxcrypt) bcrypt, MD5-crypt, SHA-256 and SHA-512
# crypt, and htpasswd's own Apache MD5 (htpasswd -m, its default) and {SHA} (base64 of SHA-1, -s).
_CRYPT_HASH = re.compile(
    r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}"
    r"|\$1\$[./A-Za-z0-9]{0,8}\$[./A-Za-z0-9]{22}"
    r"|\$5\$(rounds=[0-9]{1,9}\$)?[./A-Za-z0-9]{0,16}\$[./A-Za-z0-9]{43}"
    r"|\$6\$(rounds=[0-9]{1,9}\$)?[./A-Za-z0-9]{0,16}\$[./A-Za-z0-9]{86}"
)
_HTPASSWD_HASH = re.compile(r"\$apr1\$[./A-Za-z0-9]{0,8}\$[./A-Za-z0-9]{22}|\{SHA\}[A-Za-z0-9+/]{27}=")

_TRAEFIK_IGNORED = {
    "traefik.tags": "",
    "traefik.backend.circuitbreaker.expression": "circuit breakers are not supported",
    "traefik.frontend.passHostHeader": "",
}


class TraefikRule(msgspec.Struct, frozen=True):
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


class TraefikSegment(msgspec.Struct, frozen=True):
    name: str = ""  # "" is the default segment
    port: int | None = None
    port_index: int | None = None
    port_name: str | None = None
    weight: int = 1
    backend: str | None = None
    rule: TraefikRule | None = None  # None: Traefik's default Host rule
    priority: int = 0
    entry_points: tuple[str, ...] | None = None
    allow_cidrs: tuple[str, ...] = ()  # whiteList.sourceRange; empty: everyone
    allow_forwarded_for: bool = False  # whiteList.useXForwardedFor, with allow_cidrs
    auth_users: tuple[tuple[str, str], ...] = ()  # auth.basic.users: (user, hash), realm TRAEFIK_REALM
    auth_remove_header: bool = False  # auth.basic.removeHeader or auth.removeHeader, with auth_users
    redirect_to_https: bool = False  # headers.SSLRedirect
    # headers.allowedHosts (lower-cased), None when Traefik checks none: the build refuses the app
    # unless the segment routes these hosts only, which then keeps every other Host out
    allowed_hosts: tuple[str, ...] | None = None
    # redirect.entryPoint=https: redirect_to_https's status (302; 301 with redirect.permanent)
    redirect_to_https_code: int = 301
    redirect_regex: str = ""  # redirect.regex (POSIX ERE) and redirect.replacement
    redirect_replacement: str = ""
    redirect_regex_code: int = 302
    # headers.customRequestHeaders, customResponseHeaders: (name, value), "" removes the field
    request_headers: tuple[tuple[str, str], ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()
    sts_seconds: int = 0  # headers.STSSeconds, with STSIncludeSubdomains, STSPreload, forceSTSHeader
    sts_include_subdomains: bool = False
    sts_preload: bool = False
    sts_plain: bool = False


class TraefikLabels(msgspec.Struct, frozen=True):
    present: bool = False  # the app has at least one traefik.* label
    enable: bool | None = None
    domain: str = ""
    tags: tuple[str, ...] = ()
    ip_address_idx: int | None = None
    segments: tuple[TraefikSegment, ...] = ()
    balance: Balance = "roundrobin"
    sticky: bool = False
    sticky_cookie: str | None = None
    healthcheck_path: str | None = None
    healthcheck_port: int = 0
    healthcheck_interval_ms: int = 30000
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def traefik_normalize(name: str) -> str:
    """Traefik's ``Normalize``: runs of letters and digits joined with ``-``."""
    return "-".join(re.findall(r"[A-Za-z0-9]+", name))


def traefik_default_cookie(backend: str) -> str:
    """Traefik v1's stickiness cookie name when ``cookieName`` is not given."""
    return "_" + hashlib.sha1(backend.encode()).hexdigest()[:5]


def _go_bool(value: str) -> bool | None:
    v = value.strip()
    return True if v in _GO_TRUE else False if v in _GO_FALSE else None


def _go_duration_ms(value: str) -> int | None:
    total = 0.0
    rest = value.strip()
    if not rest:
        return None
    units = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
    if re.fullmatch(r"([0-9]+(?:\.[0-9]+)?(ns|us|µs|ms|s|m|h))+", rest) is None:
        return None
    for number, unit in re.findall(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", rest):
        total += float(number) * units[unit]
    return int(total)


def parse_traefik_rule(value: str) -> tuple[TraefikRule | None, str | None]:
    """``Host:a,b;PathPrefix:/x`` -> the rule, or an error. fastlb routes by Host and path prefix
    only: a rule with another matcher cannot be served as written, and serving it without that
    matcher would widen it, so it is an error."""
    hosts: list[str] = []
    paths: list[str] = []
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        kind, sep, arg = part.partition(":")
        if not sep:
            return None, f"{part!r} is not a matcher (Host:..., PathPrefix:...)"
        values = [v.strip() for v in arg.split(",") if v.strip()]
        if kind.strip() == "Host":
            for host in values:
                host = host.lower()
                if not _HOSTNAME.fullmatch(host):
                    return None, f"{host!r} is not a host name"
                hosts.append(host.partition(":")[0])  # fastlb routes a Host by its name, whatever the port
        elif kind.strip() == "PathPrefix":
            for path in values:
                if not path.startswith("/"):
                    return None, f"path {path!r} does not start with /"
                paths.append(path)
        else:
            return None, f"matcher {kind.strip()!r} is not supported (only Host and PathPrefix)"
    if not hosts:
        return None, "fastlb routes Traefik apps by Host: the rule needs a Host matcher"
    return TraefikRule(hosts=tuple(hosts), paths=tuple(paths)), None


def _segment_split(label: str) -> tuple[str, str] | None:
    """``traefik.<seg>.<prop>`` -> (seg, prop) when it is a segment label (the shortest segment
    name that works, as Traefik's segment.go); None for a default-segment label."""
    rest = label[len("traefik.") :]
    if rest.startswith("frontend.") or rest.startswith("backend."):
        return None
    parts = rest.split(".")
    for i in range(1, len(parts)):
        seg, prop = ".".join(parts[:i]), ".".join(parts[i:])
        if prop in _SEGMENT_PROPS or prop.startswith("frontend."):
            return seg, prop
    return None


def parse_traefik_labels(labels: Mapping[str, str] | None) -> TraefikLabels:
    """The ``traefik.*`` labels of one app (Traefik v1.7 names). Never raises."""
    if not labels or not any(k.startswith("traefik.") for k in labels):
        return TraefikLabels()
    errors: list[str] = []
    warnings: list[str] = []
    default: dict[str, str] = {}
    named: dict[str, dict[str, str]] = {}
    app: dict[str, object] = {"present": True}
    for label in sorted(labels):
        if not label.startswith("traefik.") or not isinstance(labels[label], str):
            continue
        value = labels[label]
        split = _segment_split(label)
        if split is not None:
            named.setdefault(split[0], {})[split[1]] = value
            continue
        prop = label[len("traefik.") :]
        if prop in _SEGMENT_PROPS or prop.startswith("frontend."):
            default[prop] = value
        elif prop == "enable":
            enable = _go_bool(value)
            if enable is None:
                warnings.append(f"{label}={value!r}: not a boolean; using the default")
            else:
                app["enable"] = enable
        elif prop == "domain":
            app["domain"] = value.strip().lower()
        elif prop == "tags":
            app["tags"] = split_csv(value)
        elif prop == "ipAddressIdx":
            _put(app, "ip_address_idx", _within(parse_int(value), 0), label, value, "not an index", errors)
        elif prop == "backend.loadbalancer.method":
            method = value.strip().lower()
            if method == "wrr":
                app["balance"] = "roundrobin"
            elif method == "drr":
                # Dynamic round-robin favours the servers that answer fastest; least-connections
                # is fastlb's nearest policy.
                app["balance"] = "leastconn"
            else:
                errors.append(f"{label}={value!r}: expected wrr or drr")
        elif prop in ("backend.loadbalancer.stickiness", "backend.loadbalancer.sticky"):
            sticky = _go_bool(value)
            if sticky is None:
                warnings.append(f"{label}={value!r}: not a boolean; stickiness off")
            else:
                app["sticky"] = sticky
        elif prop == "backend.loadbalancer.stickiness.cookieName":
            cookie = value if _COOKIE.fullmatch(value) else None
            _put(app, "sticky_cookie", cookie, label, value, "not a cookie name", errors)
        elif prop == "backend.healthcheck.path":
            path = value if value.startswith("/") else None
            _put(app, "healthcheck_path", path, label, value, "the path must start with /", errors)
        elif prop == "backend.healthcheck.port":
            port = _within(parse_int(value), 0, 65535)
            _put(app, "healthcheck_port", port, label, value, "not a port number", errors)
        elif prop == "backend.healthcheck.interval":
            ms = _within(_go_duration_ms(value), 1)
            _put(app, "healthcheck_interval_ms", ms, label, value, "not a duration such as 10s", errors)
        elif prop == "backend.healthcheck.scheme":
            if value.strip().lower() != "http":
                # Plain-text probes against a TLS port would mark every server down.
                errors.append(f"{label}={value!r}: fastlb health checks speak plain HTTP only")
        elif label in _TRAEFIK_IGNORED:
            if _TRAEFIK_IGNORED[label]:
                warnings.append(f"{label}: {_TRAEFIK_IGNORED[label]}; ignored")
        else:
            warnings.append(_traefik_unsupported(label, prop))

    segments: list[TraefikSegment] = []
    # One named segment or more replace the default segment; they inherit its properties.
    for name, props in sorted(named.items()) if named else [("", {})]:
        merged = {**default, **props}
        segments.append(_parse_segment(name, merged, errors, warnings))
    app["segments"] = tuple(segments)
    return TraefikLabels(errors=tuple(errors), warnings=tuple(warnings), **app)  # type: ignore[arg-type]


def _within(n: int | None, lo: int, hi: int | None = None) -> int | None:
    """<n> when it is in lo..hi (no upper bound when hi is None), else None."""
    return n if n is not None and n >= lo and (hi is None or n <= hi) else None


def _put(
    fields: dict[str, object], key: str, parsed: object | None, label: str, value: str, why: str, errors: list[str]
) -> None:
    """fields[key] = parsed; when parsed is None, an error that says why <value> of <label> is refused."""
    if parsed is None:
        errors.append(f"{label}={value!r}: {why}")
    else:
        fields[key] = parsed


def _traefik_unsupported(label: str, prop: str) -> str:
    if prop in TRAEFIK_PROPS or _TRAEFIK_PROP_FAMILIES.fullmatch(prop):
        return f"{label}: not supported by fastlb; ignored"
    return f"{label}: not a Traefik 1.7 label; ignored"


def _parse_segment(
    name: str, props: dict[str, str], errors: list[str], warnings: list[str]
) -> TraefikSegment:
    prefix = f"traefik.{name}." if name else "traefik."
    fields: dict[str, object] = {"name": name}
    entry_points = props.get("frontend.entryPoints")
    if entry_points is None or "http" in split_csv(entry_points):
        # A segment that is not routed serves nothing: its access rules cannot be dropped.
        _parse_traefik_access(prefix, props, fields, errors, warnings)
        _parse_traefik_redirect(prefix, props, fields, errors, warnings)
        _parse_traefik_headers(prefix, props, fields, errors, warnings)
    for prop, value in sorted(props.items()):
        label = prefix + prop
        if prop == "port":
            _put(fields, "port", _within(parse_int(value), 1, 65535), label, value, "not a port number", errors)
        elif prop == "portIndex":
            _put(fields, "port_index", _within(parse_int(value), 0), label, value, "not an index", errors)
        elif prop == "portName":
            fields["port_name"] = value.strip()
        elif prop == "weight":
            weight = _within(parse_int(value), 0, 256)
            _put(fields, "weight", weight, label, value, "expected a weight in 0..256", errors)
        elif prop == "protocol":
            if value.strip().lower() != "http":
                errors.append(f"{label}={value!r}: fastlb speaks HTTP/1.1 to backends only")
        elif prop == "backend":
            fields["backend"] = value.strip()
        elif prop == "frontend.rule":
            rule, why = parse_traefik_rule(value)
            if why is not None:
                errors.append(f"{label}={value!r}: {why}")
            else:
                fields["rule"] = rule
        elif prop == "frontend.priority":
            _put(fields, "priority", parse_int(value), label, value, "not an integer", errors)
        elif prop == "frontend.entryPoints":
            fields["entry_points"] = split_csv(value)
            if "http" not in fields["entry_points"]:  # type: ignore[operator]
                warnings.append(
                    f"{label}={value!r}: fastlb's only entry point is the vhost listener (\"http\"); "
                    "this segment is not routed"
                )
        elif prop == "frontend.passHostHeader" and _go_bool(value) is not False:
            pass
        elif prop in _TRAEFIK_ACCESS_PROPS or prop in _TRAEFIK_HEADER_PROPS:
            pass  # _parse_traefik_access, _parse_traefik_redirect, _parse_traefik_headers
        else:
            warnings.append(_traefik_unsupported(label, prop))
    if "port" in fields and "port_index" in fields:
        warnings.append(f"{prefix}port and {prefix}portIndex both set: port wins")
        del fields["port_index"]
    return TraefikSegment(**fields)  # type: ignore[arg-type]


def _parse_traefik_access(
    prefix: str, props: dict[str, str], fields: dict[str, object], errors: list[str], warnings: list[str]
) -> None:
    """One routed segment's access rules (its props in _TRAEFIK_ACCESS_PROPS) into ``fields``: each
    is served, or an error refuses the app (RESTRICTING_LABELS). Serving the app without one would
    open it to whom Traefik keeps out."""

    def refuse(prop: str, why: str) -> None:
        errors.append(f"{prefix}{prop}={props[prop]!r}: {why}")

    def inert(prop: str, why: str) -> None:
        warnings.append(f"{prefix}{prop}: {why}; ignored")

    def flag(prop: str) -> bool | None:
        """A Go boolean; None when absent or not a boolean (then an error: Traefik would read false,
        and a restriction asked for with a typo would be silently off)."""
        if prop not in props:
            return None
        value = _go_bool(props[prop])
        if value is None:
            refuse(prop, "not a boolean (true or false)")
        return value

    # Source allow-list. Traefik reads whiteList.sourceRange, else the deprecated whitelistSourceRange.
    current, deprecated = "frontend.whiteList.sourceRange", "frontend.whitelistSourceRange"
    if current in props and deprecated in props and split_csv(props[current]) != split_csv(props[deprecated]):
        refuse(deprecated, f"differs from {prefix}{current}: give the allow-list once")
    ranges_prop = current if current in props else deprecated if deprecated in props else None
    xff = "frontend.whiteList.useXForwardedFor"
    if ranges_prop is not None and split_csv(props[ranges_prop]):
        nets = []
        for token in split_csv(props[ranges_prop]):
            try:
                nets.append(str(ipaddress.ip_network(token, strict=False)))
            except ValueError:
                refuse(ranges_prop, f"{token!r} is not an IP address or CIDR")
        fields["allow_cidrs"] = tuple(nets)
        # Traefik's meaning: an address of the request's X-Forwarded-For in the ranges admits it too
        # (whoever reaches fastlb can claim one; docs/internals/marathon.md says so).
        if flag(xff):
            fields["allow_forwarded_for"] = True
    else:
        if ranges_prop is not None:
            inert(ranges_prop, "empty: no allow-list, as in Traefik")
        if xff in props:
            inert(xff, "no whiteList.sourceRange to apply it to")

    # Basic auth. Traefik reads the deprecated auth.basic, else auth.basic.users.
    current, deprecated = "frontend.auth.basic.users", "frontend.auth.basic"
    if current in props and deprecated in props and split_csv(props[current]) != split_csv(props[deprecated]):
        refuse(deprecated, f"differs from {prefix}{current}: give the users once")
    users_prop = deprecated if deprecated in props else current if current in props else None
    if users_prop is not None:
        users: list[tuple[str, str]] = []
        for entry in split_csv(props[users_prop]):
            user, sep, digest = entry.partition(":")
            if not sep or not user or not digest or ":" in digest or "\0" in user:
                refuse(users_prop, f"{entry!r} is not user:hash")
            elif any(user == u for u, _ in users):
                refuse(users_prop, f"user {user!r} is listed twice")
            elif not (_CRYPT_HASH.fullmatch(digest) or _HTPASSWD_HASH.fullmatch(digest)):
                refuse(
                    users_prop,
                    f"user {user!r}: the password is not a hash fastlb checks (htpasswd's $apr1$ and "
                    "{SHA}, bcrypt, $1$, $5$, $6$); a plain-text password is never accepted",
                )
            else:
                users.append((user, digest))
        if users:
            fields["auth_users"] = tuple(users)
        elif not split_csv(props[users_prop]):
            inert(users_prop, "empty: no users, no authentication, as in Traefik")
    # Once the credentials pass, the backend gets the request without Authorization.
    for prop in ("frontend.auth.basic.removeHeader", "frontend.auth.removeHeader"):
        if flag(prop):
            if "auth_users" in fields:
                fields["auth_remove_header"] = True
            else:
                inert(prop, "no auth.basic.users to check before the header is removed")
    for prop in sorted(props):
        if prop == "frontend.auth.basic.usersFile":
            refuse(prop, "fastlb reads no users file: list the users in traefik.frontend.auth.basic.users")
        elif prop.startswith("frontend.auth.digest."):
            refuse(prop, "digest authentication is not implemented in fastlb; the app would be open")
        elif prop.startswith("frontend.auth.forward."):
            refuse(prop, "forward authentication is not implemented in fastlb; the app would be open")
        elif prop == "frontend.auth.headerField" and props[prop].strip():
            refuse(
                prop,
                "fastlb does not pass the authenticated user on: the backend would trust the header "
                "as the client sent it",
            )
        elif prop == "frontend.auth.headerField":
            inert(prop, "empty")

    # https only. Traefik's SSLRedirect answers every plain request with a 301 to
    # https://<Host><target>, as fastlb's redirect_to_https does; isDevelopment turns it off.
    # SSLTemporaryRedirect, SSLHost and SSLProxyHeaders change that redirect, and SSLForceHost with
    # SSLHost makes one of its own: fastlb makes neither, so each is an error where it applies.
    development = _go_bool(props.get("frontend.headers.isDevelopment", "")) is True
    redirect = flag("frontend.headers.SSLRedirect")
    temporary = flag("frontend.headers.SSLTemporaryRedirect")
    force_host = flag("frontend.headers.SSLForceHost")
    ssl_host = props.get("frontend.headers.SSLHost", "").strip()
    redirecting = bool(redirect) and not development
    if redirecting:
        if temporary:
            refuse("frontend.headers.SSLTemporaryRedirect", "fastlb's redirect to https is a 301, not a 307")
        if ssl_host:
            refuse("frontend.headers.SSLHost", "fastlb redirects to https on the host asked for, not another")
        if props.get("frontend.headers.SSLProxyHeaders", "").strip():
            refuse(
                "frontend.headers.SSLProxyHeaders",
                "fastlb does not read proxy headers: it would redirect requests already made over https",
            )
        fields["redirect_to_https"] = True
    elif redirect:
        inert("frontend.headers.SSLRedirect", "isDevelopment turns it off, as in Traefik")
    if force_host and ssl_host:
        refuse("frontend.headers.SSLForceHost", "fastlb cannot redirect to SSLHost")
    elif force_host is not None:
        inert("frontend.headers.SSLForceHost", "no SSLHost to force")
    if not redirecting:
        if temporary is not None:
            inert("frontend.headers.SSLTemporaryRedirect", "no redirect to https to change")
        if "frontend.headers.SSLProxyHeaders" in props:
            inert("frontend.headers.SSLProxyHeaders", "no redirect to https to change")
        if "frontend.headers.SSLHost" in props and not force_host:
            inert("frontend.headers.SSLHost", "no redirect to https to change")

    # Allowed hosts: Traefik answers 400 to a Host outside them (isDevelopment turns it off).
    # fastlb serves the segment when it routes allowed hosts only; the build checks that.
    hosts = tuple(h.lower() for h in split_csv(props.get("frontend.headers.allowedHosts", "")))
    if hosts and not development:
        fields["allowed_hosts"] = hosts
        if props.get("frontend.headers.hostsProxyHeaders", "").strip():
            refuse(
                "frontend.headers.hostsProxyHeaders",
                "fastlb does not check allowedHosts against proxy headers; a forged one would pass",
            )
    elif "frontend.headers.allowedHosts" in props:
        inert("frontend.headers.allowedHosts", "isDevelopment turns it off" if hosts else "empty")
    if "frontend.headers.hostsProxyHeaders" in props and not (hosts and not development):
        inert("frontend.headers.hostsProxyHeaders", "no allowedHosts to check")


# The frontend properties _parse_traefik_redirect and _parse_traefik_headers read (beside the
# redirect ones of RESTRICTING_LABELS).
_TRAEFIK_HEADER_PROPS = frozenset(
    {
        "frontend.redirect.permanent",
        "frontend.headers.customRequestHeaders",
        "frontend.headers.customResponseHeaders",
        "frontend.headers.STSSeconds",
        "frontend.headers.STSIncludeSubdomains",
        "frontend.headers.STSPreload",
        "frontend.headers.forceSTSHeader",
    }
)


def _posix_ere_error(pattern: str) -> str | None:
    """regcomp(3)'s words when <pattern> is not a POSIX extended regular expression, or None: the data
    plane compiles it with the same libc, so a pattern that passes here compiles there."""
    libc = ctypes.CDLL(None)
    compiled = ctypes.create_string_buffer(256)  # a regex_t (64 bytes in glibc), with room to spare
    rc = libc.regcomp(compiled, pattern.encode(), 1)  # REG_EXTENDED
    if rc == 0:
        libc.regfree(compiled)
        return None
    words = ctypes.create_string_buffer(256)
    libc.regerror(rc, compiled, words, len(words))
    libc.regfree(compiled)
    return words.value.decode(errors="replace")


def _parse_traefik_redirect(
    prefix: str, props: dict[str, str], fields: dict[str, object], errors: list[str], warnings: list[str]
) -> None:
    """A routed segment's redirect (Traefik 1.7's GetRedirect: entryPoint, else regex with
    replacement): served, or an error refuses the app."""
    entry_point, regex = "frontend.redirect.entryPoint", "frontend.redirect.regex"
    replacement = "frontend.redirect.replacement"
    permanent_prop = "frontend.redirect.permanent"

    def refuse(prop: str, why: str) -> None:
        errors.append(f"{prefix}{prop}={props[prop]!r}: {why}")

    def inert(prop: str, why: str) -> None:
        warnings.append(f"{prefix}{prop}: {why}; ignored")

    permanent = False
    if permanent_prop in props:
        value = _go_bool(props[permanent_prop])
        if value is None:
            refuse(permanent_prop, "not a boolean (true or false)")
        permanent = bool(value)
    code = 301 if permanent else 302
    redirecting = False
    if props.get(entry_point, "").strip():
        name = props[entry_point].strip()
        if name == "https":
            # https://<Host><target>, as the SSLRedirect one (which this one's status overrides)
            fields["redirect_to_https"] = True
            fields["redirect_to_https_code"] = code
            redirecting = True
        elif name == "http":
            refuse(entry_point, "requests come in on http, fastlb's only HTTP entry point: the redirect would loop")
        else:
            refuse(entry_point, f"unknown entry point {name!r}: fastlb redirects to https only")
        for prop in (regex, replacement):
            if prop in props:
                inert(prop, "redirect.entryPoint is set: it is the redirect, as in Traefik")
    else:
        if entry_point in props:
            inert(entry_point, "empty")
        if props.get(regex) and replacement in props:
            why = spec.redirect_regex_problem(props[regex])
            if why is None:
                compile_error = _posix_ere_error(props[regex])
                if compile_error is not None:
                    why = f"not a POSIX extended regular expression: {compile_error}"
            if why is not None:
                refuse(regex, why)
            elif (why := spec.redirect_replacement_problem(props[replacement])) is not None:
                refuse(replacement, why)
            else:
                fields["redirect_regex"] = props[regex]
                fields["redirect_replacement"] = props[replacement]
                fields["redirect_regex_code"] = code
                redirecting = True
        elif regex in props:
            inert(regex, "empty" if not props[regex] else "no redirect.replacement: Traefik makes no redirect")
        elif replacement in props:
            inert(replacement, "no redirect.regex to apply it with")
    if permanent_prop in props and not redirecting:
        inert(permanent_prop, "no redirect to make permanent")


def _canonical_field(name: str) -> str:
    """Go's CanonicalHeaderKey, as Traefik keys the custom header fields."""
    return "-".join(w[:1].upper() + w[1:].lower() for w in name.split("-"))


def _parse_traefik_header_map(
    label: str, value: str, request: bool, errors: list[str], warnings: list[str]
) -> tuple[tuple[str, str], ...]:
    """``Name:value||Name2:value2`` (Traefik's map label): names and values trimmed, each field
    checked (a value that could split a header refuses the app)."""
    fields: dict[str, tuple[str, str]] = {}
    for part in value.split("||"):
        name, sep, field_value = part.partition(":")
        name, field_value = name.strip(), field_value.strip()
        if not sep or not name:
            errors.append(f"{label}={value!r}: {part!r} is not Name:value")
            continue
        why = spec.header_field_problem(name, field_value, request)
        if why is not None:
            errors.append(f"{label}: {why}")
            continue
        name = _canonical_field(name)
        if name.lower() in fields:
            errors.append(f"{label}: {name} is listed twice")
            continue
        fields[name.lower()] = (name, field_value)
    return tuple(fields.values())


def _parse_traefik_headers(
    prefix: str, props: dict[str, str], fields: dict[str, object], errors: list[str], warnings: list[str]
) -> None:
    """A routed segment's custom header fields and Strict-Transport-Security."""
    for prop, key, request in (
        ("frontend.headers.customRequestHeaders", "request_headers", True),
        ("frontend.headers.customResponseHeaders", "response_headers", False),
    ):
        if prop not in props:
            continue
        if not props[prop].strip():
            warnings.append(f"{prefix}{prop}: empty; ignored")
            continue
        fields[key] = _parse_traefik_header_map(prefix + prop, props[prop], request, errors, warnings)

    seconds_prop = "frontend.headers.STSSeconds"
    flags: dict[str, bool | None] = {}
    for prop in (
        "frontend.headers.STSIncludeSubdomains", "frontend.headers.STSPreload", "frontend.headers.forceSTSHeader"
    ):
        if prop in props:
            flags[prop] = _go_bool(props[prop])
            if flags[prop] is None:
                errors.append(f"{prefix}{prop}={props[prop]!r}: not a boolean (true or false)")
    seconds = 0
    if seconds_prop in props:
        parsed = parse_int(props[seconds_prop])
        if parsed is None or not 0 <= parsed < 1 << 63:
            errors.append(f"{prefix}{seconds_prop}={props[seconds_prop]!r}: not a number of seconds")
        else:
            seconds = parsed
    development = _go_bool(props.get("frontend.headers.isDevelopment", "")) is True
    if seconds and not development:
        fields["sts_seconds"] = seconds
        fields["sts_include_subdomains"] = bool(flags.get("frontend.headers.STSIncludeSubdomains"))
        fields["sts_preload"] = bool(flags.get("frontend.headers.STSPreload"))
        fields["sts_plain"] = bool(flags.get("frontend.headers.forceSTSHeader"))
        if not fields["sts_plain"]:
            warnings.append(
                f"{prefix}{seconds_prop}: sent on requests that came over TLS only, as in Traefik, and fastlb "
                "has no TLS listener: no response carries it (forceSTSHeader=true sends it on plain HTTP too)"
            )
    else:
        if seconds_prop in props:
            inert = "isDevelopment turns it off, as in Traefik" if seconds else "0: no header"
            warnings.append(f"{prefix}{seconds_prop}: {inert}; ignored")
        for prop in flags:
            warnings.append(f"{prefix}{prop}: no Strict-Transport-Security to shape; ignored")
