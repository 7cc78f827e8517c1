#!/usr/bin/env python3
"""TLS side by side: nginx terminating TLS itself (D) vs HAProxy (H) vs fastlb (F) terminating it in front
of the same plain-HTTP nginx, alternating blocks, one certificate for all.

    python3 bench/tls.py --blocks 5 --duration 10                # one worker
    python3 bench/tls.py --blocks 5 --duration 10 --workers 2    # fastlb --workers 2 vs HAProxy nbthread 2
    python3 bench/tls.py --blocks 1 --duration 2 --warmup 1 --clients 1,32   # a quick look

Metrics (bench/README.md, "TLS"): tls_ka (keep-alive requests/s), tls_cps (full handshakes/s, one
request each), tls_resumed (handshakes/s with each connection offering its last session), tls_gbps (one
connection downloading a large object), tls_idle (proxy memory per idle TLS connection). wrk is the load
for the first four, under an LD_PRELOAD shim (tlsshim.c) that decides whether a session is offered and
counts what every handshake did; the proxies' own counters (fastlb's /stats, HAProxy's stats socket)
are read around the measured window as a cross-check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arms as armlib
import idle
import loads
import run
from procs import ProcessFailed, Supervisor, free_port, run_to_end

VHOST = "bench.example.test"  # the certificate's only name, the Host wrk sends and fastlb's vhost
BIG_PATH = "/big"
SHIM_SOURCE = armlib.HERE / "tlsshim.c"
# What each wrk metric offers when it opens a connection (tlsshim.c's FASTLB_BENCH_TLS_SESSIONS): "none",
# a full handshake each time; "reuse", the last session that connection slot was given; "", wrk's own
# behaviour (a keep-alive connection makes one handshake; counted only).
SESSIONS = {"tls_ka": "", "tls_cps": "none", "tls_resumed": "reuse", "tls_gbps": ""}
SESSION_TEXT = {"": "wrk's own (a keep-alive connection makes one full handshake)",
                "none": "none offered, every handshake a full one",
                "reuse": "each new connection offers the last resumable session its wrk connection slot was given"}
WRK_TIMEOUT_S = {"tls_gbps": 60}  # a large object takes seconds; wrk counts a longer request as a timeout
# tls_resumed: a run where fewer handshakes resumed than this is noted (tls_cps: any resumed at all)
RESUMED_NOTE_BELOW = 0.9
ARM_LABELS = {
    "D": "direct: nginx (the backend, 1 worker) terminating TLS itself",
    "H": "HAProxy terminating TLS (its session cache and tickets), nbthread = workers",
    "H2": "HAProxy again (A/A control of H)",
    "F": "fastlb terminating TLS on its https listener (tickets), --workers = workers",
}


@dataclass(frozen=True)
class Setup:
    """What every run of a session shares, made once in the results folder."""

    dir: Path
    key: str  # "ec" | "rsa"
    cert: Path  # certificate then key, one PEM file (HAProxy's crt format; nginx and fastlb read it too)
    shim: Path  # tlsshim.c, built
    big: Path  # the object tls_gbps downloads
    big_bytes: int


# -- the certificate, the shim, the large object ---------------------------------------------------------


def openssl_req_argv(key: str, keyout: Path, certout: Path, days: int = 30) -> list[str]:
    """A self-signed certificate for VHOST: ECDSA P-256 or RSA 2048, no passphrase."""
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else ["-newkey", "rsa:2048"]
    return ["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", str(keyout), "-out", str(certout),
            "-days", str(days), "-subj", f"/CN={VHOST}", "-addext", f"subjectAltName=DNS:{VHOST}"]


def make_certificate(dest: Path, key: str) -> Path:
    keyout, certout, pem = dest / f"{key}-key.pem", dest / f"{key}-cert-only.pem", dest / f"{key}-cert.pem"
    p = subprocess.run(openssl_req_argv(key, keyout, certout), capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise SystemExit(f"openssl req failed ({p.returncode}): {p.stderr.strip()[-1000:]}")
    pem.write_text(certout.read_text() + keyout.read_text())
    pem.chmod(0o600)
    return pem


def certificate_info(pem: Path) -> dict[str, str]:
    p = subprocess.run(["openssl", "x509", "-in", str(pem), "-noout", "-subject", "-enddate", "-fingerprint",
                        "-sha256", "-text"], capture_output=True, text=True, timeout=30)
    info = {}
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith(("subject=", "notAfter=", "sha256 Fingerprint=", "SHA256 Fingerprint=")):
            k, _, v = line.partition("=")
            info[k.split()[0].lower()] = v
        elif line.startswith(("Public Key Algorithm:", "Public-Key:", "NIST CURVE:", "ASN1 OID:")):
            k, _, v = line.partition(":")
            info[k.lower()] = v.strip()
    return info


def build_shim(dest: Path) -> Path:
    """tlsshim.c as a shared object (it needs cc and OpenSSL's headers: Debian's gcc, libssl-dev)."""
    so = dest / "tlsshim.so"
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("tls: no C compiler (apt-get install gcc libssl-dev): the TLS shim cannot be built")
    argv = [cc, "-O2", "-Wall", "-shared", "-fPIC", "-o", str(so), str(SHIM_SOURCE), "-lssl", "-lcrypto"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise SystemExit(f"tls: building the TLS shim failed (apt-get install libssl-dev?):\n{p.stderr[-2000:]}")
    return so


def make_big_file(path: Path, mib: int) -> int:
    """A sparse file of <mib> MiB: zeros cost TLS what any bytes do, and take no disk."""
    size = mib << 20
    with open(path, "wb") as f:
        f.truncate(size)
    return size


def setup(args: argparse.Namespace, out: Path) -> tuple[Setup, dict[str, object]]:
    """run.main's setup: the certificate, the shim and the large object in <out>/tls/, and F's config
    checked by `fastlb check` before any run."""
    for tool in ("openssl", "wrk", "nginx") + (("haproxy",) if {"H", "H2"} & set(args.arm_keys) else ()):
        if shutil.which(tool) is None:
            raise SystemExit(f"tls: {tool} is not installed (apt-get install {tool})")
    d = out / "tls"
    d.mkdir(parents=True, exist_ok=True)
    big = d / "big.bin"
    s = Setup(d, args.key, make_certificate(d, args.key), build_shim(d), big, make_big_file(big, args.gbps_mib))
    if "F" in args.arm_keys:
        conf = d / "fastlb-check.toml"
        conf.write_text(fastlb_config(f"{armlib.HOST}:1", [f"{armlib.HOST}:2"], s.cert))
        p = subprocess.run([sys.executable, "-m", "fastlb", "check", "--config", str(conf)], capture_output=True,
                           text=True, timeout=60, cwd=armlib.REPO, env=dict(os.environ, PYTHONPATH=str(armlib.REPO)))
        if p.returncode != 0:
            raise SystemExit(f"tls: fastlb check refuses the F config {conf}:\n{p.stdout}{p.stderr}")
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True, timeout=10).stdout.strip()
    meta: dict[str, object] = {"tls": {
        "key": args.key, "cert": str(s.cert), "certificate": certificate_info(s.cert), "vhost": VHOST,
        "gbps_mib": args.gbps_mib, "big": str(s.big), "shim": str(s.shim), "openssl": openssl,
        "sessions": {m: SESSION_TEXT[SESSIONS[m]] for m in args.metric_keys if m in SESSIONS},
    }, "arm_labels": {k: ARM_LABELS[k] for k in args.arm_keys}}
    return s, meta


# -- configs ---------------------------------------------------------------------------------------------


def nginx_config(ndir: Path, addresses: list[str], tls_listen: str, status: str, cert: Path, big: Path) -> str:
    listens = "\n".join(f"        listen {a} backlog=65535;" for a in addresses)
    return armlib.render_text("nginx-tls.conf", dir=ndir, listens=listens, tls_listen=tls_listen, status=status,
                              cert=cert, big=big)


def haproxy_config(listen: str, addresses: list[str], workers: int, cpus: list[int], cert: Path, stats: str,
                   http_timeouts: dict[str, str] | None = None, maxconn: int | None = None) -> str:
    """HAProxy terminating TLS with <cert>: haproxy-http.cfg's threads, CPUs and timeouts; <stats> is the
    loopback address of its stats socket."""
    cpu_map = armlib.haproxy_cpu_map(workers, cpus)
    servers = "\n".join(f"    server s{i + 1} {a}" for i, a in enumerate(addresses))
    return armlib.render_text("haproxy-tls.cfg", nbthread=workers, cpu_map=cpu_map,
                              listen=listen, maxconn=maxconn or armlib.haproxy_maxconn(), servers=servers,
                              cert=cert, vhost=VHOST, stats=stats, **(http_timeouts or armlib.HTTP_TIMEOUTS))


def fastlb_config(listen: str, addresses: list[str], cert: Path, http_timeouts: dict[str, str] | None = None) -> str:
    """fastlb's static file: the https listener with <cert>, one service for VHOST over <addresses>."""
    section = ""
    if http_timeouts and http_timeouts != armlib.HTTP_TIMEOUTS:
        section = "\n[services.timeouts]\n" + "".join(f'{k} = "{v}"\n' for k, v in http_timeouts.items())
    return armlib.render_text("fastlb-tls.toml", listen=listen, cert=cert, vhost=VHOST,
                              backends=", ".join(f'"{a}"' for a in addresses), timeouts=section)


