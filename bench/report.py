"""From raw runs to results.md, summary.json and chart.png.

A run belongs to a point: metric × clients × backends × workers. Ratios are paired by block inside a
point: for a pair (X, Y), each block where both X and Y succeeded (and stayed under the steal limit)
gives one ratio X/Y. The report gives their median, min and max, a bootstrap 95% interval of the median,
and a two-sided sign test against "no difference".

Results written before the sweep existed (no clients/backends/workers in a run) are read as one point
per metric: the run's --connections (iperf3: its streams), one backend, one worker.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

PAIRS = [("F", "H"), ("F", "D"), ("H", "D"), ("Fn", "Hn"), ("Fn", "F"), ("Hn", "H"), ("F", "Hn"), ("Hn", "D"),
         ("Fn", "D"), ("H2", "H"), ("F", "Hr"), ("Hr", "H")]

# The figures of a run that are compared: field prefix in the summary -> how to read it from a record.
FIGURES = {
    "": lambda r: r.get("value"),
    "cpu_": lambda r: r.get("cpu_per_unit"),
    "p99_": lambda r: (r.get("load") or {}).get("p99"),
    "after_": lambda r: r.get("after_value"),
}

Key = tuple[str, int, int, int]  # metric, clients, backends, workers


def usable(rec: dict, max_steal: float) -> bool:
    return rec["status"] == "ok" and float(rec.get("steal_pct", 0.0)) <= max_steal


def bootstrap_median_ci(values: list[float], seed: int = 1, rounds: int = 2000) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (math.nan, math.nan)
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return meds[int(0.025 * rounds)], meds[int(0.975 * rounds) - 1]


def sign_test(ratios: list[float]) -> float:
    """Two-sided exact sign test p-value for "X/Y is as often above 1 as below"."""
    above = sum(1 for r in ratios if r > 1)
    below = sum(1 for r in ratios if r < 1)
    n = above + below
    if n == 0:
        return 1.0
    k = min(above, below)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _num(v: object) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def point_of(rec: dict, meta: dict) -> Key:
    """The point a run belongs to; older results (no sweep fields) give their single point."""
    m = rec["metric"]
    info = meta.get("metric_info", {}).get(m, {})
    default_clients = info.get("streams", 1) if info.get("tool") == "iperf3" else meta.get("connections") or 32
    return (m, int(rec.get("clients", default_clients)), int(rec.get("backends", 1)), int(rec.get("workers", 1)))


def points(meta: dict, records: list[dict]) -> list[Key]:
    """Every point, in the order the run planned them (or first met them in older results)."""
    out: list[Key] = []
    for p in meta.get("points", []):
        key = (p["metric"], int(p["clients"]), int(p["backends"]), int(p["workers"]))
        if key not in out:
            out.append(key)
    for r in records:
        key = point_of(r, meta)
        if key not in out:
            out.append(key)
    return out


def label(key: Key) -> str:
    m, c, b, w = key
    return f"{m} c{c} b{b} w{w}"


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def _arm_summary(mine: list[dict], max_steal: float) -> dict:
    good = [r for r in mine if usable(r, max_steal)]

    def col(get) -> list[float]:
        return [v for v in (_num(get(r)) for r in good) if v is not None]

    vals = col(FIGURES[""])
    lat = {q: col(lambda r, q=q: (r.get("load") or {}).get(q)) for q in ("p50", "p99", "p999")}
    idle = [r["idle"] for r in good if isinstance(r.get("idle"), dict)]
    out = {
        "runs": len(mine), "used": len(good),
        "failed": sum(1 for r in mine if r["status"] not in ("ok", "skipped")),
        "skipped": sum(1 for r in mine if r["status"] == "skipped"),
        "steal_excluded": sum(1 for r in mine if r["status"] == "ok" and not usable(r, max_steal)),
        "median": _median(vals),
        "min": min(vals) if vals else None, "max": max(vals) if vals else None,
        "cov_pct": (100 * statistics.stdev(vals) / statistics.mean(vals)) if len(vals) > 1 and statistics.mean(
            vals) else None,
        "cpu_median": _median(col(FIGURES["cpu_"])),
        "errors": sum(int(r.get("errors") or 0) for r in mine),
        "p50_us": _median(lat["p50"]), "p99_us": _median(lat["p99"]), "p999_us": _median(lat["p999"]),
        "bconn_median": _median(col(lambda r: r.get("backend_conns_per_unit"))),
        "rss_kib_median": _median(col(lambda r: r.get("proxy_rss_kib"))),
        "rss_peak_kib_median": _median(col(lambda r: r.get("proxy_rss_peak_kib"))),
    }
    if idle:
        opened = [float(i["opened"]) for i in idle]
        out.update(
            after_median=_median(col(FIGURES["after_"])),
            opened_median=_median(opened),
            open_idle_median=_median([float(i["open"][0]) for i in idle]),
            open_after_median=_median([float(i["open"][1]) for i in idle]),
            answered_median=_median([float(i["answered"]) for i in idle]),
            fds_per_conn_median=_median([(i["fds"][1] - i["fds"][0]) / i["opened"] for i in idle if i["opened"]]),
            fds_after_per_conn_median=_median([(i["fds"][2] - i["fds"][0]) / i["opened"] for i in idle
                                               if i["opened"]]),
            bconn_median=_median([i["backend_conns"] / i["opened"] for i in idle if i["opened"]]),
        )
    tls = [r["tls"] for r in good if isinstance(r.get("tls"), dict)]
    if tls:
        out.update(_tls_summary(tls))
    return out


def _tls_summary(tls: list[dict]) -> dict:
    """bench/tls.py's handshake counts of an arm's used runs: the client's (wrk's shim) and the proxy's."""
    client = [t["client"] for t in tls if t.get("client")]
    server = [t["server"] for t in tls if t.get("server")]
    kinds: dict[str, int] = {}
    for c in client:
        k = f"{c.get('version', '?')} {c.get('cipher', '?')}"
        kinds[k] = kinds.get(k, 0) + 1
    return {
        "tls_handshakes_median": _median([float(c["handshakes"]) for c in client]),
        "tls_resumed_pct_median": _median([100 * c["resumed"] / c["handshakes"] for c in client if c["handshakes"]]),
        "tls_offered_pct_median": _median([100 * c["offered"] / c["handshakes"] for c in client if c["handshakes"]]),
        "tls_server_handshakes_median": _median([float(v["handshakes"]) for v in server]),
        "tls_server_resumed_pct_median": _median([100 * v["resumed"] / v["handshakes"] for v in server
                                                  if v["handshakes"]]),
        "tls_server_failed": sum(sum(v["failed"].values()) for v in server) if server else None,
        "tls_protocols": kinds,
    }


