"""The static file: every documented example parses, every mistake gives exactly its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fastlb import config, spec

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def doc_examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOCS.read_text(), re.S)


def problems(text: str) -> list[str]:
    try:
        config.parse(text)
    except config.ConfigError as e:
        return e.problems
    return []


def test_docs_have_examples() -> None:
    assert len(doc_examples()) >= 4


@pytest.mark.parametrize("n", range(len(doc_examples())))
def test_every_doc_example_parses(n: int) -> None:
    loaded = config.parse(doc_examples()[n])
    assert loaded.table.services


def test_default_file_parses_and_serves_loopback_only() -> None:
    loaded = config.load_default()
    assert {s.name for s in loaded.table.services} == {"tcp-demo", "http-demo"}
    assert loaded.admin_listen == "127.0.0.1:9090"
    for listener in loaded.table.listeners:
        assert listener.address.startswith("127.0.0.1:")
    assert any(s.mode == "http" for s in loaded.table.services)
    assert any(s.mode == "tcp" for s in loaded.table.services)


def test_design_example_gives_the_table() -> None:
    loaded = config.parse(
        """
[admin]
listen = "127.0.0.1:9090"

[[services]]
name = "web"
listen = "127.0.0.1:8080"
mode = "http"
balance = "roundrobin"
backends = ["127.0.0.1:8081", "127.0.0.1:8082"]
"""
    )
    assert loaded.table == spec.RouteTable(
        services=(
            spec.Service(
                name="web",
                mode="http",
                balance="roundrobin",
                backends=(
                    spec.Backend(id="web/127.0.0.1:8081", address="127.0.0.1:8081", name="127.0.0.1:8081"),
                    spec.Backend(id="web/127.0.0.1:8082", address="127.0.0.1:8082", name="127.0.0.1:8082"),
                ),
            ),
        ),
        listeners=(spec.Listener(address="127.0.0.1:8080", service="web"),),
    )


def test_values_are_converted() -> None:
    loaded = config.parse(
        """
[engine]
workers = 3
pipe_size = 65536
[http]
listen = ["127.0.0.1:80", "[::1]:80"]
[[services]]
name = "s"
listen = "[0:0::1]:81"
vhosts = ["A.Example.com", "*.example.org"]
paths = ["/api"]
backends = [{ address = "10.0.0.1:1", weight = 0, state = "maint", id = "task-1", name = "t1" }, "[::1]:2"]
[services.timeouts]
connect = "250ms"
client = "2m"
server = 1500
tunnel = "1h"
[services.health]
kind = "http"
path = "/ok"
interval = "3s"
expect_status = [200, 204]
require_pass = true
[services.http]
allow = ["10.1.2.3"]
auth = { users = ["bob:$1$x$y"] }
"""
    )
    t = loaded.table
    assert loaded.engine.workers == 3 and loaded.engine.pipe_size == 65536
    s = t.services[0]
    assert s.mode == "http"
    assert s.timeouts == spec.Timeouts(connect_ms=250, client_ms=120000, server_ms=1500, tunnel_ms=3600000)
    assert s.backends[0] == spec.Backend(
        id="task-1", address="10.0.0.1:1", weight=0, state="maint", name="t1", check=s.backends[0].check
    )
    assert s.backends[1].address == "[::1]:2" and s.backends[1].id == "s/[::1]:2"
    check = s.backends[0].check
    assert check == spec.HealthCheck(
        kind="http", path="/ok", interval_ms=3000, expect_status=(200, 204), require_pass=True
    )
    assert s.http.allow_cidrs == ("10.1.2.3/32",)
    assert s.http.auth_users == (("bob", "$1$x$y"),) and s.http.auth_realm == "fastlb"
    assert [(x.address, x.kind) for x in t.listeners] == [
        ("127.0.0.1:80", "vhost"), ("[::1]:80", "vhost"), ("[::1]:81", "service"),
    ]
    assert t.http_routes == (
        spec.HttpRoute(host="a.example.com", service="s", paths=("/api",)),
        spec.HttpRoute(host="*.example.org", service="s", paths=("/api",)),
    )


def test_queue_and_pool_settings() -> None:
    loaded = config.parse(
        """
