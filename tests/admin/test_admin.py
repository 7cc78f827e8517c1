"""The admin API against a test double of the data plane: every path answers as documented."""

from __future__ import annotations

import asyncio
import collections
import csv
import io
import json
import os
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from fastlb import admin, spec, stats
from fastlb.controller import Controller

from controller.test_controller import ListProvider, listen, svc, table
from support import promtext
from support.fake_dataplane import FakeDataPlane

HAPROXY_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,"
    "act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,"
    "rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,"
    "hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,"
    "last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,"
    "check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,"
    "conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,"
    "qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,"
)

TABLE = table(
    svc("web", "10.0.0.1:80", "10.0.0.2:80", mode="http", app_id="/web"),
    svc("db", "10.0.0.3:5432"),
    listeners=(listen("127.0.0.1:8080", "web"), listen("127.0.0.1:5432", "db"), listen("127.0.0.1:80", kind="vhost")),
    routes=(spec.HttpRoute(host="web.example.com", service="web"),),
)


async def with_client(test, token: str | None = None, first: spec.RouteTable | None = TABLE) -> Any:
    dp = FakeDataPlane()
    provider = ListProvider(first)
    provider.ready_at_start = first is not None
    c = Controller(dp, {"static": provider})
    c.start()
    client = TestClient(TestServer(admin.make_app(c, token)))
    await client.start_server()
    try:
        return await test(client, c, dp, provider)
    finally:
        await client.close()
        await c.drain()


def run(test, **kw: Any) -> Any:
    return asyncio.run(with_client(test, **kw))


def test_health_while_serving_only() -> None:
    async def t(client, c, dp, p) -> None:
        for path in ("/_health", "/_haproxy_health_check"):
            r = await client.get(path)
            assert r.status == 200
        c.draining = True
        assert (await client.get("/_health")).status == 503

    run(t)
    run(lambda client, c, dp, p: _expect_status(client, "/_health", 503), first=None)


async def _expect_status(client, path: str, status: int) -> None:
    r = await client.get(path)
    assert r.status == status


def test_stats_json() -> None:
    async def t(client, c, dp, p) -> None:
        dp.backends["10.0.0.1:80"].update(active=3, total=10, bytes_in=100, bytes_out=2000, connect_errors=1)
        dp.backends["10.0.0.2:80"].update(health="down")
        r = await client.get("/stats")
        assert r.status == 200 and r.content_type == "application/json"
        s = await r.json()
        assert s["generation"] == 1 and s["swaps"] == 1 and s["serving"] is True and s["pid"] == os.getpid()
        web = s["services"][0]
        assert (web["name"], web["mode"], web["app_id"], web["active"], web["total"]) == ("web", "http", "/web", 3, 10)
        b1, b2 = web["backends"]
        assert b1 == {
            "id": "10.0.0.1:80", "name": "10.0.0.1:80", "address": "10.0.0.1:80", "state": "ready", "health": "up",
            "status": "UP", "weight": 1, "maxconn": 0, "override": None, "check": None, "active": 3, "total": 10,
            "bytes_in": 100,
            "bytes_out": 2000, "connect_errors": 1, "retries": 0, "timeouts": 0, "requests": 0, "errors": 1,
            "idle": 0, "reused": 0, "drain_since_ms": 0,
            "responses": {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "other": 0},
            "req_rate": 0.0, "req_rate_max": 0.0,
        }
        assert (b2["health"], b2["status"]) == ("down", "DOWN")
        assert web["up"] == 1
        assert s["app_errors"] == {"static": ["app /bad: HAPROXY_0_PORT is not a port"]}
        assert s["providers"] == {"static": {"connected": True}}
        assert [x["address"] for x in s["listeners"]] == ["127.0.0.1:8080", "127.0.0.1:5432", "127.0.0.1:80"]

    run(t)


