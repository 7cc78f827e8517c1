"""From raw runs to results.md, results.json's summary and chart.png.

Ratios are paired by block: for a pair (X, Y) and a metric, each block where both X and Y succeeded
(and stayed under the steal limit) gives one ratio X/Y. The report gives their median, min and max, a
bootstrap 95% interval of the median, and a two-sided sign test against "no difference".
"""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

PAIRS = [("F", "H"), ("F", "D"), ("H", "D"), ("Fn", "Hn"), ("Fn", "F"), ("Hn", "H"), ("F", "Hn"), ("Hn", "D"),
         ("Fn", "D"), ("H2", "H")]


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


def summarize(meta: dict, records: list[dict]) -> dict:
    max_steal = float(meta.get("max_steal", 2.0))
    out: dict = {}
    for m in meta["metrics"]:
        runs = [r for r in records if r["metric"] == m]
        per_arm = {}
        for a in meta["arms"]:
            mine = [r for r in runs if r["arm"] == a]
            good = [r for r in mine if usable(r, max_steal)]
            vals = [float(r["value"]) for r in good]
            cpu = [float(r["cpu_per_unit"]) for r in good if r.get("cpu_per_unit") is not None]
            lat = {q: [float(r["load"][q]) for r in good if q in r.get("load", {})] for q in ("p50", "p99")}
            per_arm[a] = {
                "runs": len(mine), "used": len(good),
                "failed": sum(1 for r in mine if r["status"] != "ok"),
                "steal_excluded": sum(1 for r in mine if r["status"] == "ok" and not usable(r, max_steal)),
                "median": statistics.median(vals) if vals else None,
                "min": min(vals) if vals else None, "max": max(vals) if vals else None,
                "cov_pct": (100 * statistics.stdev(vals) / statistics.mean(vals)) if len(vals) > 1 else None,
                "cpu_median": statistics.median(cpu) if cpu else None,
                "errors": sum(int(r.get("errors") or 0) for r in mine),
                "p50_us": statistics.median(lat["p50"]) if lat["p50"] else None,
                "p99_us": statistics.median(lat["p99"]) if lat["p99"] else None,
            }
        ratios = {}
        for x, y in PAIRS:
            if x not in meta["arms"] or y not in meta["arms"]:
                continue
            by_block: dict[int, dict[str, dict]] = {}
            for r in runs:
                if usable(r, max_steal) and r["arm"] in (x, y):
                    by_block.setdefault(r["block"], {})[r["arm"]] = r
            pairs = [(b, v[x], v[y]) for b, v in sorted(by_block.items()) if x in v and y in v]
            rs = [float(rx["value"]) / float(ry["value"]) for _, rx, ry in pairs if float(ry["value"]) > 0]
            cpu_rs = [float(rx["cpu_per_unit"]) / float(ry["cpu_per_unit"]) for _, rx, ry in pairs
                      if rx.get("cpu_per_unit") and ry.get("cpu_per_unit")]
            p99_rs = [float(rx["load"]["p99"]) / float(ry["load"]["p99"]) for _, rx, ry in pairs
                      if rx.get("load", {}).get("p99") and ry.get("load", {}).get("p99")]
            entry = {"n": len(rs), "per_block": rs, "cpu_n": len(cpu_rs), "cpu_per_block": cpu_rs,
                     "p99_n": len(p99_rs), "p99_per_block": p99_rs}
            if p99_rs:
                lo, hi = bootstrap_median_ci(p99_rs)
                entry.update(p99_median=statistics.median(p99_rs), p99_min=min(p99_rs), p99_max=max(p99_rs),
                             p99_ci95=[lo, hi], p99_sign_p=sign_test(p99_rs))
            if rs:
                lo, hi = bootstrap_median_ci(rs)
                entry.update(median=statistics.median(rs), min=min(rs), max=max(rs), ci95=[lo, hi],
                             sign_p=sign_test(rs))
            if cpu_rs:
                lo, hi = bootstrap_median_ci(cpu_rs)
                entry.update(cpu_median=statistics.median(cpu_rs), cpu_min=min(cpu_rs), cpu_max=max(cpu_rs),
                             cpu_ci95=[lo, hi], cpu_sign_p=sign_test(cpu_rs))
            ratios[f"{x}/{y}"] = entry
        out[m] = {"arms": per_arm, "ratios": ratios}
    return out