# -- starting a run's processes --------------------------------------------------------------------------


@dataclass
class TlsBackends(armlib.Backends):
    """The nginx every arm shares: plain addresses for the proxies, and its own TLS port for D."""

    tls_port: int = 0


@dataclass
class TlsRunning(armlib.Running):
    """A started arm; <stats> is HAProxy's stats socket address."""

    stats_addr: str | None = None


def start_backends(sup: Supervisor, rundir: Path, cpu: int, count: int, s: Setup) -> TlsBackends:
    addresses = [f"{h}:{free_port(h)}" for h in armlib.backend_hosts(count)]
    tls_port, status_port = free_port(), free_port()
    ndir = rundir / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (ndir / sub).mkdir(parents=True, exist_ok=True)
    conf = ndir / "nginx.conf"
    conf.write_text(nginx_config(ndir, addresses, f"{armlib.HOST}:{tls_port}", f"{armlib.HOST}:{status_port}",
                                 s.cert, s.big))
    child = sup.start("nginx", ["nginx", "-p", str(ndir), "-c", str(conf)], cpu=cpu)
    for port in [int(a.rsplit(":", 1)[1]) for a in addresses] + [tls_port, status_port]:
        sup.wait_listening(child, port)
    return TlsBackends(addresses, f"{armlib.HOST}:{status_port}", tls_port)


