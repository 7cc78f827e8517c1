"""Labels that restrict access are never dropped: each is served (the restriction is in the built
table) or refuses its app with an error naming it (``labels.RESTRICTING_LABELS``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from fastlb import spec
from fastlb.marathon import labels as lbl
from fastlb.marathon import traefik_labels as tlbl
from fastlb.marathon.state import MarathonOptions, MarathonState

from .test_labels import app, state_of

# crypt(3) hashes of "s3cret" (the first two) and "pw": SHA-512, bcrypt, MD5-crypt.
SHA512 = "$6$fastlbtestsalt1$I.xNS7t6y6pOFBlJ9/GwkcHc.lApBDe9NSAOCHihm3Z10asCTZrwr/Bmk44R1GFfLmU/MrdseQZIwVdRJ3QT3/"
BCRYPT = "$2y$05$fastlbtestsaltfastlbteae84A7cA8InWuqmWN1VQKGmGAlSGatC"
MD5 = "$1$fastlbte$Qq.ek0Hgg4zSHCS.Ojiet1"
# htpasswd's hashes of "s3cret": Apache MD5 (`openssl passwd -apr1 -salt fastlbte s3cret`, as htpasswd -m)
# and {SHA} (htpasswd -s); the data plane's tests check them against the password (tests/l7/test_edits.py).
APR1 = "$apr1$fastlbte$x3tH961mNWymZRJtYVpeN."
SHA1 = "{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg="
HOST = "subject.example.com"


def mlb(labels: dict[str, str]) -> MarathonState:
    return state_of(app("/subject", 10000, labels), groups=("*",))


def traefik_app(labels: dict[str, str], app_id: str = "/subject", host: str = "10.0.0.1") -> dict:
    return {
        "id": app_id,
        "labels": {"traefik.tags": "external", "traefik.frontend.rule": f"Host:{HOST}", **labels},
        "portDefinitions": [{"port": 10000}],
        "tasks": [{"id": app_id.strip("/") + ".t1", "host": host, "ports": [31000], "state": "TASK_RUNNING"}],
    }


def traefik(labels: dict[str, str]) -> MarathonState:
    return state_of(traefik_app(labels))


def http(state: MarathonState) -> spec.HttpOptions:
    (service,) = state.table().services
    return service.http


# What serving each restricting label looks like in the built table.
def allow(*cidrs: str) -> Callable[[MarathonState], bool]:
    return lambda state: http(state).allow_cidrs == cidrs and not http(state).allow_forwarded_for


def allow_xff(*cidrs: str) -> Callable[[MarathonState], bool]:
    return lambda state: http(state).allow_cidrs == cidrs and http(state).allow_forwarded_for


def users(*pairs: tuple[str, str], realm: str = tlbl.TRAEFIK_REALM) -> Callable[[MarathonState], bool]:
    return lambda state: http(state).auth_users == pairs and http(state).auth_realm == realm


def removes_authorization(state: MarathonState) -> bool:
    return http(state).auth_users == (("alice", BCRYPT),) and http(state).auth_remove_header


def redirects(state: MarathonState) -> bool:
    return http(state).redirect_to_https


def redirects_https(code: int) -> Callable[[MarathonState], bool]:
    return lambda state: http(state).redirect_to_https and http(state).redirect_to_https_code == code


def regex(pattern: str, replacement: str, code: int) -> Callable[[MarathonState], bool]:
    return lambda state: (
        (http(state).redirect_regex, http(state).redirect_replacement, http(state).redirect_regex_code)
        == (pattern, replacement, code)
    )


def bound(address: str) -> Callable[[MarathonState], bool]:
    return lambda state: [lst.address for lst in state.table().listeners if lst.kind == "service"] == [address]


def routes_only(*hosts: str) -> Callable[[MarathonState], bool]:
    return lambda state: sorted(r.host for r in state.table().http_routes) == sorted(hosts)


def tls_with(**want: object) -> Callable[[MarathonState], bool]:
    """The port terminates TLS with these ServiceTls fields, on a TLS listener of its own."""
    def check(state: MarathonState) -> bool:
        (svc,) = state.table().services
        own = [lst for lst in state.table().listeners if lst.kind == "service"]
        return svc.tls is not None and all(getattr(svc.tls, k) == v for k, v in want.items()) and all(
            lst.tls for lst in own)
    return check


CERT = str(Path(__file__).resolve().parents[1] / "data" / "tls" / "svc.example.com.pem")
REFUSED = "refused"
T = "traefik.frontend."
SSL = "traefik.frontend.headers.SSLRedirect"

# (the restricting label, the labels that make it restrict, the outcome): REFUSED, or what the
# served restriction looks like. Every label of RESTRICTING_LABELS is the subject of one case at least.
CASES: list[tuple[str, dict[str, str], Callable[[MarathonState], bool] | str]] = [
    ("HAPROXY_{n}_BACKEND_NETWORK_ALLOWED_ACL", {"HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "10.0.0.0/8"},
     allow("10.0.0.0/8")),
    ("HAPROXY_{n}_BACKEND_NETWORK_ALLOWED_ACL", {"HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "10.0.0.0/33"}, REFUSED),
    ("HAPROXY_{n}_AUTH", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_AUTH": f"zone:alice:{SHA512}"},
     users(("alice", SHA512), realm="zone")),
    ("HAPROXY_{n}_AUTH", {"HAPROXY_0_AUTH": f"zone:alice:{SHA512}"}, REFUSED),  # a tcp-mode port
    ("HAPROXY_{n}_AUTH", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_AUTH": f'my "zone":alice:{SHA512}'}, REFUSED),
    ("HAPROXY_{n}_REDIRECT_TO_HTTPS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}, redirects),
    ("HAPROXY_{n}_BIND_ADDR", {"HAPROXY_0_BIND_ADDR": "127.0.0.2"}, bound("127.0.0.2:10000")),
    ("HAPROXY_{n}_SSL_CERT", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_SSL_CERT": CERT}, tls_with(certs=(CERT,))),
    ("HAPROXY_{n}_SSL_CERT", {"HAPROXY_0_SSL_CERT": "/etc/ssl/x.pem"}, REFUSED),  # no such file
    ("HAPROXY_{n}_SSL_CERT", {"HAPROXY_0_SSL_CERT": CERT}, tls_with(certs=(CERT,))),  # a tcp-mode port: TLS, then bytes
    ("HAPROXY_{n}_SSL_CERT", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_SSL_CERT": "/dev/null"}, REFUSED),  # no PEM
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} alpn http/1.1 "
                                  "ssl-min-ver TLSv1.3 ciphers ECDHE-RSA-AES128-GCM-SHA256 ciphersuites "
                                  "TLS_AES_256_GCM_SHA384"},
     tls_with(certs=(CERT,), alpn=("http/1.1",), min_version="TLSv1.3", ciphers="ECDHE-RSA-AES128-GCM-SHA256",
              ciphersuites="TLS_AES_256_GCM_SHA384")),
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_SSL_CERT": CERT,
                                  "HAPROXY_0_BIND_OPTIONS": "ssl-min-ver TLSv1.3"},
     tls_with(certs=(CERT,), min_version="TLSv1.3")),
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} verify required ca-file {CERT}"},
     tls_with(certs=(CERT,), verify="required", ca_file=CERT)),  # a tcp-mode port
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} alpn h2,x-db"},
     tls_with(certs=(CERT,), alpn=("h2", "x-db"))),  # a tcp-mode port's protocols are its own
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST,
                                  "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} verify required ca-file {CERT}"},
     tls_with(certs=(CERT,), verify="required", ca_file=CERT)),
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST,
                                  "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} verify optional ca-file {CERT}"},
     tls_with(certs=(CERT,), verify="optional", ca_file=CERT)),
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} verify required"},
     REFUSED),  # no CA to verify with
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST,
                                  "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} verify required ca-file /nonexistent.pem"},
     REFUSED),
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST,
                                  "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} verify sometimes ca-file {CERT}"},
     REFUSED),
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} crl-file /x"},
     REFUSED),  # revocation lists: not served
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_BIND_OPTIONS": "ssl"}, REFUSED),  # no crt
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_BIND_OPTIONS": "alpn http/1.1"}, REFUSED),
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} alpn h2"},
     REFUSED),  # fastlb's http mode speaks HTTP/1.1
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_VHOST": HOST, "HAPROXY_0_BIND_OPTIONS": f"crt {CERT} ssl-min-ver SSLv3"},
     REFUSED),
    ("HAPROXY_{n}_BIND_OPTIONS", {"HAPROXY_0_BIND_OPTIONS": "interface eth1"}, REFUSED),
    (T + "whiteList.sourceRange", {T + "whiteList.sourceRange": "10.0.0.0/8, 192.168.1.1"},
     allow("10.0.0.0/8", "192.168.1.1/32")),
    (T + "whiteList.sourceRange", {T + "whiteList.sourceRange": "10.0.0.0/8,nope"}, REFUSED),
    (T + "whitelistSourceRange", {T + "whitelistSourceRange": "10.1.0.0/16"}, allow("10.1.0.0/16")),
    (T + "whitelistSourceRange", {T + "whitelistSourceRange": "10.1.0.0/16", T + "whiteList.sourceRange": "::/0"},
     REFUSED),
    (T + "whiteList.useXForwardedFor",
     {T + "whiteList.sourceRange": "10.0.0.0/8", T + "whiteList.useXForwardedFor": "true"}, allow_xff("10.0.0.0/8")),
    (T + "whiteList.useXForwardedFor",
     {T + "whitelistSourceRange": "10.0.0.0/8", T + "whiteList.useXForwardedFor": "True"}, allow_xff("10.0.0.0/8")),
    (T + "whiteList.useXForwardedFor",
     {T + "whiteList.sourceRange": "10.0.0.0/8", T + "whiteList.useXForwardedFor": "on"}, REFUSED),
    (T + "auth.basic.users", {T + "auth.basic.users": f"alice:{SHA512}, bob:{BCRYPT},carol:{MD5}"},
     users(("alice", SHA512), ("bob", BCRYPT), ("carol", MD5))),
    (T + "auth.basic.users", {T + "auth.basic.users": f"test:{APR1},sha:{SHA1}"}, users(("test", APR1), ("sha", SHA1))),
    (T + "auth.basic.users", {T + "auth.basic.users": "test:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg"}, REFUSED),
    (T + "auth.basic.users", {T + "auth.basic.users": "test:s3cret"}, REFUSED),
    (T + "auth.basic.users", {T + "auth.basic.users": f"alice:{SHA512},alice:{BCRYPT}"}, REFUSED),
    (T + "auth.basic", {T + "auth.basic": f"alice:{BCRYPT}"}, users(("alice", BCRYPT))),
    (T + "auth.basic", {T + "auth.basic": f"alice:{APR1}"}, users(("alice", APR1))),
    (T + "auth.basic", {T + "auth.basic": "alice:$apr1$fastlbte$x3tH961mNWymZRJtYVpeN"}, REFUSED),
    (T + "auth.basic.usersFile", {T + "auth.basic.usersFile": "/etc/traefik/htpasswd"}, REFUSED),
    (T + "auth.basic.removeHeader", {T + "auth.basic.users": f"alice:{BCRYPT}", T + "auth.basic.removeHeader": "true"},
     removes_authorization),
    (T + "auth.basic.removeHeader", {T + "auth.basic.users": f"alice:{BCRYPT}", T + "auth.basic.removeHeader": "yes"},
     REFUSED),  # not a Go boolean: the credentials would reach the backend
    (T + "auth.removeHeader", {T + "auth.basic.users": f"alice:{BCRYPT}", T + "auth.removeHeader": "true"},
     removes_authorization),
    (T + "auth.headerField", {T + "auth.basic.users": f"alice:{BCRYPT}", T + "auth.headerField": "X-WebAuth-User"},
     REFUSED),
    *((T + "auth." + p, {T + "auth." + p: "x"}, REFUSED) for p in (
        "digest.users", "digest.usersFile", "digest.removeHeader", "forward.address", "forward.authResponseHeaders",
        "forward.trustForwardHeader", "forward.tls.ca", "forward.tls.caOptional", "forward.tls.cert",
        "forward.tls.key", "forward.tls.insecureSkipVerify")),
    (T + "headers.SSLRedirect", {SSL: "true"}, redirects),
    (T + "headers.SSLRedirect", {SSL: "yes"}, REFUSED),  # not a Go boolean
    (T + "headers.SSLTemporaryRedirect", {SSL: "true", T + "headers.SSLTemporaryRedirect": "true"}, REFUSED),
    (T + "headers.SSLHost", {SSL: "true", T + "headers.SSLHost": "secure.example.com"}, REFUSED),
    (T + "headers.SSLProxyHeaders", {SSL: "true", T + "headers.SSLProxyHeaders": "X-Forwarded-Proto:https"}, REFUSED),
    (T + "headers.SSLForceHost", {T + "headers.SSLForceHost": "true", T + "headers.SSLHost": "a.example.com"},
     REFUSED),
    (T + "headers.allowedHosts", {T + "headers.allowedHosts": f"{HOST},other.example.com"}, routes_only(HOST)),
    (T + "headers.allowedHosts", {T + "headers.allowedHosts": "other.example.com"}, REFUSED),
    (T + "headers.hostsProxyHeaders",
     {T + "headers.allowedHosts": HOST, T + "headers.hostsProxyHeaders": "X-Forwarded-Host"}, REFUSED),
    (T + "redirect.entryPoint", {T + "redirect.entryPoint": "https"}, redirects_https(302)),
    (T + "redirect.entryPoint", {T + "redirect.entryPoint": "https", T + "redirect.permanent": "true"},
     redirects_https(301)),
    (T + "redirect.entryPoint", {SSL: "true", T + "redirect.entryPoint": "https"}, redirects_https(302)),
    (T + "redirect.entryPoint", {T + "redirect.entryPoint": "http"}, REFUSED),  # where it came in: a loop
    (T + "redirect.entryPoint", {T + "redirect.entryPoint": "admin"}, REFUSED),  # an unknown entry point
    (T + "redirect.regex", {T + "redirect.regex": "^http://(.*)", T + "redirect.replacement": "https://$1"},
     regex("^http://(.*)", "https://$1", 302)),
    (T + "redirect.regex", {T + "redirect.regex": "^http://(.*)", T + "redirect.replacement": "https://$1",
                            T + "redirect.permanent": "true"}, regex("^http://(.*)", "https://$1", 301)),
    (T + "redirect.regex", {T + "redirect.regex": "^http://(", T + "redirect.replacement": "https://$1"}, REFUSED),
    (T + "redirect.regex", {T + "redirect.regex": r"^http://(\d+)", T + "redirect.replacement": "x"}, REFUSED),
    (T + "redirect.regex", {T + "redirect.regex": "(?i)^http://(.*)", T + "redirect.replacement": "x"}, REFUSED),
    (T + "redirect.replacement", {T + "redirect.regex": "^http://(.*)", T + "redirect.replacement": "https://${1}/"},
     regex("^http://(.*)", "https://${1}/", 302)),
    (T + "redirect.replacement", {T + "redirect.regex": "^http://(.*)", T + "redirect.replacement": "https://$1x"},
     REFUSED),  # Go reads $1x as a group named "1x"
]


def _mentions(error: str, label: str) -> bool:
    """Whether <error> names <label> (HAPROXY_{n}_X as HAPROXY_0_X; a Traefik property as written,
    for the default segment)."""
    return label.replace("{n}", "0") in error


@pytest.mark.parametrize(("label", "labels", "outcome"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_restricting_label_is_served_or_refuses_its_app(
    label: str, labels: dict[str, str], outcome: Callable[[MarathonState], bool] | str
) -> None:
    assert label in lbl.RESTRICTING_LABELS
    state = traefik(labels) if label.startswith("traefik.") else mlb(labels)
    errors = state.app_errors()
    if outcome == REFUSED:
        assert "/subject" in errors and _mentions(errors["/subject"], label), errors
        assert state.table().services == ()
    else:
        assert errors == {}
        assert callable(outcome) and outcome(state), state.table()


def _walk_names() -> list[str]:
    """Every label name fastlb knows, both families: marathon-lb's per-port labels it reads, the
    templates and rewrites it ignores, fastlb's own, and every Traefik 1.7 property."""
    names = [f"HAPROXY_{{n}}_{n}" for n in sorted(lbl.PORT_LABELS | lbl.TEMPLATE_LABELS)]
    names += [f"HAPROXY_{{n}}_{n}" for n in sorted(lbl._UNSUPPORTED_PORT_LABELS)]
    names += [f"FASTLB_{{n}}_{n}" for n in sorted(lbl.TIMEOUT_FIELDS)]
    names += [f"FASTLB_{{n}}_{n}" for n in ("MAXCONN", "RETRIES", "WEIGHT", "HEALTHCHECK_RISE",
                                            "FORWARDED_HEADERS", "STICKY_COOKIE")]
    names += [f"traefik.{p}" for p in sorted(tlbl.TRAEFIK_PROPS)]
    names += ["traefik.frontend.errors.e.status", "traefik.frontend.rateLimit.rateSet.r.average",
              "traefik.frontend.passTLSClientCert.pem"]
    return names


