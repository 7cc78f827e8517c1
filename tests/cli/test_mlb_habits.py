"""marathon-lb's small habits on fastlb's command line: ``--log-level`` in any case with Python's level
names, several ``--marathon`` URLs after one flag (or repeated, or comma-separated), and SIGUSR1
doing what SIGHUP does (marathon-lb's reload: fastlb re-reads the static file and resyncs)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fastlb import cli, logs, spec
from fastlb.emulator.backends import WhoAmI

from .test_marathon_cli import MARATHON_FLAGS, marathon  # noqa: F401 (the fixture)
from server.test_end_to_end import ROOT, TIMEOUT, ask, connect, free_port, get, service_file, wait_for


@pytest.mark.parametrize(
    ("given", "level"),
    [
        ("DEBUG", "debug"), ("debug", "debug"), ("Info", "info"), ("WARNING", "warning"), ("warn", "warning"),
        ("WARN", "warning"), ("ERROR", "error"), ("CRITICAL", "critical"), ("fatal", "critical"),
    ],
)
def test_log_level_in_any_case(given: str, level: str) -> None:
    for command in ("run", "routes"):
        assert cli.parser().parse_args([command, "--log-level", given]).log_level == level
    saved = (logs.LOGGER.level, list(logs.LOGGER.handlers), logs.LOGGER.propagate)
    try:
        logs.setup(given)
        assert logs.LOGGER.getEffectiveLevel() == getattr(logging, level.upper())
    finally:  # as it was: other tests read fastlb's records through the root logger
        logs.LOGGER.setLevel(saved[0])
        logs.LOGGER.handlers[:] = saved[1]
        logs.LOGGER.propagate = saved[2]


def test_a_log_level_that_is_none_is_a_usage_error() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "fastlb", "run", "--log-level", "LOUD"],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert r.returncode == 2 and "'LOUD' is not a log level" in r.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--marathon", "http://m1:8080", "http://m2:8080", "http://m3:8080"],
        ["-m", "http://m1:8080", "http://m2:8080", "-m", "http://m3:8080"],
        ["-m", "http://m1:8080", "-m", "http://m2:8080", "-m", "http://m3:8080"],
        ["--marathon", "http://m1:8080,http://m2:8080", "http://m3:8080"],
        ["--marathon", " http://m1:8080 , http://m2:8080,,", "--group", "*", "-m", "http://m3:8080"],
    ],
)
def test_several_marathon_urls(argv: list[str]) -> None:
    args = cli.parser().parse_args(["run", *argv])
    m = cli.marathon_args(args)
    assert m is not None and m.urls == ("http://m1:8080", "http://m2:8080", "http://m3:8080")


def test_marathon_without_a_url_is_a_usage_error() -> None:
    for argv in (["--marathon"], ["--marathon", ",", "--group", "*"]):
        r = subprocess.run(
            [sys.executable, "-m", "fastlb", "routes", *argv],
            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        )
        assert r.returncode == 2 and "--marathon" in r.stderr, (argv, r.stderr)


def test_routes_with_two_urls_after_one_flag_uses_the_cluster(marathon) -> None:  # noqa: F811
    """The first member does not answer; the second, given after the same flag, serves the table."""
    url, service_port, backend = marathon
    r = subprocess.run(
        [sys.executable, "-m", "fastlb", "routes", "--log-level", "WARNING", "-m", "http://127.0.0.1:1", url,
         *MARATHON_FLAGS],
        cwd=ROOT, capture_output=True, timeout=TIMEOUT * 2,
    )
    assert r.returncode == 0, r.stderr
    table = spec.decode(r.stdout.strip())
    assert [(b.id, b.address) for b in table.services[0].backends] == [("svc.task-1", backend.address)]


def test_sigusr1_rereads_the_file_as_sighup_does(tmp_path: Path) -> None:
    with WhoAmI("A") as a, WhoAmI("B") as b:
        port, admin = free_port(), free_port()
        f = tmp_path / "fastlb.toml"
        f.write_text(service_file(port, a.address))
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastlb", "run", "--config", str(f), "--admin", f"127.0.0.1:{admin}",
             "--workers", "1", "--log-level", "WARN"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            wait_for(lambda: proc.poll() is not None or get(admin, "/_health")[0] == 200, "fastlb to serve")
            assert proc.poll() is None

            def routes() -> dict:
                return json.loads(get(admin, "/routes")[1])

            generation = routes()["generation"]
            assert [x.address for x in spec.decode(json.dumps(routes()["table"])).services[0].backends] == [a.address]
            f.write_text(service_file(port, b.address))
            proc.send_signal(signal.SIGUSR1)
            wait_for(lambda: routes()["generation"] > generation, "the file to be read again")
            table = spec.decode(json.dumps(routes()["table"]))
            assert [x.address for x in table.services[0].backends] == [b.address]
            with connect(port) as conn:
                assert ask(conn, b"x", 2).startswith(b"B\n")
            assert proc.poll() is None  # SIGUSR1's default action would have ended it
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        assert " INFO " not in err  # marathon-lb's spelling of the level took effect
