"""What the admin API shows of a running fastlb, rendered: /stats (JSON), HAProxy's stats CSV, and
Prometheus' text exposition (/metrics), all made from one snapshot of the controller and the data
plane's counters. No HTTP here: the routes that serve them are ``fastlb.admin``'s.
"""

from __future__ import annotations

import datetime
import io
import os
import re
import time
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from fastlb import limits, spec
from fastlb.overrides import ADMIN_STATES


class Counters(Protocol):
    """What the stats read of the data plane (``fastlb._core.DataPlane`` is one)."""

    @property
    def generation(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...


class StatsSource(Protocol):
    """What the stats read of the controller (``fastlb.controller.Controller`` is one): the table
    serving, what was set by hand, the swaps, and what the providers report."""

    @property
    def dataplane(self) -> Counters: ...
    @property
    def serving(self) -> spec.RouteTable | None: ...
    @property
    def serving_now(self) -> bool: ...
    @property
    def draining(self) -> bool: ...
    @property
    def health_checker(self) -> Any: ...  # fastlb.health.HealthChecker, or None before start
    @property
    def overrides(self) -> Mapping[str, Any]: ...  # backend id -> fastlb.overrides.Override
    @property
    def swap(self) -> Any: ...  # fastlb.controller.SwapStats
    @property
    def started_at(self) -> float: ...
    @property
    def conflicts(self) -> list[str]: ...
    @property
    def listen_errors(self) -> list[str]: ...
    def app_errors(self) -> dict[str, Any]: ...
    def provider_status(self) -> dict[str, Any]: ...

# HAProxy 2.0's `show stat` columns (the version marathon-lb ships), in order; HAProxy ends every line
# with a comma, and so does fastlb.
CSV_COLUMNS = [
    "pxname", "svname", "qcur", "qmax", "scur", "smax", "slim", "stot", "bin", "bout", "dreq", "dresp", "ereq", "econ",
    "eresp", "wretr", "wredis", "status", "weight", "act", "bck", "chkfail", "chkdown", "lastchg", "downtime", "qlimit",
    "pid", "iid", "sid", "throttle", "lbtot", "tracked", "type", "rate", "rate_lim", "rate_max", "check_status",
    "check_code", "check_duration", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other",
    "hanafail", "req_rate", "req_rate_max", "req_tot", "cli_abrt", "srv_abrt", "comp_in", "comp_out", "comp_byp",
    "comp_rsp", "lastsess", "last_chk", "last_agt", "qtime", "ctime", "rtime", "ttime", "agent_status", "agent_code",
    "agent_duration", "check_desc", "agent_desc", "check_rise", "check_fall", "check_health", "agent_rise",
    "agent_fall", "agent_health", "addr", "cookie", "mode", "algo", "conn_rate", "conn_rate_max", "conn_tot",
    "intercepted", "dcon", "dses", "wrew", "connect", "reuse", "cache_lookups", "cache_hits", "srv_icur", "src_ilim",
    "qtime_max", "ctime_max", "rtime_max", "ttime_max", "eint", "idle_conn_cur", "safe_conn_cur", "used_conn_cur",
    "need_conn_est",
]

_SHARED_NAMES = {"vhost": "marathon_http_in", "appid": "marathon_http_appid_in"}
_BACKEND_COUNTERS = (
    "active", "total", "bytes_in", "bytes_out", "connect_errors", "retries", "timeouts", "requests",
    "idle", "reused", "drain_since_ms",
)
_SERVICE_COUNTERS = (
    "active", "total", "bytes_in", "bytes_out", "connect_errors", "retries", "timeouts", "no_backend",
    "denied", "queued", "queued_max", "queue_total", "queue_timeouts", "queue_wait_ms",
)


# -- the snapshot every view is made from ---------------------------------------------------------


def _up(health: Any) -> bool:
    # The data plane reports health as a bool or as "up"/"down"; unknown counts as up (no check ran).
    if isinstance(health, str):
        return health.lower() not in ("down", "false", "0")
    return health is None or bool(health)


def backend_status(state: str, health: Any) -> str:
    """/stats' word for a server: MAINT and DRAIN by hand or by provider, DOWN by health, else UP."""
    if state == "maint":
        return "MAINT"
    if not _up(health):
        return "DOWN"
    if state == "drain":
        return "DRAIN"
    return "UP"


def csv_status(state: str, health: Any) -> str:
    """HAProxy's word for a server in the stats CSV. A draining backend takes no new connection, not
    even a sticky one, and its open ones carry on: that is HAProxy's MAINT (marathon-lb's ``disabled``
    server, what zdd waits for), not HAProxy's DRAIN (which still takes sticky clients)."""
    if state in ("maint", "drain"):
        return "MAINT"
    return "UP" if _up(health) else "DOWN"


_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


class RateMeter:
    """Requests per second over about the last second, per counter, from the counters sampled by
    every snapshot and, while someone reads the stats, once a second (``sample``)."""

    WINDOW_S = 1.0
    KEEP_S = 10.0
    WATCHED_S = 60.0  # the sampler runs while a snapshot was taken this recently

    def __init__(self) -> None:
        self.samples: deque[tuple[float, dict[str, int]]] = deque()
        self.max: dict[str, float] = {}
        self.last_read = 0.0

    def sample(self, now: float, counts: dict[str, int]) -> None:
        self.samples.append((now, counts))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.KEEP_S:
            self.samples.popleft()

    def rates(self, now: float, counts: dict[str, int]) -> dict[str, float]:
        """Per counter, its increase per second since the newest sample at least WINDOW_S old (else
        since the oldest one), then records <counts> as a sample."""
        base = None
        for t, old in reversed(self.samples):
            base = (t, old)
            if t <= now - self.WINDOW_S:
                break
        out: dict[str, float] = {}
        if base is not None and now - base[0] > 0.05:
            t, old = base
            for key, value in counts.items():
                rate = max(0, value - old.get(key, value)) / (now - t)
                out[key] = round(rate, 1)
                if rate > self.max.get(key, 0.0):
                    self.max[key] = round(rate, 1)
        for key in [k for k in self.max if k not in counts]:
            del self.max[key]  # a backend or service that left (tasks come and go)
        self.sample(now, counts)
        return out

    def watched(self, now: float) -> bool:
        return now - self.last_read < self.WATCHED_S


_RATES: weakref.WeakKeyDictionary[StatsSource, RateMeter] = weakref.WeakKeyDictionary()


def rate_meter(controller: StatsSource) -> RateMeter:
    meter = _RATES.get(controller)
    if meter is None:
        meter = _RATES[controller] = RateMeter()
    return meter


def request_counts(raw: dict[str, Any]) -> dict[str, int]:
    """The HTTP request counters of a data plane stats() snapshot: "s:<service>", "b:<backend id>"."""
    counts = {f"s:{name}": int(v.get("http", {}).get("requests", 0)) for name, v in raw.get("services", {}).items()}
    counts.update({f"b:{bid}": int(v.get("requests", 0)) for bid, v in raw.get("backends", {}).items()})
    return counts


def _responses(counters: dict[str, Any]) -> dict[str, int]:
    return {k: int(counters.get(k, 0)) for k in _CLASSES}


def snapshot(controller: StatsSource) -> dict[str, Any]:
    """/stats: the serving table joined with the data plane's counters, in table order."""
    raw = controller.dataplane.stats()
    table = controller.serving or spec.RouteTable()
    raw_backends = raw.get("backends", {})
    raw_services = raw.get("services", {})
    raw_listeners = raw.get("listeners", {})
    checks = controller.health_checker.status() if controller.health_checker is not None else {}
    now = time.monotonic()
    meter = rate_meter(controller)
    meter.last_read = now
    rates = meter.rates(now, request_counts(raw))
    services = []
    for s in table.services:
        counters = raw_services.get(s.name, {})
        backends = []
        for b in s.backends:
            live = raw_backends.get(b.id, {})
            state = live.get("state", b.state)
            health = live.get("health", True)
            override = controller.overrides.get(b.id)
            check = checks.get(b.id)
            row = {
                "id": b.id,
                "name": b.name or b.id,
                "address": b.address,
                "state": state,
                "health": "up" if _up(health) else "down",
                "status": backend_status(state, health),
                "weight": live.get("weight", b.weight),
                "maxconn": b.maxconn or s.backend_maxconn,
                "override": msgspec.to_builtins(override) if override is not None else None,
                "check": check,
            }
            row.update({k: int(live.get(k, 0)) for k in _BACKEND_COUNTERS})
            row["errors"] = row["connect_errors"] + row["timeouts"]
            row["responses"] = _responses(live.get("responses", {}))
            row["req_rate"] = rates.get(f"b:{b.id}", 0.0)
            row["req_rate_max"] = meter.max.get(f"b:{b.id}", 0.0)
            backends.append(row)
        row = {
            "name": s.name,
            "mode": s.mode,
            "balance": s.balance,
            "app_id": s.app_id,
            "maxconn": s.maxconn,
            "backend_maxconn": s.backend_maxconn,
            "backends": backends,
            "up": sum(1 for b in backends if b["status"] == "UP"),
        }
        row.update({k: int(counters.get(k, 0)) for k in _SERVICE_COUNTERS})
        row["errors"] = row["connect_errors"] + row["timeouts"] + row["no_backend"]
        http = counters.get("http", {})
        row["requests"] = int(http.get("requests", 0))
        row["responses"] = _responses(http)
        row["own"] = int(http.get("own", 0))
        row["req_rate"] = rates.get(f"s:{s.name}", 0.0)
        row["req_rate_max"] = meter.max.get(f"s:{s.name}", 0.0)
        services.append(row)
    listeners = []
    for listener in table.listeners:
        live = raw_listeners.get(listener.address, {})
        listeners.append(
            {
                "address": listener.address,
                "kind": listener.kind,
                "service": listener.service,
                "active": int(live.get("active", 0)),
                "total": int(live.get("total", 0)),
                "refused": int(live.get("refused", 0)),
            }
        )
        if listener.tls:
            tls = live.get("tls", {})
            listeners[-1]["tls"] = {
                "handshakes": int(tls.get("handshakes", 0)),
                "resumed": int(tls.get("resumed", 0)),
                "failed": {k: int(v) for k, v in tls.get("failed", {}).items()},
            }
            if table.sni_routes:
                passed = live.get("passthrough", {})
                listeners[-1]["passthrough"] = {
                    "connections": int(passed.get("connections", 0)),
                    "unknown_sni": int(passed.get("unknown_sni", 0)),
                }
    swap = controller.swap
    return {
        "pid": os.getpid(),
        "time": time.time(),
        "uptime_s": time.time() - controller.started_at,
        "serving": controller.serving_now,
        "draining": controller.draining,
        "generation": controller.dataplane.generation,
        "swaps": swap.count,
        "swap": msgspec.to_builtins(swap),
        "active": int(raw.get("active", 0)),
        "total": int(raw.get("total", 0)),
        "accepts": _accepts(raw),
        "listeners": listeners,
        "services": services,
        "conflicts": controller.conflicts,
        "listen_errors": controller.listen_errors,
        "certificates": [
            {"source": c.source, "names": list(c.names), "not_after": c.not_after}
            for c in getattr(controller, "certs_served", ())
        ],
        "certificate_problems": list(getattr(controller, "cert_problems", ())),
        "app_errors": controller.app_errors(),
        "providers": controller.provider_status(),
    }


def _accepts(raw: dict[str, Any]) -> dict[str, int]:
    """How often accepting was held back or failed, the descriptors the data plane may hold and the
    process's open-files limit (fastlb.limits)."""
    held = raw.get("accepts_held") or {}
    return {
        "held_maxconn": int(held.get("maxconn", 0)),
        "held_fds": int(held.get("fds", 0)),
        "emfile": int(raw.get("accept_emfile", 0)),
        "fd_max": int(raw.get("fd_max", 0)),
        "nofile": limits.nofile(),
    }


# -- HAProxy CSV ---------------------------------------------------------------------------------


# zdd splits the CSV on commas with quotechar="'": a field must hold no comma and no quote of either
# kind, and no line break; HAProxy's own fields never do.
_CSV_UNSAFE = re.compile(r"[,'\"\x00-\x1f\x7f]")


def csv_field(value: Any) -> str:
    """<value> as a stats CSV field: a comma becomes ';', quotes go, control characters become spaces."""
    return _CSV_UNSAFE.sub(lambda m: {",": ";", "'": "", '"': ""}.get(m.group(), " "), str(value))


def _csv_line(values: dict[str, Any]) -> str:
    return ",".join(csv_field(values.get(column, "")) for column in CSV_COLUMNS) + ",\n"


# HAProxy's descriptions of its check results (check_desc).
CHECK_DESCRIPTIONS = {
    "INI": "Initializing",
    "L4OK": "Layer4 check passed",
    "L4TOUT": "Layer4 timeout",
    "L4CON": "Layer4 connection problem",
    "L7OK": "Layer7 check passed",
    "L7TOUT": "Layer7 timeout",
    "L7RSP": "Layer7 invalid response",
    "L7STS": "Layer7 wrong status",
}


def _check_columns(b: dict[str, Any]) -> dict[str, Any]:
    """HAProxy's check columns of a server: empty when it has no active check."""
    check = b.get("check")
    if not check:
        return {}
    status = str(check.get("status") or "INI")
    rise, fall = int(check.get("rise") or 1), int(check.get("fall") or 1)
    # HAProxy's health counter: rise..rise+fall-1 while up (falling with each failure), 0..rise-1 down.
    health = rise + fall - 1 - int(check["failures"]) if check["up"] else min(int(check["passes"]), rise - 1)
    return {
        "check_status": status,
        "check_code": check.get("code") if check.get("code") is not None else "",
        "check_duration": check.get("duration_ms", "") if status != "INI" else "",
        "last_chk": check.get("last", ""),
        "check_desc": CHECK_DESCRIPTIONS.get(status, status),
        "check_rise": rise, "check_fall": fall, "check_health": max(0, health),
        "chkfail": check["failures"], "chkdown": check["changes"],
    }


def _http_columns(mode: str, responses: dict[str, int], requests: int, rate: float, rate_max: float) -> dict[str, Any]:
    """HAProxy's HTTP columns (http mode): responses by class, requests, and requests per second."""
    if mode != "http":
        return {}
    out: dict[str, Any] = {f"hrsp_{k}": responses.get(k, 0) for k in _CLASSES}
    out.update(req_tot=requests, req_rate=round(rate), req_rate_max=round(rate_max))
    return out


def stats_csv(snap: dict[str, Any]) -> str:
    """HAProxy's ``show stat`` CSV: FRONTEND rows for listeners, then per service one row per server and
    its BACKEND row. zdd reads pxname, svname, status, scur and qcur, and parses the lines with
    ``csv.reader(..., quotechar="'")``: no field holds a comma or a quote (``csv_field``)."""
    out = io.StringIO()
    out.write("# " + ",".join(CSV_COLUMNS) + ",\n")
    iid = 0
    seen_shared: dict[str, int] = {}
    frontends: dict[str, list[dict[str, Any]]] = {}
    for listener in snap["listeners"]:
        if listener["kind"] == "service":
            frontends.setdefault(listener["service"], []).append(listener)
        else:
            base = _SHARED_NAMES.get(listener["kind"], listener["kind"])
            n = seen_shared.get(base, 0)
            seen_shared[base] = n + 1
            frontends.setdefault(base if n == 0 else f"{base}_{n}", []).append(listener)
    services = {s["name"]: s for s in snap["services"]}
    for name, group in frontends.items():
        iid += 1
        s = services.get(name)
        out.write(
            _csv_line(
                {
                    "pxname": name, "svname": "FRONTEND", "qcur": "", "qmax": "",
                    "scur": sum(x["active"] for x in group), "smax": "", "slim": (s["maxconn"] or "") if s else "",
                    "stot": sum(x["total"] for x in group), "bin": s["bytes_in"] if s else 0,
                    "bout": s["bytes_out"] if s else 0, "dreq": 0, "dresp": 0,
                    "ereq": sum(x["refused"] for x in group), "status": "OPEN", "pid": 1, "iid": iid, "sid": 0,
                    "type": 0, "mode": s["mode"] if s else "http", "conn_tot": sum(x["total"] for x in group),
                }
            )
        )
    for s in snap["services"]:
        iid += 1
        for sid, b in enumerate(s["backends"], start=1):
            out.write(
                _csv_line(
                    {
                        "pxname": s["name"], "svname": b["name"], "qcur": 0, "qmax": 0, "scur": b["active"],
                        "smax": "", "slim": b["maxconn"] or "", "stot": b["total"], "bin": b["bytes_in"],
                        "bout": b["bytes_out"],
                        "dresp": 0, "econ": b["connect_errors"], "eresp": b["timeouts"], "wretr": b["retries"],
                        "wredis": 0, "status": csv_status(b["state"], b["health"]), "weight": b["weight"],
                        "act": 1, "bck": 0, "pid": 1, "iid": iid, "sid": sid, "lbtot": b["total"], "type": 2,
                        **_http_columns(s["mode"], b["responses"], b["requests"], b["req_rate"], b["req_rate_max"]),
                        **_check_columns(b),
                        **_reuse_columns(s["mode"], [b]),
                        "addr": b["address"], "mode": s["mode"],
                    }
                )
            )
        out.write(
            _csv_line(
                {
                    "pxname": s["name"], "svname": "BACKEND", "qcur": s["queued"], "qmax": s["queued_max"],
                    "qtime": s["queue_wait_ms"] // s["queue_total"] if s["queue_total"] else 0,
                    "scur": s["active"],
                    "smax": "", "slim": s["maxconn"] or "", "stot": s["total"], "bin": s["bytes_in"],
                    "bout": s["bytes_out"], "dreq": 0, "dresp": 0, "econ": s["connect_errors"],
                    "eresp": s["timeouts"], "wretr": s["retries"], "wredis": 0,
                    "status": "UP" if s["up"] > 0 else "DOWN",
                    "weight": sum(b["weight"] for b in s["backends"] if b["status"] == "UP"),
                    "act": s["up"], "bck": 0, "pid": 1, "iid": iid, "sid": 0, "lbtot": s["total"], "type": 1,
                    "mode": s["mode"], "algo": s["balance"], "conn_tot": s["total"],
                    **_http_columns(s["mode"], s["responses"], s["requests"], s["req_rate"], s["req_rate_max"]),
                    **_reuse_columns(s["mode"], s["backends"]),
                }
            )
        )
    return out.getvalue()


def _reuse_columns(mode: str, backends: list[dict[str, Any]]) -> dict[str, Any]:
    """HAProxy's connection-reuse columns (http mode): backend connections opened, requests that
    reused one, and those idle in the pool or in use now."""
    if mode != "http":
        return {}
    return {
        "connect": sum(b["total"] for b in backends), "reuse": sum(b["reused"] for b in backends),
        "idle_conn_cur": sum(b["idle"] for b in backends), "used_conn_cur": sum(b["active"] for b in backends),
    }


# -- Prometheus text exposition ------------------------------------------------------------------


class _Metrics:
    def __init__(self) -> None:
        self.families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_: str, value: float, /, **labels: str) -> None:
        family = self.families.setdefault(name, (kind, help_, []))
        if labels:
            inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            family[2].append(f"{name}{{{inner}}} {_number(value)}")
        else:
            family[2].append(f"{name} {_number(value)}")

    def add_summary(self, name: str, help_: str, total: float, count: int) -> None:
        """A summary without quantiles: rate(<name>_sum) / rate(<name>_count) is the mean."""
        self.families[name] = ("summary", help_, [f"{name}_sum {_number(total)}", f"{name}_count {count}"])

    def text(self) -> str:
        lines = []
        for name, (kind, help_, samples) in self.families.items():
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def metrics_text(snap: dict[str, Any]) -> str:
    m = _Metrics()
    m.add("fastlb_up", "gauge", "1 while fastlb serves a table and is not draining.", int(snap["serving"]))
    m.add("fastlb_table_generation", "gauge", "Generation of the routing table now serving.", snap["generation"])
    m.add("fastlb_swaps_total", "counter", "Routing tables published since start.", snap["swaps"])
    m.add("fastlb_swap_failures_total", "counter", "Tables the data plane refused.", snap["swap"]["failed"])
    m.add("fastlb_swap_last_seconds", "gauge", "Compile and publish time of the last swap.", snap["swap"]["last_s"])
    m.add("fastlb_swap_max_seconds", "gauge", "Longest compile and publish time since start.", snap["swap"]["max_s"])
    m.add_summary("fastlb_swap_seconds", "Compile and publish time of swaps.", snap["swap"]["sum_s"], snap["swaps"])
    if snap["swap"]["event_to_swap_s"] is not None:
        m.add(
            "fastlb_marathon_event_to_swap_seconds", "gauge",
            "From the Marathon event to its table serving, for the last swap.", snap["swap"]["event_to_swap_s"],
        )
    m.add("fastlb_connections_active", "gauge", "Open client connections.", snap["active"])
    m.add("fastlb_connections_total", "counter", "Client connections accepted.", snap["total"])
    accepts = snap["accepts"]
    for reason in ("maxconn", "fds"):
        m.add(
            "fastlb_accepts_held_total", "counter",
            "Times a worker stopped accepting on a listener, its clients left in the backlog (maxconn; fds: "
            "the data plane's descriptors, or EMFILE/ENFILE).", accepts[f"held_{reason}"], reason=reason,
        )
    m.add("fastlb_accept_emfile_total", "counter", "Accepts that failed EMFILE/ENFILE.", accepts["emfile"])
    m.add("fastlb_fd_max", "gauge", "Descriptors the data plane may hold (0: no cap).", accepts["fd_max"])
    m.add("fastlb_open_files_limit", "gauge", "The process's soft RLIMIT_NOFILE.", accepts["nofile"])
    for x in snap["listeners"]:
        labels = {"listener": x["address"], "kind": x["kind"], "service": x["service"]}
        m.add("fastlb_listener_connections_active", "gauge", "Open connections per listener.", x["active"], **labels)
        m.add(
            "fastlb_listener_connections_total", "counter", "Accepted connections per listener.", x["total"], **labels
        )
        m.add(
            "fastlb_listener_refused_total", "counter", "Connections refused (maxconn) per listener.", x["refused"],
            **labels,
        )
        if "tls" in x:
            m.add("fastlb_tls_handshakes_total", "counter", "TLS handshakes over per listener.",
                  x["tls"]["handshakes"], listener=x["address"])
            m.add("fastlb_tls_resumed_handshakes_total", "counter",
                  "TLS handshakes per listener that resumed a session (from a ticket), of those over.",
                  x["tls"]["resumed"], listener=x["address"])
            for reason, n in x["tls"]["failed"].items():
                m.add("fastlb_tls_handshake_failures_total", "counter",
                      "TLS handshakes that failed per listener, by reason.", n, listener=x["address"], reason=reason)
        if "passthrough" in x:
            m.add("fastlb_tls_passthrough_connections_total", "counter",
                  "Connections passed through untouched to a passthrough vhost, per TLS listener.",
                  x["passthrough"]["connections"], listener=x["address"])
            m.add("fastlb_tls_passthrough_unknown_sni_total", "counter",
                  "Connections closed per TLS listener: no passthrough vhost for their name, and no certificate.",
                  x["passthrough"]["unknown_sni"], listener=x["address"])
    for c in snap.get("certificates", ()):
        not_after = datetime.datetime.fromisoformat(c["not_after"]).timestamp()
        for name in c["names"] or [""]:  # "": a certificate for every name (the self-signed one)
            m.add("fastlb_tls_certificate_not_after_seconds", "gauge",
                  "When each certificate served expires (its notAfter, Unix time), per name it serves.",
                  not_after, source=c["source"], name=name)
    service_metrics = (
        ("active", "fastlb_service_connections_active", "gauge", "Open connections per service."),
        ("total", "fastlb_service_connections_total", "counter", "Connections per service."),
        ("bytes_in", "fastlb_service_bytes_in_total", "counter", "Bytes from clients per service."),
        ("bytes_out", "fastlb_service_bytes_out_total", "counter", "Bytes to clients per service."),
        ("connect_errors", "fastlb_service_connect_errors_total", "counter", "Failed backend connects per service."),
        ("retries", "fastlb_service_retries_total", "counter", "Connect retries per service."),
        ("timeouts", "fastlb_service_timeouts_total", "counter", "Timeouts per service."),
        ("no_backend", "fastlb_service_no_backend_total", "counter", "Connections with no backend to take them."),
        ("denied", "fastlb_service_denied_total", "counter", "Connections refused by the source allow-list."),
        ("queued", "fastlb_service_queued", "gauge", "Connections or requests waiting for a slot (maxconn)."),
        ("queued_max", "fastlb_service_queued_max", "gauge", "The most that waited for a slot at once."),
        ("queue_total", "fastlb_service_queued_total", "counter", "Connections or requests that waited for a slot."),
        (
            "queue_timeouts", "fastlb_service_queue_timeouts_total", "counter",
            "Of those, the ones refused at the queue timeout.",
        ),
        ("queue_wait_ms", "fastlb_service_queue_wait_seconds_total", "counter", "Their waits, added up."),
    )
    backend_metrics = (
        ("active", "fastlb_backend_connections_active", "gauge", "Open connections per backend."),
        ("total", "fastlb_backend_connections_total", "counter", "Connections per backend."),
        ("bytes_in", "fastlb_backend_bytes_in_total", "counter", "Bytes from clients per backend."),
        ("bytes_out", "fastlb_backend_bytes_out_total", "counter", "Bytes to clients per backend."),
        ("connect_errors", "fastlb_backend_connect_errors_total", "counter", "Failed connects per backend."),
        ("retries", "fastlb_backend_retries_total", "counter", "Connects retried elsewhere per backend."),
        ("timeouts", "fastlb_backend_timeouts_total", "counter", "Timeouts per backend."),
        ("requests", "fastlb_backend_http_requests_total", "counter", "HTTP requests per backend."),
        ("idle", "fastlb_backend_idle_connections", "gauge", "HTTP mode: connections kept idle for reuse per backend."),
        (
            "reused", "fastlb_backend_connections_reused_total", "counter",
            "HTTP mode: requests sent on a kept-alive backend connection (no connect).",
        ),
    )
    for s in snap["services"]:
        for key, name, kind, help_ in service_metrics:
            m.add(name, kind, help_, s[key] / 1000 if key == "queue_wait_ms" else s[key], service=s["name"])
        m.add(
            "fastlb_service_backends_up", "gauge", "Backends taking connections per service.", s["up"],
            service=s["name"],
        )
        if s["mode"] == "http":
            m.add(
                "fastlb_service_http_requests_total", "counter", "HTTP requests routed to the service.",
                s["requests"], service=s["name"],
            )
            for cls in _CLASSES:
                m.add(
                    "fastlb_service_http_responses_total", "counter",
                    "HTTP responses sent to clients per service, by status class (1xx..5xx, other).",
                    s["responses"][cls], service=s["name"], code=cls,
                )
            m.add(
                "fastlb_service_http_own_responses_total", "counter",
                "Of those, the ones fastlb answered itself (401, 403, 301, 502, 503, 504...).", s["own"],
                service=s["name"],
            )
    for s in snap["services"]:
        for b in s["backends"]:
            labels = {"service": s["name"], "backend": b["id"], "address": b["address"]}
            m.add(
                "fastlb_backend_up", "gauge", "1 when the backend's health is up.", int(b["health"] == "up"), **labels
            )
            for state in ADMIN_STATES:
                m.add(
                    "fastlb_backend_state", "gauge", "Admin state of the backend (1 for the current one).",
                    int(b["state"] == state), **labels, state=state,
                )
            m.add("fastlb_backend_weight", "gauge", "Weight of the backend.", b["weight"], **labels)
            m.add(
                "fastlb_backend_drain_since_seconds", "gauge",
                "Unix time the backend started draining (0: not draining).", b["drain_since_ms"] / 1000, **labels,
            )
            for key, name, kind, help_ in backend_metrics:
                m.add(name, kind, help_, b[key], **labels)
            if s["mode"] == "http":
                for cls in _CLASSES:
                    m.add(
                        "fastlb_backend_http_responses_total", "counter",
                        "HTTP responses to the requests each backend took, by status class.",
                        b["responses"][cls], **labels, code=cls,
                    )
    errors = sum(len(v) for v in snap["app_errors"].values() if isinstance(v, (list, dict)))
    m.add("fastlb_app_errors", "gauge", "Apps left out of the table for an error.", errors)
    m.add("fastlb_route_conflicts", "gauge", "Parts of provider tables skipped for a clash.", len(snap["conflicts"]))
    m.add(
        "fastlb_listeners_skipped", "gauge", "Listeners left out: their address cannot bind.",
        len(snap["listen_errors"]),
    )
    return m.text()
