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

A label that restricts access (``RESTRICTING_LABELS``) is never a mere warning: it is served, or it
is an error, because serving the app without it would open the app to whom the label keeps out.
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping

import msgspec

from fastlb import certs, spec
from fastlb.spec import Balance, Mode

_PORT_LABEL = re.compile(r"HAPROXY_([0-9]+)_(.+)", re.DOTALL)
_FASTLB_PORT_LABEL = re.compile(r"FASTLB_([0-9]+)_(.+)", re.DOTALL)
_INT = re.compile(r"[+-]?[0-9]+")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?(us|ms|s|m|h|d)?")
_HOSTNAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?(:[0-9]{1,5})?")
_COOKIE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_REALM = re.compile(r"[^\x00-\x1f\x7f\"\\]{1,1024}")
_PATH_PREFIX = re.compile(r"/[\x21-\x7e]{0,1023}")  # visible ASCII; '?' and '#' refused apart
_REDIRECT = re.compile(r"[\x21-\x7e]{1,2048}")
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
# config, so they cannot apply: accepted, one warning each. None of them restricts access by
# itself: the ones that write a restriction are in _RESTRICTION_TEMPLATES, below. The others are
# free HAProxy text for routing, health checks and server lines; fastlb reads no HAProxy text.
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

# The templates that write how a restriction applies, and the served label whose restriction they
# write. marathon-lb renders each only when that label is set (the NETWORK_ALLOWED_ACL ones with
# BACKEND_NETWORK_ALLOWED_ACL; USERLIST_HEAD and the *_AUTH* ones with AUTH; the redirect ones with
# REDIRECT_TO_HTTPS), and fastlb serves that label's restriction itself: ignoring the template's text
# drops no restriction, so a warning is honest. An override is there to reword that rule (HAProxy's
# `block` or `deny`, a deny status); an ACL of its own added there is HAProxy text, which fastlb
# reads in no template. HTTPS_FRONTEND_AUTH_ACL_ONLY, HTTPS_FRONTEND_AUTH_REQUEST_ONLY and
# HTTPS_FRONTEND_ROUTING_ONLY_WITH_PATH_AND_AUTH have no label parser in marathon-lb, which ignores
# them too; they are listed for AUTH all the same.
_RESTRICTION_TEMPLATES = {
    "HTTP_BACKEND_NETWORK_ALLOWED_ACL": "BACKEND_NETWORK_ALLOWED_ACL",
    "TCP_BACKEND_NETWORK_ALLOWED_ACL": "BACKEND_NETWORK_ALLOWED_ACL",
    "USERLIST_HEAD": "AUTH",
    "HTTP_FRONTEND_ACL_WITH_AUTH": "AUTH",
    "HTTP_FRONTEND_ACL_WITH_AUTH_AND_PATH": "AUTH",
    "HTTP_FRONTEND_ACL_ONLY_WITH_PATH_AND_AUTH": "AUTH",
    "HTTP_FRONTEND_ROUTING_ONLY_WITH_AUTH": "AUTH",
    "HTTP_FRONTEND_ROUTING_ONLY_WITH_PATH_AND_AUTH": "AUTH",
    "HTTPS_FRONTEND_ACL_WITH_AUTH": "AUTH",
    "HTTPS_FRONTEND_ACL_WITH_AUTH_AND_PATH": "AUTH",
    "HTTPS_FRONTEND_AUTH_ACL_ONLY": "AUTH",
    "HTTPS_FRONTEND_AUTH_REQUEST_ONLY": "AUTH",
    "HTTPS_FRONTEND_ROUTING_ONLY_WITH_PATH_AND_AUTH": "AUTH",
    "BACKEND_REDIRECT_HTTP_TO_HTTPS": "REDIRECT_TO_HTTPS",
    "BACKEND_REDIRECT_HTTP_TO_HTTPS_WITH_PATH": "REDIRECT_TO_HTTPS",
}

# Per-port labels fastlb accepts and ignores: one warning each.
_UNSUPPORTED_PORT_LABELS: dict[str, str] = {}

# HAProxy bind options that narrow who may connect and that fastlb cannot honour: client
# certificates (`verify`, `ca-file`, `crl-file`), certificate lists, one interface. Its port would be
# open to what they keep out, so BIND_OPTIONS holding one is an error.
_RESTRICTING_BIND_OPTIONS = frozenset({"crt-list", "ca-file", "crl-file", "verify", "interface"})