def test_every_restricting_label_has_a_case_and_is_a_label_fastlb_knows() -> None:
    assert {case[0] for case in CASES} == lbl.RESTRICTING_LABELS
    assert set(_walk_names()) >= lbl.RESTRICTING_LABELS


# Values that turn a label on, whatever its kind.
WALK_VALUES = ("true", "10.0.0.0/8", f"alice:{BCRYPT}", f"zone:alice:{SHA512}", "https", "127.0.0.2", "x")


def _access_view(state: MarathonState) -> tuple:
    """Who may use the app's services: their access options, and the addresses they are bound to."""
    t = state.table()
    return (
        {(s.http.allow_cidrs, s.http.allow_forwarded_for, s.http.auth_realm, s.http.auth_users,
          s.http.auth_remove_header, s.http.redirect_to_https, s.http.redirect_to_https_code,
          s.http.redirect_regex, s.http.redirect_replacement) for s in t.services},
        {lst.address.rsplit(":", 1)[0] for lst in t.listeners},
    )


@pytest.mark.parametrize("name", _walk_names())
def test_walking_every_label_no_restricting_one_yields_only_a_warning(name: str) -> None:
    """Every label fastlb knows, set alone to values that turn it on: a restricting one (in the
    company where it restricts: its cases above) is served or refuses its app; any other leaves
    who may use the app as it was (or takes the app off the table: not served, nothing is open),
    or it should be declared restricting."""
    if name in lbl.RESTRICTING_LABELS:
        for label, labels, outcome in CASES:
            if label == name:
                test_a_restricting_label_is_served_or_refuses_its_app(label, labels, outcome)
        return
    traefik_label = name.startswith("traefik.")
    build = traefik if traefik_label else mlb
    base = {"HAPROXY_0_VHOST": HOST} if not traefik_label else {}
    plain = _access_view(build(base))
    for value in WALK_VALUES:
        labels = {**base, name.replace("{n}", "0"): value}
        state = build(labels)
        if state.table().services:
            assert _access_view(state) == plain, (name, value, "restricts access: declare it in RESTRICTING_LABELS")