def _ratio_entry(pairs: list[tuple[int, dict, dict]]) -> dict:
    entry: dict = {}
    for key, get in FIGURES.items():
        rs = []
        for _, rx, ry in pairs:
            x, y = _num(get(rx)), _num(get(ry))
            if x is not None and y:
                rs.append(x / y)
        entry[f"{key}n"] = len(rs)
        entry[f"{key}per_block"] = rs
        if rs:
            lo, hi = bootstrap_median_ci(rs)
            entry.update({f"{key}median": statistics.median(rs), f"{key}min": min(rs), f"{key}max": max(rs),
                          f"{key}ci95": [lo, hi], f"{key}sign_p": sign_test(rs)})
    return entry


def summarize(meta: dict, records: list[dict]) -> dict:
    """{"points": [one entry per point: its coordinates, per-arm figures and paired ratios]}."""
    max_steal = float(meta.get("max_steal", 2.0))
    by_point: dict[Key, list[dict]] = {}
    for r in records:
        by_point.setdefault(point_of(r, meta), []).append(r)
    out = []
    for key in points(meta, records):
        runs = by_point.get(key, [])
        arms = [a for a in meta["arms"] if any(r["arm"] == a for r in runs)] or list(meta["arms"])
        per_arm = {a: _arm_summary([r for r in runs if r["arm"] == a], max_steal) for a in arms}
        ratios = {}
        for x, y in PAIRS:
            if x not in arms or y not in arms:
                continue
            by_block: dict[int, dict[str, dict]] = {}
            for r in runs:
                if usable(r, max_steal) and r["arm"] in (x, y):
                    by_block.setdefault(r["block"], {})[r["arm"]] = r
            pairs = [(b, v[x], v[y]) for b, v in sorted(by_block.items()) if x in v and y in v]
            ratios[f"{x}/{y}"] = _ratio_entry(pairs)
        m, c, b, w = key
        out.append({"metric": m, "clients": c, "backends": b, "workers": w, "label": label(key),
                    "arms": per_arm, "ratios": ratios})
    return {"points": out}