def test_stats_csv_has_haproxy_columns_and_rows() -> None:
    async def t(client, c, dp, p) -> None:
        dp.backends["10.0.0.1:80"].update(active=2, total=5)
        c.set_state("10.0.0.2:80", "maint")
        dp.backends["10.0.0.3:5432"].update(health="down")
        bodies = []
        for path in ("/stats.csv", "/haproxy?stats;csv"):
            r = await client.get(path)
            assert r.status == 200
            bodies.append(await r.text())
        # The two differ only if a counter moved in between; here nothing did.
        assert bodies[0] == bodies[1]
        text = bodies[0]
        assert text.split("\n", 1)[0] == HAPROXY_HEADER
        header = text.split("\n", 1)[0][2:].split(",")
        rows = list(csv.DictReader(io.StringIO(text.split("\n", 1)[1]), fieldnames=header))
        for row in rows:
            assert None not in row and len(row) == len(header)  # exactly the columns, trailing comma included
        by = {(r["pxname"], r["svname"]): r for r in rows}
        assert by[("web", "FRONTEND")]["status"] == "OPEN"
        assert by[("marathon_http_in", "FRONTEND")]["status"] == "OPEN"
        server = by[("web", "10.0.0.1:80")]
        got = (server["status"], server["scur"], server["qcur"], server["stot"], server["type"])
        assert got == ("UP", "2", "0", "5", "2")
        assert server["addr"] == "10.0.0.1:80" and server["weight"] == "1"
        assert by[("web", "10.0.0.2:80")]["status"] == "MAINT"
        assert by[("web", "BACKEND")]["status"] == "UP" and by[("web", "BACKEND")]["algo"] == "roundrobin"
        assert by[("db", "10.0.0.3:5432")]["status"] == "DOWN"
        assert by[("db", "BACKEND")]["status"] == "DOWN"
        # zdd's reading: servers of a backend that are MAINT with nothing open.
        maint = [
            r for r in rows if r["pxname"] == "web" and r["status"] == "MAINT" and r["scur"] == "0" and r["qcur"] == "0"
        ]
        assert len(maint) == 1
        # A draining backend (by hand here; a blue/green merge or a KILLING task likewise) is HAProxy's
        # MAINT in the CSV, marathon-lb's `disabled` server that zdd waits for; /stats keeps DRAIN.
        c.set_state("10.0.0.2:80", "drain")
        text = await (await client.get("/stats.csv")).text()
        assert ",DRAIN," not in text
        row = next(r for r in csv.reader(io.StringIO(text)) if r[:2] == ["web", "10.0.0.2:80"])
        assert row[header.index("status")] == "MAINT"
        s = await (await client.get("/stats")).json()
        assert s["services"][0]["backends"][1]["status"] == "DRAIN"

    run(t)