def start_arm(sup: Supervisor, arm: armlib.Arm, backends: TlsBackends, rundir: Path, cpus: list[int], workers: int,
              s: Setup, http_timeouts: dict[str, str] | None) -> TlsRunning:
    if arm.kind == "direct":
        return TlsRunning(backends.tls_port, None)
    port = free_port()
    listen = f"{armlib.HOST}:{port}"
    pin = armlib.cpu_list(cpus)
    if arm.kind == "haproxy":
        stats = f"{armlib.HOST}:{free_port()}"
        conf = rundir / "haproxy.cfg"
        conf.write_text(haproxy_config(listen, backends.addresses, workers, cpus, s.cert, stats, http_timeouts))
        child = sup.start("haproxy", ["haproxy", "-db", "-f", str(conf)], cpu=pin)
        sup.wait_listening(child, port)
        return TlsRunning(port, child, stats_addr=stats)
    admin = f"{armlib.HOST}:{free_port()}"
    conf = rundir / "fastlb.toml"
    conf.write_text(fastlb_config(listen, backends.addresses, s.cert, http_timeouts))
    argv = [sys.executable, "-m", "fastlb", "run", "--config", str(conf), "--workers", str(workers),
            "--admin", admin, "--http-port", "0", "--https-port", "0", "--appid-port", "0"]
    child = sup.start("fastlb", argv, cpu=pin, env=dict(os.environ, PYTHONPATH=str(armlib.REPO)))
    sup.wait_listening(child, port, timeout=30)
    armlib._wait_health(child, admin)
    return TlsRunning(port, child, admin)


