"""marathon-lb's command line, unchanged: the argument lists of its documentation, its Docker image and its
app definitions parse as ``fastlb run``; the flags that shape HAProxy's config are taken with one warning
each; --dry, --log-format and --syslog-socket do what marathon-lb's do."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from fastlb import cli

from .test_cli import fastlb

# marathon-lb 1.15's own argument lists: its README's examples, its image's `run` script (which adds
# --syslog-socket, --haproxy-config, --ssl-certs and --command to what it is given) and the args of
# its DC/OS package's app definition.
MLB_ARGV = {
    "readme-sse": ["sse", "--marathon", "http://localhost:8080", "--group", "external"],
    "readme-poll": ["poll", "--marathon", "http://localhost:8080", "--group", "external"],
    "readme-script": [
        "--marathon", "http://localhost:8080", "--group", "external", "--strict-mode", "--health-check",
    ],
    "readme-dry": ["--marathon", "http://localhost:8080", "--group", "external", "--dry"],
    "readme-cluster": [
        "sse", "-m", "http://m1:8080", "http://m2:8080", "http://m3:8080", "--group", "external", "--group", "int",
    ],
    "package-app": [
        "sse", "-m", "http://marathon.mesos:8080", "--health-check", "--haproxy-map", "--max-reload-retries", "10",
        "--reload-interval", "10", "--group", "external", "--min-serv-port-ip-per-task", "10050",
        "--max-serv-port-ip-per-task", "10100",
    ],
    "package-app-strict": [
        "sse", "-m", "https://marathon.mesos:8443", "--health-check", "--haproxy-map", "--strict-mode",
        "--group", "external", "--marathon-ca-cert", "/etc/ssl/marathon-ca.crt",
        "--auth-credentials", "user:pass", "--lru-cache-capacity", "1000",
    ],
    "image-run-script": [
        "sse", "--syslog-socket", "/dev/null", "--haproxy-config", "/marathon-lb/haproxy.cfg",
        "--command", "sv reload /marathon-lb/service/haproxy", "--marathon", "http://marathon.mesos:8080",
        "--group", "external", "--log-format", "%(asctime)-15s %(name)s: %(message)s", "--log-level", "DEBUG",
    ],
    "image-run-script-tls": [
        "sse", "--syslog-socket", "/dev/null", "--haproxy-config", "/marathon-lb/haproxy.cfg",
        "--ssl-certs", "/etc/ssl/cert.pem", "--command", "sv reload /marathon-lb/service/haproxy",
        "--marathon", "http://marathon.mesos:8080", "--group", "external",
    ],
    "every-other-flag": [
        "-m", "http://marathon.mesos:8080", "--group", "*", "-s", "-H", "-c", "true", "--archive-versions", "5",
        "--skip-validation", "--skip-config-cleanup", "--dont-bind-http-https", "--max-backoff", "60",
        "--marathon-auth-credential-file", "/etc/mlb/credentials", "-d",
        "--dcos-auth-credentials", '{"uid": "lb", "private_key": "k", "login_endpoint": "https://x/acs"}',
    ],
}


def _run_actions() -> list:  # type: ignore[type-arg]
    p = cli.parser()
    sub = next(a for a in p._actions if a.dest == "command")
    return list(sub.choices["run"]._actions)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(MLB_ARGV))
def test_marathon_lb_argument_lists_parse_as_fastlb_run(name: str) -> None:
    argv = MLB_ARGV[name]
    words = argv if argv[0] in cli.IMAGE_MODES else ["run", *argv]
    args = cli.parser().parse_args(cli.image_argv(words, environ={"POLL_INTERVAL": "15"}))
    assert args.command == "run"
    assert cli.marathon_urls(args.marathon)
    assert args.group
    if argv[0] == "poll":
        assert args.poll == 15.0
    else:
        assert args.poll is None  # --sse, fastlb's default
    m = cli.marathon_args(args)
    assert m is not None and m.urls == cli.marathon_urls(args.marathon)
    given = {w for w in argv if w.startswith("-")} | {"--command" for w in argv if w == "-c"}
    assert set(cli.warn_ignored(args)) == given & set(cli.MLB_IGNORED)


def test_every_marathon_lb_flag_is_known() -> None:
    """The flags of marathon-lb 1.15's `marathon_lb.py --help`; --ssl-certs and --group-https-by-vhost are
    TLS's and checked with it."""
    mlb_flags = [
        "--longhelp", "--marathon", "-m", "--haproxy-config", "--group", "--command", "-c", "--max-reload-retries",
        "--reload-interval", "--strict-mode", "--sse", "-s", "--archive-versions", "--health-check", "-H",
        "--lru-cache-capacity", "--haproxy-map", "--dont-bind-http-https", "--skip-validation", "--dry", "-d",
        "--min-serv-port-ip-per-task", "--max-serv-port-ip-per-task", "--max-backoff", "--syslog-socket",
        "--log-format", "--log-level", "--marathon-auth-credential-file", "--auth-credentials",
        "--dcos-auth-credentials", "--marathon-ca-cert", "--skip-config-cleanup", "--ssl-certs",
        "--group-https-by-vhost",
    ]
    known = {o for a in _run_actions() for o in a.option_strings}
    assert [f for f in mlb_flags if f not in known] == []