def test_traefik_plain_text_password_is_refused_with_the_reason() -> None:
    other = traefik_app({"traefik.frontend.rule": "Host:open.example.com"}, app_id="/open", host="10.0.0.2")
    state = state_of(traefik_app({"traefik.frontend.auth.basic.users": f"alice:{APR1},test:s3cret"}), other)
    t = state.table()
    assert [s.name for s in t.services] == ["backend-open"]
    assert [(r.host, r.service) for r in t.http_routes] == [("open.example.com", "backend-open")]
    error = state.app_errors()["/subject"]
    assert "traefik.frontend.auth.basic.users" in error and "'test'" in error and "plain-text" in error
    assert "'alice'" not in error


def test_traefik_source_range_is_the_services_allow_list_per_segment() -> None:
    labels = {
        "traefik.frontend.whiteList.sourceRange": "10.0.0.0/8",
        "traefik.web.port": "31000",
        "traefik.web.frontend.rule": "Host:web.example.com",
        "traefik.admin.port": "31000",
        "traefik.admin.frontend.rule": "Host:admin.example.com",
        "traefik.admin.frontend.whiteList.sourceRange": "192.168.0.0/16",
    }
    t = traefik(labels).table()
    got = {s.name: s.http.allow_cidrs for s in t.services}
    assert got == {"backend-subject-service-admin": ("192.168.0.0/16",), "backend-subject-service-web": ("10.0.0.0/8",)}


