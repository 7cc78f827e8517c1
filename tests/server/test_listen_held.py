"""An address another process listens on is refused, SO_REUSEPORT or not: ``fastlb run`` exits 1 at
start, and a table swap leaves that listener out (``listen_errors``) and serves the rest. Without the
check, fastlb's SO_REUSEPORT listeners would bind beside HAProxy's (or another fastlb's) and the
kernel would split new connections between the two processes unseen."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fastlb.emulator import haproxy
from fastlb.emulator.backends import reserve_port

from .test_end_to_end import (
    ROOT,
    TIMEOUT,
    Backend,
    Fastlb,
    ask,
    backends,  # noqa: F401 (fixture)
    connect,
    free_port,
    service_file,
    wait_for,
)

pytestmark = pytest.mark.skipif(not haproxy.available(), reason="needs Debian's haproxy")


def run_refused(config: Path) -> str:
    """``fastlb run`` on <config>, which must exit 1 at start; its log."""
    proc = subprocess.run(
        [sys.executable, "-m", "fastlb", "run", "--config", str(config), "--admin", f"127.0.0.1:{free_port()}",
         "--workers", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert proc.returncode == 1, proc.stderr
    return proc.stderr


def all_from(port: int, tag: bytes, n: int = 20) -> bool:
    """Whether <n> new connections to <port> are all answered by the backend tagged <tag>."""
    for i in range(n):
        with connect(port) as c:
            if ask(c, b"%d" % i, len(tag) + len(b"%d" % i)) != tag + b"%d" % i:
                return False
    return True


def test_run_refuses_an_address_haproxy_listens_on(tmp_path: Path, backends: tuple[Backend, Backend]) -> None:  # noqa: F811
    a, b = backends
    with reserve_port() as listen, haproxy.HAProxy(tmp_path / "haproxy", listen, b.address):
        port = int(listen.rsplit(":", 1)[1])
        f = tmp_path / "lb.toml"
        f.write_text(service_file(port, a.address))
        log = run_refused(f)
        assert f"swap_failed error=\"[Errno 98] Address already in use: cannot listen on {listen}" in log, log
        assert all_from(port, b"B:")  # HAProxy still has every connection


def test_a_second_run_on_the_same_file_exits_1(tmp_path: Path, backends: tuple[Backend, Backend]) -> None:  # noqa: F811
    a, _ = backends
    with reserve_port() as listen:
        port = int(listen.rsplit(":", 1)[1])
        f = tmp_path / "lb.toml"
        f.write_text(service_file(port, a.address))
        first = Fastlb(f, free_port())
        try:
            log = run_refused(f)
            assert f"cannot listen on {listen}" in log
            assert all_from(port, b"A:")
            assert first.proc.poll() is None
        finally:
            first.proc.kill()
            first.proc.communicate(timeout=TIMEOUT)


def test_a_swap_leaves_a_held_listener_out_and_serves_the_rest(
    tmp_path: Path, backends: tuple[Backend, Backend]  # noqa: F811
) -> None:
    a, b = backends
    c, h = Backend(b"C:"), Backend(b"H:")
    with reserve_port() as listen, reserve_port() as held, reserve_port() as spare:
        port, held_port, spare_port = (int(x.rsplit(":", 1)[1]) for x in (listen, held, spare))
        f = tmp_path / "lb.toml"
        f.write_text(service_file(port, a.address))
        lb = Fastlb(f, free_port())
        try:
            with haproxy.HAProxy(tmp_path / "haproxy", held, h.address):
                generation = lb.generation()
                f.write_text(
                    service_file(port, a.address)
                    + f'[[services]]\nname = "taken"\nlisten = "{held}"\nbackends = ["{b.address}"]\n'
                    + f'[[services]]\nname = "third"\nlisten = "{spare}"\nbackends = ["{c.address}"]\n'
                )
                lb.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: lb.generation() > generation, "the table without the held listener")
                assert lb.stats()["listen_errors"] == [
                    f"listener {held} (service 'taken') skipped: Address already in use"
                ]
                assert all_from(spare_port, b"C:") and all_from(port, b"A:")
                assert all_from(held_port, b"H:")  # none of HAProxy's connections went to fastlb
        finally:
            lb.proc.kill()
            lb.proc.communicate(timeout=TIMEOUT)
            c.close()
            h.close()