def _f(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _ratio_cell(r: dict | None, key: str) -> str:
    if not r or not r.get(f"{key}n"):
        return "–"
    return f"**{r[f'{key}median']:.3f}**"


def _arm_cell(a: dict, field: str, digits: int = 3) -> str:
    """A per-arm median, or why there is none (every run skipped or failed)."""
    if a.get(field) is not None:
        return _f(a[field], digits)
    if not a["runs"]:
        return "not run"
    if a["runs"] and a["skipped"] == a["runs"]:
        return "skipped"
    if a["runs"] and a["failed"] and not a["used"]:
        return "failed"
    if a["runs"] and a["steal_excluded"] and not a["used"]:
        return "(steal)"
    return "–"


def _ratio_table(summary: dict, key: str) -> list[str]:
    """Every pair at every point for one figure: <key> "" (throughput), "cpu_", "p99_" or "after_"."""
    L = ["| point | ratio | n | median | min | max | 95% CI of median | sign test p |",
         "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in summary["points"]:
        for name, r in s["ratios"].items():
            if not r.get(f"{key}n"):
                continue
            lo, hi = r[f"{key}ci95"]
            L.append(f"| {s['label']} | {name} | {r[f'{key}n']} | **{r[f'{key}median']:.3f}** | "
                     f"{r[f'{key}min']:.3f} | {r[f'{key}max']:.3f} | {lo:.3f}–{hi:.3f} | {r[f'{key}sign_p']:.3g} |")
    L.append("")
    return L


def _groups(summary: dict, metric: str) -> list[tuple[int, int, list[dict]]]:
    """(workers, backends, points in client order) of one metric."""
    out: dict[tuple[int, int], list[dict]] = {}
    for s in summary["points"]:
        if s["metric"] == metric:
            out.setdefault((s["workers"], s["backends"]), []).append(s)
    return [(w, b, sorted(ps, key=lambda s: s["clients"])) for (w, b), ps in out.items()]


def _sweep_tables(meta: dict, summary: dict, metric: str) -> list[str]:
    info = meta["metric_info"][metric]
    arms = list(meta["arms"])
    proxies = [a for a in arms if a != "D"]
    fh = "F" in arms and "H" in arms
    x_name = "streams" if info.get("tool") == "iperf3" else "clients"
    L: list[str] = []
    for w, b, pts in _groups(summary, metric):
        L.append(f"### {metric}: {info.get('title') or metric}; {b} backend{'s' if b > 1 else ''}, "
                 f"{w} worker{'s' if w > 1 else ''}")
        L.append("")
        head = [x_name] + [f"{a} {info['unit']}" for a in arms] + (["F/H"] if fh else [])
        head += [f"{a} {info['cpu_unit']}" for a in proxies] + (["F/H CPU"] if fh else [])
        has_lat = info.get("tool") == "wrk"
        if has_lat:
            head += [f"{a} p99 µs" for a in arms] + (["F/H p99"] if fh else [])
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + " --- |" * len(head))
        for s in pts:
            A, r = s["arms"], s["ratios"].get("F/H")
            row = [str(s["clients"])] + [_arm_cell(A[a], "median") if a in A else "–" for a in arms]
            row += [_ratio_cell(r, "")] if fh else []
            row += [_arm_cell(A[a], "cpu_median") if a in A else "–" for a in proxies]
            row += [_ratio_cell(r, "cpu_")] if fh else []
            if has_lat:
                row += [_arm_cell(A[a], "p99_us") if a in A else "–" for a in arms]
                row += [_ratio_cell(r, "p99_")] if fh else []
            L.append("| " + " | ".join(row) + " |")
        L.append("")
        L.append(f"Per arm ({x_name} × arm; medians over the blocks):")
        L.append("")
        L.append(f"| {x_name} | arm | used/runs | p50 µs | p99 µs | p99.9 µs | backend conns per "
                 f"{'req' if info.get('tool') == 'wrk' else 'byte'} | proxy RSS MiB (end / peak) | errors | note |")
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for s in pts:
            for a, v in s["arms"].items():
                note = [] if v["runs"] else ["not run"]
                if v["skipped"]:
                    note.append(f"{v['skipped']} skipped")
                if v["failed"]:
                    note.append(f"{v['failed']} failed")
                if v["steal_excluded"]:
                    note.append(f"{v['steal_excluded']} left out: steal")
                rss = "–"
                if v["rss_kib_median"] is not None:
                    peak = v["rss_peak_kib_median"]
                    rss = f"{v['rss_kib_median'] / 1024:.1f}" + (f" / {peak / 1024:.1f}" if peak is not None else "")
                L.append(f"| {s['clients']} | {a} | {v['used']}/{v['runs']} | {_f(v['p50_us'])} | {_f(v['p99_us'])} | "
                         f"{_f(v['p999_us'])} | {_f(v['bconn_median'])} | {rss} | {v['errors']} | "
                         f"{', '.join(note)} |")
        L.append("")
    return L


IDLE_COMMON = ("Both proxies run with `http_request` and `http_keepalive` timeouts of "
               "120 s for this metric, so that neither closes the connections while they are measured; \"open\" "
               "counts those still open at each reading. Open files and backend connections are per client "
               "connection. RSS is the whole process (fastlb's includes its Python control plane).")
# The idle metrics: section title, what the first reading is, and how they are made.
IDLE_TEXT = {
    "idle": {"title": "Memory per idle client connection", "first": "idle", "how": (
        "The harness opens N connections to the proxy and sends nothing; once the proxy's open files stop "
        "changing it reads the proxy's RSS (**idle**). Then it sends one keep-alive `GET /` on each "
        "connection, reads the response, leaves them idle again and reads RSS once more (**after a "
        "request**). kB per connection = (RSS then − RSS before the first connection) / connections opened. ")},
    "tls_idle": {"title": "Memory per idle TLS connection", "first": "after the handshake", "how": (
        "The harness opens N connections to the proxy and completes a TLS handshake on each (Python's ssl, "
        "the run's certificate, SNI and Host the benchmark's name), then sends nothing; once the proxy's "
        "open files stop changing it reads the proxy's RSS (**after the handshake**). Then it sends one "
        "keep-alive `GET /` on each connection, reads the response, leaves them idle again and reads RSS "
        "once more (**after a request**: the figure asked of an idle TLS connection). kB per connection = "
        "(RSS then − RSS before the first connection) / connections that completed their handshake. ")},
}


def _idle_tables(meta: dict, summary: dict) -> list[str]:
    L: list[str] = []
    for metric in meta["metrics"]:
        if meta["metric_info"][metric].get("tool") == "idle":
            L += _idle_table(summary, metric)
    return L


def _idle_table(summary: dict, metric: str) -> list[str]:
    pts = [s for s in summary["points"] if s["metric"] == metric]
    if not pts:
        return []
    text = IDLE_TEXT.get(metric, IDLE_TEXT["idle"])
    first = text["first"]
    L = [f"## {text['title']}", "", text["how"] + IDLE_COMMON, "",
         f"| backends | workers | arm | used/runs | opened | open {first} / after | answered | kB/conn {first} | "
         f"kB/conn after a request | open files per conn ({first} / after) | backend conns per conn |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in pts:
        for a, v in s["arms"].items():
            if not v["used"]:
                why = "skipped" if v["skipped"] else "failed"
                L.append(f"| {s['backends']} | {s['workers']} | {a} | 0/{v['runs']} | {why} | | | | | | |")
                continue
            L.append(f"| {s['backends']} | {s['workers']} | {a} | {v['used']}/{v['runs']} | "
                     f"{_f(v.get('opened_median'), 5)} | {_f(v.get('open_idle_median'), 5)} / "
                     f"{_f(v.get('open_after_median'), 5)} | {_f(v.get('answered_median'), 5)} | "
                     f"**{_f(v['median'])}** | **{_f(v.get('after_median'))}** | {_f(v.get('fds_per_conn_median'))} / "
                     f"{_f(v.get('fds_after_per_conn_median'))} | "
                     f"{_f(v.get('bconn_median'))} |")
    L.append("")
    ratios = [(s, n, r) for s in pts for n, r in s["ratios"].items() if r.get("n")]
    if ratios:
        L.append(f"| backends | workers | ratio | n | kB/conn {first} | kB/conn after a request |")
        L.append("| --- | --- | --- | --- | --- | --- |")
        for s, n, r in ratios:
            L.append(f"| {s['backends']} | {s['workers']} | {n} | {r['n']} | {_ratio_cell(r, '')} | "
                     f"{_ratio_cell(r, 'after_')} |")
        L.append("")
    return L


def _tls_intro(meta: dict) -> list[str]:
    t = meta.get("tls")
    if not t:
        return []
    cert = t.get("certificate") or {}
    key = "ECDSA P-256" if t.get("key") == "ec" else "RSA 2048"
    sessions = t.get("sessions") or {}
    L = ["## TLS setup", "",
         f"- One self-signed certificate for every arm: {key}, `{cert.get('subject', '?')}`, the only name "
         f"`{t.get('vhost')}` (SNI from wrk is the URL's host, 127.0.0.1, which no certificate names: every "
         f"arm serves its default, this one); made by `openssl req -x509` into `{t.get('cert')}` (certificate "
         f"and key in one file). {t.get('openssl', '')}.",
         "- D: nginx (1 worker, the backend itself) terminating TLS on its own port, TLS 1.2 and 1.3, nginx's "
         "session defaults (tickets, no cache). H: HAProxy `bind ... ssl crt <pem> alpn http/1.1`, its "
         "defaults (session cache and tickets on), Host routed to the backends. F: fastlb's `[https]` "
         "listener with `certs = [<pem>]`, a service with `vhosts = [name]`, its defaults (tickets with "
         "random keys, no session cache). H and F send plain HTTP to the same nginx.",
         "- wrk runs under an LD_PRELOAD shim (`bench/tlsshim.c`) that counts every handshake it completes and "
         "how many resumed, and sets what a new connection offers: " + "; ".join(
             f"{m}: {v}" for m, v in sessions.items()) + ". The proxy's own counters (fastlb `/stats` "
         "`listeners[].tls`, HAProxy's stats socket `ssl_sess`/`ssl_reused_sess`) are read just outside "
         "the measured window.",
         f"- tls_gbps downloads a {t.get('gbps_mib')} MiB file (sparse: zeros) over one keep-alive connection "
         "for the measured window; Gbit/s = bytes wrk read × 8 / its duration; CPU per GB.",
         "- hs/s: handshakes per second; with `Connection: close` each carries one request, so it is wrk's "
         "requests/s. CPU µs/hs: the proxy's CPU time over the window per such connection (handshake, "
         "request, the backend's answer and the close).", ""]
    return L


def _tls_tables(meta: dict, summary: dict) -> list[str]:
    rows = [(s, a, v) for s in summary["points"] for a, v in s["arms"].items() if "tls_resumed_pct_median" in v
            or "tls_server_handshakes_median" in v]
    if not rows:
        return []
    L = ["## TLS handshakes", "",
         "Per point and arm, medians over the blocks: handshakes wrk completed in the measured window, the "
         "share that resumed a session and the share that offered one (the shim's counts); the proxy's own "
         "count of handshakes and resumed share over the same window; failed handshakes the proxy counted "
         "(summed over blocks: fastlb's `failed` by every reason, HAProxy's `ssl_failed_handshake`; each wrk run "
         "first checks the address with one connection it closes at once, which counts there, as do "
         "connections caught mid-handshake when wrk stops, the window's and, seen late, the warm-up's); the "
         "protocol and cipher the client got.", "",
         "| point | arm | handshakes (client) | resumed % (client) | offered % | handshakes (proxy) | "
         "resumed % (proxy) | failed (proxy) | protocol and cipher |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s, a, v in rows:
        protos = ", ".join(sorted(v.get("tls_protocols") or {})) or "–"
        failed = v.get("tls_server_failed")
        L.append(f"| {s['label']} | {a} | {_f(v.get('tls_handshakes_median'), 5)} | "
                 f"{_f(v.get('tls_resumed_pct_median'))} | {_f(v.get('tls_offered_pct_median'))} | "
                 f"{_f(v.get('tls_server_handshakes_median'), 5)} | {_f(v.get('tls_server_resumed_pct_median'))} | "
                 f"{'–' if failed is None else failed} | {protos} |")
    L.append("")
    return L


def _open_files(meta: dict, records: list[dict]) -> list[str]:
    nofile = meta.get("nofile") or [0, 0]
    need = meta.get("nofile_needed")
    if need is None:
        return [f"- open files limit (soft, hard): {nofile}"]
    L = [f"- open files: the largest point needs **{need}** (2.6 per connection, HAProxy's maxconn rule, "
         f"+ 256, for the proxy; wrk and the idle client need about one per connection); the harness had "
         f"soft **{nofile[0]}**, hard {nofile[1]} (it raises the soft limit to the hard one)."]
    skipped = meta.get("skipped_points") or []
    if skipped:
        L.append(f"- **{len(skipped)} point(s) skipped** for want of open files (recorded per arm and block as "
                 "\"skipped\"):")
        for p in skipped:
            L.append(f"  - {p['metric']} c{p['clients']} b{p['backends']} w{p['workers']}: {p['reason']}")
    else:
        L.append("- No point was skipped for want of open files.")
    return L


def render_md(meta: dict, records: list[dict], summary: dict) -> str:
    mi = meta["metric_info"]
    pts = summary["points"]
    L: list[str] = []
    L.append(f"# fastlb benchmark, {meta['kind'].upper()}: {', '.join(meta['arms'])}")
    L.append("")
    clients = meta.get("clients") or [meta.get("connections", 32)]
    workers = meta.get("workers", [1])
    L.append(f"Started {meta['started']}, finished {meta.get('finished', '?')}, status **{meta['status']}**. "
             f"{meta['blocks']} blocks × {len(pts)} points × up to {len(meta['arms'])} arms (metrics "
             f"{', '.join(meta['metrics'])}; clients {', '.join(map(str, clients))}; backends "
             f"{', '.join(map(str, meta.get('backends', [1])))}; workers {', '.join(map(str, workers))}"
             f"). Each run: {meta['warmup']:g} s warm-up, {meta['duration']:g} s measured; arms in a random order "
             f"per block and point (seed {meta['seed']}). Runs with more than {meta['max_steal']:g}% CPU steal "
             f"are left out of the medians.")
    L.append("")
    L.append("Arms: " + "; ".join(f"**{k}** = {v}" for k, v in meta["arm_labels"].items()) + ".")
    if {"F", "Fn"} & set(meta["arms"]):
        how = {"cli": "`python3 -m fastlb run --config <toml> --workers N`",
               "serve": "bench/fastlb_serve.py (a spec.RouteTable published into fastlb._core.DataPlane; "
                        "no control plane)"}.get(meta["fastlb_launcher"], meta["fastlb_launcher"])
        L.append(f"F was started by {how}; fastlb revision {meta.get('fastlb_revision', '?')}.")
    L.append("")
    L += _tls_intro(meta)
    L += _open_files(meta, records)
    L.append("")
    L.append("Tables: one per metric, backends and workers; rows are client connections (wrk `-c`); cells are "
             "medians over the blocks; **F/H** columns are the median of the per-block ratios F/H (paired in "
             "a block; n, range, interval and sign test in \"Paired ratios\" below). CPU is the proxy "
             "process's CPU time (all threads, user + system) over the measured window per unit of work; "
             "p99 is wrk's. \"skipped\", \"failed\", \"(steal)\": every run of that arm there was skipped, "
             "failed, or was left out for steal (see the raw runs).")
    L.append("")
    for m in meta["metrics"]:
        if mi[m].get("tool") == "idle":
            continue
        if mi[m].get("paced"):
            L.append(f"{m}: offered at a fixed rate ({meta.get('rate_ka')} req/s for ka_fixed, "
                     f"{meta.get('rate_cps')} conn/s for cps_fixed, spread over the clients by wrk's "
                     "per-connection delay): its rate only checks that every arm kept up; its figure is CPU "
                     "per unit.")
            L.append("")
        L += _sweep_tables(meta, summary, m)
    L += _idle_tables(meta, summary)
    L += _tls_tables(meta, summary)
    L.append("## Paired ratios")
    L.append("")
    L.append("Per point and pair X/Y: the ratio of the two runs of each block (both under the steal limit), "
             "its median over the blocks, range, bootstrap 95% interval and two-sided sign test.")
    L.append("")
    sections = [("cpu_", "Proxy CPU per unit of work (< 1: X spends less CPU)"),
                ("", "Throughput (> 1: X is faster; idle: kB per connection, < 1: X uses less memory)"),
                ("p99_", "p99 latency (< 1: X's tail is shorter; moves with steal far more than medians)"),
                ("after_", "Idle memory after a request (< 1: X uses less memory)")]
    for key, title in sections:
        if any(r.get(f"{key}n") for s in pts for r in s["ratios"].values()):
            L.append(f"### {title}")
            L.append("")
            L += _ratio_table(summary, key)
    if "H2" in meta["arms"]:
        L.append("## A/A control (H2/H: two identical HAProxy arms)")
        L.append("")
        for s in pts:
            r = s["ratios"].get("H2/H")
            if r and r.get("n"):
                spread = max(abs(x - 1) for x in r["per_block"])
                line = (f"- {s['label']}: throughput H2/H median {r['median']:.3f}, range {r['min']:.3f}–"
                        f"{r['max']:.3f} (±{100 * spread:.1f}%)")
                if r.get("cpu_n"):
                    cspread = max(abs(x - 1) for x in r["cpu_per_block"])
                    line += (f"; CPU per unit H2/H median {r['cpu_median']:.3f}, range {r['cpu_min']:.3f}–"
                             f"{r['cpu_max']:.3f} (±{100 * cspread:.1f}%)")
                L.append(line + ".")
        L.append("")
        L.append("Differences between other arms smaller than these spreads are noise, not findings.")
        L.append("")
    L += _layout(meta)
    L.append("## Machine")
    L.append("")
    for k, v in meta["machine"].items():
        L.append(f"- {k}: {v}")
    L.append(f"- open files limit (soft, hard): {meta['nofile']}")
    L.append("")
    L.append("Sysctls:")
    L.append("")
    L.append("| name | before | wanted | during the run | result |")
    L.append("| --- | --- | --- | --- | --- |")
    for t in meta["tuning"]:
        L.append(f"| {t['name']} | {t['before']} | {t['wanted'] or ''} | {t['after']} | {t['result']} |")
    L.append("")
    L.append("Sysctls the harness set are put back when it ends.")
    L.append("")
    L += _commands(meta, records)
    L += _raw_runs(meta, records)
    return "\n".join(L)


def _layout(meta: dict) -> list[str]:
    lay = meta["layout"]
    p, ld = lay["proxy_cpu"], lay["load_cpu"]
    L = ["## Layout", ""]
    L.append(f"- One worker: the proxy (HAProxy `nbthread 1`, fastlb `--workers 1`) pinned to CPU{p} with "
             f"`taskset -c {p}` (HAProxy also `cpu-map 1/1 {p}`); CPU{p} runs nothing else.")
    for w, cpus in sorted((lay.get("proxy_cpus") or {}).items(), key=lambda kv: int(kv[0])):
        if int(w) <= 1:
            continue
        shares = str(ld) in cpus.split(",")
        L.append(f"- {w} workers: the proxy (HAProxy `nbthread {w}`, `cpu-map 1/1-{w} {cpus}`; fastlb "
                 f"`--workers {w}`) runs on CPUs {cpus} (`taskset -c {cpus}`)"
                 + (f". **The load generator and the backend then share CPU{ld} with the proxy**: raw rates "
                    "measure the whole box, and the proxy's CPU per unit includes what it loses to that "
                    "contention (and to its own thread handoffs)." if shares else "."))
    L.append(f"- Load generator (`wrk -t1`, `iperf3 -c`, the idle client) and backend (one nginx, 1 worker, "
             f"one listening address per backend: 127.0.0.1, 127.0.0.2, ...; `iperf3 -s`) pinned to CPU{ld}. "
             f"In D, no proxy runs.")
    L.append("- With several backends every proxy arm round-robins over all their addresses; D, which has no "
             "proxy, sends to the first address (the same nginx serves them all). Backend connections per "
             "request are nginx's stub_status `accepts` before and after the measured window (the second "
             "read's own connection taken off) over wrk's requests: for D, its own client connections.")
    L.append("- Every run restarts the backend and the proxy; everything runs over loopback (127.0.0.0/8).")
    L.append(f"- With one worker, CPU{ld} usually saturates first: raw rates then compare what is left of "
             f"CPU{ld} as much as the proxies, so the proxy's CPU per unit of work is the figure that survives "
             "the shared box. wrk's latency is closed-loop: near saturation its tail is not the proxy's alone.")
    L.append("")
    return L


def _commands(meta: dict, records: list[dict]) -> list[str]:
    L = ["## Commands", "", "```", " ".join(meta["argv"]), "```", ""]
    seen = set()
    for r in records:
        key = (r["metric"], r["arm"], r.get("workers", 1))
        if key in seen or not r.get("commands"):
            continue
        seen.add(key)
        L.append(f"{r['metric']} / {r['arm']} / {r.get('workers', 1)} worker(s) (first run; other points differ "
                 "in wrk's -c and the backend addresses):")
        L.append("```")
        for name, cmd in r["commands"].items():
            L.append(f"{name}: {cmd}")
        L.append("```")
    L.append("Config files are rendered from bench/templates/ into runs/<block>-<metric>-c<clients>-be<backends>-"
             "w<workers>-<arm>/; every run's commands are in results.json.")
    L.append("")
    return L


def _raw_runs(meta: dict, records: list[dict]) -> list[str]:
    L = ["## Raw runs", "",
         "| block | metric | clients | backends | workers | order | arm | status | value | errors | proxy CPU s | "
         "CPU per unit | p99 µs | backend conns/unit | RSS MiB | CPU busy % (per CPU) | steal % | note |",
         "|" + " --- |" * 18]
    for r in records:
        m, c, b, w = point_of(r, meta)
        busy = " / ".join(f"{v['busy_pct']:.0f}" for _, v in sorted(r.get("cpus", {}).items()))
        note = str(r.get("reason", "")).splitlines()[0][:120] if r["status"] != "ok" else str(r.get("note", ""))
        if r["status"] == "ok" and not usable(r, float(meta["max_steal"])):
            note = "left out: steal"
        if r["status"] == "ok" and r.get("after_value") is not None:
            note = (note + "; " if note else "") + f"after a request {_f(r['after_value'])} kB/conn"
        client = (r.get("tls") or {}).get("client") if r["status"] == "ok" else None
        if client:
            note = (note + "; " if note else "") + f"TLS resumed {client['resumed']}/{client['handshakes']}"
        rss = r.get("proxy_rss_kib")
        L.append(f"| {r['block']} | {m} | {c} | {b} | {w} | {r['position']} | {r['arm']} | {r['status']} | "
                 f"{_f(r.get('value'), 4)} | {r.get('errors', '–')} | {_f(r.get('proxy_cpu_s'))} | "
                 f"{_f(r.get('cpu_per_unit'))} | {_f((r.get('load') or {}).get('p99'))} | "
                 f"{_f(r.get('backend_conns_per_unit'))} | {_f(rss / 1024 if rss else None)} | {busy} | "
                 f"{r.get('steal_pct', '–')} | {note} |")
    L.append("")
    return L


ARM_COLORS = {"D": "#7f7f7f", "H": "#1f77b4", "Hn": "#17becf", "H2": "#9467bd", "F": "#ff7f0e", "Fn": "#d62728"}
WORKER_STYLES = ["-", "--", ":", "-."]


def chart_column(meta: dict, point: dict) -> tuple[str, int]:
    """The column of panels a point is drawn in: its metric and backends; iperf3's metrics share one
    column (x: streams), each idle metric (idle, tls_idle) has one of its own."""
    tool = meta["metric_info"][point["metric"]].get("tool")
    if tool == "iperf3":
        return ("iperf3", 1)
    if tool == "idle":
        return (point["metric"], 0)
    return (point["metric"], point["backends"])


def chart_panels(meta: dict, summary: dict) -> list[tuple[str, int]]:
    """One column of panels per metric × backends, in the order the points were planned."""
    cols: list[tuple[str, int]] = []
    for s in summary["points"]:
        key = chart_column(meta, s)
        if key not in cols:
            cols.append(key)
    return cols


def chart(out: Path, meta: dict, records: list[dict], summary: dict) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'fastlb[bench]'): no chart"
    cols = chart_panels(meta, summary)
    if not cols:
        return "nothing to chart"
    rows = (("median", "{unit}", False), ("cpu_median", "proxy {cpu_unit}", True), ("p99_us", "p99 latency µs", False))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols), 3.2 * len(rows)), squeeze=False)
    workers = sorted({s["workers"] for s in summary["points"]})
    for col, (m, b) in enumerate(cols):
        pts = [s for s in summary["points"] if chart_column(meta, s) == (m, b)]
        info = dict(meta["metric_info"][pts[0]["metric"]])
        if info.get("tool") == "idle":
            _idle_panel(axes[0][col], pts, meta, info)
            for row in range(1, len(rows)):
                axes[row][col].axis("off")
            continue
        if m == "iperf3":
            info["title"] = "TCP streams (iperf3)"
        for row, (field, ylabel, proxies_only) in enumerate(rows):
            ax = axes[row][col]
            if field == "p99_us" and info.get("tool") != "wrk":  # iperf3, a download: no request latency
                ax.axis("off")
                continue
            drawn = False
            for a in meta["arms"]:
                if proxies_only and a == "D":
                    continue
                for w in workers:
                    line = sorted((s["clients"], s["arms"][a][field]) for s in pts
                                  if s["workers"] == w and a in s["arms"] and s["arms"][a][field] is not None)
                    if not line:
                        continue
                    xs, ys = zip(*line)
                    ax.plot(xs, ys, WORKER_STYLES[workers.index(w) % len(WORKER_STYLES)], marker="o", ms=3,
                            color=ARM_COLORS.get(a), label=f"{a} w{w}")
                    drawn = True
            ax.set_xscale("log")
            if field == "p99_us" and drawn:
                ax.set_yscale("log")
            ax.set_xlabel("streams" if info.get("tool") == "iperf3" else "client connections")
            ax.set_ylabel(ylabel.format(unit=info["unit"], cpu_unit=info["cpu_unit"]))
            ax.grid(True, which="both", alpha=0.3)
            if row == 0:
                ax.set_title(f"{info.get('title') or m}, {b} backend{'s' if b > 1 else ''}", fontsize=9)
            if drawn:
                ax.legend(fontsize=6)
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    styles = "; ".join(f"{WORKER_STYLES[i % len(WORKER_STYLES)]} {w} worker{'s' if w > 1 else ''}"
                       for i, w in enumerate(workers))
    fig.suptitle(f"fastlb {meta['kind'].upper()} benchmark {meta['started']}: medians over blocks, colour = arm, "
                 f"line = workers ({styles})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "chart.png", dpi=100)
    plt.close(fig)
    return None


def _idle_panel(ax, pts: list[dict], meta: dict, info: dict) -> None:
    labels, idle_vals, after_vals = [], [], []
    for s in pts:
        for a, v in s["arms"].items():
            labels.append(f"{a}\nb{s['backends']} w{s['workers']}")
            idle_vals.append(v["median"] or 0.0)
            after_vals.append(v.get("after_median") or 0.0)
    xs = range(len(labels))
    first = IDLE_TEXT.get(info.get("key", "idle"), IDLE_TEXT["idle"])["first"]
    ax.bar([x - 0.2 for x in xs], idle_vals, width=0.4, label=first, color="#9ecae1")
    ax.bar([x + 0.2 for x in xs], after_vals, width=0.4, label="after a request", color="#fdae6b")
    ax.set_xticks(list(xs), labels, fontsize=6)
    ax.set_ylabel("proxy kB per connection")
    ax.set_title(f"{info.get('title') or 'memory per idle connection'} ({meta.get('idle_conns', '?')} conns)",
                 fontsize=9)
    ax.legend(fontsize=6)


def rewrite(out: Path) -> None:
    """Renders results.md, summary.json and chart.png again from <out>/results.json."""
    data = json.loads((out / "results.json").read_text())
    write(out, data["meta"], data["runs"])


def write(out: Path, meta: dict, records: list[dict]) -> None:
    summary = summarize(meta, records)
    md = render_md(meta, records, summary)
    has_data = any(r["status"] == "ok" for r in records)
    note = chart(out, meta, records, summary) if has_data else "no run completed: no chart"
    if note:
        md += f"\n_{note}_\n"
    (out / "results.md").write_text(md)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python3 bench/report.py RESULTS_DIR   (renders results.md again from results.json)")
    rewrite(Path(sys.argv[1]))
    print(Path(sys.argv[1]) / "results.md")