def test_traefik_restrictions_of_a_segment_that_is_not_routed_refuse_nothing() -> None:
    labels = {
        "traefik.web.port": "31000",
        "traefik.web.frontend.rule": "Host:web.example.com",
        "traefik.tls.port": "31000",
        "traefik.tls.frontend.rule": "Host:tls.example.com",
        "traefik.tls.frontend.entryPoints": "https",
        "traefik.tls.frontend.auth.basic.users": "test:s3cret",
    }
    state = traefik(labels)
    assert state.app_errors() == {}
    assert [s.name for s in state.table().services] == ["backend-subject-service-web"]


def test_traefik_inert_modifiers_warn() -> None:
    state = traefik({"traefik.frontend.headers.SSLHost": "x.example.com",
                     "traefik.frontend.whiteList.useXForwardedFor": "true",
                     "traefik.frontend.headers.SSLRedirect": "true",
                     "traefik.frontend.headers.isDevelopment": "true",
                     "traefik.frontend.whiteList.sourceRange": "",
                     "traefik.frontend.auth.removeHeader": "true"})
    assert state.app_errors() == {}
    assert http(state) == spec.HttpOptions()
    warnings = "\n".join(state.app_warnings()["/subject"])
    for prop in ("SSLHost", "useXForwardedFor", "SSLRedirect: isDevelopment", "sourceRange: empty",
                 "auth.removeHeader: no auth.basic.users"):
        assert prop in warnings, warnings