# HAProxy bind options fastlb serves (the TLS of the port): `ssl`, `crt <path>` (as SSL_CERT),
# `alpn <list>`, `ssl-min-ver <version>`, `ciphers <list>`, `ciphersuites <list>`; the word each
# takes a value of, and the PortLabels field it fills.
_TLS_BIND_OPTIONS = {"crt": "ssl_cert", "alpn": "tls_alpn", "ssl-min-ver": "tls_min_version",
                     "ciphers": "tls_ciphers", "ciphersuites": "tls_ciphersuites"}

# marathon-lb's per-port labels fastlb reads (beside TEMPLATE_LABELS and _UNSUPPORTED_PORT_LABELS,
# which it accepts and ignores): ``HAPROXY_{n}_<name>``.
PORT_LABELS = frozenset(
    {
        "GROUP",
        "ENABLED",
        "VHOST",
        "PATH",
        "BACKEND_WEIGHT",
        "MODE",
        "BALANCE",
        "STICKY",
        "PORT",
        "BIND_ADDR",
        "SSL_CERT",
        "BIND_OPTIONS",
        "REDIRECT_TO_HTTPS",
        "USE_HSTS",
        "AUTH",
        "BACKEND_HEALTHCHECK_PORT_INDEX",
        "BACKEND_NETWORK_ALLOWED_ACL",
        "HTTP_BACKEND_PROXYPASS_PATH",
        "HTTP_BACKEND_REVPROXY_PATH",
        "HTTP_BACKEND_REDIR",
    }
)

