"""/metrics as Prometheus takes it: a real fastlb (a static file with a tcp, an http and a vhost service,
and a Marathon app from the emulator) after traffic through each; ``promtool check metrics`` accepts the
page, every family follows Prometheus' naming conventions, and every expression of the Grafana dashboard
(deploy/grafana/fastlb.json) names a metric fastlb exports."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fastlb.emulator.demo import IdentServers, free_port
from fastlb.emulator.emulator import app_definition
from tests.tls import conftest as tlsconf

from .harness import ROOT, TimedEmulator, arequest, running_fastlb, until
from support import promtext

pytestmark = pytest.mark.timeout(180)

DASHBOARD = ROOT / "deploy" / "grafana" / "fastlb.json"
# Units that are not Prometheus' base units, as they would appear in a name.
NOT_BASE_UNITS = re.compile(
    r"_(ms|us|ns|millis|milliseconds|microseconds|nanoseconds|minutes|hours|days|kb|mb|gb|kilobytes|megabytes|percent)(_|$)"
)


async def scrape(emu: TimedEmulator, servers: IdentServers, tmp_path: Path) -> str:
    backend = servers.start("static#1")
    ports: dict[str, int] = {}
    for k in ("tcp", "http", "vhost", "https", "marathon"):
        ports[k] = next(p for p in iter(free_port, None) if p not in ports.values())
    (tmp_path / "v.pem").write_bytes(tlsconf.TestCA().leaf("v.example", "*.v.example"))
    f = tmp_path / "lb.toml"
    f.write_text(
        f'[http]\nlisten = "127.0.0.1:{ports["vhost"]}"\n\n'
        f'[https]\nlisten = "127.0.0.1:{ports["https"]}"\ncerts = ["{tmp_path}/v.pem"]\n\n'
        f'[[services]]\nname = "t"\nlisten = "127.0.0.1:{ports["tcp"]}"\nbackends = ["{backend.address}"]\n\n'
        f'[[services]]\nname = "h"\nlisten = "127.0.0.1:{ports["http"]}"\nmode = "http"\n'
        f'backends = ["{backend.address}"]\n\n'
        f'[[services]]\nname = "v"\nmode = "http"\nvhosts = ["v.example"]\nbackends = ["{backend.address}"]\n'
    )
    labels = {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http"}
    emu.add_app(app_definition("/m", [ports["marathon"]], labels=labels))
    ident = servers.start("m#1")
    emu.add_task("/m", [ident.port], task_id="m.1")
    args = ["--config", str(f), "--marathon", emu.url]
    async with running_fastlb(args, tmp_path / "fastlb.log") as lb:
        await lb.wait_backends(lambda ids: "m.1" in ids, "the Marathon task")
        ident2 = servers.start("m#2")
        emu.add_task("/m", [ident2.port], task_id="m.2")  # an event, so event-to-swap is measured
        await lb.wait_backends(lambda ids: "m.2" in ids, "the second Marathon task")
        for kind in ("tcp", "http", "marathon"):
            await arequest(ports[kind])
        await arequest(ports["vhost"], "v.example")
        with pytest.raises(ValueError):  # a 404 of fastlb's own: no vhost
            await arequest(ports["vhost"], "nowhere.example")

        async def page() -> str | None:
            assert lb.session is not None
            async with lb.session.get(lb.admin + "/metrics") as r:
                text = await r.text()
            return text if "fastlb_marathon_event_to_swap_seconds" in text else None

        return await until(page, "/metrics with the event-to-swap gauge")  # type: ignore[no-any-return]


async def test_metrics_follow_prometheus_and_the_dashboard_names_only_them(
    emu: TimedEmulator, servers: IdentServers, tmp_path: Path
) -> None:
    text = await scrape(emu, servers, tmp_path)
    families = promtext.parse(text)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    services = {
        s[1]["service"]
        for f in ("fastlb_service_connections_total", "fastlb_service_http_requests_total")
        for s in families[f]
        if s[2] > 0
    }
    assert {"t", "h", "v"} <= services and any(s.startswith("m_") for s in services)
    for name, kind in types.items():
        assert name.startswith("fastlb_"), name
        assert name.endswith("_total") == (kind == "counter"), (name, kind)
        assert not NOT_BASE_UNITS.search(name), name
        assert not name.endswith(("_count", "_sum", "_bucket")), name
        if "seconds" in name or "bytes" in name:
            assert re.search(r"_(seconds|bytes)(_total)?$", name) or "_bytes_" in name, name

    # each certificate's notAfter, one sample per name it serves
    expiry = {(s[1]["source"], s[1]["name"]): s[2] for s in families["fastlb_tls_certificate_not_after_seconds"]}
    assert set(expiry) == {(f"https.certs: {tmp_path}/v.pem", n) for n in ("v.example", "*.v.example")}
    assert types["fastlb_tls_certificate_not_after_seconds"] == "gauge"
    assert 9 * 86400 < min(expiry.values()) - time.time() < 11 * 86400

    samples = {s[0] for family in families.values() for s in family}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    named = {m for e in exprs for m in re.findall(r"\bfastlb_[a-z0-9_]+", e)}
    assert named and named <= samples, named - samples
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("requests", "errors", "backends up", "swaps", "event to swap"):
        assert topic in titles, topic

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: prometheus)")
    r = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r.stdout + r.stderr