def test_traefik_remove_header_false_forwards_authorization() -> None:
    state = traefik({"traefik.frontend.auth.basic.users": f"alice:{BCRYPT}",
                     "traefik.frontend.auth.basic.removeHeader": "false"})
    assert state.app_errors() == {}
    assert http(state).auth_users == (("alice", BCRYPT),) and not http(state).auth_remove_header


def test_traefik_shared_backend_does_not_drop_the_joining_apps_restriction() -> None:
    """The first app by id keeps a shared backend's settings: an app that restricts otherwise
    would have its tasks served under the first one's rules, so it is left out. An app that
    restricts nothing joins a restricted backend (its tasks get the narrower rules)."""
    first = traefik_app({"traefik.backend": "pool"}, app_id="/a")
    locked = traefik_app({"traefik.backend": "pool", "traefik.frontend.whiteList.sourceRange": "10.0.0.0/8"},
                         app_id="/b", host="10.0.0.2")
    state = state_of(first, locked)
    (s,) = state.table().services
    assert [b.address for b in s.backends] == ["10.0.0.1:31000"]
    assert "/a" in state.app_errors()["/b"] and "traefik.backend" in state.app_errors()["/b"]
    first = traefik_app({"traefik.backend": "pool", "traefik.frontend.whiteList.sourceRange": "10.0.0.0/8"},
                        app_id="/a")
    plain = traefik_app({"traefik.backend": "pool"}, app_id="/b", host="10.0.0.2")
    state = state_of(first, plain)
    (s,) = state.table().services
    assert state.app_errors() == {}
    assert s.http.allow_cidrs == ("10.0.0.0/8",) and len(s.backends) == 2


