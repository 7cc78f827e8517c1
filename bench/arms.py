"""The configurations compared (the "arms") and the backends they share.

- D: the client talks to the backend directly (its first address); the proxy CPU sits idle.
- H: HAProxy, ``nbthread`` = the point's worker count, pinned to the proxy CPU(s), ``option splice-auto``.
- Hn: the same HAProxy with global ``nosplice``.
- H2: a second, identical H: the A/A control that measures the noise floor.
- Hr: H with ``http-reuse always`` (HTTP mode): idle server connections serve any request, a
  connection's first too, as fastlb's pool does (H's ``safe`` never gives a first request one).
- F: fastlb, ``--workers`` = the point's worker count, pinned to the proxy CPU(s), started by its CLI
  (``fastlb run``) or, until the CLI exists, by bench/fastlb_serve.py, which publishes the same table
  straight into the data plane.
- Fn: the same fastlb with ``pipe_max = 0``: no splice, every byte through recv/send.

Every proxy arm round-robins over the same backend addresses: one nginx (one worker) listening on one
address per backend, 127.0.0.1, 127.0.0.2, ... so a sweep over "backends" changes what the proxies
balance and pool, not the backend's capacity. Every config file is rendered from bench/templates/.
"""

from __future__ import annotations

import importlib.util
import json
import math
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
    reuse: str = "safe"  # HAProxy's http-reuse (HTTP mode)


ARMS = {
    "D": Arm("D", "direct", False, "direct (no proxy)"),
    "H": Arm("H", "haproxy", True, "HAProxy, nbthread = workers, splice-auto"),
    "Hn": Arm("Hn", "haproxy", False, "HAProxy, nbthread = workers, nosplice"),
    "H2": Arm("H2", "haproxy", True, "HAProxy again (A/A control of H)"),
    "Hr": Arm("Hr", "haproxy", True, "HAProxy, http-reuse always (any idle server connection, first requests too)",
              reuse="always"),
    "F": Arm("F", "fastlb", True, "fastlb, --workers = workers"),
    "Fn": Arm("Fn", "fastlb", False, "fastlb, --workers = workers, pipe_max 0 (no splice)"),
}


def render_text(template: str, **values: object) -> str:
    return Template((TEMPLATES / template).read_text()).substitute({k: str(v) for k, v in values.items()})


def render(template: str, dest: Path, **values: object) -> Path:
    dest.write_text(render_text(template, **values))
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


def fds_needed(clients: int) -> int:
    """Open files every process of a point needs for <clients> concurrent client connections: the
    inverse of haproxy_maxconn (HAProxy's 2.6 per connection is the strictest: a proxy holds two per
    client, wrk and the idle client one), plus headroom. Every arm of a point gets the same verdict, so
    a point is run for all of them or skipped for all of them."""
    return math.ceil(2.6 * clients) + 256


def proxy_cpus(workers: int, proxy_cpu: int, load_cpu: int, allowed: list[int] | None = None) -> list[int]:
    """The CPUs a proxy with <workers> workers may run on: the proxy CPU alone for one worker, else the
    proxy CPU, then other CPUs of the machine, and the load CPU last (on 2 vCPUs, workers 2: both)."""
    if workers <= 1:
        return [proxy_cpu]
    allowed = sorted(os.sched_getaffinity(0)) if allowed is None else sorted(allowed)
    others = [c for c in allowed if c not in (proxy_cpu, load_cpu)]
    if load_cpu != proxy_cpu:
        others.append(load_cpu)
    return [proxy_cpu] + others[: workers - 1]


def cpu_list(cpus: list[int]) -> str:
    """taskset's and HAProxy's CPU list syntax: "1", "0,1"."""
    return ",".join(str(c) for c in sorted(cpus))


def backend_hosts(count: int) -> list[str]:
    """One loopback address per backend: 127.0.0.1, 127.0.0.2, ... (all of 127/8 is loopback on Linux)."""
    if not 1 <= count <= 250:
        raise ValueError(f"backends must be 1..250, not {count}")
    return [f"127.0.0.{i + 1}" for i in range(count)]


@dataclass
class Backends:
    """The nginx the arms share: the addresses it serves on, and its stub_status address."""

    addresses: list[str]
    status: str

    @property
    def first_port(self) -> int:
        return int(self.addresses[0].rsplit(":", 1)[1])

    def accepts(self) -> int:
        """nginx's count of accepted connections so far (this read's own connection included)."""
        with urllib.request.urlopen(f"http://{self.status}/stub_status", timeout=5) as r:
            return parse_stub_status(r.read().decode())["accepts"]


def parse_stub_status(text: str) -> dict[str, int]:
    """nginx's stub_status page: active connections, accepts, handled, requests, reading/writing/waiting."""
    lines = text.split("\n")
    try:
        active = int(lines[0].split(":")[1])
        accepts, handled, requests = (int(v) for v in lines[2].split())
        rest = lines[3].split()
        return {"active": active, "accepts": accepts, "handled": handled, "requests": requests,
                "reading": int(rest[1]), "writing": int(rest[3]), "waiting": int(rest[5])}
    except (IndexError, ValueError):
        raise ValueError(f"not an nginx stub_status page: {text[:200]!r}") from None


def backend_connections(accepts_before: int, accepts_after: int) -> int:
    """Connections opened to the backend between two stub_status reads: the second read's own
    connection is already counted in its figure (the first read's was counted in the first)."""
    return max(0, accepts_after - accepts_before - 1)


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
    """One backend address (profile_proxy.py's use); returns its port."""
    return start_backends(sup, rundir, cpu, 1).first_port


