"""Tests of the benchmark harness itself (not of fastlb's speed): parsing, statistics, the report,
process cleanup, and one real miniature run. Run with ``python3 -m pytest bench -q``; the default test
suite (tests/) never runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import loads
import pytest
import report
from procs import ProcessFailed, Supervisor, cpu_seconds, free_port, listening_ports

HERE = Path(__file__).resolve().parent
TOOLS = all(shutil.which(t) for t in ("haproxy", "nginx", "wrk", "iperf3", "taskset"))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_parse_wrk_reads_the_json_line_and_sums_errors() -> None:
    out = ("Running 1s test @ http://127.0.0.1:1/\n"
           'WRKJSON {"requests":2000,"duration_us":2000000,"bytes":1,"connect":1,"read":2,"write":3,'
           '"status":4,"timeout":5,"p50":100,"p90":200,"p99":300,"p999":400,"mean":120.5,"max":900}\n')
    data = loads.parse_wrk(out)
    assert data["rps"] == 1000.0
    assert data["errors"] == 15
    assert data["p99"] == 300


def test_parse_wrk_without_summary_fails_loudly() -> None:
    with pytest.raises(loads.LoadFailed, match="no summary"):
        loads.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_parse_iperf3_takes_the_receiver_side_and_reports_errors() -> None:
    ok = {"end": {"sum_received": {"bits_per_second": 8e9, "bytes": 10**10, "seconds": 10.0},
                  "sum_sent": {"retransmits": 3}}}
    data = loads.parse_iperf3(json.dumps(ok))
    assert data["gbps"] == 8.0 and data["bytes"] == 10**10 and data["retransmits"] == 3
    with pytest.raises(loads.LoadFailed, match="unable to connect"):
        loads.parse_iperf3(json.dumps({"error": "unable to connect to server"}))


def test_sign_test_and_bootstrap() -> None:
    assert report.sign_test([1.1] * 6) == pytest.approx(2 / 64)
    assert report.sign_test([1.1, 0.9]) == 1.0
    assert report.sign_test([1.0, 1.0]) == 1.0
    lo, hi = report.bootstrap_median_ci([0.9, 1.0, 1.1, 1.2, 1.3])
    assert 0.9 <= lo <= 1.1 <= hi <= 1.3


def _rec(block: int, arm: str, value: float | None, status: str = "ok", steal: float = 0.0) -> dict:
    return {"block": block, "metric": "ka", "arm": arm, "position": 0, "status": status, "value": value,
            "unit": "req/s", "errors": 0, "steal_pct": steal, "cpu_per_unit": 10.0 if arm != "D" else None,
            "load": {"p50": 100, "p99": 200}, "reason": "" if status == "ok" else "ProcessFailed: boom"}


META = {"kind": "l4", "started": "t0", "finished": "t1", "status": "complete", "seed": 1, "blocks": 3,
        "duration": 1, "warmup": 0, "arms": ["D", "H", "F"], "metrics": ["ka"], "max_steal": 2.0,
        "arm_labels": {"D": "d", "H": "h", "F": "f"}, "fastlb_launcher": "serve",
        "metric_info": {"ka": {"unit": "req/s", "cpu_unit": "CPU µs/req", "title": "ka"}},
        "layout": {"proxy_cpu": 1, "load_cpu": 0}, "machine": {"kernel": "x"}, "nofile": [1, 1],
        "tuning": [], "argv": ["bench/l4.py"]}


def test_ratios_pair_by_block_and_skip_failed_and_stolen_runs() -> None:
    """Results written before the sweep (no clients/backends/workers) read as one point per metric."""
    recs = [_rec(0, "D", 100), _rec(0, "H", 50), _rec(0, "F", 60),
            _rec(1, "D", 100), _rec(1, "H", 40), _rec(1, "F", None, status="failed"),
            _rec(2, "D", 100), _rec(2, "H", 50, steal=5.0), _rec(2, "F", 55)]
    [s] = report.summarize(META, recs)["points"]
    assert (s["metric"], s["clients"], s["backends"], s["workers"]) == ("ka", 32, 1, 1)
    assert s["ratios"]["F/H"]["per_block"] == [pytest.approx(1.2)]  # block 1: F failed; block 2: H stolen
    assert s["ratios"]["H/D"]["per_block"] == [pytest.approx(0.5), pytest.approx(0.4)]
    assert s["arms"]["F"]["failed"] == 1
    assert s["arms"]["H"]["steal_excluded"] == 1
    md = report.render_md(META, recs, report.summarize(META, recs))
    assert "| 1 | ka | 32 | 1 | 1 | 0 | F | failed |" in md and "ProcessFailed: boom" in md
    assert "left out: steal" in md


def test_supervisor_stops_children_and_their_forks_on_error(tmp_path: Path) -> None:
    pids = []
    with pytest.raises(RuntimeError):
        with Supervisor(tmp_path) as sup:
            c = sup.start("sh", ["sh", "-c", "sleep 300 & echo $! ; exec sleep 300"])
            deadline = time.monotonic() + 10
            while not c.log.read_text().strip() and time.monotonic() < deadline:
                time.sleep(0.01)
            pids = [c.pid, int(c.log.read_text().split()[0])]
            raise RuntimeError("a run went wrong")
    for pid in pids:
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _gone(pid), pid


def test_supervisor_reports_a_child_that_dies_before_listening(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        c = sup.start("bad", ["sh", "-c", "echo cannot bind >&2; exit 3"])
        with pytest.raises(ProcessFailed, match="(?s)exited with 3.*cannot bind"):
            sup.wait_listening(c, free_port(), timeout=10)


def test_readiness_and_cpu_accounting_of_a_real_listener(tmp_path: Path) -> None:
    port = free_port()
    code = (f"import socket,time\ns=socket.socket();s.bind(('127.0.0.1',{port}));s.listen()\n"
            "t=time.process_time()\nwhile time.process_time()-t<0.3: pass\ntime.sleep(300)")
    with Supervisor(tmp_path) as sup:
        c = sup.start("py", [sys.executable, "-c", code])
        sup.wait_listening(c, port)
        assert port in listening_ports()
        deadline = time.monotonic() + 20
        while cpu_seconds(c.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(c.pid) >= 0.3
    assert _gone(c.pid)


@pytest.mark.needs_tools
@pytest.mark.skipif(not TOOLS, reason="needs haproxy, nginx, wrk, iperf3 (Debian packages)")
def test_a_miniature_l4_run_measures_direct_and_haproxy_and_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "res"
    before = _my_descendants()
    p = subprocess.run(
        [sys.executable, str(HERE / "l4.py"), "--arms", "D,H", "--blocks", "1", "--duration", "1", "--warmup", "0",
         "--metrics", "ka,gbps1,ka_fixed", "--connections", "4", "--backends", "1", "--workers", "1",
         "--rate-ka", "200", "--out", str(out), "--seed", "7"],
        capture_output=True, text=True, timeout=240, cwd=HERE.parent)
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["status"] == "complete"
    runs = {(r["metric"], r["arm"]): r for r in data["runs"]}
    assert set(runs) == {(m, a) for m in ("ka", "gbps1", "ka_fixed") for a in ("D", "H")}
    assert all(r["status"] == "ok" and r["value"] > 0 for r in runs.values())
    # paced: 4 connections, 20 ms apart each, offer 200 req/s; the unpaced run is far above that
    assert 50 < runs[("ka_fixed", "H")]["value"] <= 210 < runs[("ka", "H")]["value"]
    assert "FASTLB_BENCH_DELAY_MS=20 " in runs[("ka_fixed", "H")]["commands"]["load"]
    assert runs[("ka", "H")]["proxy_cpu_s"] > 0 and "cpu_per_unit" not in runs[("ka", "D")]
    # keep-alive: wrk's 4 connections, and H's 4 to the backend, against thousands of requests
    assert 0 < runs[("ka", "H")]["backend_conns_per_unit"] < 0.01 and runs[("ka", "H")]["proxy_rss_kib"] > 0
    assert runs[("ka", "H")]["load"]["p999"] >= runs[("ka", "H")]["load"]["p99"] > 0
    md = (out / "results.md").read_text()
    assert "| ka c4 b1 w1 | H/D | 1 |" in md and "taskset -c 1 haproxy -db -f" in md
    assert (out / "chart.png").stat().st_size > 0 or "no chart" in md
    assert _my_descendants() == before


@pytest.mark.needs_tools
@pytest.mark.skipif(not TOOLS, reason="needs haproxy, nginx, wrk, iperf3 (Debian packages)")
def test_a_run_whose_proxy_cannot_start_is_reported_failed(tmp_path: Path) -> None:
    """A proxy that exits at start (here a stand-in "haproxy" first on PATH): the run must say so, not vanish."""
    out = tmp_path / "res"
    fake = tmp_path / "bin" / "haproxy"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho '[ALERT] cannot bind socket' >&2\nexit 1\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake.parent}:{os.environ['PATH']}")
    p = subprocess.run(
        [sys.executable, str(HERE / "l4.py"), "--arms", "H", "--blocks", "1", "--duration", "1", "--warmup", "0",
         "--metrics", "ka", "--clients", "4", "--backends", "1", "--workers", "1", "--out", str(out), "--no-sysctl"],
        capture_output=True, text=True, timeout=120, cwd=HERE.parent, env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["status"] == "failed" and "haproxy" in run["reason"] and "cannot bind" in run["reason"]
    assert "| 0 | ka | 4 | 1 | 1 | 0 | H | failed |" in (out / "results.md").read_text()


@pytest.mark.needs_tools
@pytest.mark.skipif(not TOOLS, reason="needs haproxy, nginx, wrk, iperf3 (Debian packages)")
def test_points_the_open_files_limit_cannot_hold_are_skipped_and_said_so(tmp_path: Path) -> None:
    """Under a 1024-file limit, 4000 clients cannot run: recorded as skipped with the reason, exit 0."""
    out = tmp_path / "res"
    code = ("import resource,sys,runpy;resource.setrlimit(resource.RLIMIT_NOFILE,(1024,1024));"
            "sys.argv=['l4.py','--arms','D,H','--blocks','1','--duration','1','--warmup','0','--metrics','ka',"
            f"'--clients','4,4000','--backends','1','--workers','1','--out',{str(out)!r},'--no-sysctl'];"
            f"sys.path.insert(0,{str(HERE)!r});runpy.run_path({str(HERE / 'l4.py')!r},run_name='__main__')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=HERE.parent)
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads((out / "results.json").read_text())
    runs = {(r["clients"], r["arm"]): r for r in data["runs"]}
    assert {k: r["status"] for k, r in runs.items()} == {(4, "D"): "ok", (4, "H"): "ok", (4000, "D"): "skipped",
                                                          (4000, "H"): "skipped"}
    assert "needs 10656 open files" in runs[(4000, "H")]["reason"]
    assert data["meta"]["nofile"] == [1024, 1024] and data["meta"]["nofile_needed"] == 10656
    md = (out / "results.md").read_text()
    assert "the largest point needs **10656**" in md and "soft **1024**" in md
    assert "**1 point(s) skipped**" in md and "| 4000 | skipped | skipped |" in md


def _my_descendants() -> set[int]:
    me = os.getpid()
    kids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == me:
                kids.add(int(d.name))
    return kids


def test_profile_parsers_read_perf_csv_and_strace_tables() -> None:
    import profile_proxy as prof

    csv = ("# started on Sat Nov 21\n\n"
           "1302.5,msec,task-clock,1302500000,100.00,,\n"
           "262143,,raw_syscalls:sys_enter,1302500000,100.00,,\n"
           "112201,,syscalls:sys_enter_recvfrom,1302500000,100.00,,\n"
           "<not counted>,,syscalls:sys_enter_splice,0,100.00,,\n")
    assert prof.parse_perf_csv(csv) == {"task-clock": 1302.5, "raw_syscalls:sys_enter": 262143,
                                        "recvfrom": 112201}
    table = ("% time     seconds  usecs/call     calls    errors syscall\n"
             "------ ----------- ----------- --------- --------- ----------------\n"
             " 52.10    0.100000           2     50000           sendto\n"
             " 47.90    0.090000           1     60000     10000 recvfrom\n"
             "------ ----------- ----------- --------- --------- ----------------\n"
             "100.00    0.190000           1    110000     10000 total\n")
    assert prof.parse_strace(table) == {"sendto": 50000, "recvfrom": 60000, "total": 110000}


@pytest.mark.needs_tools
@pytest.mark.skipif(not TOOLS, reason="needs haproxy, nginx, wrk, iperf3 (Debian packages)")
def test_sigterm_in_the_middle_of_a_session_stops_everything_and_keeps_what_was_measured(tmp_path: Path) -> None:
    out = tmp_path / "res"
    with open(tmp_path / "harness.log", "wb") as log:
        p = subprocess.Popen(
            [sys.executable, str(HERE / "l4.py"), "--arms", "D,H", "--blocks", "3", "--duration", "30",
             "--warmup", "0", "--metrics", "ka", "--connections", "4", "--out", str(out), "--no-sysctl"],
            stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent)
    try:
        deadline = time.monotonic() + 60
        while not _processes_mentioning(str(out)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_mentioning(str(out)), "no backend or proxy was started"
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, (tmp_path / "harness.log").read_text()
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_mentioning(str(out))
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["status"].startswith("stopped by signal")
    assert (out / "results.md").exists()


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (d / "stat").read_text().rsplit(") ", 1)[1][0]
            except OSError:
                continue
            if text in cmd and "l4.py" not in cmd and state != "Z":
                found.append(int(d.name))
    return found


# -- the sweep: planning, parsing and aggregation (pure functions; no proxy runs) --------------------


def test_the_sweep_plans_every_point_and_each_tool_its_own_axes() -> None:
    import run

    pts = run.plan(["ka", "gbps4", "idle"], [1, 64], [1, 10], [1, 2], idle_conns=500)
    ka = [(p.clients, p.backends, p.workers) for p in pts if p.metric == "ka"]
    assert ka == [(1, 1, 1), (64, 1, 1), (1, 10, 1), (64, 10, 1), (1, 1, 2), (64, 1, 2), (1, 10, 2), (64, 10, 2)]
    # iperf3: its own stream count, one backend (control and data connections must meet one server)
    assert [(p.clients, p.backends, p.workers) for p in pts if p.metric == "gbps4"] == [(4, 1, 1), (4, 1, 2)]
    assert {(p.clients, p.backends) for p in pts if p.metric == "idle"} == {(500, 1), (500, 10)}
    assert run.point_arms(run.Point("idle", 500, 1, 1), ["D", "H", "F"]) == ["H", "F"]
    assert run.point_arms(run.Point("ka", 1, 1, 1), ["D", "H", "F"]) == ["D", "H", "F"]
    assert run.run_name(run.Point("cps", 1000, 10, 2), "F") == "cps-c1000-be10-w2-F"


def test_the_sweep_options_parse_and_default() -> None:
    import run

    a = run.parse_args("l7", [])
    assert a.client_counts == [1, 8, 32, 64, 256, 1000, 4000]
    assert a.backend_counts == [1, 10] and a.worker_counts == [1, 2] and a.metric_keys == ["ka", "cps"]
    assert a.idle_conns == 2000 and len(a.points) == 2 * 7 * 2 * 2
    a = run.parse_args("l4", ["--connections", "4", "--backends", "3", "--workers", "2", "--metrics", "ka,idle",
                              "--idle-conns", "50"])
    assert [(p.metric, p.clients, p.backends, p.workers) for p in a.points] == [("ka", 4, 3, 2), ("idle", 50, 3, 2)]
    assert run.int_list(" 8, 1,8,,32", "--clients") == [8, 1, 32]
    for bad in ("0", "x", ",", "1,-2"):
        with pytest.raises(ValueError):
            run.int_list(bad, "--clients")
    with pytest.raises(SystemExit):
        run.parse_args("l7", ["--backends", "251"])
    with pytest.raises(SystemExit):
        run.parse_args("l7", ["--metrics", "gbps1"])


def test_open_files_needed_matches_haproxys_maxconn_and_decides_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    import arms
    import run

    for clients in (1, 32, 1000, 4000, 20000):
        need = arms.fds_needed(clients)
        monkeypatch.setattr(resource, "getrlimit", lambda _r, n=need: (n, n))
        assert arms.haproxy_maxconn() >= clients  # HAProxy starts with that limit and takes every client
    assert arms.fds_needed(4000) == 10656
    assert run.skip_reason(run.Point("ka", 4000, 1, 1), 20000) == ""
    why = run.skip_reason(run.Point("ka", 4000, 1, 1), 8192)
    assert "needs 10656 open files" in why and "8192" in why


def test_proxy_cpus_give_a_second_worker_the_load_cpu_last() -> None:
    import arms

    assert arms.proxy_cpus(1, 1, 0, allowed=[0, 1]) == [1]
    assert arms.proxy_cpus(2, 1, 0, allowed=[0, 1]) == [1, 0]
    assert arms.proxy_cpus(4, 1, 0, allowed=[0, 1]) == [1, 0]  # no more CPUs than the machine has
    assert arms.proxy_cpus(2, 1, 0, allowed=[0, 1, 2, 3]) == [1, 2]
    assert arms.proxy_cpus(4, 1, 0, allowed=[0, 1, 2, 3]) == [1, 2, 3, 0]
    assert arms.cpu_list([1, 0]) == "0,1"
    assert arms.backend_hosts(3) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    with pytest.raises(ValueError):
        arms.backend_hosts(0)


def test_configs_round_robin_over_every_backend_with_the_workers_asked(tmp_path: Path) -> None:
    import arms

    addrs = ["127.0.0.1:9001", "127.0.0.2:9002", "127.0.0.3:9003"]
    cfg = arms.haproxy_config("http", "127.0.0.1:8000", addrs, 2, [1, 0], True, maxconn=1000)
    assert "nbthread 2" in cfg and "cpu-map auto:1/1-2 0,1" in cfg and "maxconn 1000" in cfg
    assert "    server s3 127.0.0.3:9003" in cfg and "timeout http-keep-alive 1s" in cfg
    assert "option splice-auto" in cfg and "${" not in cfg and "http-reuse safe" in cfg
    reuse = arms.haproxy_config("http", "127.0.0.1:8000", addrs, 1, [1], True, maxconn=1000,
                                reuse=arms.ARMS["Hr"].reuse)
    assert "http-reuse always" in reuse
    cfg = arms.haproxy_config("tcp", "127.0.0.1:8000", addrs[:1], 1, [1], False, maxconn=1000)
    assert "cpu-map 1/1 1" in cfg and "nosplice" in cfg and "server s2" not in cfg
    idle_cfg = arms.haproxy_config("http", "127.0.0.1:8000", addrs, 1, [1], True, arms.IDLE_HTTP_TIMEOUTS, 1000)
    assert "timeout http-keep-alive 120s" in idle_cfg and "timeout http-request 120s" in idle_cfg
    if shutil.which("haproxy"):
        (tmp_path / "h.cfg").write_text(cfg)
        p = subprocess.run(["haproxy", "-c", "-q", "-f", str(tmp_path / "h.cfg")], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
    # fastlb's file, read back by fastlb's own parser when it is importable
    text = arms.fastlb_config("http", "127.0.0.1:8000", addrs, False, arms.IDLE_HTTP_TIMEOUTS)
    assert 'backends = ["127.0.0.1:9001", "127.0.0.2:9002", "127.0.0.3:9003"]' in text
    config = pytest.importorskip("fastlb.config")
    parsed = config.parse(text)
    [svc] = parsed.routes.services if hasattr(parsed, "routes") else parsed.table.services
    assert [b.address for b in svc.backends] == addrs
    assert svc.timeouts.http_keepalive_ms == 120000 and parsed.engine.pipe_max == 0
    assert config.parse(arms.fastlb_config("tcp", "127.0.0.1:8000", addrs, True, arms.IDLE_HTTP_TIMEOUTS))


def test_stub_status_counts_backend_connections_without_its_own() -> None:
    import arms

    page = ("Active connections: 3 \nserver accepts handled requests\n 1021 1021 50000 \n"
            "Reading: 0 Writing: 1 Waiting: 2 \n")
    s = arms.parse_stub_status(page)
    assert s == {"active": 3, "accepts": 1021, "handled": 1021, "requests": 50000, "reading": 0, "writing": 1,
                 "waiting": 2}
    assert arms.backend_connections(1021, 1054) == 32  # the second read's own connection is not the proxy's
    assert arms.backend_connections(10, 10) == 0
    with pytest.raises(ValueError):
        arms.parse_stub_status("<html>404</html>")


def test_rss_at_the_end_of_the_window_is_the_last_sample_before_it() -> None:
    from procs import rss_at

    samples = [(0.0, 100), (0.2, 150), (0.4, 180), (0.6, 90)]
    assert rss_at(samples, 0.5) == 180
    assert rss_at(samples, 0.4) == 180
    assert rss_at(samples, -1) is None


def test_idle_parsers() -> None:
    import idle

    r = b"HTTP/1.1 200 OK\r\nServer: nginx\r\ncontent-length: 3\r\n\r\nok\n"
    assert idle.response_length(r) == len(r)
    assert idle.response_length(r[:-1]) is None and idle.response_length(r[:10]) is None
    assert idle.response_length(r + b"HTTP/1.1") == len(r)
    with pytest.raises(ValueError, match="status"):
        idle.response_length(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ValueError, match="Content-Length"):
        idle.response_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    text = ("sockets: used 120\nTCP: inuse 5 orphan 0 tw 26479 alloc 7 mem 231\nUDP: inuse 1 mem 0\n")
    assert idle.parse_sockstat(text) == {"inuse": 5, "orphan": 0, "tw": 26479, "alloc": 7, "mem": 231}
    assert idle.per_conn_kib(1000, 3000, 500) == 4.0 and idle.per_conn_kib(1, 2, 0) is None


def test_idle_clients_hold_connections_and_read_one_response_each() -> None:
    """Against a little loopback server in this process: connect, stay silent, one request each, still open."""
    import selectors
    import socket
    import threading

    import idle

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)
    srv.setblocking(False)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def serve() -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(srv, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    if key.fileobj is srv:
                        try:
                            c, _ = srv.accept()
                        except BlockingIOError:
                            continue
                        c.setblocking(False)
                        accepted.append(c)
                        sel.register(c, selectors.EVENT_READ)
                    else:
                        c = key.fileobj
                        assert isinstance(c, socket.socket)
                        if c.recv(4096):
                            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                        else:
                            sel.unregister(c)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with idle.IdleClients("127.0.0.1", srv.getsockname()[1], 50) as clients:
            assert clients.open(timeout=10) == 50 and clients.connect_errors == 0
            assert idle.wait_settled(lambda: len(accepted), 50, timeout=10, quiet=0.1) == 50
            assert clients.still_open() == 50
            assert clients.request_all(timeout=10) == 50
            assert clients.still_open() == 50
            for c in accepted[:10]:
                c.close()
            deadline = time.monotonic() + 5
            while clients.still_open() != 40 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert clients.still_open() == 40
        assert clients.socks == []
    finally:
        stop.set()
        t.join(5)
        for c in accepted:
            c.close()
        srv.close()


def _sweep_rec(block: int, arm: str, clients: int, value: float | None, status: str = "ok", workers: int = 1,
               metric: str = "ka") -> dict:
    r = _rec(block, arm, value, status)
    r.update(metric=metric, clients=clients, backends=1, workers=workers)
    if status == "skipped":
        r.update(reason="needs 10656 open files", cpu_per_unit=None, load={})
    else:
        r.update(load={"p50": 100, "p99": 200 if arm != "F" else 100, "p999": 900}, backend_conns_per_unit=0.5,
                 proxy_rss_kib=2048, proxy_rss_peak_kib=4096)
    return r


SWEEP_META = dict(META, clients=[1, 4000], metric_info={"ka": dict(META["metric_info"]["ka"], tool="wrk")},
                  backends=[1], workers=[1, 2], arms=["D", "H", "F"],
                  points=[{"metric": "ka", "clients": c, "backends": 1, "workers": w} for w in (1, 2)
                          for c in (1, 4000)],
                  layout={"proxy_cpu": 1, "load_cpu": 0, "proxy_cpus": {"1": "1", "2": "0,1"}},
                  nofile=[8192, 8192], nofile_needed=10656,
                  skipped_points=[{"metric": "ka", "clients": 4000, "backends": 1, "workers": 1,
                                   "reason": "needs 10656 open files"}])


def test_the_report_pairs_per_point_and_tabulates_clients_by_arm(tmp_path: Path) -> None:
    recs = []
    for b in range(3):
        recs += [_sweep_rec(b, "D", 1, 100), _sweep_rec(b, "H", 1, 50), _sweep_rec(b, "F", 1, 60 + b),
                 _sweep_rec(b, "D", 1, 100, workers=2), _sweep_rec(b, "H", 1, 80, workers=2),
                 _sweep_rec(b, "F", 1, 40, workers=2)]
        recs += [_sweep_rec(b, a, 4000, None, status="skipped") for a in ("D", "H", "F")]
    s = report.summarize(SWEEP_META, recs)
    by = {p["label"]: p for p in s["points"]}
    assert list(by) == ["ka c1 b1 w1", "ka c4000 b1 w1", "ka c1 b1 w2", "ka c4000 b1 w2"]
    assert by["ka c1 b1 w1"]["ratios"]["F/H"]["median"] == pytest.approx(61 / 50)
    assert by["ka c1 b1 w1"]["ratios"]["F/H"]["p99_median"] == pytest.approx(0.5)
    assert by["ka c1 b1 w2"]["ratios"]["F/H"]["median"] == pytest.approx(0.5)
    assert by["ka c4000 b1 w1"]["arms"]["H"]["skipped"] == 3 and by["ka c4000 b1 w1"]["ratios"]["F/H"]["n"] == 0
    assert by["ka c1 b1 w1"]["arms"]["F"]["p999_us"] == 900 and by["ka c1 b1 w1"]["arms"]["F"]["bconn_median"] == 0.5
    md = report.render_md(SWEEP_META, recs, s)
    assert "### ka: ka; 1 backend, 1 worker" in md and "### ka: ka; 1 backend, 2 workers" in md
    assert "| clients | D req/s | H req/s | F req/s | F/H | H CPU µs/req | F CPU µs/req | F/H CPU |" in md
    assert "| 1 | 100 | 50 | 61 | **1.220** | 10 | 10 | **1.000** | 200 | 200 | 100 | **0.500** |" in md
    assert "| 4000 | skipped | skipped | skipped | – |" in md
    assert "| 1 | F | 3/3 | 100 | 100 | 900 | 0.5 | 2.0 / 4.0 | 0 |  |" in md
    assert "the largest point needs **10656**" in md and "**1 point(s) skipped**" in md
    assert "load generator and the backend then share CPU0 with the proxy" in md
    report.write(tmp_path, SWEEP_META, recs)
    assert (tmp_path / "results.md").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["points"][0]["label"] == "ka c1 b1 w1"
    assert report.chart_panels(SWEEP_META, s) == [("ka", 1)]


def test_the_report_gives_idle_memory_per_connection_before_and_after_a_request() -> None:
    meta = dict(META, arms=["H", "F"], metrics=["idle"], idle_conns=100,
                metric_info={"idle": {"unit": "kB/conn", "cpu_unit": "kB/conn", "title": "idle", "tool": "idle"}})
    recs = []
    for b in range(2):
        for arm, idle_kb, after_kb in (("H", 2.0, 8.0), ("F", 1.0, 2.0)):
            r = {"block": b, "metric": "idle", "clients": 100, "backends": 1, "workers": 1, "arm": arm,
                 "position": 0, "status": "ok", "value": idle_kb, "after_value": after_kb, "errors": 0,
                 "steal_pct": 0.0, "reason": "",
                 "idle": {"conns": 100, "opened": 100, "rss_kib": [1000, 1000 + 100 * idle_kb, 1000 + 100 * after_kb],
                          "fds": [10, 110, 120], "open": [100, 100], "answered": 100, "backend_conns": 100}}
            recs.append(r)
    s = report.summarize(meta, recs)
    [p] = s["points"]
    assert p["ratios"]["F/H"]["median"] == pytest.approx(0.5) and p["ratios"]["F/H"]["after_median"] == 0.25
    assert p["arms"]["F"]["fds_per_conn_median"] == 1.0 and p["arms"]["F"]["fds_after_per_conn_median"] == 1.1
    md = report.render_md(meta, recs, s)
    assert "## Memory per idle client connection" in md
    assert "| 1 | 1 | F | 2/2 | 100 | 100 / 100 | 100 | **1** | **2** | 1 / 1.1 | 1 |" in md
    assert "| 1 | 1 | F/H | 2 | **0.500** | **0.250** |" in md
    assert report.chart_panels(meta, s) == [("idle", 0)]


# -- bench/tls.py: options, configs, counters, the TLS idle client (no load) ------------------------------

OPENSSL = shutil.which("openssl") is not None


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tls

    if not OPENSSL:
        pytest.skip("needs openssl")
    return tls.make_certificate(tmp_path_factory.mktemp("cert"), "ec")


def test_tls_options_plan_and_defaults() -> None:
    import run

    a = run.parse_args("tls", [])
    assert a.metric_keys == ["tls_ka", "tls_cps", "tls_resumed", "tls_gbps", "tls_idle"]
    assert a.client_counts == [1, 32, 256, 1000] and a.backend_counts == [1] and a.worker_counts == [1]
    assert a.key == "ec" and a.gbps_mib == 1024 and a.arm_keys == ["D", "H", "F"]
    pts = [(p.metric, p.clients, p.backends) for p in a.points]
    assert pts.count(("tls_gbps", 1, 1)) == 1 and ("tls_idle", 2000, 1) in pts and len(pts) == 3 * 4 + 2
    assert run.point_arms(run.Point("tls_idle", 2000, 1, 1), ["D", "H", "F"]) == ["H", "F"]
    a = run.parse_args("tls", ["--workers", "2", "--key", "rsa", "--clients", "1,32", "--metrics", "tls_cps"])
    assert a.worker_counts == [2] and a.key == "rsa" and [p.clients for p in a.points] == [1, 32]
    for bad in (["--arms", "D,Hn"], ["--nosplice"], ["--metrics", "ka"], ["--fastlb", "serve"], ["--gbps-mib", "0"]):
        with pytest.raises(SystemExit):
            run.parse_args("tls", bad)
    with pytest.raises(SystemExit):
        run.parse_args("l7", ["--metrics", "tls_ka"])
    assert run.parse_args("l4", []).metric_keys == ["ka", "cps", "gbps1", "gbps4"]  # unchanged by tls


def test_tls_certificate_and_wrk_command() -> None:
    import tls

    ec = tls.openssl_req_argv("ec", Path("k.pem"), Path("c.pem"))
    assert ec[:4] == ["openssl", "req", "-x509", "-newkey"] and "ec_paramgen_curve:P-256" in ec
    assert f"subjectAltName=DNS:{tls.VHOST}" in ec and "-nodes" in ec
    assert "rsa:2048" in tls.openssl_req_argv("rsa", Path("k.pem"), Path("c.pem"))
    argv = tls.wrk_argv("https://127.0.0.1:1/", 10, 32, True)
    assert argv[:4] == ["wrk", "-t1", "-c32", "-d10s"] and f"Host: {tls.VHOST}" in argv
    assert "Connection: close" in argv and argv[-1] == "https://127.0.0.1:1/"
    assert "Connection: close" not in tls.wrk_argv("https://127.0.0.1:1/big", 10, 1, False, 60)
    s = tls.Setup(Path("/d"), "ec", Path("/d/c.pem"), Path("/d/tlsshim.so"), Path("/d/big.bin"), 1)
    assert tls.wrk_env(s, "none", Path("/d/n.json")) == {
        "LD_PRELOAD": "/d/tlsshim.so", "FASTLB_BENCH_TLS_COUNTS": "/d/n.json", "FASTLB_BENCH_TLS_SESSIONS": "none"}
    assert "FASTLB_BENCH_TLS_SESSIONS" not in tls.wrk_env(s, "", Path("/d/n.json"))
    assert tls.SESSIONS == {"tls_ka": "", "tls_cps": "none", "tls_resumed": "reuse", "tls_gbps": ""}
    counts = tls.parse_counts('{"mode":"reuse","handshakes":10,"resumed":9,"offered":9,"version":"TLSv1.3",'
                              '"cipher":"TLS_AES_256_GCM_SHA384"}\n')
    assert counts["resumed"] == 9 and counts["version"] == "TLSv1.3"
    for bad in ("", '{"handshakes": 1}'):
        with pytest.raises(loads.LoadFailed):
            tls.parse_counts(bad)


def test_tls_counters_of_both_proxies() -> None:
    import tls

    stats = {"listeners": [{"address": "127.0.0.1:1", "kind": "vhost"},
                           {"address": "127.0.0.1:2", "kind": "vhost",
                            "tls": {"handshakes": 10, "resumed": 4, "failed": {"eof": 1, "timeout": 0}}}]}
    assert tls.fastlb_counters(stats) == {"handshakes": 10, "resumed": 4, "failed": {"eof": 1, "timeout": 0}}
    assert tls.fastlb_counters({"listeners": [{"address": "x"}]}) is None
    assert tls.fastlb_counters({"error": "x"}) is None
    typed = ("F.2.0.0.pxname.1:KNSV:str:bench\nF.2.0.7.stot.1:MCP:u64:12\n"
             "F.2.0.103.ssl_sess.1:MCP:u64:4\nF.2.0.104.ssl_reused_sess.1:MCP:u64:3510\n"
             "F.2.0.105.ssl_failed_handshake.1:MCP:u64:1\n"
             "F.3.0.0.pxname.1:KNSV:str:other\nF.3.0.103.ssl_sess.1:MCP:u64:99\n")
    h = tls.parse_haproxy_typed(typed)
    assert h == {"handshakes": 3514, "resumed": 3510, "failed": {"handshake": 1}}
    assert tls.parse_haproxy_typed("F.2.0.0.pxname.1:KNSV:str:bench\n") is None
    later = {"handshakes": 3600, "resumed": 3590, "failed": {"handshake": 3}}
    assert tls.counter_delta(h, later) == {"handshakes": 86, "resumed": 80, "failed": {"handshake": 2}}
    assert tls.counter_delta(None, later) is None


def test_tls_configs_render_and_each_proxy_accepts_its_own(tls_cert: Path, tmp_path: Path) -> None:
    import arms
    import tls

    addrs = ["127.0.0.1:9001", "127.0.0.2:9002"]
    cfg = tls.haproxy_config("127.0.0.1:8443", addrs, 2, [1, 0], tls_cert, "127.0.0.1:9999", maxconn=1000)
    assert f"bind 127.0.0.1:8443 ssl crt {tls_cert} alpn http/1.1" in cfg
    assert "nbthread 2" in cfg and "cpu-map auto:1/1-2 0,1" in cfg and "timeout http-keep-alive 1s" in cfg
    assert f"use_backend bench if {{ hdr(host) -i {tls.VHOST} }}" in cfg and "    server s2 127.0.0.2:9002" in cfg
    assert "stats socket ipv4@127.0.0.1:9999 level user" in cfg and "${" not in cfg
    assert "no-tls-tickets" not in cfg and "tune.ssl.cachesize" not in cfg  # HAProxy's session defaults
    if shutil.which("haproxy"):
        (tmp_path / "h.cfg").write_text(cfg)
        p = subprocess.run(["haproxy", "-c", "-q", "-f", str(tmp_path / "h.cfg")], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
    ndir = tmp_path / "nginx"
    ngx = tls.nginx_config(ndir, addrs, "127.0.0.1:8444", "127.0.0.1:8445", tls_cert, tmp_path / "big.bin")
    assert "listen 127.0.0.1:8444 ssl backlog=65535;" in ngx and f"ssl_certificate_key {tls_cert};" in ngx
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in ngx and f"alias {tmp_path / 'big.bin'};" in ngx
    assert "        listen 127.0.0.2:9002 backlog=65535;" in ngx and "${" not in ngx
    text = tls.fastlb_config("127.0.0.1:8443", addrs, tls_cert, arms.IDLE_HTTP_TIMEOUTS)
    assert f'certs = ["{tls_cert}"]' in text and f'vhosts = ["{tls.VHOST}"]' in text
    config = pytest.importorskip("fastlb.config")
    parsed = config.parse(text)
    [svc] = parsed.table.services
    assert [b.address for b in svc.backends] == addrs and svc.timeouts.http_keepalive_ms == 120000
    assert len(parsed.certs) == 1 and tls.VHOST in parsed.certs[0].names
    assert config.parse(tls.fastlb_config("127.0.0.1:8443", addrs, tls_cert)).certs


@pytest.mark.skipif(not shutil.which("cc"), reason="needs a C compiler and OpenSSL's headers")
def test_the_tls_shim_builds(tmp_path: Path) -> None:
    import tls

    so = tls.build_shim(tmp_path)
    assert so.stat().st_size > 0
    assert tls.make_big_file(tmp_path / "big.bin", 3) == 3 << 20 and (tmp_path / "big.bin").stat().st_blocks == 0


def test_tls_idle_clients_handshake_hold_and_read_one_response_each(tls_cert: Path) -> None:
    """Against a little TLS server in this process: handshake, stay silent, one request each, still open."""
    import socket
    import ssl
    import threading

    import idle

    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(tls_cert)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.05)
    stop = threading.Event()
    served: list[ssl.SSLSocket] = []
    names: list[str | None] = []

    def serve_one(raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            c = sctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        served.append(c)
        try:
            while not stop.is_set() and c.recv(4096):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        except OSError:
            pass

    def sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(name)

    sctx.sni_callback = sni  # type: ignore[assignment]

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                raw, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(raw,), daemon=True).start()

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    request = b"GET / HTTP/1.1\r\nHost: bench.example.test\r\n\r\n"
    try:
        with idle.TlsIdleClients("127.0.0.1", srv.getsockname()[1], 20, server_name="bench.example.test",
                                 request=request) as clients:
            assert clients.open(timeout=20) == 20 and clients.connect_errors == 0
            assert clients.handshake_errors == 0 and sum(clients.versions.values()) == 20
            assert set(names) == {"bench.example.test"} and clients.resumed == 0
            assert clients.still_open() == 20
            assert clients.request_all(timeout=20) == 20
            assert clients.still_open() == 20
            deadline = time.monotonic() + 10
            while len(served) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            for c in served[:5]:
                c.shutdown(socket.SHUT_RDWR)  # a FIN, and its thread's recv woken
            deadline = time.monotonic() + 5
            while clients.still_open() != 15 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert clients.still_open() == 15
            assert clients.details()["handshake_errors"] == 0
        assert clients.socks == [] and clients.conns == {}
    finally:
        stop.set()
        srv.close()
        t.join(5)
        for c in served:
            c.close()


def test_the_report_renders_tls_handshakes_and_idle_tls_memory() -> None:
    import run

    metrics = ["tls_cps", "tls_idle"]
    meta = dict(META, kind="tls", arms=["D", "H", "F"], metrics=metrics, idle_conns=100,
                metric_info={m: vars(run.METRICS[m]) for m in metrics},
                tls={"key": "ec", "vhost": "bench.example.test", "cert": "/x/ec-cert.pem", "gbps_mib": 1024,
                     "certificate": {"subject": "CN = bench.example.test"}, "openssl": "OpenSSL 3",
                     "sessions": {"tls_cps": "none"}})
    recs = []
    for b in range(2):
        for arm, resumed in (("D", 0), ("H", 0), ("F", 0)):
            r = _sweep_rec(b, arm, 32, 1000.0, metric="tls_cps")
            r["tls"] = {"client": {"mode": "none", "handshakes": 2000, "resumed": resumed, "offered": 0,
                                   "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"},
                        "server": None if arm == "D" else {"handshakes": 2000, "resumed": 0, "failed": {"eof": 1}}}
            recs.append(r)
        for arm, first, after in (("H", 40.0, 40.0), ("F", 20.0, 10.0)):
            recs.append({"block": b, "metric": "tls_idle", "clients": 100, "backends": 1, "workers": 1, "arm": arm,
                         "position": 0, "status": "ok", "value": first, "after_value": after, "errors": 0,
                         "steal_pct": 0.0, "reason": "",
                         "tls": {"client": {"mode": "python", "handshakes": 100, "resumed": 0, "offered": 0,
                                            "version": "TLSv1.3", "cipher": "X"},
                                 "server": {"handshakes": 100, "resumed": 0, "failed": {}}},
                         "idle": {"conns": 100, "opened": 100, "rss_kib": [0, 100 * first, 100 * after],
                                  "fds": [10, 110, 110], "open": [100, 100], "answered": 100, "backend_conns": 100}})
    s = report.summarize(meta, recs)
    md = report.render_md(meta, recs, s)
    assert "## TLS setup" in md and "ECDSA P-256" in md
    assert "### tls_cps: full TLS handshakes/s" in md and "| clients | D hs/s | H hs/s | F hs/s | F/H |" in md
    assert "## TLS handshakes" in md
    assert "| tls_cps c32 b1 w1 | F | 2,000 | 0 | 0 | 2,000 | 0 | 2 | TLSv1.3 TLS_AES_256_GCM_SHA384 |" in md
    assert "| tls_cps c32 b1 w1 | D | 2,000 | 0 | 0 | – | – | – |" in md
    assert "## Memory per idle TLS connection" in md and "kB/conn after the handshake" in md
    assert "| 1 | 1 | F | 2/2 | 100 | 100 / 100 | 100 | **20** | **10** | 1 / 1 | 1 |" in md
    assert "TLS resumed 0/2000" in md
    assert report.chart_panels(meta, s) == [("tls_cps", 1), ("tls_idle", 0)]
