"""The dashboard's script, run by node against a minimal DOM with /stats snapshots made by the admin
API: it shows every service and backend, updates rows in place (keyed by service and backend id),
computes rates from successive snapshots, lists what changed as recent errors, lists problems, and
says when /stats stops answering. tests/dashboard/ runs the same page in a real Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from fastlb import stats
from fastlb.controller import Controller

from controller.test_controller import ListProvider, listen, svc, table
from support.fake_dataplane import FakeDataPlane

HERE = Path(__file__).resolve().parent
STATIC = HERE.parents[1] / "fastlb" / "static"


def snapshots() -> list[dict[str, Any]]:
    """Two /stats answers 2 s apart: between them web's first backend took 20 connections and 40 KiB
    each way, 20 requests (3 answered 5xx, 2 4xx), failed 2 connects and retried once; the second
    went to maint by hand; db's backend went down."""

    async def go() -> list[dict[str, Any]]:
        dp = FakeDataPlane()
        t = table(
            svc("web", "10.0.0.1:80", "10.0.0.2:80", mode="http"),
            svc("db", "10.0.0.3:5432"),
            listeners=(listen("127.0.0.1:8080", "web"), listen("127.0.0.1:5432", "db")),
        )
        c = Controller(dp, {"static": ListProvider(t)})
        c.start()
        dp.backends["10.0.0.1:80"].update(
            active=2, total=10, bytes_in=1000, bytes_out=5000, requests=10,
            responses={"1xx": 0, "2xx": 10, "3xx": 0, "4xx": 0, "5xx": 0, "other": 0},
        )
        first = json.loads(json.dumps(stats.snapshot(c)))
        c.set_state("10.0.0.2:80", "maint")
        c.on_backend_state("health")("10.0.0.3:5432", "down")
        dp.backends["10.0.0.1:80"].update(
            total=30, bytes_in=1000 + 40960, bytes_out=5000 + 81920, connect_errors=2, retries=1, requests=30,
            responses={"1xx": 0, "2xx": 25, "3xx": 0, "4xx": 2, "5xx": 3, "other": 0},
        )
        second = json.loads(json.dumps(stats.snapshot(c)))
        second["time"] = first["time"] + 2.0
        await c.drain()
        return [first, second]

    return asyncio.run(go())


