// fastlb's dashboard: polls /stats once a second and updates the page in place. No dependencies.
//
// Every row is created once, keyed by what it shows (service name, backend id, listener address),
// and later polls only change the text that changed, so nothing flickers and a row keeps its place.
// Rates are computed here from two successive snapshots; "Recent errors" is what changed between
// snapshots since the page opened. When /stats stops answering, the last data stays on screen under
// a "stale since" banner.
"use strict";

const POLL_MS = 1000;
const EVENTS_MAX = 100;

const page = {
  previous: null, // the last snapshot, for rates and changes
  freshAt: null, // client time (ms) of the last good poll
  failingSince: null, // client time (ms) of the first failed poll in a row
  events: [], // newest first: {at, level, where, what}
  services: new Map(), // service name -> {box, meta, rows: Map(backend id -> tr)}
  listeners: new Map(), // address -> tr
  certificates: new Map(), // source -> tr
};

const CERT_WARN_DAYS = 14; // a certificate this close to its notAfter shows amber

// -- formatting ---------------------------------------------------------------------------------

function int(n) {
  return Math.round(Number(n)).toLocaleString("en-US");
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(Math.round(n))) + " " + units[i];
}

// Per second between two counter values; null when unknown (first poll, or a counter that went back).
function perSecond(now, before, dt) {
  if (before === undefined || before === null || dt <= 0 || now < before) return null;
  return (now - before) / dt;
}

function showRate(r) {
  if (r === null) return "–";
  return r < 100 ? r.toFixed(1) : int(r);
}

function showByteRate(r) {
  return r === null ? "–" : bytes(r) + "/s";
}

// A check's last result in plain words: "ConnectionRefusedError: [Errno 111] Connection refused"
// reads "Connection refused" (the whole text stays in the cell's tooltip).
function checkWords(last) {
  return String(last || "no result yet").replace(/^\w+(Error|Exception): /, "").replace(/^\[Errno \d+\] /, "");
}

function clock(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, "0")).join(":");
}