def test_restriction_templates_warn_naming_the_served_label() -> None:
    state = mlb({"HAPROXY_0_VHOST": HOST, "HAPROXY_0_AUTH": f"zone:alice:{SHA512}",
                 "HAPROXY_0_HTTP_FRONTEND_ACL_WITH_AUTH": "  acl x\n", "HAPROXY_0_USERLIST_HEAD": "userlist x\n"})
    assert http(state).auth_users == (("alice", SHA512),)
    warnings = state.app_warnings()["/subject"]
    assert len(warnings) == 2 and all("HAPROXY_0_AUTH" in w and "template" in w for w in warnings)


def test_benign_bind_options_stay_a_warning() -> None:
    state = mlb({"HAPROXY_0_BIND_OPTIONS": "v4v6 defer-accept"})
    assert state.app_errors() == {}
    assert any("bind options" in w for w in state.app_warnings()["/subject"])


def test_crypt_hash_shapes() -> None:
    for good in (SHA512, BCRYPT, MD5, "$5$fastlbtestsalt2$UeULDc5wzWpsFGf4gKJ7pNCIOq/lco/KasBKodmeJqB",
                 "$2b$05$fastlbtestsaltfastlbteATq/8O7QxaqOaqOaIlUz6liE2VArnlW",
                 "$6$rounds=5000$salt$" + "a" * 86):
        assert tlbl._CRYPT_HASH.fullmatch(good), good
    for bad in (APR1, SHA1, "s3cret", "$2x$05$" + "a" * 53, SHA512[:-1], ""):
        assert not tlbl._CRYPT_HASH.fullmatch(bad), bad


