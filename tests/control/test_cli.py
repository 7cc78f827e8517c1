"""The command line, as users run it: a subprocess each."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import msgspec

from fastlb import config, spec

ROOT = Path(__file__).resolve().parents[2]


def fastlb(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastlb", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


GOOD = """
[http]
listen = "127.0.0.1:7080"

[[services]]
name = "b"
listen = "127.0.0.1:7001"
backends = ["10.0.0.2:1", { address = "10.0.0.1:1", weight = 2 }]

[[services]]
name = "a"
vhosts = ["a.example.com"]
backends = ["10.0.0.3:1"]
"""


def test_check_good_file_exits_0_silently(tmp_path: Path) -> None:
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    r = fastlb("check", "--config", str(f))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_check_bad_file_prints_one_line_per_problem(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(
        '[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\nbalance = "random"\n'
        'backends = ["10.0.0.1", { address = "10.0.0.2:1", weight = 999 }]\n'
    )
    r = fastlb("check", "--config", str(f))
    assert r.returncode == 1
    assert r.stdout.splitlines() == [  # a value of the wrong shape hides no other problem
        'services[0].balance: "random" is not one of "roundrobin", "leastconn", "maglev", "source"',
        'services[0].backends[0]: "10.0.0.1" is not ip:port',
        "services[0].backends[1].weight: 999 is out of range (0..256)",
    ]
    f.write_text(
        '[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\n'
        'backends = ["10.0.0.1", { address = "10.0.0.2:1", weight = 999 }]\n'
    )
    r = fastlb("check", "--config", str(f))
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        'services[0].backends[0]: "10.0.0.1" is not ip:port',
        "services[0].backends[1].weight: 999 is out of range (0..256)",
    ]


def test_check_missing_file_and_missing_flag(tmp_path: Path) -> None:
    r = fastlb("check", "--config", str(tmp_path / "none.toml"))
    assert r.returncode == 1 and r.stdout == f"{tmp_path / 'none.toml'}: No such file or directory\n"
    r = fastlb("check")
    assert r.returncode == 2 and "--config" in r.stderr


def test_routes_is_deterministic_and_is_the_table(tmp_path: Path) -> None:
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    first = fastlb("routes", "--config", str(f))
    second = fastlb("routes", "--config", str(f))
    assert first.returncode == 0 and first.stdout == second.stdout
    assert msgspec.json.decode(first.stdout.encode(), type=spec.RouteTable) == config.load(str(f)).table
    assert first.stdout.encode() == spec.encode(config.load(str(f)).table) + b"\n"
    pretty = [fastlb("routes", "--config", str(f), "--pretty").stdout for _ in range(2)]
    assert pretty[0] == pretty[1] and pretty[0].count("\n") > 10
    assert msgspec.json.decode(pretty[0].encode(), type=spec.RouteTable) == config.load(str(f)).table


def test_routes_without_providers_is_the_embedded_default() -> None:
    r = fastlb("routes")
    assert r.returncode == 0
    assert r.stdout.encode() == spec.encode(config.load_default().table) + b"\n"


def test_routes_with_a_bad_file_exits_1(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[[services]]\nname = "a"\nlisten = "127.0.0.1"\n')
    r = fastlb("routes", "--config", str(f))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == 'services[0].listen: "127.0.0.1" is not ip:port\n'


def test_run_refuses_a_bad_file_before_serving(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[[services]]\nname = "a"\nlisten = "127.0.0.1:7001"\nbackends = ["x"]\n')
    r = fastlb("run", "--config", str(f), timeout=60)
    assert r.returncode == 1
    assert 'problem="services[0].backends[0]: \\"x\\" is not ip:port"' in r.stderr


def test_run_refuses_a_public_admin_without_a_token() -> None:
    env = {"FASTLB_ADMIN_TOKEN": ""}
    r = fastlb("run", "--admin", "0.0.0.0:9", env=env)
    assert r.returncode == 1 and "not a loopback address" in r.stderr and "--admin-token" in r.stderr


def test_run_refuses_an_admin_port_out_of_range() -> None:
    for address in ("127.0.0.1:99999", "127.0.0.1:0"):
        r = fastlb("run", "--admin", address)
        assert r.returncode == 1 and "is not in 1..65535" in r.stderr, (address, r.stderr)


def test_run_refuses_an_unreadable_or_empty_cookie_secret(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    for args, env, says in (
        (["--cookie-secret-file", str(tmp_path / "missing")], {}, "No such file or directory"),
        (["--cookie-secret-file", str(empty)], {}, "is empty"),
        ([], {"FASTLB_COOKIE_SECRET": " "}, "FASTLB_COOKIE_SECRET is set but empty"),
    ):
        r = fastlb("run", "--admin", "127.0.0.1:1", *args, env=env)
        assert r.returncode == 1 and says in r.stderr, (args, r.stderr)


def test_cookie_secret_comes_from_the_file_then_the_environment(tmp_path: Path) -> None:
    from fastlb import server

    secret = tmp_path / "secret"
    secret.write_bytes(b"  s3cr3t-of-the-fleet\n")
    assert server.cookie_secret(str(secret), {"FASTLB_COOKIE_SECRET": "env"}) == b"s3cr3t-of-the-fleet"
    assert server.cookie_secret(None, {"FASTLB_COOKIE_SECRET": "env "}) == b"env"
    assert server.cookie_secret(None, {}) is None
    # build() hands the secret to the data plane as its cookie key, and nothing without one
    from .fake_dataplane import FakeDataPlane  # noqa: PLC0415

    options = server.RunOptions(config_path=None, cookie_secret_file=str(secret))
    c, _, _ = server.build(options, FakeDataPlane)
    assert c.dataplane.settings["cookie_key"] == b"s3cr3t-of-the-fleet"
    c, _, _ = server.build(server.RunOptions(), FakeDataPlane)
    assert "cookie_key" not in c.dataplane.settings or os.environ.get("FASTLB_COOKIE_SECRET")


def test_usage_errors_exit_2() -> None:
    r = fastlb("run", "--workers", "0")
    assert r.returncode == 2 and "--workers" in r.stderr
    r = fastlb("routes", "--marathon", "http://127.0.0.1:1", "--http-port", "70000")
    assert r.returncode == 2 and "--http-port" in r.stderr
    r = fastlb("run", "--sse", "--poll", "5")
    assert r.returncode == 2
    r = fastlb("frobnicate")
    assert r.returncode == 2
    r = fastlb("routes", "--marathon", "http://127.0.0.1:1", "--auth-credentials", "nocolon")
    assert r.returncode == 2 and "user:password" in r.stderr
    r = fastlb("run", "--marathon", "http://127.0.0.1:1", "--dcos-auth-credentials", "{", "--admin", "127.0.0.1:1")
    assert r.returncode == 1 and "not JSON" in r.stderr


def test_demo_says_what_is_missing_when_there_is_no_demo() -> None:
    if importlib.util.find_spec("fastlb.emulator.demo") is None:
        r = fastlb("demo")
        assert r.returncode == 2 and "fastlb.emulator.demo" in r.stderr
    else:  # the demo exists: it is tested where it lives
        r = fastlb("demo", "--help")
        assert r.returncode == 0