# -- the proxies' handshake counters ---------------------------------------------------------------------


def fastlb_counters(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """/stats listeners[].tls, summed over the TLS listeners: handshakes, resumed, failed by reason."""
    if not stats or "listeners" not in stats:
        return None
    out: dict[str, Any] = {"handshakes": 0, "resumed": 0, "failed": {}}
    seen = False
    for lst in stats["listeners"]:
        tls = lst.get("tls")
        if not isinstance(tls, dict):
            continue
        seen = True
        out["handshakes"] += int(tls.get("handshakes", 0))
        out["resumed"] += int(tls.get("resumed", 0))  # absent before fastlb counted resumptions
        for why, n in (tls.get("failed") or {}).items():
            out["failed"][why] = out["failed"].get(why, 0) + int(n)
    return out if seen else None


def parse_haproxy_typed(text: str, proxy: str = "bench") -> dict[str, Any] | None:
    """`show stat -1 1 -1 typed` (frontends): <proxy>'s SSL counters as fastlb_counters gives them.
    HAProxy's ssl_sess counts the handshakes that made a new session, ssl_reused_sess those that
    resumed one."""
    fields: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        head, _, rest = line.partition(":")
        parts = head.split(".")
        if len(parts) < 5 or parts[0] != "F":
            continue
        value = rest.split(":", 2)[-1] if rest.count(":") >= 2 else ""
        fields.setdefault(parts[1], {})[parts[4]] = value
    for f in fields.values():
        if f.get("pxname") == proxy and "ssl_sess" in f:
            new, reused = int(f["ssl_sess"]), int(f.get("ssl_reused_sess", 0))
            return {"handshakes": new + reused, "resumed": reused,
                    "failed": {"handshake": int(f.get("ssl_failed_handshake", 0))}}
    return None


def haproxy_command(addr: str, command: str, timeout: float = 5.0) -> str:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def server_counters(running: TlsRunning) -> dict[str, Any] | None:
    """The proxy's handshake counters now (D: none)."""
    if running.admin is not None:
        stats = running.stats()
        return fastlb_counters(stats)
    if running.stats_addr is not None:
        try:
            return parse_haproxy_typed(haproxy_command(running.stats_addr, "show stat -1 1 -1 typed"))
        except OSError:
            return None
    return None


def counter_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    if before is None or after is None:
        return None
    failed = {k: v - before["failed"].get(k, 0) for k, v in after["failed"].items()}
    return {"handshakes": after["handshakes"] - before["handshakes"], "resumed": after["resumed"] - before["resumed"],
            "failed": failed}


# -- the load --------------------------------------------------------------------------------------------


def wrk_argv(url: str, duration: float, connections: int, close: bool, timeout_s: int = 5) -> list[str]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", f"{timeout_s}s",
            "-s", str(loads.WRK_SCRIPT), "-H", f"Host: {VHOST}"]
    if close:
        argv += ["-H", "Connection: close"]
    return argv + [url]


def wrk_env(s: Setup, sessions: str, counts: Path) -> dict[str, str]:
    """wrk's environment: the shim, what it offers, where it writes its counts."""
    env = {"LD_PRELOAD": str(s.shim), "FASTLB_BENCH_TLS_COUNTS": str(counts)}
    if sessions:
        env["FASTLB_BENCH_TLS_SESSIONS"] = sessions
    return env