[engine]
pool_max = 500
pool_idle = "20s"

[[services]]
name = "web"
listen = "127.0.0.1:8080"
mode = "http"
backend_maxconn = 10
backends = ["127.0.0.1:8081", { address = "127.0.0.1:8082", maxconn = 3 }]

[services.timeouts]
queue = "2s"
"""
    )
    (web,) = loaded.table.services
    assert web.backend_maxconn == 10 and [b.maxconn for b in web.backends] == [0, 3]
    assert web.timeouts.queue_ms == 2000
    assert (loaded.engine.pool_max, loaded.engine.pool_idle_ms) == (500, 20000)


def test_durations() -> None:
    assert config.parse_duration(0) == 0
    assert config.parse_duration(1500) == 1500
    assert config.parse_duration("500ms") == 500
    assert config.parse_duration("3s") == 3000
    assert config.parse_duration("2m") == 120000
    assert config.parse_duration("1h") == 3600000
    for bad in ("3", "1.5s", "3 s s", "-1s", "s", "3d", -5):
        assert config.parse_duration(bad) is None, bad


def test_drain_timeout_is_a_service_duration() -> None:
    table = config.parse(SVC + 'backends = ["10.0.0.1:80"]\ndrain_timeout = "30s"\n').table
    assert table.services[0].drain_timeout_ms == 30000
    assert config.parse(SVC + 'backends = ["10.0.0.1:80"]\n').table.services[0].drain_timeout_ms == 0


def test_addresses() -> None:
    ok = {"1.2.3.4:5": "1.2.3.4:5", "[::1]:80": "[::1]:80", "[0::1]:80": "[::1]:80"}
    for text, canonical in ok.items():
        parsed = config.parse_address(text)
        assert parsed is not None
        assert config.format_address(*parsed) == canonical
    for bad in ("1.2.3.4", "::1:80", "[1.2.3.4]:80", "host:80", "1.2.3.4:x", "1.2.3.4:123456", "[::1]80", ""):
        assert config.parse_address(bad) is None, bad


SVC = '[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\n'

# (file, the one line it gives)
INVALID = [
    ("colour = 1\n", "colour: unknown key"),
    ("[engine]\nthreads = 2\n", "engine.threads: unknown key"),
    ("[engine]\nworkers = \"4\"\n", "engine.workers: expected an integer, got string"),
    ("[engine]\nworkers = true\n", "engine.workers: expected an integer, got boolean"),
    ("[engine]\nworkers = 2000\n", "engine.workers: 2000 is out of range (0..1024)"),
    ("[engine]\nmaxconn = -1\n", "engine.maxconn: -1 is out of range (0..4294967295)"),
    ("[engine]\npipe_size = 5000\n", "engine.pipe_size: 5000 is not a power of two in 4096..1073741824"),
    ("[engine]\nbuffer_size = 100\n", "engine.buffer_size: 100 is below 1024"),
    ("[admin]\nlisten = \"localhost:9090\"\n", 'admin.listen: "localhost:9090" is not ip:port'),
    ("[admin]\nport = 9090\n", "admin.port: unknown key"),
    ("[http]\nmaxconn = 5\n", "http.listen: missing"),
    ("[http]\nlisten = \"0.0.0.0:0\"\n", "http.listen: port 0 is out of range (1..65535)"),
    ("services = 3\n", "services: expected an array of tables ([[services]]), got integer"),
    ("[services]\nname = \"a\"\n", "services: expected an array of tables ([[services]]), got table"),
    ('[[services]]\nlisten = "127.0.0.1:7001"\n', "services[0].name: missing"),
    (SVC + 'colour = "red"\n', "services[0].colour: unknown key"),
    (SVC + 'mode = "udp"\n', 'services[0].mode: "udp" is not one of "tcp", "http"'),
    (SVC + "mode = 1\n", 'services[0].mode: expected one of "tcp", "http", got integer'),
    (SVC + 'balance = "random"\n',
     'services[0].balance: "random" is not one of "roundrobin", "leastconn", "maglev", "source"'),
    (SVC + 'backends = ["10.0.0.1"]\n', 'services[0].backends[0]: "10.0.0.1" is not ip:port'),
    (SVC + 'backends = ["10.0.0.1:0"]\n', "services[0].backends[0]: port 0 is out of range (1..65535)"),
    (SVC + 'backends = ["10.0.0.1:65536"]\n', "services[0].backends[0]: port 65536 is out of range (1..65535)"),
    (SVC + 'backends = ["db.local:5432"]\n', 'services[0].backends[0]: "db.local:5432" is not ip:port'),
    (SVC + "backends = [5432]\n", "services[0].backends[0]: expected a string or a table, got integer"),
    (SVC + 'backends = "10.0.0.1:1"\n', "services[0].backends: expected an array, got string"),
    (SVC + 'backends = [{ address = "10.0.0.1:1", weight = 257 }]\n',
     "services[0].backends[0].weight: 257 is out of range (0..256)"),
    (SVC + 'backends = [{ address = "10.0.0.1:1", weight = -1 }]\n',
     "services[0].backends[0].weight: -1 is out of range (0..256)"),
    (SVC + 'backends = [{ address = "10.0.0.1:1", state = "down" }]\n',
     'services[0].backends[0].state: "down" is not one of "ready", "drain", "maint"'),
    (SVC + 'backends = [{ address = "10.0.0.1:1", colour = 1 }]\n', "services[0].backends[0].colour: unknown key"),
    (SVC + "backends = [{ weight = 1 }]\n", "services[0].backends[0].address: missing"),
    (SVC + 'backends = [{ address = "10.0.0.1:99999" }]\n',
     "services[0].backends[0].address: port 99999 is out of range (1..65535)"),
    (SVC + 'backends = ["10.0.0.1:1", "10.0.0.1:1"]\n',
     'services[0].backends[1]: backend id "a/10.0.0.1:1" is already used by services[0].backends[0] (set id)'),
    (SVC + 'backends = [{ address = "10.0.0.1:1", id = "x" }]\n[[services]]\nname = "b"\nlisten = "127.0.0.1:7002"\n'
     'backends = [{ address = "10.0.0.2:1", id = "x" }]\n',
     'services[1].backends[0].id: "x" is already services[0].backends[0]\'s, at 10.0.0.1:1 (one id, one address)'),
    (SVC + 'backends = [{ address = "10.0.0.1:1", id = "a b" }]\n',
     'services[0].backends[0].id: "a b" is not an id (no spaces or commas)'),
    (SVC + '[[services]]\nname = "a"\nlisten = "127.0.0.1:7002"\n',
     'services[1].name: "a" is already the name of services[0]'),
    (SVC + '[[services]]\nname = "b"\nlisten = "127.0.0.1:7001"\n',
     "services[1].listen: 127.0.0.1:7001 is already listened on by services[0].listen"),
    (SVC + '[[services]]\nname = "b"\nlisten = "0.0.0.0:7001"\n',
     "services[1].listen: 0.0.0.0:7001 overlaps 127.0.0.1:7001 (services[0].listen)"),
    (SVC + '[[services]]\nname = "b"\nlisten = ["127.0.0.1:7002", "127.0.0.1:7002"]\n',
     "services[1].listen[1]: 127.0.0.1:7002 is already listened on by services[1].listen[0]"),
    ('[admin]\nlisten = "127.0.0.1:7001"\n' + SVC,
     "services[0].listen: 127.0.0.1:7001 is already listened on by admin.listen"),
    ('[[services]]\nname = "a b"\nlisten = "127.0.0.1:7001"\n',
     'services[0].name: "a b" is not a name (letters, digits, "_", ".", "-")'),
    ('[[services]]\nname = "a"\n', "services[0]: neither listen nor vhosts: nothing routes to this service"),
    (SVC + 'listen2 = "x"\n', "services[0].listen2: unknown key"),
    ('[[services]]\nname = "a"\nlisten = "127.0.0.1"\n', 'services[0].listen: "127.0.0.1" is not ip:port'),
    ('[[services]]\nname = "a"\nlisten = ["127.0.0.1:1", 2]\n',
     "services[0].listen[1]: expected a string, got integer"),
    (SVC + "retries = -1\n", "services[0].retries: -1 is out of range (0..100)"),
    (SVC + "maxconn = -1\n", "services[0].maxconn: -1 is out of range (0..4294967295)"),
    (SVC + "backend_maxconn = -1\n", "services[0].backend_maxconn: -1 is out of range (0..4294967295)"),
    (SVC + 'backends = [{ address = "10.0.0.1:1", maxconn = 4294967296 }]\n',
     "services[0].backends[0].maxconn: 4294967296 is out of range (0..4294967295)"),
    (SVC + "[services.timeouts]\nqueue = 0\n", "services[0].timeouts.queue: must be above zero"),
    (SVC + '[services.timeouts]\nqueue = "1200h"\n', 'services[0].timeouts.queue: "1200h" is longer than 49 days'),
    ("[engine]\npool_max = -1\n" + SVC, "engine.pool_max: -1 is out of range (0..4294967295)"),
    ('[engine]\npool_idle = "0s"\n' + SVC, "engine.pool_idle: must be above zero"),
    (SVC + '[services.timeouts]\nconnect = "3 parsecs"\n',
     'services[0].timeouts.connect: "3 parsecs" is not a duration (milliseconds, or "500ms", "3s", "2m", "1h")'),
    (SVC + "[services.timeouts]\nclient = 0\n", "services[0].timeouts.client: must be above zero"),
    (SVC + 'drain_timeout = "soon"\n',
     'services[0].drain_timeout: "soon" is not a duration (milliseconds, or "500ms", "3s", "2m", "1h")'),
    (SVC + "[services.timeouts]\nclient = 1.5\n",
     "services[0].timeouts.client: expected an integer or a string, got float"),
    (SVC + "[services.timeouts]\nidle = 1\n", "services[0].timeouts.idle: unknown key"),
    (SVC + '[services.health]\nkind = "icmp"\n', 'services[0].health.kind: "icmp" is not one of "tcp", "http"'),
    (SVC + "[services.health]\nrise = 0\n", "services[0].health.rise: 0 is out of range (1..100)"),
    (SVC + '[services.health]\nkind = "tcp"\npath = "/x"\n', 'services[0].health.path: a path needs kind = "http"'),
    (SVC + '[services.health]\nkind = "http"\npath = "x"\n', 'services[0].health.path: "x" does not start with "/"'),
    (SVC + "[services.health]\nexpect_status = [500, 200]\n",
     "services[0].health.expect_status: [500, 200] is not a status range within 100..599"),
    (SVC + "[services.health]\nport = 70000\n", "services[0].health.port: 70000 is out of range (0..65535)"),
    (SVC + "[services.health]\nrequire_pass = 1\n", "services[0].health.require_pass: expected a boolean, got integer"),
    (SVC + "[services.http]\nhsts = true\n", 'services[0].http: http options need mode = "http"'),
    (SVC + 'mode = "http"\n[services.http]\nhsts = "yes"\n', "services[0].http.hsts: expected a boolean, got string"),
    (SVC + 'mode = "http"\n[services.http]\nallow = ["10.0.0.0/33"]\n',
     'services[0].http.allow[0]: "10.0.0.0/33" is not an address or CIDR'),
    (SVC + 'mode = "http"\n[services.http]\nauth = { users = ["alice"] }\n',
     'services[0].http.auth.users[0]: expected "user:crypt-hash"'),
    (SVC + 'mode = "http"\n[services.http]\nauth = { realm = "x" }\n', "services[0].http.auth.users: missing"),
    (SVC + 'mode = "http"\n[services.http]\nsticky_cookie = "a b"\n',
     'services[0].http.sticky_cookie: "a b" is not a cookie name'),
    ('[http]\nlisten = "127.0.0.1:80"\n[[services]]\nname = "a"\nvhosts = ["a.example.com"]\nmode = "tcp"\n',
     'services[0].vhosts: vhosts need mode = "http"'),
    ('[[services]]\nname = "a"\nvhosts = ["a.example.com"]\n',
     "services[0].vhosts: vhosts need a shared http listener ([http] listen)"),
    ('[http]\nlisten = "127.0.0.1:80"\n[[services]]\nname = "a"\nvhosts = ["a..example.com"]\n',
     'services[0].vhosts[0]: "a..example.com" is not a host name'),
    ('[http]\nlisten = "127.0.0.1:80"\n[[services]]\nname = "a"\nvhosts = ["a.example.com"]\npaths = ["api"]\n',
     'services[0].paths[0]: "api" is not a path (starts with "/", no spaces)'),
    (SVC + 'paths = ["/api"]\n', "services[0].paths: paths need vhosts"),
    ('[http]\nlisten = "127.0.0.1:80"\n[[services]]\nname = "a"\nvhosts = ["A.example.com"]\n'
     '[[services]]\nname = "b"\nvhosts = ["x.example.com", "a.example.com"]\n',
     'services[1].vhosts[1]: "a.example.com" (every path) is already routed by services[0].vhosts[0]'),
    ('[http]\nlisten = "127.0.0.1:80"\n[[services]]\nname = "a"\nvhosts = ["a.example.com"]\npaths = ["/x", "/y"]\n'
     '[[services]]\nname = "b"\nvhosts = ["a.example.com"]\npaths = ["/y", "/x"]\n',
     'services[1].vhosts[0]: "a.example.com" (the same paths) is already routed by services[0].vhosts[0]'),
    ("[[services]\n", None),  # TOML syntax: one line, starting "toml: "
    # [log]
    ('[log]\naccess = ""\n' + SVC, 'log.access: "" is not a path (a file, or "-" for stdout)'),
    ("[log]\naccess = 1\n" + SVC, "log.access: expected a string, got integer"),
    ('[log]\nerrors = "x"\n' + SVC, "log.errors: unknown key"),
    # the rewrites
    (SVC + 'mode = "http"\n[services.http]\nstrip_prefix = "api"\n',
     'services[0].http.strip_prefix: "api" is not a path prefix (starts with "/"; no spaces, "?" or "#")'),
    (SVC + 'mode = "http"\n[services.http]\nstrip_prefix = "/a b"\n',
     'services[0].http.strip_prefix: "/a b" is not a path prefix (starts with "/"; no spaces, "?" or "#")'),
    (SVC + 'mode = "http"\n[services.http]\nstrip_prefix = "/api?x"\n',
     'services[0].http.strip_prefix: "/api?x" is not a path prefix (starts with "/"; no spaces, "?" or "#")'),
    (SVC + 'mode = "http"\n[services.http]\nstrip_prefix = "/"\n',
     'services[0].http.strip_prefix: "/" is the root: there is no prefix to take off or put on'),
    (SVC + 'mode = "http"\n[services.http]\nlocation_prefix = "//"\n',
     'services[0].http.location_prefix: "//" is the root: there is no prefix to take off or put on'),
    (SVC + 'mode = "http"\n[services.http]\nlocation_prefix = "/caf\u00e9"\n',
     'services[0].http.location_prefix: "/caf\u00e9" is not a path prefix (starts with "/"; no spaces, "?" or "#")'),
    (SVC + 'mode = "http"\n[services.http]\nset_host = "a b"\n',
     'services[0].http.set_host: "a b" is not a host name (with an optional :port)'),
    (SVC + 'mode = "http"\n[services.http]\nset_host = "*.example.com"\n',
     'services[0].http.set_host: "*.example.com" is not a host name (with an optional :port)'),
    (SVC + 'mode = "http"\n[services.http]\nredirect_root = "app"\n',
     'services[0].http.redirect_root: "app" is not a path ("/...") or an http(s) URL without spaces'),
    (SVC + 'mode = "http"\n[services.http]\nredirect_root = "/a\\r\\nX: y"\n',
     'services[0].http.redirect_root: "/a\\u000d\\u000aX: y" is not a path ("/...") or an http(s) URL without spaces'),
    (SVC + 'mode = "http"\n[services.http]\nredirect_root = "ftp://x/"\n',
     'services[0].http.redirect_root: "ftp://x/" is not a path ("/...") or an http(s) URL without spaces'),
    (SVC + 'mode = "http"\n[services.http]\nredirect_root = "/x"\nredirect_root_code = 200\n',
     "services[0].http.redirect_root_code: 200 is not one of 301, 302, 303, 307, 308"),
    (SVC + 'mode = "http"\n[services.http]\nredirect_root_code = 302\n',
     "services[0].http.redirect_root_code: needs redirect_root"),
]


@pytest.mark.parametrize("text,line", INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_invalid_gives_exactly_its_line(text: str, line: str | None) -> None:
    got = problems(text)
    if line is None:
        assert len(got) == 1 and got[0].startswith("toml: "), got
    else:
        assert got == [line]


def test_every_problem_is_collected() -> None:
    text = """