def start_backends(sup: Supervisor, rundir: Path, cpu: int, count: int) -> Backends:
    """One nginx on <cpu> serving on <count> loopback addresses, plus its stub_status address."""
    addresses = [f"{h}:{free_port(h)}" for h in backend_hosts(count)]
    status_port = free_port()
    ndir = rundir / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (ndir / sub).mkdir(parents=True, exist_ok=True)
    listens = "\n".join(f"        listen {a} backlog=65535;" for a in addresses)
    conf = render("nginx.conf", ndir / "nginx.conf", dir=ndir, listens=listens, status=f"{HOST}:{status_port}")
    child = sup.start("nginx", ["nginx", "-p", str(ndir), "-c", str(conf)], cpu=cpu)
    for port in [int(a.rsplit(":", 1)[1]) for a in addresses] + [status_port]:
        sup.wait_listening(child, port)
    return Backends(addresses, f"{HOST}:{status_port}")


def start_iperf3_server(sup: Supervisor, cpu: int) -> int:
    port = free_port()
    child = sup.start("iperf3-server", ["iperf3", "-s", "-B", HOST, "-p", str(port)], cpu=cpu)
    sup.wait_listening(child, port)
    return port


# HTTP timeouts of both proxies: fastlb's defaults; the idle metric holds connections open for longer
# than those allow, so it lengthens them on both alike.
HTTP_TIMEOUTS = {"http_request": "15s", "http_keepalive": "1s"}
IDLE_HTTP_TIMEOUTS = {"http_request": "120s", "http_keepalive": "120s"}


def haproxy_cpu_map(workers: int, cpus: list[int]) -> str:
    """HAProxy's cpu-map: one thread on <cpus>; more, one thread per CPU ("auto:"). Free to share the
    CPUs, two threads often both ran on the load generator's while the other CPU sat idle."""
    if workers == 1:
        return f"1/1 {cpu_list(cpus)}"
    return f"auto:1/1-{workers} {cpu_list(cpus)}"


def haproxy_config(mode: str, listen: str, addresses: list[str], workers: int, cpus: list[int], splice: bool,
                   http_timeouts: dict[str, str] | None = None, maxconn: int | None = None,
                   reuse: str = "safe") -> str:
    """HAProxy's config for one arm: nbthread <workers> on <cpus> (haproxy_cpu_map), round-robin over
    <addresses>."""
    servers = "\n".join(f"    server s{i + 1} {a}" for i, a in enumerate(addresses))
    global_splice, defaults_splice = ("", "option splice-auto") if splice else ("nosplice", "")
    return render_text(f"haproxy-{mode}.cfg", nbthread=workers, cpu_map=haproxy_cpu_map(workers, cpus),
                       listen=listen, maxconn=maxconn or haproxy_maxconn(), servers=servers,
                       global_splice=global_splice, defaults_splice=defaults_splice, http_reuse=reuse,
                       **(http_timeouts or HTTP_TIMEOUTS))


def fastlb_config(mode: str, listen: str, addresses: list[str], splice: bool,
                  http_timeouts: dict[str, str] | None = None) -> str:
    """fastlb's static file for one arm: one service, round-robin over <addresses>."""
    engine = "" if splice else "[engine]\npipe_max = 0  # no pipes: every byte is copied\n"
    section = ""
    if mode == "http" and http_timeouts and http_timeouts != HTTP_TIMEOUTS:
        section = "\n[services.timeouts]\n" + "".join(f'{k} = "{v}"\n' for k, v in http_timeouts.items())
    return render_text("fastlb.toml", listen=listen, mode=mode, backends=", ".join(f'"{a}"' for a in addresses),
                       engine=engine, timeouts=section)


def start_arm(sup: Supervisor, arm: Arm, mode: str, backends: int | Backends, rundir: Path, cpu: int | list[int],
              launcher: str, workers: int = 1, http_timeouts: dict[str, str] | None = None) -> Running:
    """Starts <arm> in front of <backends> (a port on HOST, or a Backends) on the CPU(s) <cpu> with
    <workers> workers (HAProxy: threads); mode is "tcp" or "http"."""
    addresses = [f"{HOST}:{backends}"] if isinstance(backends, int) else list(backends.addresses)
    cpus = [cpu] if isinstance(cpu, int) else list(cpu)
    pin = cpu_list(cpus)
    timeouts = http_timeouts or HTTP_TIMEOUTS
    if arm.kind == "direct":
        return Running(int(addresses[0].rsplit(":", 1)[1]), None)
    port = free_port()
    listen = f"{HOST}:{port}"
    if arm.kind == "haproxy":
        conf = rundir / "haproxy.cfg"
        conf.write_text(haproxy_config(mode, listen, addresses, workers, cpus, arm.splice, timeouts, reuse=arm.reuse))
        child = sup.start("haproxy", ["haproxy", "-db", "-f", str(conf)], cpu=pin)
        sup.wait_listening(child, port)
        return Running(port, child)
    admin_port = free_port()
    admin = f"{HOST}:{admin_port}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if launcher == "cli":
        conf = rundir / "fastlb.toml"
        conf.write_text(fastlb_config(mode, listen, addresses, arm.splice, timeouts))
        argv = [sys.executable, "-m", "fastlb", "run", "--config", str(conf), "--workers", str(workers),
                "--admin", admin, "--http-port", "0", "--https-port", "0", "--appid-port", "0"]
    else:
        argv = [sys.executable, str(HERE / "fastlb_serve.py"), "--listen", listen, "--mode", mode,
                "--workers", str(workers), "--admin", admin]
        for a in addresses:
            argv += ["--backend", a]
        if not arm.splice:
            argv.append("--no-splice")
        if timeouts != HTTP_TIMEOUTS:
            argv += ["--http-timeouts", ",".join(f"{k}={v}" for k, v in timeouts.items())]
    child = sup.start("fastlb", argv, cpu=pin, env=env)
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