def parse_counts(text: str) -> dict[str, Any]:
    """The shim's line: mode, handshakes, resumed, offered, version, cipher."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise loads.LoadFailed(f"the TLS shim wrote no counts: {text[:200]!r}") from None
    for k in ("handshakes", "resumed", "offered"):
        if not isinstance(data.get(k), int):
            raise loads.LoadFailed(f"the TLS shim's counts lack {k}: {text[:200]!r}")
    return data


def wrk_tls(url: str, seconds: float, connections: int, close: bool, cpu: int, s: Setup, sessions: str, counts: Path,
            bulk: bool, timeout_s: int) -> dict[str, Any]:
    """wrk over TLS under the shim. <bulk>: the figure is bytes (Gbit/s), else requests."""
    argv = wrk_argv(url, seconds, connections, close, timeout_s)
    counts.unlink(missing_ok=True)
    try:
        p = run_to_end(argv, timeout=seconds + 30 + timeout_s, cpu=cpu,
                       env=dict(os.environ, **wrk_env(s, sessions, counts)))
    except subprocess.TimeoutExpired:
        raise loads.LoadFailed(f"wrk did not finish within {seconds + 30 + timeout_s}s") from None
    if p.returncode != 0:
        raise loads.LoadFailed(f"wrk exited {p.returncode}: {(p.stderr or p.stdout)[-2000:]}")
    data: dict[str, Any] = dict(loads.parse_wrk(p.stdout))
    if not counts.exists():
        raise loads.LoadFailed("wrk ran but the TLS shim wrote no counts (LD_PRELOAD not honoured?)")
    data["tls_client"] = parse_counts(counts.read_text())
    if bulk:
        if data["bytes"] == 0:
            raise loads.LoadFailed(f"wrk downloaded nothing (errors: connect {data['connect']}, read {data['read']})")
        data["gbps"] = data["bytes"] * 8 / data["seconds"] / 1e9 if data["seconds"] > 0 else 0.0
        # wrk's latencies are whole downloads (none when no download ended within the window): kept, but
        # not as request latencies
        data["download_us"] = {q: data.pop(q) for q in ("p50", "p90", "p99", "p999", "mean", "max")}
    elif data["requests"] == 0:
        raise loads.LoadFailed(f"wrk completed no request (errors: connect {data['connect']}, read {data['read']}, "
                               f"write {data['write']}, timeout {data['timeout']})")
    return data


# -- one run ---------------------------------------------------------------------------------------------


def run_one(ctx: run.Context, block: int, point: run.Point, arm: armlib.Arm, position: int) -> dict[str, object]:
    """run.main's runner: <arm> at <point>, every process started afresh, as run.run_one does."""
    s: Setup = ctx.tls
    metric = run.METRICS[point.metric]
    rundir = ctx.out / "runs" / f"b{block:02d}-{run.run_name(point, arm.key)}"
    rundir.mkdir(parents=True, exist_ok=True)
    rec = run._record(block, point, metric, arm.key, position)
    cpus = armlib.proxy_cpus(point.workers, ctx.proxy_cpu, ctx.load_cpu)
    rec["proxy_cpus"] = armlib.cpu_list(cpus) if arm.kind != "direct" else ""
    rec["nofile_needed"] = armlib.fds_needed(point.clients)
    try:
        with Supervisor(rundir) as sup:
            backends = start_backends(sup, rundir, ctx.load_cpu, point.backends, s)
            timeouts = armlib.IDLE_HTTP_TIMEOUTS if metric.tool == "idle" else None
            running = start_arm(sup, arm, backends, rundir, cpus, point.workers, s, timeouts)
            rec["commands"] = {c.name: c.command for c in sup.children}
            if metric.tool == "idle":
                _measure_idle(ctx, point, running, backends, rec)
            else:
                _measure_load(ctx, point, metric, running, backends, rundir, rec)
            stats = running.stats()
            if stats is not None:
                (rundir / "stats.json").write_text(json.dumps(stats, indent=1))
            if running.stats_addr is not None:
                with contextlib.suppress(OSError):
                    (rundir / "haproxy-stat.txt").write_text(haproxy_command(running.stats_addr, "show stat typed"))
            rec["status"] = "ok"
    except (ProcessFailed, loads.LoadFailed, idle.IdleFailed, OSError, ValueError, KeyError) as e:
        rec["reason"] = f"{type(e).__name__}: {e}"
        (rundir / "failure.txt").write_text(traceback.format_exc())
    rec["finished"] = time.time()
    return rec


