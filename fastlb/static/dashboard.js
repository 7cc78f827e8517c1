// fastlb's dashboard: polls /stats once a second and updates the page in place. No dependencies.
"use strict";

const POLL_MS = 1000;
let previous = null; // the last snapshot, for rates

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function setText(id, value) {
  const e = document.getElementById(id);
  const text = String(value);
  if (e.textContent !== text) e.textContent = text;
}

function rate(now, before, dt) {
  if (before === undefined || dt <= 0) return "-";
  return ((now - before) / dt).toFixed(1);
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

// One table per service, keyed by name, rows keyed by backend id: reused between polls.
function serviceTable(s) {
  const id = "svc-" + s.name;
  let box = document.getElementById(id);
  if (!box) {
    box = el("div", { id });
    box.append(el("h3", {}, s.name, el("span", { class: "service-meta" }, "")));
    const t = el("table", {},
      el("thead", {}, el("tr", {}, ...["backend", "address", "status", "weight", "open", "total", "conn/s",
        "in", "out", "errors", "override"].map((h) => el("th", {}, h)))),
      el("tbody", {}));
    box.append(t);
    document.getElementById("services").append(box);
  }
  return box;
}

function render(snap) {
  const dt = previous ? snap.time - previous.time : 0;
  const status = snap.draining ? "draining" : snap.serving ? "serving" : "stopped";
  const pill = document.getElementById("status");
  pill.textContent = status;
  pill.className = "pill " + status;
  setText("generation", snap.generation);
  setText("swaps", snap.swaps);
  setText("swap-ms", (snap.swap.last_s * 1000).toFixed(2));
  setText("active", snap.active);
  setText("total", snap.total);
  setText("rate", rate(snap.total, previous && previous.total, dt));
  setText("pid", snap.pid);

  const oldBackends = {};
  if (previous) for (const s of previous.services) for (const b of s.backends) oldBackends[b.id] = b;

  const keep = new Set();
  for (const s of snap.services) {
    const box = serviceTable(s);
    keep.add(box.id);
    box.querySelector(".service-meta").textContent =
      `${s.mode} · ${s.balance} · ${s.up}/${s.backends.length} up · open ${s.active} · errors ${s.errors}` +
      (s.app_id ? ` · ${s.app_id}` : "");
    const body = box.querySelector("tbody");
    const rows = {};
    for (const tr of body.children) rows[tr.dataset.id] = tr;
    for (const b of s.backends) {
      let tr = rows[b.id];
      if (!tr) { tr = el("tr"); tr.dataset.id = b.id; for (let i = 0; i < 11; i++) tr.append(el("td")); }
      body.append(tr); // keeps table order
      delete rows[b.id];
      const old = oldBackends[b.id];
      const o = b.override ? Object.entries(b.override).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`).join(" ") : "";
      const cells = [b.name, b.address, null, b.weight, b.active, b.total, rate(b.total, old && old.total, dt),
        bytes(b.bytes_in), bytes(b.bytes_out), b.errors, o];
      cells.forEach((v, i) => {
        const td = tr.children[i];
        if (i === 2) {
          const text = b.status;
          if (td.textContent !== text) { td.replaceChildren(el("span", { class: "pill " + text }, text)); }
        } else if (td.textContent !== String(v)) td.textContent = String(v);
      });
    }
    for (const tr of Object.values(rows)) tr.remove();
  }
  for (const box of [...document.getElementById("services").children]) if (!keep.has(box.id)) box.remove();

  const lbody = document.getElementById("listeners");
  lbody.replaceChildren(...snap.listeners.map((l) =>
    el("tr", {}, ...[l.address, l.kind, l.service, l.active, l.total, l.refused].map((v) => el("td", {}, String(v))))));

  const problems = [...snap.conflicts];
  for (const [name, errors] of Object.entries(snap.app_errors)) {
    if (Array.isArray(errors)) errors.forEach((e) => problems.push(`${name}: ${typeof e === "string" ? e : JSON.stringify(e)}`));
    else if (errors && typeof errors === "object") for (const [k, v] of Object.entries(errors)) problems.push(`${name}: ${k}: ${JSON.stringify(v)}`);
  }
  document.getElementById("problems").hidden = problems.length === 0;
  document.getElementById("problem-list").replaceChildren(...problems.map((p) => el("li", {}, p)));
  setText("providers", JSON.stringify(snap.providers, null, 2));
  previous = snap;
}

async function poll() {
  try {
    const r = await fetch("/stats", { cache: "no-store" });
    if (!r.ok) throw new Error(r.status);
    render(await r.json());
  } catch (e) {
    const pill = document.getElementById("status");
    pill.textContent = "unreachable";
    pill.className = "pill DOWN";
  }
  setTimeout(poll, POLL_MS);
}

poll();
