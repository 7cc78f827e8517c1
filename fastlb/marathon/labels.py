"""Marathon app labels: marathon-lb's ``HAPROXY_*`` and fastlb's ``FASTLB_*`` (Traefik's ``traefik.*``
are read in ``traefik_labels.py``, beside the model that builds from them).

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

import datetime
import ipaddress
import re
from collections.abc import Callable, Mapping

import msgspec

from fastlb import certs
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

# HAProxy bind options that narrow who may connect and that fastlb cannot honour: revocation lists
# (`crl-file`), certificate lists, one interface. Its port would be open to what they keep out, so
# BIND_OPTIONS holding one is an error.
_RESTRICTING_BIND_OPTIONS = frozenset({"crt-list", "crl-file", "interface"})

# HAProxy bind options fastlb serves (the TLS of the port): `ssl`, `crt <path>` (as SSL_CERT),
# `alpn <list>`, `ssl-min-ver <version>`, `ciphers <list>`, `ciphersuites <list>`, and client
# certificates: `verify none|optional|required` with `ca-file <path>`; the word each takes a value
# of, and the PortLabels field it fills.
_TLS_BIND_OPTIONS = {"crt": "ssl_cert", "alpn": "tls_alpn", "ssl-min-ver": "tls_min_version",
                     "ciphers": "tls_ciphers", "ciphersuites": "tls_ciphersuites", "verify": "tls_verify",
                     "ca-file": "tls_ca_file"}

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
    tls_verify: str = ""  # BIND_OPTIONS' verify (optional, required; none: "")
    tls_ca_file: str = ""  # BIND_OPTIONS' ca-file
    # fastlb extensions
    maxconn: int | None = None
    backend_maxconn: int | None = None
    retries: int | None = None
    timeouts: tuple[tuple[str, int], ...] = ()  # (spec.Timeouts field, ms)
    weight: int | None = None
    forwarded_headers: bool | None = None
    sticky_cookie: str | None = None
    healthcheck_rise: int | None = None
    tls_passthrough: bool = False  # FASTLB_{n}_TLS=passthrough: the vhosts are routed by SNI, not terminated


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
    elif name == "TLS":
        if value.strip().lower() == "passthrough":
            fields["tls_passthrough"] = True
        else:
            bad("expected passthrough (termination is HAPROXY_{n}_SSL_CERT's)")
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
            label.endswith("_SSL_CERT")
            or (label.endswith("_BIND_OPTIONS") and {"crt", "ca-file"}.intersection(value.split()))
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
            elif word == "verify":
                if arg not in ("none", *certs.VERIFY):
                    bad(f"verify {arg}: not none, optional or required")
                    return
                tls["tls_verify"] = "" if arg == "none" else arg
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
    ) + [p.replace("ca_file", "ca-file") for p in certs.verify_problems(
        str(tls.get("tls_verify", "")), str(tls.get("tls_ca_file", "")))]
    if problems:
        bad("; ".join(problems))
        return
    fields.update(tls)
    if ignored:
        warnings.append(f"{label}: bind options {' '.join(ignored)!r} do not apply to fastlb and are ignored "
                        "(served: ssl, crt, alpn, ssl-min-ver, ciphers, ciphersuites, verify, ca-file)")


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