def _measure_load(ctx: run.Context, point: run.Point, metric: run.Metric, running: TlsRunning,
                  backends: TlsBackends, rundir: Path, rec: dict[str, Any]) -> None:
    s: Setup = ctx.tls
    bulk = metric.tool == "download"
    url = f"https://{armlib.HOST}:{running.port}{BIG_PATH if bulk else '/'}"
    clients = 1 if bulk else point.clients
    sessions = SESSIONS[metric.key]
    timeout_s = WRK_TIMEOUT_S.get(metric.key, 5)
    calls = [0]

    def load(seconds: float) -> dict[str, Any]:
        calls[0] += 1
        return wrk_tls(url, seconds, clients, metric.close, ctx.load_cpu, s, sessions,
                       rundir / f"tls-client-{calls[0]}.json", bulk, timeout_s)

    env = wrk_env(s, sessions, rundir / "tls-client-N.json")
    rec["commands"]["load"] = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(
        ["taskset", "-c", str(ctx.load_cpu)] + wrk_argv(url, ctx.duration, clients, metric.close, timeout_s))
    before, after = run.measure_window(ctx, metric, running, backends, rec, load,
                                       probe=lambda: server_counters(running))
    client = rec["load"].pop("tls_client")
    server = counter_delta(before, after)
    rec["tls"] = {"client": client, "server": server}
    notes = []
    if sessions == "none" and client["resumed"]:
        notes.append(f"{client['resumed']} of {client['handshakes']} handshakes resumed, no session offered")
    if sessions == "reuse" and client["handshakes"]:
        share = client["resumed"] / client["handshakes"]
        if share < RESUMED_NOTE_BELOW:
            notes.append(f"only {100 * share:.0f}% of handshakes resumed ({client['offered']} offered a session)")
    # wrk checks the address with one plain connection before its load (a failed handshake to the
    # proxy), and a connection caught mid-handshake when wrk stops fails too: the window's, and the
    # warm-up's when the proxy sees them close only after the first reading
    expected = 1 + (2 * clients if metric.close else 0)
    if server and sum(server["failed"].values()) > expected:
        notes.append(f"the proxy counted {sum(server['failed'].values())} failed handshakes "
                     f"({', '.join(f'{k} {v}' for k, v in server['failed'].items() if v)})")
    if notes:
        rec["note"] = "; ".join(notes)


def _measure_idle(ctx: run.Context, point: run.Point, running: TlsRunning, backends: TlsBackends,
                  rec: dict[str, Any]) -> None:
    request = f"GET / HTTP/1.1\r\nHost: {VHOST}\r\nUser-Agent: fastlb-bench-idle\r\n\r\n".encode()
    clients = idle.TlsIdleClients(armlib.HOST, running.port, point.clients, server_name=VHOST, request=request)
    before = server_counters(running)
    run.measure_idle(ctx, point, running, backends, rec, clients,
                     what=f"a TLS handshake (SNI {VHOST}) each, then idle")
    kinds = sorted(clients.versions.items(), key=lambda kv: -kv[1])
    version, _, cipher = (kinds[0][0] if kinds else "? ?").partition(" ")
    client = {"mode": "python ssl, no session offered", "handshakes": rec["idle"]["opened"],
              "resumed": clients.resumed, "offered": 0, "version": version, "cipher": cipher}
    rec["tls"] = {"client": client, "server": counter_delta(before, server_counters(running))}
    i = rec["idle"]
    if i.get("handshake_errors"):
        rec["note"] = "; ".join(filter(None, [rec.get("note", ""), f"{i['handshake_errors']} handshakes failed"]))


def main(argv: list[str] | None = None) -> int:
    return run.main("tls", argv, runner=run_one, setup=setup)


if __name__ == "__main__":
    sys.exit(main())