# Labels that restrict who may reach an app, or how: a source allow-list, credentials, https only,
# one bind address. fastlb never drops one: each is served (the restriction is in the built table)
# or refuses its app with an error naming the label, as any bad label does. A label listed here
# because it shapes another's restriction (useXForwardedFor, SSLHost, removeHeader…) restricts
# only beside that one, and is inert (a warning) alone. tests/marathon/test_access_labels.py builds
# an app with each, in the company where it restricts, and holds fastlb to that rule.
# marathon-lb's are per port (``HAPROXY_{n}_<name>``); Traefik's hold for the default segment and,
# as ``traefik.<segment>.<property>``, for one segment.
RESTRICTING_LABELS = frozenset(
    {
        # served: allow_cidrs
        "HAPROXY_{n}_BACKEND_NETWORK_ALLOWED_ACL",
        # served in http mode (the realm and user as written); an error on a tcp-mode port
        "HAPROXY_{n}_AUTH",
        # served on the vhost routes, as marathon-lb (the per-port listener stays plain, as there)
        "HAPROXY_{n}_REDIRECT_TO_HTTPS",
        # served: the listener's address
        "HAPROXY_{n}_BIND_ADDR",
        # served: TLS on the port with that certificate (and for its vhosts on the https listener); a
        # certificate that cannot be read is an error
        "HAPROXY_{n}_SSL_CERT",
        # served: ssl, crt, alpn, ssl-min-ver, ciphers, ciphersuites; an error when it holds an option of
        # _RESTRICTING_BIND_OPTIONS; a warning for any other option
        "HAPROXY_{n}_BIND_OPTIONS",
        # served: allow_cidrs
        "traefik.frontend.whiteList.sourceRange",
        "traefik.frontend.whitelistSourceRange",
        # served with a sourceRange: allow_forwarded_for (an X-Forwarded-For address admits too)
        "traefik.frontend.whiteList.useXForwardedFor",
        # served when every user's hash is one fastlb checks (crypt(3)'s, htpasswd's $apr1$ and {SHA});
        # an error otherwise (a plain-text password, a user listed twice)
        "traefik.frontend.auth.basic",
        "traefik.frontend.auth.basic.users",
        # served with auth.basic.users: the Authorization header is not forwarded
        "traefik.frontend.auth.basic.removeHeader",
        "traefik.frontend.auth.removeHeader",
        # errors: no users file, no digest or forward auth, no user header
        "traefik.frontend.auth.basic.usersFile",
        "traefik.frontend.auth.headerField",
        "traefik.frontend.auth.digest.users",
        "traefik.frontend.auth.digest.usersFile",
        "traefik.frontend.auth.digest.removeHeader",
        "traefik.frontend.auth.forward.address",
        "traefik.frontend.auth.forward.authResponseHeaders",
        "traefik.frontend.auth.forward.trustForwardHeader",
        "traefik.frontend.auth.forward.tls.ca",
        "traefik.frontend.auth.forward.tls.caOptional",
        "traefik.frontend.auth.forward.tls.cert",
        "traefik.frontend.auth.forward.tls.key",
        "traefik.frontend.auth.forward.tls.insecureSkipVerify",
        # SSLRedirect alone is served (redirect_to_https: a 301 to https://<host><target>, as
        # Traefik's); with the redirect made another way (307, SSLHost, proxy headers) an error
        "traefik.frontend.headers.SSLRedirect",
        "traefik.frontend.headers.SSLTemporaryRedirect",
        "traefik.frontend.headers.SSLHost",
        "traefik.frontend.headers.SSLProxyHeaders",
        "traefik.frontend.headers.SSLForceHost",
        # served by routing when the rule routes allowed hosts only; an error otherwise
        "traefik.frontend.headers.allowedHosts",
        "traefik.frontend.headers.hostsProxyHeaders",
        # served: entryPoint=https as redirect_to_https (302, 301 when permanent), regex and
        # replacement as redirect_regex (a POSIX ERE); entryPoint=http (a loop), another entry
        # point, a regex in Go-only syntax or one that does not compile: errors
        "traefik.frontend.redirect.entryPoint",
        "traefik.frontend.redirect.regex",
        "traefik.frontend.redirect.replacement",
    }
)

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
    "TIMEOUT_QUEUE": "queue_ms",
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
    proxypass_path: str = ""  # http mode: taken off the request path; Host set to the first vhost
    revproxy_path: str = ""  # http mode: put before the path of Location answers
    redirect_path: str = ""  # http mode: "/" on the vhost answered 301 to it
    ssl_cert: str | None = None  # SSL_CERT, or BIND_OPTIONS' crt: TLS on the port with this certificate
    tls_ssl: bool = False  # BIND_OPTIONS' ssl (a certificate must come with it)
    tls_alpn: tuple[str, ...] = ()  # BIND_OPTIONS' alpn
    tls_min_version: str = ""  # BIND_OPTIONS' ssl-min-ver
    tls_ciphers: str = ""  # BIND_OPTIONS' ciphers
    tls_ciphersuites: str = ""  # BIND_OPTIONS' ciphersuites
    # fastlb extensions
    maxconn: int | None = None
    backend_maxconn: int | None = None
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
        hosts = []
        for host in (h.lower() for h in split_csv(value)):
            if not _HOSTNAME.fullmatch(host):
                bad(f"{host!r} is not a host name")
                return
            name_only, _, host_port = host.partition(":")
            if host_port:
                # HAProxy compares the Host header with the port; fastlb routes by the name alone
                warnings.append(f"{label}: {host!r}: the port is not compared; routed as {name_only!r}")
            if name_only not in hosts:
                hosts.append(name_only)
        fields["vhosts"] = tuple(hosts)
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
        path = value.strip()
        if not path:
            return
        problem = _certificate_problem(path, label)
        if problem is not None:
            bad(problem)
        elif fields.get("ssl_cert", path) != path:
            bad(f"BIND_OPTIONS names another certificate ({fields['ssl_cert']})")
        else:
            fields["ssl_cert"] = path
    elif name == "REDIRECT_TO_HTTPS":
        fields["redirect_to_https"] = string_to_bool(value)
    elif name == "USE_HSTS":
        fields["hsts"] = string_to_bool(value)
    elif name == "AUTH":
        parts = value.split(":")
        if len(parts) != 3 or not all(parts):
            bad("expected realm:user:crypted-password")
        elif not _REALM.fullmatch(parts[0]):
            # the realm goes out in WWW-Authenticate: the data plane refuses a table holding one
            # it cannot quote, and every app's update with it
            bad("the realm may not hold quotes, backslashes or control characters, nor pass 1024 characters")
        elif "\0" in parts[1] or "\0" in parts[2]:
            bad("the user and the hash may not hold NUL")
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
    elif name in ("HTTP_BACKEND_PROXYPASS_PATH", "HTTP_BACKEND_REVPROXY_PATH"):
        path = value.strip()
        key = "proxypass_path" if name == "HTTP_BACKEND_PROXYPASS_PATH" else "revproxy_path"
        if not path:
            return
        if not _PATH_PREFIX.fullmatch(path) or "?" in path or "#" in path:
            bad("not a path prefix (starts with /, visible ASCII without spaces, no ? or #)")
        elif path.strip("/") == "":
            warnings.append(f"{label}={value!r}: the root is no prefix; ignored")
        else:
            fields[key] = path
    elif name == "HTTP_BACKEND_REDIR":
        where = value.strip()
        if not where:
            return
        if not _REDIRECT.fullmatch(where):
            bad("not a redirect location (visible ASCII without spaces, at most 2048 characters)")
        else:
            fields["redirect_path"] = where
    elif name == "BIND_OPTIONS" and _RESTRICTING_BIND_OPTIONS.intersection(value.split()):
        asked = sorted(_RESTRICTING_BIND_OPTIONS.intersection(value.split()))
        bad(
            f"bind option {', '.join(asked)} restricts who may connect (client certificates or "
            "an interface); fastlb cannot serve it, and the port would be open without it"
        )
    elif name == "BIND_OPTIONS":
        _parse_bind_options(value, fields, bad, warnings, label)
    elif name in _UNSUPPORTED_PORT_LABELS:
        warnings.append(f"{label}: {_UNSUPPORTED_PORT_LABELS[name]}")
    elif name in _RESTRICTION_TEMPLATES:
        served = label[: -len(name)] + _RESTRICTION_TEMPLATES[name]
        warnings.append(
            f"{label}: HAProxy template overrides do not apply to fastlb; ignored "
            f"(the restriction of {served}, when set, is served as that label states)"
        )
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
    elif name == "BACKEND_MAXCONN":
        non_negative("backend_maxconn")
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
        elif ms > (1 << 32) - 1:
            bad("longer than 49 days")
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


