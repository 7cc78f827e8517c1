"""Marathon app labels: marathon-lb's ``HAPROXY_*``, Traefik's ``traefik.*`` and fastlb's ``FASTLB_*``.

Parsing never raises. Each parser returns what it understood plus ``errors`` (the app cannot be
served as labelled: the caller disables that app alone) and ``warnings`` (a label fastlb accepts and
ignores, or serves approximately: the caller logs each once).

marathon-lb's rules are kept where users can observe them (``docs/internals/marathon.md`` lists the
exceptions): booleans go through ``string_to_bool`` (``true/t/yes/y``, any case; anything else is
false), per-port labels are ``HAPROXY_{n}_X`` with ``{n}`` the service-port index, a per-port group
replaces the app group. Where marathon-lb would hand HAProxy a value that ``haproxy -c`` rejects
(a mode that is neither tcp nor http, a weight that is not a number), fastlb reports an error
instead, because marathon-lb then drops that app from the config as well.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
from collections.abc import Mapping

import msgspec

from fastlb.spec import Balance, Mode

_PORT_LABEL = re.compile(r"HAPROXY_([0-9]+)_(.+)", re.DOTALL)
_FASTLB_PORT_LABEL = re.compile(r"FASTLB_([0-9]+)_(.+)", re.DOTALL)
_INT = re.compile(r"[+-]?[0-9]+")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?(us|ms|s|m|h|d)?")
_HOSTNAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?(:[0-9]{1,5})?")
_COOKIE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_MAX_PORT_INDEX = 1000  # HAPROXY_{n}_ beyond this is certainly a typo; it cannot name a port

# marathon-lb's balance algorithms fastlb serves as they are, and HAProxy's other algorithms,
# which fastlb serves with round-robin (a warning says so): they are valid marathon-lb labels, and
# refusing them would take a working app off the balancer.
_BALANCE: dict[str, Balance] = {
    "roundrobin": "roundrobin",
    "leastconn": "leastconn",
    "source": "source",
    "maglev": "maglev",
}
_HAPROXY_BALANCE = re.compile(
    r"(static-rr|first|uri|url_param|hdr\([^)]*\)|random(\([0-9]+\))?|rdp-cookie(\([^)]*\))?|hash)"
    r"( .*)?"
)

# §1b: labels that replace a marathon-lb HAProxy config snippet. fastlb generates no HAProxy
# config, so they cannot apply: accepted, one warning each.
TEMPLATE_LABELS = frozenset(
    {
        "FRONTEND_HEAD",
        "FRONTEND_BACKEND_GLUE",
        "USERLIST_HEAD",
        "BACKEND_HEAD",
        "BACKEND_HTTP_OPTIONS",
        "BACKEND_HSTS_OPTIONS",
        "BACKEND_STICKY_OPTIONS",
        "BACKEND_SERVER_OPTIONS",
        "BACKEND_HTTP_HEALTHCHECK_OPTIONS",
        "BACKEND_TCP_HEALTHCHECK_OPTIONS",
        "BACKEND_SERVER_HTTP_HEALTHCHECK_OPTIONS",
        "BACKEND_SERVER_TCP_HEALTHCHECK_OPTIONS",
        "BACKEND_REDIRECT_HTTP_TO_HTTPS",
        "BACKEND_REDIRECT_HTTP_TO_HTTPS_WITH_PATH",
        "HTTP_BACKEND_PROXYPASS_GLUE",
        "HTTP_BACKEND_REVPROXY_GLUE",
        "HTTP_BACKEND_NETWORK_ALLOWED_ACL",
        "TCP_BACKEND_NETWORK_ALLOWED_ACL",
        "HTTP_FRONTEND_ACL",
        "HTTP_FRONTEND_ACL_ONLY",
        "HTTP_FRONTEND_ACL_WITH_PATH",
        "HTTP_FRONTEND_ACL_WITH_AUTH",
        "HTTP_FRONTEND_ACL_WITH_AUTH_AND_PATH",
        "HTTP_FRONTEND_ACL_ONLY_WITH_PATH",
        "HTTP_FRONTEND_ACL_ONLY_WITH_PATH_AND_AUTH",
        "HTTP_FRONTEND_ROUTING_ONLY",
        "HTTP_FRONTEND_ROUTING_ONLY_WITH_AUTH",
        "HTTP_FRONTEND_ROUTING_ONLY_WITH_PATH",
        "HTTP_FRONTEND_ROUTING_ONLY_WITH_PATH_AND_AUTH",
        "HTTP_FRONTEND_APPID_ACL",
        "HTTPS_FRONTEND_ACL",
        "HTTPS_FRONTEND_ACL_WITH_AUTH",
        "HTTPS_FRONTEND_ACL_WITH_PATH",
        "HTTPS_FRONTEND_ACL_WITH_AUTH_AND_PATH",
        "HTTPS_FRONTEND_ACL_ONLY_WITH_PATH",
        "MAP_HTTP_FRONTEND_ACL",
        "MAP_HTTP_FRONTEND_ACL_ONLY",
        "MAP_HTTPS_FRONTEND_ACL",
        "MAP_HTTP_FRONTEND_APPID_ACL",
        "HTTPS_FRONTEND_AUTH_ACL_ONLY",
        "HTTPS_FRONTEND_AUTH_REQUEST_ONLY",
        "HTTPS_FRONTEND_ROUTING_ONLY_WITH_PATH_AND_AUTH",
    }
)

# Rewrites that marathon-lb performs in HAProxy and fastlb does not (yet): accepted, one warning each.
_UNSUPPORTED_PORT_LABELS = {
    "HTTP_BACKEND_PROXYPASS_PATH": "path rewriting is not supported; requests are forwarded unchanged",
    "HTTP_BACKEND_REVPROXY_PATH": "Location rewriting is not supported; responses are forwarded unchanged",
    "HTTP_BACKEND_REDIR": "the redirect from / is not supported; / is forwarded to the app",
    "BIND_OPTIONS": "HAProxy bind options do not apply to fastlb and are ignored",
}

_APP_INFO_LABELS = frozenset(
    {"HAPROXY_DEPLOYMENT_ALT_PORT", "HAPROXY_DEPLOYMENT_COLOUR", "HAPROXY_APP_ID"}
)

TIMEOUT_FIELDS = {
    "TIMEOUT_CONNECT": "connect_ms",
    "TIMEOUT_CLIENT": "client_ms",
    "TIMEOUT_SERVER": "server_ms",
    "TIMEOUT_TUNNEL": "tunnel_ms",
    "TIMEOUT_HTTP_REQUEST": "http_request_ms",
    "TIMEOUT_HTTP_KEEPALIVE": "http_keepalive_ms",
}


def string_to_bool(value: str) -> bool:
    """marathon-lb's boolean: true/t/yes/y in any case; every other value is false."""
    return value.strip().lower() in ("true", "t", "yes", "y")