def _f(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _ratio_table(summary: dict, key: str, empty_rows: bool = False) -> list[str]:
    """The paired-ratio table of one figure: <key> "" (throughput), "cpu_" or "p99_" prefixes its fields."""
    L = ["| metric | ratio | n | median | min | max | 95% CI of median | sign test p |",
         "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m, s in summary.items():
        for name, r in s["ratios"].items():
            if not r.get(f"{key}n"):
                if empty_rows:
                    L.append(f"| {m} | {name} | 0 | – | – | – | – | – |")
                continue
            lo, hi = r[f"{key}ci95"]
            L.append(f"| {m} | {name} | {r[f'{key}n']} | **{r[f'{key}median']:.3f}** | {r[f'{key}min']:.3f} | "
                     f"{r[f'{key}max']:.3f} | {lo:.3f}–{hi:.3f} | {r[f'{key}sign_p']:.3g} |")
    L.append("")
    return L


def render_md(meta: dict, records: list[dict], summary: dict) -> str:
    mi = meta["metric_info"]
    L: list[str] = []
    L.append(f"# fastlb benchmark, {meta['kind'].upper()}: {', '.join(meta['arms'])}")
    L.append("")
    L.append(f"Started {meta['started']}, finished {meta.get('finished', '?')}, status **{meta['status']}**. "
             f"{meta['blocks']} blocks × {len(meta['metrics'])} metrics × {len(meta['arms'])} arms; each run: "
             f"{meta['warmup']:g} s warm-up, {meta['duration']:g} s measured; run order random per block and "
             f"metric (seed {meta['seed']}). Runs with more than {meta['max_steal']:g}% CPU steal are left out "
             f"of the medians.")
    L.append("")
    L.append("Arms: " + "; ".join(f"**{k}** = {v}" for k, v in meta["arm_labels"].items()) + ".")
    if {"F", "Fn"} & set(meta["arms"]):
        how = {"cli": "`python3 -m fastlb run --config <toml> --workers 1`",
               "serve": "bench/fastlb_serve.py (a spec.RouteTable published into fastlb._core.DataPlane; "
                        "no control plane)"}.get(meta["fastlb_launcher"], meta["fastlb_launcher"])
        L.append(f"F was started by {how}; fastlb revision {meta.get('fastlb_revision', '?')}.")
    L.append("")
    L.append("## Proxy CPU per unit of work, paired per block (< 1: the first arm spends less CPU)")
    L.append("")
    L.append("CPU time of the proxy process (all threads, user + system) over the measured window, per request, "
             "per connection or per GB, first arm over second arm, block by block. On this layout this is the "
             "figure that measures the proxy itself.")
    L.append("")
    L += _ratio_table(summary, "cpu_")
    L.append("## Throughput, paired per block (> 1: the first arm is faster)")
    L.append("")
    paced = [m for m in summary if mi[m].get("paced")]
    if paced:
        L.append(f"{', '.join(paced)}: offered at a fixed rate (ka {meta.get('rate_ka')} req/s, cps "
                 f"{meta.get('rate_cps')} conn/s, wrk's per-connection delay), so these ratios only check that "
                 "every arm kept up; their figure is the CPU per unit above.")
        L.append("")
    L += _ratio_table(summary, "", empty_rows=True)
    if any(r.get("p99_n") for s in summary.values() for r in s["ratios"].values()):
        L.append("## p99 latency, paired per block (< 1: the first arm's tail is shorter)")
        L.append("")
        L.append("wrk's p99 of the two runs of a block, first arm over second; both runs must be under the steal "
                 "limit. The tail moves with CPU steal far more than the medians do: read it from pairs.")
        L.append("")
        L += _ratio_table(summary, "p99_")
    L.append("## Per arm")
    L.append("")
    L.append("| metric | arm | used/runs | failed | median | min | max | CoV % | errors | proxy CPU per unit "
             "| p50 µs | p99 µs |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m, s in summary.items():
        for a, v in s["arms"].items():
            L.append(f"| {m} ({mi[m]['unit']}) | {a} | {v['used']}/{v['runs']} | {v['failed']} | {_f(v['median'])} | "
                     f"{_f(v['min'])} | {_f(v['max'])} | {_f(v['cov_pct'], 2)} | {v['errors']} | "
                     f"{_f(v['cpu_median'])} {mi[m]['cpu_unit'] if v['cpu_median'] is not None else ''} | "
                     f"{_f(v['p50_us'])} | {_f(v['p99_us'])} |")
    L.append("")
    if "H2" in meta["arms"]:
        L.append("## A/A control (H2/H: two identical HAProxy arms)")
        L.append("")
        for m, s in summary.items():
            r = s["ratios"].get("H2/H")
            if r and r["n"]:
                spread = max(abs(x - 1) for x in r["per_block"])
                line = (f"- {m}: throughput H2/H median {r['median']:.3f}, range {r['min']:.3f}–{r['max']:.3f} "
                        f"(±{100 * spread:.1f}%)")
                if r.get("cpu_n"):
                    cspread = max(abs(x - 1) for x in r["cpu_per_block"])
                    line += (f"; CPU per unit H2/H median {r['cpu_median']:.3f}, range {r['cpu_min']:.3f}–"
                             f"{r['cpu_max']:.3f} (±{100 * cspread:.1f}%)")
                L.append(line + ".")
        L.append("")
        L.append("Differences between other arms smaller than these spreads are noise, not findings.")
        L.append("")
    L.append("## Layout")
    L.append("")
    lay = meta["layout"]
    L.append(f"- Proxy (H, F; one thread or worker) pinned to CPU{lay['proxy_cpu']} with `taskset -c "
             f"{lay['proxy_cpu']}` (HAProxy also `cpu-map 1/1 {lay['proxy_cpu']}`).")
    L.append(f"- Load generator (`wrk -t1`, `iperf3 -c`) and backend (nginx, 1 worker; `iperf3 -s`) pinned to "
             f"CPU{lay['load_cpu']}. In D, CPU{lay['proxy_cpu']} has no proxy to run.")
    L.append("- Every run restarts the backend and the proxy; everything runs over loopback (127.0.0.1).")
    L.append("- CPU{0} usually saturates first: raw rates then compare what is left of CPU{0} as much as the "
             "proxies, so the proxy's CPU per unit of work is the figure that survives the shared box."
             .replace("{0}", str(lay["load_cpu"])))
    L.append("")
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
    L.append("## Commands")
    L.append("")
    L.append("```")
    L.append(" ".join(meta["argv"]))
    L.append("```")
    L.append("")
    seen = set()
    for r in records:
        key = (r["metric"], r["arm"])
        if key in seen or not r.get("commands"):
            continue
        seen.add(key)
        L.append(f"{r['metric']} / {r['arm']}:")
        L.append("```")
        for name, cmd in r["commands"].items():
            L.append(f"{name}: {cmd}")
        L.append("```")
    L.append("Config files are rendered from bench/templates/ into runs/<block>-<metric>-<arm>/.")
    L.append("")
    L.append("## Raw runs")
    L.append("")
    L.append("| block | metric | order | arm | status | value | errors | proxy CPU s | CPU per unit | "
             "CPU busy % (per CPU) | steal % | load avg | note |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in records:
        busy = " / ".join(f"{v['busy_pct']:.0f}" for _, v in sorted(r.get("cpus", {}).items()))
        note = str(r.get("reason", "")).splitlines()[0][:120] if r["status"] != "ok" else ""
        if r["status"] == "ok" and not usable(r, float(meta["max_steal"])):
            note = "left out: steal"
        L.append(f"| {r['block']} | {r['metric']} | {r['position']} | {r['arm']} | {r['status']} | "
                 f"{_f(r.get('value'), 4)} | {r.get('errors', '–')} | {_f(r.get('proxy_cpu_s'))} | "
                 f"{_f(r.get('cpu_per_unit'))} | {busy} | {r.get('steal_pct', '–')} | {r.get('loadavg', '–')} | "
                 f"{note} |")
    L.append("")
    return "\n".join(L)


def chart(out: Path, meta: dict, records: list[dict], summary: dict) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'fastlb[bench]'): no chart"
    metrics = list(summary)
    fig, axes = plt.subplots(2, len(metrics), figsize=(4 * len(metrics), 7.5), squeeze=False)
    max_steal = float(meta["max_steal"])
    for col, m in enumerate(metrics):
        info = meta["metric_info"][m]
        rows = ((axes[0][col], "value", "median", info["unit"], meta["arms"]),
                (axes[1][col], "cpu_per_unit", "cpu_median", f"proxy {info['cpu_unit']}",
                 [a for a in meta["arms"] if a != "D"]))
        for ax, field, med_key, ylabel, arms in rows:
            for i, a in enumerate(arms):
                pts = [(r[field], usable(r, max_steal)) for r in records
                       if r["metric"] == m and r["arm"] == a and r["status"] == "ok" and r.get(field) is not None]
                med = summary[m]["arms"][a][med_key]
                if med is not None:
                    ax.bar(i, med, color="#fdae6b" if a.startswith("F") else "#9ecae1", width=0.6)
                for j, (v, ok) in enumerate(pts):
                    ax.plot(i - 0.2 + 0.4 * (j + 0.5) / max(1, len(pts)), v, "o", ms=4,
                            color="black" if ok else "red", alpha=0.8)
            ax.set_xticks(range(len(arms)), arms)
            ax.set_ylabel(ylabel)
        axes[0][col].set_title(info["title"] or m, fontsize=9)
        axes[1][col].set_title("proxy CPU per unit (lower is better)", fontsize=9)
    fig.suptitle(f"fastlb {meta['kind'].upper()} benchmark {meta['started']}: medians (bars), runs (dots)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "chart.png", dpi=110)
    plt.close(fig)
    return None


def rewrite(out: Path) -> None:
    """Renders results.md, summary.json and chart.png again from <out>/results.json."""
    data = json.loads((out / "results.json").read_text())
    write(out, data["meta"], data["runs"])


def write(out: Path, meta: dict, records: list[dict]) -> None:
    summary = summarize(meta, records)
    md = render_md(meta, records, summary)
    note = chart(out, meta, records, summary) if records else "no run completed: no chart"
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