def _certificate_problem(path: str, label: str) -> str | None:
    """Why the certificate file (or directory) at <path> cannot be served, or None."""
    if not path.startswith("/"):
        return "not an absolute path"
    try:
        certs.from_paths([path], label)
    except certs.CertError as e:
        return "; ".join(p.removeprefix(f"{label}: ").removeprefix(f"{path}: ") for p in e.problems)
    return None


def names_certificate(labels: Mapping[str, str | None] | None) -> bool:
    """Whether an app's <labels> name a certificate file (SSL_CERT, or crt in BIND_OPTIONS): their
    outcome depends on that file, not on the labels alone."""
    for label, value in (labels or {}).items():
        if isinstance(value, str) and value and (
            label.endswith("_SSL_CERT") or (label.endswith("_BIND_OPTIONS") and "crt" in value.split())
        ):
            return True
    return False


def _parse_bind_options(
    value: str, fields: dict[str, object], bad: Callable[[str], None], warnings: list[str], label: str
) -> None:
    """HAPROXY_{n}_BIND_OPTIONS: the TLS options fastlb serves (_TLS_BIND_OPTIONS) into ``fields``; a
    warning for each other option."""
    words = value.split()
    tls: dict[str, object] = {}
    ignored: list[str] = []
    ssl = False
    i = 0
    while i < len(words):
        word = words[i]
        if word == "ssl":
            ssl = True
        elif word in _TLS_BIND_OPTIONS:
            if i + 1 >= len(words):
                bad(f"bind option {word} needs a value")
                return
            i += 1
            arg = words[i]
            if word == "crt":
                problem = _certificate_problem(arg, label)
                if problem is not None:
                    bad(f"crt {arg}: {problem}")
                    return
                tls["ssl_cert"] = arg
            elif word == "alpn":
                tls["tls_alpn"] = split_csv(arg)
            else:
                tls[_TLS_BIND_OPTIONS[word]] = arg
        else:
            ignored.append(word)
        i += 1
    if ssl:
        tls["tls_ssl"] = True
    problems = certs.option_problems(
        tls.get("tls_alpn", ()), str(tls.get("tls_min_version", "")),  # type: ignore[arg-type]
        str(tls.get("tls_ciphers", "")), str(tls.get("tls_ciphersuites", "")), http=False,
    )
    if problems:
        bad("; ".join(problems))
        return
    fields.update(tls)
    if ignored:
        warnings.append(f"{label}: bind options {' '.join(ignored)!r} do not apply to fastlb and are ignored "
                        "(served: ssl, crt, alpn, ssl-min-ver, ciphers, ciphersuites)")


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
            warnings.append(_traefik_unsupported(label, prop))

    segments: list[TraefikSegment] = []
    # One named segment or more replace the default segment; they inherit its properties.
    for name, props in sorted(named.items()) if named else [("", {})]:
        merged = {**default, **props}
        segments.append(_parse_segment(name, merged, errors, warnings))
    app["segments"] = tuple(segments)
    return TraefikLabels(errors=tuple(errors), warnings=tuple(warnings), **app)  # type: ignore[arg-type]


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