def parse_int(value: str) -> int | None:
    """A decimal integer, blanks around it allowed; None for anything else."""
    text = value.strip(" \t")
    return int(text) if _INT.fullmatch(text) else None


def parse_duration_ms(value: str) -> int | None:
    """HAProxy's time format: a bare number is milliseconds; units us, ms, s, m, h, d."""
    m = _DURATION.fullmatch(value.strip(" \t"))
    if m is None:
        return None
    scale = {None: 1, "us": 0.001, "ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
    return int(float(m.group(1)) * scale[m.group(2)])


def parse_iso_datetime(value: str) -> datetime.datetime | None:
    """An ISO 8601 timestamp as zdd writes it, naive and UTC-normalised; None if unparseable."""
    try:
        dt = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(datetime.UTC).replace(tzinfo=None)
    return dt


# --- marathon-lb and fastlb labels ----------------------------------------------------------------


class PortLabels(msgspec.Struct, frozen=True):
    """The ``HAPROXY_{n}_*`` and ``FASTLB_{n}_*`` labels of one service port, parsed."""

    groups: tuple[str, ...] | None = None  # None: the app's HAPROXY_GROUP applies
    enabled: bool | None = None  # None: the default (true; false under --strict-mode)
    vhosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    backend_weight: int | None = None
    mode: Mode | None = None
    balance: Balance = "roundrobin"
    sticky: bool = False
    port: int | None = None
    bind_addr: str | None = None  # None: --bind-addr
    redirect_to_https: bool = False
    hsts: bool = False
    auth: tuple[str, str, str] | None = None  # realm, user, crypt(3) hash
    healthcheck_port_index: int | None = None
    allow_cidrs: tuple[str, ...] = ()
    # fastlb extensions
    maxconn: int | None = None
    retries: int | None = None
    timeouts: tuple[tuple[str, int], ...] = ()  # (spec.Timeouts field, ms)
    weight: int | None = None
    forwarded_headers: bool | None = None
    sticky_cookie: str | None = None
    healthcheck_rise: int | None = None


class AppLabels(msgspec.Struct, frozen=True):
    groups: tuple[str, ...] = ()
    deployment_group: str | None = None
    deployment_started_at: datetime.datetime | None = None
    deployment_target_instances: int | None = None
    deployment_new_instances: int | None = None
    ports: dict[int, PortLabels] = {}
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def port(self, index: int) -> PortLabels:
        return self.ports.get(index, _NO_PORT_LABELS)


_NO_PORT_LABELS = PortLabels()


def split_csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _parse_port_label(
    name: str, value: str, fields: dict[str, object], errors: list[str], warnings: list[str], label: str
) -> None:
    """One HAPROXY_{n}_<name> label into ``fields`` (PortLabels keyword arguments)."""

    def bad(why: str) -> None:
        errors.append(f"{label}={value!r}: {why}")

    if name == "GROUP":
        fields["groups"] = split_csv(value)
    elif name == "ENABLED":
        fields["enabled"] = string_to_bool(value)
    elif name == "VHOST":
        hosts = tuple(h.lower() for h in split_csv(value))
        for host in hosts:
            if not _HOSTNAME.fullmatch(host):
                bad(f"{host!r} is not a host name")
                return
        fields["vhosts"] = hosts
    elif name == "PATH":
        paths = []
        for token in value.split():
            if token.startswith("-"):
                warnings.append(f"{label}: HAProxy flag {token!r} is ignored (paths match as written)")
            else:
                paths.append(token)
        fields["paths"] = tuple(paths)
    elif name == "BACKEND_WEIGHT":
        weight = parse_int(value)
        if weight is None:
            bad("not an integer")
        else:
            fields["backend_weight"] = weight
    elif name == "MODE":
        mode = value.strip().lower()
        if mode not in ("tcp", "http"):
            bad("the mode is tcp or http")
        else:
            fields["mode"] = mode
    elif name == "BALANCE":
        algo = value.strip()
        if algo in _BALANCE:
            fields["balance"] = _BALANCE[algo]
        elif _HAPROXY_BALANCE.fullmatch(algo):
            fields["balance"] = "roundrobin"
            warnings.append(f"{label}={value!r}: not available in fastlb; balancing round-robin")
        else:
            bad("unknown balance algorithm (roundrobin, leastconn, source, maglev)")
    elif name == "STICKY":
        fields["sticky"] = string_to_bool(value)
    elif name == "PORT":
        port = parse_int(value)
        if port is None or not 1 <= port <= 65535:
            bad("not a port number (1-65535)")
        else:
            fields["port"] = port
    elif name == "BIND_ADDR":
        addr = value.strip()
        if addr in ("*", ""):
            return
        try:
            fields["bind_addr"] = str(ipaddress.ip_address(addr.strip("[]")))
        except ValueError:
            bad("not an IP address (or *)")
    elif name == "SSL_CERT":
        bad("TLS termination is not implemented in fastlb; this port cannot be served as asked")
    elif name == "REDIRECT_TO_HTTPS":
        fields["redirect_to_https"] = string_to_bool(value)
    elif name == "USE_HSTS":
        fields["hsts"] = string_to_bool(value)
    elif name == "AUTH":
        parts = value.split(":")
        if len(parts) != 3 or not all(parts):
            bad("expected realm:user:crypted-password")
        else:
            fields["auth"] = (parts[0], parts[1], parts[2])
    elif name == "BACKEND_HEALTHCHECK_PORT_INDEX":
        index = parse_int(value)
        if index is None:
            bad("not an integer")
        else:
            fields["healthcheck_port_index"] = index
    elif name == "BACKEND_NETWORK_ALLOWED_ACL":
        nets = []
        for token in value.split():
            try:
                nets.append(str(ipaddress.ip_network(token, strict=False)))
            except ValueError:
                bad(f"{token!r} is not an IP address or CIDR")
                return
        fields["allow_cidrs"] = tuple(nets)
    elif name in _UNSUPPORTED_PORT_LABELS:
        warnings.append(f"{label}: {_UNSUPPORTED_PORT_LABELS[name]}")
    elif name in TEMPLATE_LABELS:
        warnings.append(f"{label}: HAProxy template overrides do not apply to fastlb; ignored")
    else:
        warnings.append(f"{label}: unknown marathon-lb label; ignored")


def _parse_fastlb_label(
    name: str, value: str, fields: dict[str, object], errors: list[str], warnings: list[str], label: str
) -> None:
    """One FASTLB_{n}_<name> label (fastlb's own extensions, documented in docs/internals/marathon.md)."""

    def bad(why: str) -> None:
        errors.append(f"{label}={value!r}: {why}")

    def non_negative(key: str, upper: int = 1 << 31) -> None:
        number = parse_int(value)
        if number is None or not 0 <= number <= upper:
            bad(f"expected an integer in 0..{upper}")
        else:
            fields[key] = number

    if name == "MAXCONN":
        non_negative("maxconn")
    elif name == "RETRIES":
        non_negative("retries", 100)
    elif name == "WEIGHT":
        non_negative("weight", 256)
    elif name == "HEALTHCHECK_RISE":
        number = parse_int(value)
        if number is None or not 1 <= number <= 100:
            bad("expected an integer in 1..100")
        else:
            fields["healthcheck_rise"] = number
    elif name in TIMEOUT_FIELDS:
        ms = parse_duration_ms(value)
        if ms is None or ms <= 0:
            bad("expected a duration such as 500ms, 5s or 1m")
        else:
            timeouts = dict(fields.get("timeouts", ()))  # type: ignore[call-overload]
            timeouts[TIMEOUT_FIELDS[name]] = ms
            fields["timeouts"] = tuple(sorted(timeouts.items()))
    elif name == "FORWARDED_HEADERS":
        flag = value.strip().lower()
        if flag in ("true", "yes", "1", "on"):
            fields["forwarded_headers"] = True
        elif flag in ("false", "no", "0", "off"):
            fields["forwarded_headers"] = False
        else:
            bad("expected true or false")
    elif name == "STICKY_COOKIE":
        if not _COOKIE.fullmatch(value):
            bad("not a cookie name")
        else:
            fields["sticky_cookie"] = value
    else:
        warnings.append(f"{label}: unknown fastlb label; ignored")


# Per-port labels, marathon-lb's and fastlb's own: HAPROXY_{n}_X and FASTLB_{n}_X.
_PORT_PARSERS = ((_PORT_LABEL, _parse_port_label), (_FASTLB_PORT_LABEL, _parse_fastlb_label))


def parse_haproxy_labels(labels: Mapping[str, str] | None) -> AppLabels:
    """The HAPROXY_* and FASTLB_* labels of one app. Never raises."""
    if not labels:
        return AppLabels()
    errors: list[str] = []
    warnings: list[str] = []
    app: dict[str, object] = {}
    ports: dict[int, dict[str, object]] = {}
    # Sorted by name, as marathon-lb applies them: the outcome cannot depend on Marathon's order.
    for label in sorted(labels):
        value = labels[label]
        if not isinstance(value, str):  # a decoded payload holds str; a hand-built one may not
            errors.append(f"{label}: the value is not a string")
            continue
        for pattern, parse in _PORT_PARSERS:
            m = pattern.fullmatch(label)
            if m is not None:
                index = int(m.group(1))
                if index > _MAX_PORT_INDEX:
                    warnings.append(f"{label}: no app has that many ports; ignored")
                else:
                    parse(m.group(2), value, ports.setdefault(index, {}), errors, warnings, label)
                break
        if m is not None:
            continue
        if label == "HAPROXY_GROUP":
            app["groups"] = split_csv(value)
        elif label == "HAPROXY_DEPLOYMENT_GROUP":
            group = value.strip()
            if group:
                app["deployment_group"] = group if group.startswith("/") else "/" + group
        elif label == "HAPROXY_DEPLOYMENT_STARTED_AT":
            started = parse_iso_datetime(value)
            if started is None:
                errors.append(f"{label}={value!r}: not an ISO 8601 timestamp")
            else:
                app["deployment_started_at"] = started
        elif label in ("HAPROXY_DEPLOYMENT_TARGET_INSTANCES", "HAPROXY_DEPLOYMENT_NEW_INSTANCES"):
            number = parse_int(value)
            if number is None:
                errors.append(f"{label}={value!r}: not an integer")
            else:
                key = label.removeprefix("HAPROXY_").lower()
                app[key] = number
        elif label in _APP_INFO_LABELS:
            pass  # written by zdd for zdd; marathon-lb does not read them either
        elif label.startswith("HAPROXY_") or label.startswith("FASTLB_"):
            warnings.append(f"{label}: unknown label; ignored")
    return AppLabels(
        ports={i: PortLabels(**f) for i, f in sorted(ports.items())},  # type: ignore[arg-type]
        errors=tuple(errors),
        warnings=tuple(warnings),
        **app,  # type: ignore[arg-type]
    )


# --- Traefik v1 labels ----------------------------------------------------------------------------

# Properties that make ``traefik.<segment>.<property>`` a segment label (Traefik's segment.go).
_SEGMENT_PROPS = ("port", "portIndex", "portName", "weight", "protocol", "backend")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")

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
                hosts.append(host)
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
            idx = parse_int(value)
            if idx is None or idx < 0:
                errors.append(f"{label}={value!r}: not an index")
            else:
                app["ip_address_idx"] = idx
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
            if not _COOKIE.fullmatch(value):
                errors.append(f"{label}={value!r}: not a cookie name")
            else:
                app["sticky_cookie"] = value
        elif prop == "backend.healthcheck.path":
            if not value.startswith("/"):
                errors.append(f"{label}={value!r}: the path must start with /")
            else:
                app["healthcheck_path"] = value
        elif prop == "backend.healthcheck.port":
            port = parse_int(value)
            if port is None or not 0 <= port <= 65535:
                errors.append(f"{label}={value!r}: not a port number")
            else:
                app["healthcheck_port"] = port
        elif prop == "backend.healthcheck.interval":
            ms = _go_duration_ms(value)
            if ms is None or ms <= 0:
                errors.append(f"{label}={value!r}: not a duration such as 10s")
            else:
                app["healthcheck_interval_ms"] = ms
        elif prop == "backend.healthcheck.scheme":
            if value.strip().lower() != "http":
                # Plain-text probes against a TLS port would mark every server down.
                errors.append(f"{label}={value!r}: fastlb health checks speak plain HTTP only")
        elif label in _TRAEFIK_IGNORED:
            if _TRAEFIK_IGNORED[label]:
                warnings.append(f"{label}: {_TRAEFIK_IGNORED[label]}; ignored")
        else:
            warnings.append(f"{label}: not supported by fastlb; ignored")

    segments: list[TraefikSegment] = []
    # One named segment or more replace the default segment; they inherit its properties.
    for name, props in sorted(named.items()) if named else [("", {})]:
        merged = {**default, **props}
        segments.append(_parse_segment(name, merged, errors, warnings))
    app["segments"] = tuple(segments)
    return TraefikLabels(errors=tuple(errors), warnings=tuple(warnings), **app)  # type: ignore[arg-type]


def _parse_segment(
    name: str, props: dict[str, str], errors: list[str], warnings: list[str]
) -> TraefikSegment:
    prefix = f"traefik.{name}." if name else "traefik."
    fields: dict[str, object] = {"name": name}
    for prop, value in sorted(props.items()):
        label = prefix + prop
        if prop == "port":
            port = parse_int(value)
            if port is None or not 1 <= port <= 65535:
                errors.append(f"{label}={value!r}: not a port number")
            else:
                fields["port"] = port
        elif prop == "portIndex":
            idx = parse_int(value)
            if idx is None or idx < 0:
                errors.append(f"{label}={value!r}: not an index")
            else:
                fields["port_index"] = idx
        elif prop == "portName":
            fields["port_name"] = value.strip()
        elif prop == "weight":
            weight = parse_int(value)
            if weight is None or not 0 <= weight <= 256:
                errors.append(f"{label}={value!r}: expected a weight in 0..256")
            else:
                fields["weight"] = weight
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
            priority = parse_int(value)
            if priority is None:
                errors.append(f"{label}={value!r}: not an integer")
            else:
                fields["priority"] = priority
        elif prop == "frontend.entryPoints":
            fields["entry_points"] = split_csv(value)
            if "http" not in fields["entry_points"]:  # type: ignore[operator]
                warnings.append(
                    f"{label}={value!r}: fastlb's only entry point is the vhost listener (\"http\"); "
                    "this segment is not routed"
                )
        elif prop == "frontend.passHostHeader" and _go_bool(value) is not False:
            pass
        else:
            warnings.append(f"{label}: not supported by fastlb; ignored")
    if "port" in fields and "port_index" in fields:
        warnings.append(f"{prefix}port and {prefix}portIndex both set: port wins")
        del fields["port_index"]
    return TraefikSegment(**fields)  # type: ignore[arg-type]
