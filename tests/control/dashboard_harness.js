// Runs fastlb/static/dashboard.js under node against a minimal DOM, feeding it the /stats snapshots
// given as JSON files, and prints what the page shows after each poll (a test double of a browser).
"use strict";
const fs = require("fs");
const vm = require("vm");

const [, , scriptPath, htmlPath, ...snapshotPaths] = process.argv;

class Element {
  constructor(tag) { this.tagName = tag.toUpperCase(); this.attrs = {}; this.children = []; this.parent = null;
    this.text = ""; this.dataset = {}; this.hidden = false; this.className = ""; }
  setAttribute(k, v) { if (k === "class") this.className = v; else this.attrs[k] = String(v); }
  get id() { return this.attrs.id || ""; }
  append(...nodes) {
    for (let n of nodes) {
      if (typeof n === "string") { const t = new Element("#text"); t.text = n; n = t; }
      if (n.parent) n.remove();
      n.parent = this; this.children.push(n);
    }
  }
  replaceChildren(...nodes) { for (const c of [...this.children]) c.remove(); this.text = ""; this.append(...nodes); }
  remove() { if (this.parent) { this.parent.children = this.parent.children.filter((c) => c !== this); this.parent = null; } }
  get textContent() { return this.text + this.children.map((c) => c.textContent).join(""); }
  set textContent(v) { for (const c of [...this.children]) c.remove(); this.text = String(v); }
  *walk() { for (const c of this.children) { yield c; yield* c.walk(); } }
  querySelector(sel) {
    for (const e of this.walk()) {
      if (sel.startsWith(".") ? e.className.split(" ").includes(sel.slice(1)) : e.tagName === sel.toUpperCase()) return e;
    }
    return null;
  }
}

const body = new Element("body");
const html = fs.readFileSync(htmlPath, "utf8");
for (const m of html.matchAll(/<(\w+)[^>]*\sid="([^"]+)"/g)) { const e = new Element(m[1]); e.setAttribute("id", m[2]); body.append(e); }
const document = {
  createElement: (tag) => new Element(tag),
  getElementById: (id) => { for (const e of body.walk()) if (e.id === id) return e; return null; },
};

let pending = null;
const snapshots = snapshotPaths.map((p) => JSON.parse(fs.readFileSync(p, "utf8")));
const fetch = async () => ({ ok: true, json: async () => snapshots.shift() });
const context = { document, fetch, setTimeout: (fn) => { pending = fn; }, console, JSON, Object, String, Set, Array, Error };
vm.createContext(context);

function view() {
  const services = document.getElementById("services").children.map((box) => ({
    id: box.id,
    meta: box.querySelector(".service-meta").textContent,
    rows: box.querySelector("tbody").children.map((tr) => ({ id: tr.dataset.id, marked: !!tr.marked,
      cells: tr.children.map((td) => td.textContent), pill: (td => td && td.className)(tr.children[2].children[0]) })),
  }));
  for (const box of document.getElementById("services").children) for (const tr of box.querySelector("tbody").children) tr.marked = true;
  const text = (id) => document.getElementById(id).textContent;
  return { status: text("status"), generation: text("generation"), active: text("active"), rate: text("rate"),
    problems: document.getElementById("problem-list").children.map((li) => li.textContent),
    problemsHidden: document.getElementById("problems").hidden, listeners: document.getElementById("listeners").children.length,
    services };
}

(async () => {
  vm.runInContext(fs.readFileSync(scriptPath, "utf8"), context, { filename: "dashboard.js" });
  const views = [];
  while (true) {
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    views.push(view());
    if (!snapshots.length || !pending) break;
    const next = pending; pending = null; next();
  }
  process.stdout.write(JSON.stringify(views));
})();