def run_page(tmp_path: Path, answers: list[Any]) -> list[dict[str, Any]]:
    """What the page shows after each /stats answer (a snapshot, or {"fail": status | "network"})."""
    paths = []
    for i, answer in enumerate(answers):
        p = tmp_path / f"answer{i}.json"
        p.write_text(json.dumps(answer))
        paths.append(str(p))
    # node is the one tool here beyond Python; CI installs it (Debian's nodejs).
    out = subprocess.run(
        [
            "node",
            str(HERE / "dashboard_harness.js"),
            str(STATIC / "dashboard.js"),
            str(STATIC / "index.html"),
            *paths,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    views = json.loads(out.stdout)
    assert len(views) == len(answers)
    return views


def test_dashboard_renders_and_updates_in_place(tmp_path: Path) -> None:
    first, second = snapshots()
    second["conflicts"] = ["marathon: service 'web' skipped: the name is already static's"]
    third = {**second, "time": second["time"] + 1.0}
    v1, v2, v3, v4, v5 = run_page(tmp_path, [first, second, {"fail": 503}, {"fail": "network"}, third])

    # The first answer: every service and backend, in table order, no rates yet.
    assert (v1["status"], v1["statusClass"], v1["generation"]) == ("serving", "pill serving", "1")
    assert (v1["active"], v1["total"], v1["rate"], v1["backends-up"]) == ("2", "10", "–", "3 / 3")
    assert v1["staleHidden"] and v1["bodyClass"] == ""
    assert v1["problems"] == ["static: app /bad: HAPROXY_0_PORT is not a port"] and not v1["problemsHidden"]
    assert v1["events"] == []
    assert [r[:3] for r in v1["listeners"]] == [
        ["127.0.0.1:8080", "service", "web"],
        ["127.0.0.1:5432", "service", "db"],
    ]
    assert v1["providers"][0] == "static"
    web, db = v1["services"]
    assert (web["service"], web["name"], web["meta"]) == ("web", "web", "http · roundrobin")
    assert web["figures"].startswith("2/2 up · open 2 · total 10 · – conn/s")
    assert [r["key"] for r in web["rows"]] == ["10.0.0.1:80", "10.0.0.2:80"]
    row = web["rows"][0]["cells"]
    assert (row["name"], row["address"], row["state"], row["health"]) == (
        "10.0.0.1:80",
        "10.0.0.1:80",
        "ready",
        "up",
    )
    assert (row["weight"], row["active"], row["total"], row["conn-rate"], row["errors"]) == (
        "1",
        "2",
        "10",
        "–",
        "0",
    )
    assert web["rows"][0]["pills"] == ["pill state-ready", "pill health-up"]
    assert db["service"] == "db" and [r["key"] for r in db["rows"]] == ["10.0.0.3:5432"]
    # HTTP: requests and responses by class per service and backend; nothing of the kind for tcp.
    assert web["http"] == "requests 10 · – req/s · responses 2xx 10" and not web["httpHidden"]
    assert (row["req-rate"], row["responses"]) == ("–", "2xx 10")
    assert web["rows"][1]["cells"]["responses"] == "–"
    assert db["httpHidden"] and db["rows"][0]["cells"]["responses"] == ""
    assert (v1["req-rate"], v1["http-5xx"]) == ("–", "0")

    # The second: the same row elements with new values; rates over the 2 s between the snapshots.
    web, db = v2["services"]
    assert all(r["marked"] for s in v2["services"] for r in s["rows"])
    row = web["rows"][0]["cells"]
    assert (row["total"], row["conn-rate"], row["in-rate"], row["out-rate"]) == (
        "30",
        "10.0",
        "20.0 KiB/s",
        "40.0 KiB/s",
    )
    assert (row["errors"], row["retries"]) == ("2", "1")
    assert (row["req-rate"], row["responses"]) == ("10.0", "2xx 25 · 4xx 2 · 5xx 3")
    assert web["http"] == "requests 30 · 10.0 req/s · responses 2xx 25 · 4xx 2 · 5xx 3"
    assert (v2["req-rate"], v2["http-5xx"]) == ("10.0", "3")
    assert v2["rate"] == "10.0" and v2["in-rate"] == "20.0 KiB/s" and v2["out-rate"] == "40.0 KiB/s"
    maint = web["rows"][1]
    assert maint["cells"]["state"] == "maint (by hand)" and maint["pills"][0] == "pill state-maint"
    assert maint["className"] == "status-maint"
    assert web["figures"].startswith("1/2 up · open 2 · total 30 · 10.0 conn/s")
    down = db["rows"][0]
    assert down["cells"]["health"] == "down" and down["pills"][1] == "pill health-down"
    assert down["className"] == "status-down" and "service-down" in db["className"]
    assert v2["backends-up"] == "1 / 3"
    assert v2["problems"] == [
        "marathon: service 'web' skipped: the name is already static's",
        "static: app /bad: HAPROXY_0_PORT is not a port",
    ]
    # Newest first; what changed between the two answers, each once.
    assert sorted((e["where"], e["what"], e["level"]) for e in v2["events"]) == sorted(
        [
            ("web / 10.0.0.1:80", "2 connect errors", "event error"),
            ("web / 10.0.0.1:80", "1 retry", "event warn"),
            ("web / 10.0.0.2:80", "state ready → maint", "event warn"),
            ("web", "3 5xx responses", "event error"),
            ("db / 10.0.0.3:5432", "health up → down", "event error"),
            ("config", "marathon: service 'web' skipped: the name is already static's", "event error"),
        ]
    )

    # /stats fails: the last data stays, dimmed, under a banner saying since when it is stale.
    for view, reason in ((v3, "HTTP 503"), (v4, "no answer")):
        assert not view["staleHidden"] and view["bodyClass"] == "stale"
        assert re.fullmatch(
            rf"Stale since \d\d:\d\d:\d\d: /stats is failing \({reason}\)\. .*", view["stale"]
        )
        assert (view["status"], view["statusClass"]) == ("unreachable", "pill unreachable")
        assert view["services"][0]["rows"][0]["cells"]["total"] == "30"
    assert v3["stale"].split(":", 3)[:3] == v4["stale"].split(":", 3)[:3]  # the same "since"

    # It answers again: the banner goes, and the rows are still the ones made at the first answer.
    assert v5["staleHidden"] and v5["bodyClass"] == "" and v5["status"] == "serving"
    assert all(r["marked"] for s in v5["services"] for r in s["rows"])
    assert v5["services"][0]["rows"][0]["cells"]["conn-rate"] == "0.0"


def test_dashboard_says_when_stats_never_answered(tmp_path: Path) -> None:
    (view,) = run_page(tmp_path, [{"fail": 502}])
    assert not view["staleHidden"]
    assert re.fullmatch(
        r"No data: /stats has not answered since \d\d:\d\d:\d\d \(HTTP 502\)\. .*", view["stale"]
    )
    assert view["services"] == [] and view["status"] == "unreachable"


def test_dashboard_drops_rows_that_left_the_table(tmp_path: Path) -> None:
    first, _ = snapshots()
    later = json.loads(json.dumps(first))
    later["time"] += 1.0
    later["services"] = [later["services"][0]]
    later["services"][0]["backends"] = later["services"][0]["backends"][1:]
    v1, v2 = run_page(tmp_path, [first, later])
    assert [s["service"] for s in v1["services"]] == ["web", "db"]
    assert [s["service"] for s in v2["services"]] == ["web"]
    assert [r["key"] for r in v2["services"][0]["rows"]] == ["10.0.0.2:80"]
    assert v2["services"][0]["rows"][0]["marked"]
