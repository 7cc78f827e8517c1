"""The dashboard's script, run by node against a minimal DOM with two /stats snapshots made by the
admin API: it shows every service and backend, updates rows in place, computes rates and lists
problems."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fastlb import admin, control

from .fake_dataplane import FakeDataPlane
from .test_control import ListProvider, listen, svc, table

HERE = Path(__file__).resolve().parent
STATIC = HERE.parents[1] / "fastlb" / "static"


def snapshots() -> list[dict]:
    async def go() -> list[dict]:
        dp = FakeDataPlane()
        t = table(svc("web", "10.0.0.1:80", "10.0.0.2:80", mode="http"), svc("db", "10.0.0.3:5432"),
                  listeners=(listen("127.0.0.1:8080", "web"), listen("127.0.0.1:5432", "db")))
        c = control.Controller(dp, {"static": ListProvider(t)})
        c.start()
        dp.backends["10.0.0.1:80"].update(active=2, total=10)
        first = json.loads(json.dumps(admin.snapshot(c)))
        c.set_state("10.0.0.2:80", "maint")
        dp.backends["10.0.0.1:80"].update(total=30)
        second = json.loads(json.dumps(admin.snapshot(c)))
        second["time"] = first["time"] + 2.0
        await c.drain()
        return [first, second]

    return asyncio.run(go())


# node is the one tool here beyond Python; CI images without it cannot run this test.
@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the dashboard's script")
def test_dashboard_renders_and_updates_in_place(tmp_path: Path) -> None:
    first, second = snapshots()
    second = copy.deepcopy(second)
    second["conflicts"] = ["marathon: service 'web' skipped: the name is already static's"]
    paths = []
    for i, snap in enumerate((first, second)):
        p = tmp_path / f"s{i}.json"
        p.write_text(json.dumps(snap))
        paths.append(str(p))
    out = subprocess.run(
        ["node", str(HERE / "dashboard_harness.js"), str(STATIC / "dashboard.js"), str(STATIC / "index.html"), *paths],
        capture_output=True, text=True, timeout=60, check=True,
    )
    v1, v2 = json.loads(out.stdout)
    assert (v1["status"], v1["generation"], v1["listeners"]) == ("serving", "1", 2)
    assert v1["problems"] == ["static: app /bad: HAPROXY_0_PORT is not a port"] and not v1["problemsHidden"]
    web = v1["services"][0]
    assert web["id"] == "svc-web" and web["meta"].startswith("http · roundrobin · 2/2 up · open 2")
    assert [r["id"] for r in web["rows"]] == ["10.0.0.1:80", "10.0.0.2:80"]
    assert web["rows"][0]["cells"][:6] == ["10.0.0.1:80", "10.0.0.1:80", "UP", "1", "2", "10"]
    assert web["rows"][0]["pill"] == "pill UP"
    # The second poll: the same row elements, new values, a rate, the override and the problem.
    web2 = v2["services"][0]
    assert all(r["marked"] for r in web2["rows"])
    assert web2["rows"][0]["cells"][5:7] == ["30", "10.0"]  # 20 more connections in 2 s
    assert web2["rows"][1]["cells"][2] == "MAINT" and web2["rows"][1]["cells"][10] == "state=maint"
    assert web2["meta"].startswith("http · roundrobin · 1/2 up")
    assert v2["problems"] == [
        "marathon: service 'web' skipped: the name is already static's",
        "static: app /bad: HAPROXY_0_PORT is not a port",
    ]
