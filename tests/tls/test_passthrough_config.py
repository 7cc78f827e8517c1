"""Where passthrough vhosts come from: the static file's `tls = { passthrough = true }` with `vhosts`,
Marathon's `FASTLB_{n}_TLS=passthrough` with `HAPROXY_{n}_VHOST`; each mistake is one clear line, and a
bad label leaves out only its app."""

from __future__ import annotations

from fastlb import config, spec
from tests.marathon.test_labels import app, state_of

HTTPS = '[https]\nlisten = "127.0.0.1:8443"\n'
DB = '''
[[services]]
name = "db"
vhosts = ["DB.example.com", "*.db.example.com"]
tls = { passthrough = true }
backends = ["10.0.0.2:5432"]
'''


def problems(text: str) -> list[str]:
    try:
        config.parse(text)
    except config.ConfigError as e:
        return e.problems
    return []


def test_static_passthrough_service_is_tcp_routed_by_sni():
    www = '[[services]]\nname = "www"\nvhosts = ["www.example.com"]\nbackends = ["10.0.0.3:80"]\n'
    table = config.parse(HTTPS + DB + www).table
    assert table.sni_routes == (
        spec.SniRoute(host="db.example.com", service="db"),
        spec.SniRoute(host="*.db.example.com", service="db"),
    )
    assert [r.host for r in table.http_routes] == ["www.example.com"]  # terminated, routed by Host
    assert {s.name: s.mode for s in table.services} == {"db": "tcp", "www": "http"}


def test_static_passthrough_mistakes_are_one_line_each():
    assert problems(DB.replace("vhosts = [\"DB.example.com\", \"*.db.example.com\"]\n", "")) == [
        "services[0].tls.passthrough: passthrough needs vhosts (the names a ClientHello is routed by)",
        "services[0].tls.passthrough: passthrough needs the shared https listener ([https] listen)",
    ]
    assert problems(HTTPS + DB.replace('name = "db"', 'name = "db"\nmode = "http"')) == [
        'services[0].tls.passthrough: a passthrough service is mode = "tcp" (its bytes are not read)'
    ]
    assert problems(HTTPS + DB.replace('name = "db"', 'name = "db"\npaths = ["/x"]')) == [
        "services[0].paths: a passthrough service is routed by name only (no paths)"
    ]
    twice = DB + DB.replace('name = "db"', 'name = "db2"').replace('"*.db.example.com"', '"x.example.com"')
    assert problems(HTTPS + twice) == [
        'services[1].vhosts[0]: "DB.example.com" is already passed through by services[0].vhosts[0]'
    ]
    wrong = problems(HTTPS + DB.replace("passthrough = true", 'passthrough = "yes"'))
    assert len(wrong) == 1 and wrong[0].startswith("services[0].tls.passthrough:")
    assert len(problems(HTTPS + DB.replace("passthrough = true", "passthru = true"))) == 1


def test_marathon_passthrough_label():
    labels = {"HAPROXY_0_VHOST": "db.example.com", "FASTLB_0_TLS": "passthrough"}
    state = state_of(app("/db", 10000, labels), app("/web", 10001, {"HAPROXY_0_VHOST": "web.example.com"}))
    table = state.table()
    assert table.sni_routes == (spec.SniRoute(host="db.example.com", service="db_10000"),)
    assert {s.name: s.mode for s in table.services} == {"db_10000": "tcp", "web_10001": "http"}
    assert [r.host for r in table.http_routes] == ["web.example.com"]  # the passthrough name is not Host-routed
    assert state.app_errors() == {}


def test_marathon_passthrough_mistakes_leave_out_their_app_only():
    state = state_of(
        app("/bad-value", 10000, {"HAPROXY_0_VHOST": "a.example.com", "FASTLB_0_TLS": "terminate"}),
        app("/no-vhost", 10001, {"FASTLB_0_TLS": "passthrough"}),
        app("/http", 10002, {"HAPROXY_0_VHOST": "c.example.com", "HAPROXY_0_MODE": "http",
                             "FASTLB_0_TLS": "passthrough"}),
        app("/good", 10003, {"HAPROXY_0_VHOST": "d.example.com", "FASTLB_0_TLS": "PASSTHROUGH"}),
    )
    assert [s.name for s in state.table().services] == ["good_10003"]
    errors = state.app_errors()
    assert set(errors) == {"/bad-value", "/no-vhost", "/http"}
    assert "FASTLB_0_TLS='terminate': expected passthrough" in errors["/bad-value"]
    assert "needs HAPROXY_0_VHOST" in errors["/no-vhost"]
    assert "HAPROXY_0_MODE=http" in errors["/http"]