function duration(s) {
  s = Math.floor(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

const COUNTED = [
  ["connect_errors", "connect error", "connect errors"], ["timeouts", "timeout", "timeouts"], ["retries", "retry", "retries"],
];

function plural(n, word) {
  return n + " " + word + (n === 1 ? "" : "s");
}

// -- the DOM, touched only where something changed ----------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function setText(node, value) {
  const text = String(value);
  if (node.textContent !== text) node.textContent = text;
}

function setTitle(node, value) {
  if (node.title !== value) node.title = value;
}

function setClass(node, value) {
  if (node.className !== value) node.className = value;
}

function byId(id) {
  return document.getElementById(id);
}

// The row keyed <key> of <body>, made with one <td data-col> per column on first sight, and put at
// <index> only when it is not there already (moving a node loses a text selection).
function keyedRow(body, rows, key, columns, index) {
  let tr = rows.get(key);
  if (!tr) {
    tr = el("tr", { "data-key": key });
    for (const [col, numeric] of columns) tr.append(el("td", numeric ? { "data-col": col, class: "num" } : { "data-col": col }));
    rows.set(key, tr);
  }
  const here = body.children[index];
  if (here !== tr) body.insertBefore(tr, here || null);
  return tr;
}

function fillRow(tr, values) {
  values.forEach((v, i) => setText(tr.children[i], v));
}

function dropUnseen(rows, seen) {
  for (const [key, node] of rows) {
    if (!seen.has(key)) { node.remove(); rows.delete(key); }
  }
}

// A pill cell: its text and its colour class, changed only when they differ.
function setPill(td, text, kind) {
  let pill = td.children[0];
  if (!pill) { pill = el("span"); td.append(pill); }
  setText(pill, text);
  setClass(pill, "pill " + kind);
}

// -- what changed between two snapshots ---------------------------------------------------------

function backendsOf(snap) {
  const out = new Map();
  for (const s of snap.services) for (const b of s.backends) out.set(s.name + "\u0000" + b.id, [s, b]);
  return out;
}

function problemsOf(snap) {
  const out = [];
  for (const line of snap.listen_errors || []) out.push(line);
  for (const line of snap.conflicts || []) out.push(line);
  for (const line of snap.certificate_problems || []) out.push(line);
  for (const [provider, errors] of Object.entries(snap.app_errors || {})) {
    if (Array.isArray(errors)) {
      for (const e of errors) out.push(`${provider}: ${typeof e === "string" ? e : JSON.stringify(e)}`);
    } else if (errors && typeof errors === "object") {
      for (const [app, why] of Object.entries(errors)) out.push(`${provider}: app ${app}: ${typeof why === "string" ? why : JSON.stringify(why)}`);
    }
  }
  return out;
}

// The events between <prev> and <snap>, each {level: "error"|"warn"|"info", where, what}.
function changes(prev, snap) {
  const out = [];
  if (!prev) return out;
  if (prev.pid !== snap.pid) {
    out.push({ level: "warn", where: "fastlb", what: `restarted (pid ${prev.pid} → ${snap.pid})` });
    return out;
  }
  if (prev.serving !== snap.serving || prev.draining !== snap.draining) {
    out.push({ level: snap.serving ? "info" : "error", where: "fastlb", what: snap.draining ? "draining" : snap.serving ? "serving" : "not serving" });
  }
  if (snap.swap && prev.swap && snap.swap.failed > prev.swap.failed) {
    out.push({ level: "error", where: "fastlb", what: plural(snap.swap.failed - prev.swap.failed, "table swap") + " failed" });
  }
  const before = backendsOf(prev);
  for (const [key, [s, b]] of backendsOf(snap)) {
    const old = before.get(key);
    if (!old) continue;
    const o = old[1];
    const where = `${s.name} / ${b.name}`;
    if (o.health !== b.health) {
      const why = b.check && b.check.last ? ` (check: ${checkWords(b.check.last)})` : "";
      out.push({ level: b.health === "down" ? "error" : "info", where, what: `health ${o.health} → ${b.health}${why}` });
    }
    if (o.state !== b.state) out.push({ level: b.state === "ready" ? "info" : "warn", where, what: `state ${o.state} → ${b.state}` });
    for (const [counter, one, many] of COUNTED) {
      const n = b[counter] - o[counter];
      if (n > 0) out.push({ level: counter === "retries" ? "warn" : "error", where, what: `${n} ${n === 1 ? one : many}` });
    }
  }
  const services = new Map(prev.services.map((s) => [s.name, s]));
  for (const s of snap.services) {
    const o = services.get(s.name);
    if (o && s.no_backend > o.no_backend) {
      const n = s.no_backend - o.no_backend;
      out.push({ level: "error", where: s.name, what: `${plural(n, "connection")} found no backend` });
    }
    const fives = (x) => (x && x.responses ? x.responses["5xx"] : 0);
    if (o && fives(s) > fives(o)) {
      out.push({ level: "error", where: s.name, what: `${plural(fives(s) - fives(o), "5xx response")}` });
    }
  }
  const listeners = new Map(prev.listeners.map((l) => [l.address, l]));
  for (const l of snap.listeners) {
    const o = listeners.get(l.address);
    if (o && l.refused > o.refused) out.push({ level: "warn", where: `listener ${l.address}`, what: `${plural(l.refused - o.refused, "connection")} refused (maxconn)` });
  }
  const known = new Set(problemsOf(prev));
  for (const line of problemsOf(snap)) if (!known.has(line)) out.push({ level: "error", where: "config", what: line });
  return out;
}

// HTTP responses by status class, the classes seen so far: "2xx 45,050 · 4xx 150" ("–" before any).
const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

function responseWords(responses) {
  const parts = CLASSES.filter((k) => responses && responses[k] > 0).map((k) => `${k} ${int(responses[k])}`);
  return parts.length ? parts.join(" · ") : "–";
}

// -- rendering ----------------------------------------------------------------------------------

const BACKEND_COLUMNS = [
  ["name", false], ["address", false], ["state", false], ["health", false], ["weight", true],
  ["active", true], ["total", true], ["conn-rate", true], ["in-rate", true], ["out-rate", true],
  ["errors", true], ["retries", true], ["req-rate", true], ["responses", false], ["check", false],
];
const BACKEND_INDEX = Object.fromEntries(BACKEND_COLUMNS.map(([col], i) => [col, i]));
const LISTENER_COLUMNS = [
  ["address", false], ["kind", false], ["service", false], ["active", true], ["total", true],
  ["conn-rate", true], ["refused", true],
];

function serviceBox(s) {
  let box = page.services.get(s.name);
  if (!box) {
    const head = el("tr", {}, ...BACKEND_COLUMNS.map(([col, numeric]) => el("th", numeric ? { class: "num" } : {},
      { name: "backend", "conn-rate": "conn/s", "in-rate": "in/s", "out-rate": "out/s", active: "open",
        "req-rate": "req/s" }[col] || col)));
    const tbody = el("tbody");
    const meta = el("span", { class: "meta" });
    const figures = el("span", { class: "figures" });
    const http = el("div", { class: "http" });
    const root = el("div", { class: "panel service", "data-service": s.name },
      el("div", { class: "service-head" }, el("h3", {}, s.name), meta, figures), http,
      el("table", { class: "grid" }, el("thead", {}, head), tbody));
    box = { root, meta, figures, http, tbody, rows: new Map() };
    page.services.set(s.name, box);
  }
  return box;
}

function renderServices(snap, prev, dt) {
  const container = byId("services");
  const old = prev ? backendsOf(prev) : new Map();
  const oldServices = new Map((prev ? prev.services : []).map((s) => [s.name, s]));
  const seen = new Set();
  snap.services.forEach((s, i) => {
    const box = serviceBox(s);
    seen.add(s.name);
    if (container.children[i] !== box.root) container.insertBefore(box.root, container.children[i] || null);
    const o = oldServices.get(s.name) || {};
    setText(box.meta, [s.mode, s.balance, s.app_id].filter(Boolean).join(" · "));
    setText(box.figures,
      `${s.up}/${s.backends.length} up · open ${int(s.active)} · total ${int(s.total)} · ` +
      `${showRate(perSecond(s.total, o.total, dt))} conn/s · in ${bytes(s.bytes_in)} · out ${bytes(s.bytes_out)} · ` +
      `errors ${int(s.errors)}`);
    const isHttp = s.mode === "http";
    box.http.hidden = !isHttp;
    setText(box.http, isHttp
      ? `requests ${int(s.requests || 0)} · ${showRate(perSecond(s.requests, o.requests, dt))} req/s · ` +
        `responses ${responseWords(s.responses)}` + (s.own ? ` · ${int(s.own)} answered by fastlb` : "")
      : "");
    setClass(box.root, "panel service" + (s.backends.length && s.up === 0 ? " service-down" : ""));
    const seenRows = new Set();
    s.backends.forEach((b, j) => {
      seenRows.add(b.id);
      const tr = keyedRow(box.tbody, box.rows, b.id, BACKEND_COLUMNS, j);
      const ob = (old.get(s.name + "\u0000" + b.id) || [null, {}])[1];
      const override = b.override ? Object.entries(b.override).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`).join(" ") : "";
      const cell = (col) => tr.children[BACKEND_INDEX[col]];
      setClass(tr, "status-" + b.status.toLowerCase());
      setText(cell("name"), b.name);
      setTitle(cell("name"), b.name === b.id ? "" : "id " + b.id);
      setText(cell("address"), b.address);
      setPill(cell("state"), b.state + (override ? " (by hand)" : ""), "state-" + b.state);
      setTitle(cell("state"), override);
      setPill(cell("health"), b.health, "health-" + b.health);
      setText(cell("weight"), b.weight);
      setText(cell("active"), int(b.active));
      setText(cell("total"), int(b.total));
      setText(cell("conn-rate"), showRate(perSecond(b.total, ob.total, dt)));
      setText(cell("in-rate"), showByteRate(perSecond(b.bytes_in, ob.bytes_in, dt)));
      setText(cell("out-rate"), showByteRate(perSecond(b.bytes_out, ob.bytes_out, dt)));
      setText(cell("errors"), int(b.errors));
      setTitle(cell("errors"), `${plural(b.connect_errors, "connect error")}, ${plural(b.timeouts, "timeout")}`);
      setText(cell("retries"), int(b.retries));
      setText(cell("req-rate"), isHttp ? showRate(perSecond(b.requests, ob.requests, dt)) : "");
      setText(cell("responses"), isHttp ? responseWords(b.responses) : "");
      setTitle(cell("responses"), isHttp ? `${plural(b.requests || 0, "request")}` : "");
      setText(cell("check"), b.check ? `${b.check.kind}: ${checkWords(b.check.last)}` : "");
      setTitle(cell("check"), b.check ? b.check.last || "" : "");
    });
    dropUnseen(box.rows, seenRows);
  });
  for (const [name, box] of page.services) {
    if (!seen.has(name)) { box.root.remove(); page.services.delete(name); }
  }
  byId("no-services").hidden = snap.services.length > 0;
}

function renderListeners(snap, prev, dt) {
  const body = byId("listeners");
  const old = new Map((prev ? prev.listeners : []).map((l) => [l.address, l]));
  const seen = new Set();
  snap.listeners.forEach((l, i) => {
    seen.add(l.address);
    const tr = keyedRow(body, page.listeners, l.address, LISTENER_COLUMNS, i);
    const o = old.get(l.address) || {};
    fillRow(tr, [l.address, l.kind, l.service || "", int(l.active), int(l.total),
      showRate(perSecond(l.total, o.total, dt)), int(l.refused)]);
  });
  dropUnseen(page.listeners, seen);
}

const CERTIFICATE_COLUMNS = [["source", false], ["names", false], ["not_after", false], ["expires", false]];

// Each certificate served: its names, its notAfter and the days left (amber under CERT_WARN_DAYS, red once past).
function renderCertificates(snap) {
  const body = byId("certificates");
  const certs = snap.certificates || [];
  const seen = new Set();
  certs.forEach((c, i) => {
    seen.add(c.source);
    const tr = keyedRow(body, page.certificates, c.source, CERTIFICATE_COLUMNS, i);
    const days = (Date.parse(c.not_after) - snap.time * 1000) / 86400000;
    fillRow(tr, [c.source, c.names.length ? c.names.join(", ") : "every name", c.not_after.replace("T", " ")]);
    const kind = days <= 0 ? "stopped" : days < CERT_WARN_DAYS ? "draining" : "serving";
    setPill(tr.children[3], days <= 0 ? "expired" : `in ${plural(Math.floor(days), "day")}`, kind);
  });
  dropUnseen(page.certificates, seen);
  byId("certificates-panel").hidden = certs.length === 0;
}

function renderEvents(fresh, atMs) {
  if (!fresh.length) return;
  const list = byId("events");
  // Newest first: each event goes on top of the list, and the oldest fall off its end.
  for (const e of fresh) {
    const item = el("li", { class: "event " + e.level },
      el("time", {}, clock(atMs)), el("span", { class: "where" }, e.where), el("span", { class: "what" }, e.what));
    list.insertBefore(item, list.children[0] || null);
    page.events.unshift(e);
  }
  while (page.events.length > EVENTS_MAX) { page.events.pop(); list.children[list.children.length - 1].remove(); }
  byId("no-events").hidden = true;
}

function showValue(v) {
  if (v === null || v === undefined) return "–";
  if (Array.isArray(v)) return v.length ? v.map(showValue).join(", ") : "none";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function renderProviders(snap) {
  const dl = byId("providers");
  const parts = [];
  for (const [name, status] of Object.entries(snap.providers || {})) {
    const text = status && typeof status === "object"
      ? Object.entries(status).map(([k, v]) => `${k}: ${showValue(v)}`).join(" · ")
      : String(status);
    parts.push([name, text]);
  }
  const key = JSON.stringify(parts);
  if (dl.dataset.key === key) return;
  dl.dataset.key = key;
  dl.replaceChildren(...parts.flatMap(([name, text]) => [el("dt", {}, name), el("dd", {}, text)]));
}

function render(snap, nowMs) {
  let prev = page.previous;
  if (prev && prev.pid !== snap.pid) prev = null; // another process: its counters start again
  const dt = prev ? snap.time - prev.time : 0;
  const status = snap.draining ? "draining" : snap.serving ? "serving" : "stopped";
  setText(byId("status"), status);
  setClass(byId("status"), "pill " + status);
  setText(byId("generation"), snap.generation);
  setText(byId("uptime"), duration(snap.uptime_s));
  setText(byId("pid"), snap.pid);
  setText(byId("updated"), clock(nowMs));
  setText(byId("active"), int(snap.active));
  setText(byId("total"), int(snap.total));
  setText(byId("rate"), showRate(perSecond(snap.total, prev && prev.total, dt)));
  const sum = (s, k) => s.services.reduce((acc, x) => acc + x[k], 0);
  setText(byId("in-rate"), showByteRate(prev ? perSecond(sum(snap, "bytes_in"), sum(prev, "bytes_in"), dt) : null));
  setText(byId("out-rate"), showByteRate(prev ? perSecond(sum(snap, "bytes_out"), sum(prev, "bytes_out"), dt) : null));
  const backends = snap.services.reduce((acc, s) => acc + s.backends.length, 0);
  setText(byId("backends-up"), `${sum(snap, "up")} / ${backends}`);
  setText(byId("errors"), int(sum(snap, "errors")));
  const http = snap.services.filter((s) => s.mode === "http");
  const requests = (x) => x.services.filter((s) => s.mode === "http").reduce((acc, s) => acc + (s.requests || 0), 0);
  setText(byId("req-rate"), prev && http.length ? showRate(perSecond(requests(snap), requests(prev), dt)) : "–");
  setText(byId("http-5xx"), int(http.reduce((acc, s) => acc + (s.responses ? s.responses["5xx"] : 0), 0)));
  setText(byId("swap-ms"), snap.swap.count ? (snap.swap.last_s * 1000).toFixed(2) + " ms" : "–");
  setText(byId("swaps"), int(snap.swap.count));
  setText(byId("swap-failed"), int(snap.swap.failed));

  renderServices(snap, prev, dt);
  renderListeners(snap, prev, dt);
  renderCertificates(snap);

  const problems = problemsOf(snap);
  const list = byId("problem-list");
  if (list.dataset.key !== JSON.stringify(problems)) {
    list.dataset.key = JSON.stringify(problems);
    list.replaceChildren(...problems.map((p) => el("li", {}, p)));
  }
  byId("problems").hidden = problems.length === 0;
  renderEvents(changes(page.previous, snap), nowMs);
  renderProviders(snap);
  page.previous = snap;
}

// -- polling ------------------------------------------------------------------------------------

function fresh(nowMs) {
  page.freshAt = nowMs;
  page.failingSince = null;
  byId("stale").hidden = true;
  setClass(document.body, "");
}

function stale(reason, nowMs) {
  if (page.failingSince === null) page.failingSince = nowMs;
  const banner = byId("stale");
  setText(banner, page.freshAt === null
    ? `No data: /stats has not answered since ${clock(page.failingSince)} (${reason}). Retrying every second.`
    : `Stale since ${clock(page.freshAt)}: /stats is failing (${reason}). Showing the last data; retrying every second.`);
  banner.hidden = false;
  setClass(document.body, "stale");
  setText(byId("status"), "unreachable");
  setClass(byId("status"), "pill unreachable");
}

async function poll() {
  let snap = null;
  let reason = "";
  try {
    const r = await fetch("/stats", { cache: "no-store" });
    if (r.ok) snap = await r.json();
    else reason = "HTTP " + r.status;
  } catch (e) {
    reason = "no answer";
  }
  const now = Date.now();
  if (snap) {
    render(snap, now);
    fresh(now);
  } else {
    stale(reason, now);
  }
  setTimeout(poll, POLL_MS);
}

poll();
