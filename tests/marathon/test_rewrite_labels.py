"""marathon-lb's rewrite labels, served (no longer warned about): HAPROXY_{n}_HTTP_BACKEND_PROXYPASS_PATH,
HAPROXY_{n}_HTTP_BACKEND_REVPROXY_PATH and HAPROXY_{n}_HTTP_BACKEND_REDIR become the service's
HttpOptions, in http mode only; a value the data plane could not take refuses its app alone."""

from __future__ import annotations

from fastlb import spec
from fastlb.marathon import labels as lbl

from .test_labels import app, state_of

PROXYPASS = "HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH"
REVPROXY = "HAPROXY_0_HTTP_BACKEND_REVPROXY_PATH"
REDIR = "HAPROXY_0_HTTP_BACKEND_REDIR"


def http_of(labels: dict[str, str]) -> spec.HttpOptions:
    state = state_of(app("/web", 10000, labels))
    assert state.app_errors() == {}
    (svc,) = state.table().services
    return svc.http


def test_the_three_labels_are_known_and_not_warned_about() -> None:
    for name in ("HTTP_BACKEND_PROXYPASS_PATH", "HTTP_BACKEND_REVPROXY_PATH", "HTTP_BACKEND_REDIR"):
        assert name in lbl.PORT_LABELS and name not in lbl._UNSUPPORTED_PORT_LABELS
    labels = {"HAPROXY_0_VHOST": "app.example.com", PROXYPASS: "/api", REVPROXY: "/api", REDIR: "/api/"}
    state = state_of(app("/web", 10000, labels))
    assert state.app_errors() == {} and state.app_warnings() == {}


def test_proxypass_strips_the_prefix_and_sets_host_to_the_vhost() -> None:
    o = http_of({"HAPROXY_0_VHOST": "*.w.example.com,App.example.com,b.example.com", PROXYPASS: " /api/ "})
    assert (o.strip_prefix, o.set_host) == ("/api/", "app.example.com")
    # the names the Location rewrite and the redirect compare with are not needed by PROXYPASS alone
    assert (o.location_prefix, o.redirect_root, o.hosts) == ("", "", ())


def test_proxypass_without_a_vhost_keeps_the_clients_host() -> None:
    o = http_of({"HAPROXY_0_MODE": "http", PROXYPASS: "/api"})
    assert (o.strip_prefix, o.set_host) == ("/api", "")


def test_revproxy_and_redir_name_the_ports_exact_vhosts() -> None:
    o = http_of(
        {"HAPROXY_0_VHOST": "a.example.com, *.w.example.com, b.example.com:8080", REVPROXY: "/app", REDIR: "/app/"}
    )
    assert (o.location_prefix, o.redirect_root, o.redirect_root_code) == ("/app", "/app/", 301)
    assert o.hosts == ("a.example.com", "b.example.com")
    assert (o.strip_prefix, o.set_host) == ("", "")


def test_redir_takes_a_full_url() -> None:
    o = http_of({"HAPROXY_0_VHOST": "a.example.com", REDIR: "https://www.example.com/start?x=1"})
    assert o.redirect_root == "https://www.example.com/start?x=1"


def test_in_tcp_mode_the_labels_do_nothing_as_in_marathon_lb() -> None:
    state = state_of(app("/db", 10000, {PROXYPASS: "/api", REVPROXY: "/api", REDIR: "/x"}))
    (svc,) = state.table().services
    assert svc.mode == "tcp" and svc.http == spec.HttpOptions()
    assert state.app_errors() == {}


def test_per_port() -> None:
    a = app("/two", 10000, {"HAPROXY_1_MODE": "http", "HAPROXY_1_HTTP_BACKEND_PROXYPASS_PATH": "/p1",
                            "HAPROXY_0_MODE": "http"}, n=2)
    by_name = {s.name: s.http for s in state_of(a).table().services}
    assert by_name["two_10000"].strip_prefix == "" and by_name["two_10001"].strip_prefix == "/p1"


def test_empty_values_are_no_rewrite_and_the_root_is_a_warning() -> None:
    o = http_of({"HAPROXY_0_VHOST": "a.example.com", PROXYPASS: "", REVPROXY: " ", REDIR: ""})
    assert (o.strip_prefix, o.location_prefix, o.redirect_root) == ("", "", "")
    state = state_of(app("/web", 10000, {"HAPROXY_0_VHOST": "a.example.com", PROXYPASS: "/", REVPROXY: "//"}))
    (svc,) = state.table().services
    assert svc.http.strip_prefix == "" and svc.http.location_prefix == ""
    warnings = state.app_warnings()["/web"]
    assert any(PROXYPASS in w and "root" in w for w in warnings)
    assert any(REVPROXY in w and "root" in w for w in warnings)


def test_a_bad_value_refuses_its_app_alone() -> None:
    for label, value in (
        (PROXYPASS, "api"),
        (PROXYPASS, "/a b"),
        (PROXYPASS, "/a?b"),
        (REVPROXY, "/x#y"),
        (REVPROXY, "/\u00e9"),
        (REDIR, "/a b"),
        (REDIR, "/x\r\nSet-Cookie: a=b"),
        (REDIR, "/" + "x" * 3000),
    ):
        bad = app("/bad", 10000, {"HAPROXY_0_VHOST": "bad.example.com", label: value})
        good = app("/good", 20000, {"HAPROXY_0_VHOST": "good.example.com", REDIR: "/home"}, host="10.0.0.2")
        state = state_of(bad, good)
        errors = state.app_errors()
        assert list(errors) == ["/bad"] and label in errors["/bad"], (label, value, errors)
        (svc,) = state.table().services
        assert svc.name == "good_20000" and svc.http.redirect_root == "/home"


def test_a_vhost_with_a_port_is_routed_by_its_name() -> None:
    """HAProxy compares Host with its port; fastlb's router compares names only, so the port is dropped
    with a warning (the data plane refuses a route host with a port: it would refuse the whole table)."""
    state = state_of(app("/web", 10000, {"HAPROXY_0_VHOST": "a.example.com:8080,A.example.com"}))
    assert state.app_errors() == {}
    assert [r.host for r in state.table().http_routes] == ["a.example.com"]
    (warning,) = state.app_warnings()["/web"]
    assert "HAPROXY_0_VHOST" in warning and "port" in warning