def test_image_words_start_run_and_leave_other_commands_alone() -> None:
    assert cli.image_argv(["sse", "-m", "u"], environ={}) == ["run", "--sse", "-m", "u"]
    assert cli.image_argv(["poll", "-m", "u"], environ={}) == ["run", "--poll", "60", "-m", "u"]
    assert cli.image_argv(["poll"], environ={"POLL_INTERVAL": "5"}) == ["run", "--poll", "5"]
    for argv in (["run", "sse"], ["routes"], [], ["check", "--config", "sse"]):
        assert cli.image_argv(argv, environ={}) == argv


STATIC = '[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\nbackends = ["10.0.0.1:1"]\n'


def test_dry_prints_the_table_routes_prints_and_each_ignored_flag_warns_once(tmp_path: Path) -> None:
    f = tmp_path / "lb.toml"
    f.write_text(STATIC)
    routes = fastlb("routes", "--config", str(f))
    assert routes.returncode == 0, routes.stderr
    r = fastlb(
        "run", "--config", str(f), "--haproxy-map", "--haproxy-config", "/x/haproxy.cfg", "-c", "sv reload h",
        "--reload-interval", "3", "--max-reload-retries", "0", "--skip-validation", "--skip-config-cleanup",
        "--archive-versions", "2", "--lru-cache-capacity", "9", "--dry",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(routes.stdout)
    warned = [line for line in r.stderr.splitlines() if "flag_ignored" in line]
    assert sorted(line.split("flag=")[1].split()[0] for line in warned) == sorted(cli.MLB_IGNORED)
    assert all(" WARNING " in line and "no meaning in fastlb" in line for line in warned)
    assert len(r.stderr.splitlines()) == len(cli.MLB_IGNORED)


def test_image_form_reaches_run(tmp_path: Path) -> None:
    f = tmp_path / "lb.toml"
    f.write_text(STATIC)
    r = fastlb("sse", "--config", str(f), "-d")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["services"][0]["name"] == "a"


def test_log_format_shapes_each_line_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "lb.toml"
    f.write_text(STATIC)
    fmt = "<%(levelname)s> %(name)s: %(message)s"
    r = fastlb("run", "--config", str(f), "--haproxy-map", "--log-format", fmt, "-d")
    assert r.returncode == 0
    assert r.stderr.startswith("<WARNING> fastlb: flag_ignored flag=--haproxy-map ")
    r = fastlb("run", "--config", str(f), "--log-format", "%(nope)s", "-d")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.splitlines() == [
        "fastlb run: --log-format: '%(nope)s' does not format a log record "
        "(Formatting field not found in record: 'nope')"
    ]


def test_syslog_socket_gets_the_lines_and_dev_null_is_off(tmp_path: Path) -> None:
    f = tmp_path / "lb.toml"
    f.write_text(STATIC)
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        r = fastlb("run", "--config", str(f), "--syslog-socket", path, "--haproxy-map", "-d")
        assert r.returncode == 0, r.stderr
        line = sock.recv(4096).decode()
    # <priority>tag: level event ...; 4 (warning) of facility user (1): 8 + 4
    assert line.startswith("<12>fastlb[") and "]: WARNING flag_ignored flag=--haproxy-map " in line
    assert "flag_ignored" in r.stderr  # stderr keeps them too
    r = fastlb("run", "--config", str(f), "--syslog-socket", "/dev/null", "-d")
    assert r.returncode == 0, r.stderr
    r = fastlb("run", "--config", str(f), "--syslog-socket", str(tmp_path / "none"), "-d")
    assert r.returncode == 2
    assert r.stderr.strip().endswith("none: No such file or directory")
