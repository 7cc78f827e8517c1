"""The configurations compared (the "arms") and the backends they share.

- D: the client talks to the backend directly; the proxy CPU sits idle.
- H: HAProxy, one thread pinned to the proxy CPU, ``option splice-auto``.
- Hn: the same HAProxy with global ``nosplice``.
- H2: a second, identical H: the A/A control that measures the noise floor.
- F: fastlb, one worker pinned to the proxy CPU, started by its CLI (``fastlb run``) or, until the CLI
  exists, by bench/fastlb_serve.py, which publishes the same table straight into the data plane.
- Fn: the same fastlb with ``pipe_max = 0``: no splice, every byte through recv/send.

Every arm proxies to the same backend address; every config file is rendered from bench/templates/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from string import Template

from procs import Child, ProcessFailed, Supervisor, free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TEMPLATES = HERE / "templates"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Arm:
    key: str
    kind: str  # "direct" | "haproxy" | "fastlb"
    splice: bool
    label: str


ARMS = {
    "D": Arm("D", "direct", False, "direct (no proxy)"),
    "H": Arm("H", "haproxy", True, "HAProxy, nbthread 1, splice-auto"),
    "Hn": Arm("Hn", "haproxy", False, "HAProxy, nbthread 1, nosplice"),
    "H2": Arm("H2", "haproxy", True, "HAProxy again (A/A control of H)"),
    "F": Arm("F", "fastlb", True, "fastlb, --workers 1"),
    "Fn": Arm("Fn", "fastlb", False, "fastlb, --workers 1, pipe_max 0 (no splice)"),
}


def render(template: str, dest: Path, **values: object) -> Path:
    text = Template((TEMPLATES / template).read_text()).substitute({k: str(v) for k, v in values.items()})
    dest.write_text(text)
    return dest


def fastlb_launcher(choice: str) -> str:
    """"cli" when ``fastlb run`` exists, else "serve" when the data plane exists; raises otherwise."""
    sys.path.insert(0, str(REPO))
    try:
        has_cli = importlib.util.find_spec("fastlb.cli") is not None
        try:
            from fastlb import _core
            has_engine = hasattr(_core, "DataPlane")
        except ImportError:
            has_engine = False
    finally:
        sys.path.remove(str(REPO))
    if choice == "cli" or (choice == "auto" and has_cli):
        if not has_cli:
            raise SystemExit("fastlb: no fastlb.cli module in this checkout (try --fastlb serve)")
        return "cli"
    if not has_engine:
        raise SystemExit("fastlb: fastlb._core has no DataPlane; build it (python3 setup.py build_ext --inplace) "
                         "or leave F out (--arms D,H)")
    return "serve"


def haproxy_maxconn() -> int:
    """The largest maxconn HAProxy can get under this process's open-files limit: it asks for about
    two fds per connection plus two per pipe (maxpipes = maxconn / 4) and refuses to start otherwise."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(256, min(100000, int((soft - 200) / 2.6)))


@dataclass
class Running:
    """What a started arm gives the load: where to send it and which process to account."""

    port: int
    proxy: Child | None
    admin: str | None = None

    def stats(self) -> dict[str, object] | None:
        if self.admin is None:
            return None
        try:
            with urllib.request.urlopen(f"http://{self.admin}/stats", timeout=5) as r:
                return json.loads(r.read())
        except (OSError, ValueError) as e:
            return {"error": str(e)}


def start_nginx(sup: Supervisor, rundir: Path, cpu: int) -> int:
    port = free_port()
    ndir = rundir / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (ndir / sub).mkdir(parents=True, exist_ok=True)
    conf = render("nginx.conf", ndir / "nginx.conf", dir=ndir, listen=f"{HOST}:{port}")
    child = sup.start("nginx", ["nginx", "-p", str(ndir), "-c", str(conf)], cpu=cpu)
    sup.wait_listening(child, port)
    return port


def start_iperf3_server(sup: Supervisor, cpu: int) -> int:
    port = free_port()
    child = sup.start("iperf3-server", ["iperf3", "-s", "-B", HOST, "-p", str(port)], cpu=cpu)
    sup.wait_listening(child, port)
    return port


def start_arm(sup: Supervisor, arm: Arm, mode: str, backend_port: int, rundir: Path, cpu: int,
              launcher: str) -> Running:
    """Starts <arm> in front of HOST:<backend_port> on <cpu>; mode is "tcp" or "http"."""
    if arm.kind == "direct":
        return Running(backend_port, None)
    port = free_port()
    backend = f"{HOST}:{backend_port}"
    if arm.kind == "haproxy":
        splice = ("", "option splice-auto") if arm.splice else ("nosplice", "")
        conf = render(f"haproxy-{mode}.cfg", rundir / "haproxy.cfg", cpu=cpu, listen=f"{HOST}:{port}",
                      maxconn=haproxy_maxconn(),
                      backend=backend, global_splice=splice[0], defaults_splice=splice[1])
        child = sup.start("haproxy", ["haproxy", "-db", "-f", str(conf)], cpu=cpu)
        sup.wait_listening(child, port)
        return Running(port, child)
    admin_port = free_port()
    admin = f"{HOST}:{admin_port}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if launcher == "cli":
        engine = "" if arm.splice else "[engine]\npipe_max = 0  # no pipes: every byte is copied\n"
        conf = render("fastlb.toml", rundir / "fastlb.toml", listen=f"{HOST}:{port}", mode=mode, backend=backend,
                      engine=engine)
        argv = [sys.executable, "-m", "fastlb", "run", "--config", str(conf), "--workers", "1",
                "--admin", admin, "--http-port", "0", "--https-port", "0", "--appid-port", "0"]
    else:
        argv = [sys.executable, str(HERE / "fastlb_serve.py"), "--listen", f"{HOST}:{port}", "--mode", mode,
                "--backend", backend, "--workers", "1", "--admin", admin]
        if not arm.splice:
            argv.append("--no-splice")
    child = sup.start("fastlb", argv, cpu=cpu, env=env)
    sup.wait_listening(child, port, timeout=30)
    running = Running(port, child, admin)
    if launcher == "cli":
        _wait_health(child, admin)
    return running


def _wait_health(child: Child, admin: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not child.alive():
            raise ProcessFailed(f"fastlb exited with {child.proc.returncode}:\n{child.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://{admin}/_health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise ProcessFailed(f"fastlb admin {admin} never answered /_health ({last}):\n{child.log_tail()}")
