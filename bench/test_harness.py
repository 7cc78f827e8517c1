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
    recs = [_rec(0, "D", 100), _rec(0, "H", 50), _rec(0, "F", 60),
            _rec(1, "D", 100), _rec(1, "H", 40), _rec(1, "F", None, status="failed"),
            _rec(2, "D", 100), _rec(2, "H", 50, steal=5.0), _rec(2, "F", 55)]
    s = report.summarize(META, recs)["ka"]
    assert s["ratios"]["F/H"]["per_block"] == [pytest.approx(1.2)]  # block 1: F failed; block 2: H stolen
    assert s["ratios"]["H/D"]["per_block"] == [pytest.approx(0.5), pytest.approx(0.4)]
    assert s["arms"]["F"]["failed"] == 1
    assert s["arms"]["H"]["steal_excluded"] == 1
    md = report.render_md(META, recs, report.summarize(META, recs))
    assert "| 1 | ka | 0 | F | failed |" in md and "ProcessFailed: boom" in md
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
         "--metrics", "ka,gbps1,ka_fixed", "--connections", "4", "--rate-ka", "200", "--out", str(out),
         "--seed", "7"],
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
    md = (out / "results.md").read_text()
    assert "| ka | H/D | 1 |" in md and "taskset -c 1 haproxy -db -f" in md
    assert (out / "chart.png").stat().st_size > 0 or "no chart" in md
    assert _my_descendants() == before


@pytest.mark.needs_tools
@pytest.mark.skipif(not TOOLS, reason="needs haproxy, nginx, wrk, iperf3 (Debian packages)")
def test_a_run_whose_proxy_cannot_start_is_reported_failed(tmp_path: Path) -> None:
    """HAProxy cannot start when its maxconn exceeds the fd limit: the run must say so, not vanish."""
    out = tmp_path / "res"
    code = ("import resource,sys,runpy;resource.setrlimit(resource.RLIMIT_NOFILE,(64,64));"
            f"sys.argv=['l4.py','--arms','H','--blocks','1','--duration','1','--warmup','0','--metrics','ka',"
            f"'--out',{str(out)!r},'--no-sysctl'];sys.path.insert(0,{str(HERE)!r});"
            f"runpy.run_path({str(HERE / 'l4.py')!r},run_name='__main__')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=HERE.parent)
    assert p.returncode == 1, p.stdout + p.stderr
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["status"] == "failed" and "haproxy" in run["reason"]
    assert "| 0 | ka | 0 | H | failed |" in (out / "results.md").read_text()


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