bogus = 1
[engine]
workers = "x"
[[services]]
name = "a"
listen = "127.0.0.1:7001"
backends = ["10.0.0.1", { address = "10.0.0.2:1", weight = 300 }]
[[services]]
name = "a"
listen = "127.0.0.1:7001"
balance = "nope"
[[services]]
name = "c"
listen = "127.0.0.1:7003"
backends = ["host:1"]
"""
    assert problems(text) == [
        "bogus: unknown key",
        "engine.workers: expected an integer, got string",
        'services[1].balance: "nope" is not one of "roundrobin", "leastconn", "maglev", "source"',
        'services[0].backends[0]: "10.0.0.1" is not ip:port',
        "services[0].backends[1].weight: 300 is out of range (0..256)",
        # a value of the wrong shape hides nothing else of its service
        'services[1].name: "a" is already the name of services[0]',
        "services[1].listen: 127.0.0.1:7001 is already listened on by services[0].listen",
        'services[2].backends[0]: "host:1" is not ip:port',
    ]


def test_load_reports_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert config.check(str(missing)) == [f"{missing}: No such file or directory"]
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    assert config.check(str(binary))[0].startswith(f"{binary}: not UTF-8")


def test_the_rewrites_and_the_access_log() -> None:
    loaded = config.parse(
        '[log]\naccess = "/var/log/fastlb/access.log"\n'
        '[http]\nlisten = "127.0.0.1:8080"\n'
        '[[services]]\nname = "api"\nvhosts = ["API.example.com", "*.api.example.com", "b.example.com"]\n'
        'backends = ["10.0.0.1:80"]\n'
        '[services.http]\nstrip_prefix = "/api/"\nset_host = "api.internal:8080"\nlocation_prefix = "/api"\n'
        'redirect_root = "https://www.example.com/start"\nredirect_root_code = 302\n'
    )
    assert loaded.access_log == "/var/log/fastlb/access.log"
    (svc,) = loaded.table.services
    assert svc.http == spec.HttpOptions(
        strip_prefix="/api/", set_host="api.internal:8080", location_prefix="/api",
        redirect_root="https://www.example.com/start", redirect_root_code=302,
        hosts=("api.example.com", "b.example.com"),
    )
    # without them: nothing, and the file says nothing of the log
    plain = config.parse(SVC)
    assert plain.access_log is None and plain.table.services[0].http == spec.HttpOptions()
    assert config.parse('[log]\naccess = "-"\n' + SVC).access_log == "-"
    assert config.parse("[log]\n" + SVC).access_log is None