def test_htpasswd_hash_shapes() -> None:
    # salts of 0 to 8 characters, as `openssl passwd -apr1 -salt ''` and htpasswd -m make them
    for good in (APR1, SHA1, "$apr1$$ObghUg3jW8qtzqA8SebIB/", "$apr1$xY7$NzgHeuuDHZ8GROZADr86A/"):
        assert tlbl._HTPASSWD_HASH.fullmatch(good), good
    for bad in (APR1[:-1], APR1 + "x", "$apr1$fastlbtes$x3tH961mNWymZRJtYVpeN.", SHA1[:-1], SHA1.lower(),
                "{SHA}" + "A" * 28, "{ssha}" + SHA1[5:], MD5, "s3cret", ""):
        assert not tlbl._HTPASSWD_HASH.fullmatch(bad), bad
    assert re.fullmatch(r"\$2y\$.*", BCRYPT)


def test_bind_options_fastlb_does_not_serve_are_a_warning_beside_tls() -> None:
    state = mlb({"HAPROXY_0_VHOST": HOST, "HAPROXY_0_BIND_OPTIONS": f"ssl crt {CERT} no-tls-tickets accept-proxy"})
    assert state.app_errors() == {}
    (svc,) = state.table().services
    assert svc.tls == spec.ServiceTls(certs=(CERT,))
    (warning,) = state.app_warnings()["/subject"]
    assert "no-tls-tickets accept-proxy" in warning and "HAPROXY_0_BIND_OPTIONS" in warning
    # its vhost is routed on the shared https listener too, where its certificate claims it
    assert [(r.host, r.service) for r in state.table().http_routes] == [(HOST, svc.name)]


def test_an_app_refused_for_its_certificate_file_is_served_once_the_file_is_there(tmp_path: Path) -> None:
    """The outcome of SSL_CERT depends on the file as well as the label: a resync (the same apps,
    fetched again) reads it again."""
    import json
    import shutil

    from .test_labels import app as app_def

    path = tmp_path / "late.pem"
    payload = json.dumps({"apps": [app_def("/late", 10000, {"HAPROXY_0_VHOST": HOST,
                                                              "HAPROXY_0_SSL_CERT": str(path)})]}).encode()
    state = MarathonState(MarathonOptions(groups=("*",)), {}.get)
    state.replace_all(payload)
    assert "No such file" in state.app_errors()["/late"] and state.table().services == ()
    shutil.copy(CERT, path)
    state.replace_all(payload)
    assert state.app_errors() == {}
    (svc,) = state.table().services
    assert svc.tls == spec.ServiceTls(certs=(str(path),))