def test_haproxy_stats_without_csv_goes_to_the_dashboard() -> None:
    async def t(client, c, dp, p) -> None:
        r = await client.get("/haproxy?stats", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/"

    run(t)


def test_metrics_is_valid_exposition() -> None:
    async def t(client, c, dp, p) -> None:
        dp.backends["10.0.0.1:80"].update(active=4, total=9, bytes_out=77)
        r = await client.get("/metrics")
        assert r.status == 200 and r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        families = promtext.parse(await r.text())
        assert families["fastlb_table_generation"] == [("fastlb_table_generation", {}, 1.0)]
        assert families["fastlb_swaps_total"][0][2] == 1.0
        swap_seconds = {n for n, _, _ in families["fastlb_swap_seconds"]}
        assert swap_seconds == {"fastlb_swap_seconds_sum", "fastlb_swap_seconds_count"}
        active = {lab["backend"]: v for _, lab, v in families["fastlb_backend_connections_active"]}
        assert active == {"10.0.0.1:80": 4.0, "10.0.0.2:80": 0.0, "10.0.0.3:5432": 0.0}
        bytes_out = families["fastlb_service_bytes_out_total"]
        assert ("fastlb_service_bytes_out_total", {"service": "web"}, 77.0) in bytes_out
        listeners = {lab["listener"] for _, lab, _ in families["fastlb_listener_connections_total"]}
        assert listeners == {"127.0.0.1:8080", "127.0.0.1:5432", "127.0.0.1:80"}
        states = [(lab["backend"], lab["state"], v) for _, lab, v in families["fastlb_backend_state"] if v == 1]
        assert ("10.0.0.1:80", "ready", 1.0) in states
        assert families["fastlb_app_errors"][0][2] == 1.0

    run(t)


def test_metrics_reader_rejects_bad_exposition() -> None:
    for bad in (
        "x 1\n",  # no TYPE
        "# HELP x h\n# TYPE x gauge\nx{a=b} 1\n",  # unquoted label
        "# HELP x h\n# TYPE x gauge\nx one\n",  # not a number
        "# HELP x h\n# TYPE x gauge\n# TYPE x gauge\nx 1\n",  # TYPE twice
    ):
        try:
            promtext.parse(bad)
        except (ValueError, AssertionError):
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_routes_and_marathon_lb_reads() -> None:
    async def t(client, c, dp, p) -> None:
        for path in ("/routes", "/_haproxy_getconfig"):
            r = await client.get(path)
            assert r.status == 200
            body = await r.read()
            data = json.loads(body)
            assert data["generation"] == 1
            assert spec.decode(json.dumps(data["table"]).encode()) == TABLE
            assert body.endswith(spec.encode(TABLE) + b"}")
        assert await (await client.get("/_haproxy_getpids")).text() == f"{os.getpid()}\n"
        assert await (await client.get("/_haproxy_getvhostmap")).text() == "web.example.com web\n"
        assert await (await client.get("/_haproxy_getappmap")).text() == "/web web\n"

    run(t)


def test_hup_resyncs_every_provider() -> None:
    async def t(client, c, dp, p) -> None:
        assert (await client.post("/_mlb_signal/hup")).status == 200
        assert (await client.get("/_mlb_signal/hup")).status == 200
        assert p.resyncs == 2

    run(t)


def test_weights_are_plain_integers_and_bad_json_is_a_400() -> None:
    async def t(client, c, dp, p) -> None:
        url = "/backends/10.0.0.1:80/weight"
        json_type = {"Content-Type": "application/json"}
        for query in ("1_0", "\u0665", "1.9", "+5", " 5", "-1", "257", ""):
            assert (await client.post(url, params={"weight": query})).status == 400, query
        for body in (b'{"weight": 1.9}', b'{"weight": true}', b'{"weight": 1e309}', b'{"weight": -Infinity}',
                     b'{"weight": NaN}', b"[" * 50000 + b"]" * 50000, b'{"weight": "1_0"}'):
            r = await client.post(url, data=body, headers=json_type)
            assert r.status == 400, (body[:40], r.status)
        assert dp.backends["10.0.0.1:80"]["weight"] == 1  # none of them changed it
        assert (await client.post(url, data=b'{"weight": 7}', headers=json_type)).status == 200
        assert (await client.post(url, params={"weight": "8"})).status == 200
        assert dp.backends["10.0.0.1:80"]["weight"] == 8

    run(t)


def test_a_changing_request_from_another_site_is_refused() -> None:
    """A page on another site can make a browser POST here (a plain-text body needs no preflight)."""

    async def t(client, c, dp, p) -> None:
        url = "/backends/10.0.0.1:80/state"
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
            r = await client.post(url, data="maint", headers=headers)
            assert r.status == 403, headers
            r = await client.get("/_mlb_signal/hup", headers=headers)
            assert r.status == 403, headers
        assert dp.backends["10.0.0.1:80"]["state"] == "ready" and p.resyncs == 0
        host = f"{client.server.host}:{client.server.port}"
        r = await client.post(url, data="drain", headers={"Origin": f"http://{host}"})  # the dashboard's own
        assert r.status == 200 and dp.backends["10.0.0.1:80"]["state"] == "drain"
        assert (await client.get("/stats", headers={"Origin": "http://evil.example"})).status == 200

    run(t)


def test_backend_state_and_weight_by_hand() -> None:
    async def t(client, c, dp, p) -> None:
        r = await client.post("/backends/10.0.0.1:80/state", json={"state": "drain"})
        assert r.status == 200
        body = await r.json()
        assert (body["service"], body["state"], body["status"], body["override"]) == (
            "web", "drain", "DRAIN", {"state": "drain", "weight": None},
        )
        assert dp.backends["10.0.0.1:80"]["state"] == "drain"
        r = await client.post("/backends/10.0.0.1:80/weight?weight=5")
        assert r.status == 200 and (await r.json())["weight"] == 5
        r = await client.post("/backends/10.0.0.3:5432/state", data="maint")
        assert r.status == 200 and dp.backends["10.0.0.3:5432"]["state"] == "maint"
        assert (await client.post("/backends/10.0.0.1:80/state", json={"state": "off"})).status == 400
        assert (await client.post("/backends/10.0.0.1:80/weight", json={"weight": 999})).status == 400
        assert (await client.post("/backends/10.0.0.1:80/weight", json={"weight": "x"})).status == 400
        assert (await client.post("/backends/nope/state", json={"state": "drain"})).status == 404
        # A new table keeps the overrides.
        p.on_change(table(*TABLE.services, svc("extra", "10.0.0.9:1"), listeners=TABLE.listeners))
        await asyncio.sleep(0)
        s = await (await client.get("/stats")).json()
        web = {b["id"]: b for b in s["services"][0]["backends"]}
        assert (web["10.0.0.1:80"]["state"], web["10.0.0.1:80"]["weight"]) == ("drain", 5)
        assert dp.published[-1].services[0].backends[0].state == "drain"
        r = await client.delete("/backends/10.0.0.1:80/override")
        assert r.status == 200 and (await r.json())["override"] is None
        assert dp.backends["10.0.0.1:80"]["state"] == "ready" and dp.backends["10.0.0.1:80"]["weight"] == 1

    run(t)


def test_token_guards_every_changing_endpoint() -> None:
    async def t(client, c, dp, p) -> None:
        changing = [
            ("POST", "/backends/10.0.0.1:80/state?state=drain"),
            ("POST", "/backends/10.0.0.1:80/weight?weight=2"),
            ("DELETE", "/backends/10.0.0.1:80/override"),
            ("POST", "/_mlb_signal/hup"),
            ("GET", "/_mlb_signal/hup"),
        ]
        for method, path in changing:
            assert (await client.request(method, path)).status == 401, path
            bad = {"Authorization": "Bearer wrong"}
            assert (await client.request(method, path, headers=bad)).status == 401, path
        assert dp.backends["10.0.0.1:80"]["state"] == "ready" and p.resyncs == 0
        good = {"Authorization": "Bearer s3cret"}
        for method, path in changing:
            assert (await client.request(method, path, headers=good)).status == 200, path
        for path in ("/stats", "/metrics", "/stats.csv", "/routes", "/_health", "/"):
            assert (await client.get(path)).status == 200, path

    run(t, token="s3cret")


def test_dashboard_is_served_without_a_cdn() -> None:
    async def t(client, c, dp, p) -> None:
        r = await client.get("/")
        html = await r.text()
        assert r.status == 200 and r.content_type == "text/html"
        assert "/static/dashboard.js" in html and "http://" not in html and "https://" not in html
        js = await (await client.get("/static/dashboard.js")).text()
        assert 'fetch("/stats"' in js and "http://" not in js and "https://" not in js
        assert (await client.get("/static/dashboard.css")).status == 200

    run(t)


def zdd_rows(text: str) -> list[Any]:
    """The stats CSV read as zdd reads it (marathon-lb's zdd.py, parse_haproxy_stats): the header's
    names, then csv.reader with quotechar="'", each row cut of its last (empty) field and made a
    namedtuple: a row with one field more or less than the header raises."""
    lines = text.splitlines()
    headings = lines.pop(0).lstrip("# ").rstrip(",\n").split(",")
    row_type = collections.namedtuple("Row", headings)  # type: ignore[misc]
    return [row_type(*row[0:-1]) for row in csv.reader(lines, delimiter=",", quotechar="'") if row[0][0] != "#"]


def test_stats_csv_fields_never_hold_commas_or_quotes() -> None:
    """Health-check text (here a Python exception's repr), names and addresses reach the CSV without a
    comma, a quote of either kind or a line break, so that zdd's reader keeps every column."""
    async def t(client, c, dp, p) -> None:
        snap = stats.snapshot(c)
        web = snap["services"][0]
        web["name"] = "we'b,1"
        web["backends"][0]["check"] = {
            "up": False, "kind": "http", "status": "L4CON", "code": None, "duration_ms": 3,
            "last": "ConnectionRefusedError(111, 'Connect call failed (\"127.0.0.1\", 80)')\r\nmore",
            "passes": 0, "failures": 3, "changes": 1, "rise": 2, "fall": 3, "last_check": 1.0,
        }
        web["backends"][1]["name"] = 'a"b'
        text = stats.stats_csv(snap)
        rows = zdd_rows(text)
        assert len(rows) == len(text.splitlines()) - 1
        for line in text.splitlines()[1:]:
            assert line.count(",") == len(stats.CSV_COLUMNS)  # one per field, the trailing one included
            assert "'" not in line and '"' not in line and "\r" not in line
        server = next(r for r in rows if r.pxname == "web;1" and r.svname == "10.0.0.1:80")
        assert (server.check_status, server.check_desc, server.check_duration) == (
            "L4CON", "Layer4 connection problem", "3",
        )
        assert server.last_chk == "ConnectionRefusedError(111; Connect call failed (127.0.0.1; 80))  more"
        assert (server.chkfail, server.check_rise, server.check_fall, server.check_health) == ("3", "2", "3", "0")
        assert any(r.svname == "ab" for r in rows)

    run(t)


def test_stats_csv_check_columns_in_haproxy_words() -> None:
    async def t(client, c, dp, p) -> None:
        snap = stats.snapshot(c)
        backends = snap["services"][0]["backends"]
        backends[0]["check"] = {
            "up": True, "kind": "http", "status": "L7OK", "code": 200, "duration_ms": 1, "last": "status 200",
            "passes": 5, "failures": 0, "changes": 0, "rise": 2, "fall": 3, "last_check": 1.0,
        }
        backends[1]["check"] = {
            "up": True, "kind": "http", "status": "L7STS", "code": 503, "duration_ms": 2, "last": "status 503",
            "passes": 0, "failures": 1, "changes": 0, "rise": 2, "fall": 3, "last_check": 1.0,
        }
        rows = {r.svname: r for r in zdd_rows(stats.stats_csv(snap)) if r.pxname == "web"}
        ok, failing = rows["10.0.0.1:80"], rows["10.0.0.2:80"]
        assert (ok.check_status, ok.check_code, ok.last_chk, ok.check_desc, ok.check_health) == (
            "L7OK", "200", "status 200", "Layer7 check passed", "4",
        )
        # one failure of three: still up, its health counter one lower (HAProxy's rise+fall-1 - failures)
        assert (failing.check_status, failing.check_code, failing.check_desc, failing.check_health) == (
            "L7STS", "503", "Layer7 wrong status", "3",
        )
        assert rows["BACKEND"].check_status == ""  # no check columns on a BACKEND row

    run(t)


def test_status_counters_in_csv_stats_and_metrics() -> None:
    async def t(client, c, dp, p) -> None:
        one, two = dp.backends["10.0.0.1:80"], dp.backends["10.0.0.2:80"]
        one.update(requests=7, responses={"1xx": 0, "2xx": 5, "3xx": 1, "4xx": 1, "5xx": 0, "other": 0})
        two.update(requests=3, responses={"1xx": 1, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 2, "other": 0})
        text = await (await client.get("/stats.csv")).text()
        rows = {(r.pxname, r.svname): r for r in zdd_rows(text)}
        hrsp = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other", "req_tot")
        assert [getattr(rows[("web", "10.0.0.1:80")], k) for k in hrsp] == ["0", "5", "1", "1", "0", "0", "7"]
        assert [getattr(rows[("web", "10.0.0.2:80")], k) for k in hrsp] == ["1", "0", "0", "0", "2", "0", "3"]
        assert [getattr(rows[("web", "BACKEND")], k) for k in hrsp] == ["1", "5", "1", "1", "2", "0", "10"]
        assert rows[("web", "BACKEND")].req_rate == "0"
        # tcp mode has no HTTP columns
        assert [getattr(rows[("db", "BACKEND")], k) for k in hrsp] == [""] * 7
        s = await (await client.get("/stats")).json()
        web = s["services"][0]
        assert (web["requests"], web["responses"]["5xx"], web["backends"][1]["responses"]["1xx"]) == (10, 2, 1)
        families = promtext.parse(await (await client.get("/metrics")).text())
        by_code = {
            (lab["service"], lab["code"]): v for _, lab, v in families["fastlb_service_http_responses_total"]
        }
        assert by_code == {
            ("web", "1xx"): 1.0, ("web", "2xx"): 5.0, ("web", "3xx"): 1.0, ("web", "4xx"): 1.0, ("web", "5xx"): 2.0,
            ("web", "other"): 0.0,
        }
        assert families["fastlb_service_http_requests_total"] == [
            ("fastlb_service_http_requests_total", {"service": "web"}, 10.0)
        ]
        per_backend = {
            (lab["backend"], lab["code"]): v for _, lab, v in families["fastlb_backend_http_responses_total"]
        }
        assert per_backend[("10.0.0.2:80", "5xx")] == 2.0 and ("10.0.0.3:5432", "2xx") not in per_backend

    run(t)


def test_req_rate_is_the_rate_over_the_last_second() -> None:
    meter = stats.RateMeter()
    assert meter.rates(100.0, {"s:web": 0}) == {}  # nothing to compare with yet
    assert meter.rates(100.5, {"s:web": 50}) == {"s:web": 100.0}  # the only sample is half a second old
    meter.sample(101.0, {"s:web": 60})
    # the newest sample at least a second old is 100.5's: (260 - 50) / 1
    assert meter.rates(101.5, {"s:web": 260}) == {"s:web": 210.0}
    assert meter.max["s:web"] == 210.0
    assert meter.rates(103.0, {"s:web": 260}) == {"s:web": 0.0}
    # a counter that went back (its backend left and came back) counts no negative rate
    assert meter.rates(104.0, {"s:web": 10}) == {"s:web": 0.0}
    meter.rates(104.5, {"s:web": 20, "b:gone": 0})
    assert set(meter.max) == {"s:web"}
    assert meter.rates(105.0, {"b:new": 5}) == {"b:new": 0.0} and meter.max == {}  # web left
    for t in range(105, 130):
        meter.sample(float(t), {"s:web": 10})
    assert meter.samples[0][0] >= 129 - stats.RateMeter.KEEP_S - 1  # old samples are let go
