// Runs fastlb/static/dashboard.js under node against a minimal DOM, feeding it the /stats answers
// given as JSON files, and prints what the page shows after each poll (a test double of a browser).
// An answer file holding {"fail": 503} answers that HTTP status; {"fail": "network"} makes fetch throw.
"use strict";
const fs = require("fs");
const vm = require("vm");

const [, , scriptPath, htmlPath, ...answerPaths] = process.argv;

class Element {
  constructor(tag) { this.tagName = tag.toUpperCase(); this.attrs = {}; this.children = []; this.parent = null;
    this.text = ""; this.dataset = {}; this.hidden = false; this.className = ""; this.title = ""; }
  setAttribute(k, v) { if (k === "class") this.className = String(v); else this.attrs[k] = String(v); }
  getAttribute(k) { return k === "class" ? this.className : (this.attrs[k] ?? null); }
  get id() { return this.attrs.id || ""; }
  _adopt(n) {
    if (typeof n === "string") { const t = new Element("#text"); t.text = n; return t; }
    if (n.parent) n.remove();
    return n;
  }
  append(...nodes) { for (const n of nodes) { const c = this._adopt(n); c.parent = this; this.children.push(c); } }
  insertBefore(node, ref) {
    const c = this._adopt(node);
    const i = ref ? this.children.indexOf(ref) : -1;
    c.parent = this;
    if (i < 0) this.children.push(c); else this.children.splice(i, 0, c);
    return c;
  }
  replaceChildren(...nodes) { for (const c of [...this.children]) c.remove(); this.text = ""; this.append(...nodes); }
  remove() { if (this.parent) { this.parent.children = this.parent.children.filter((c) => c !== this); this.parent = null; } }
  get textContent() { return this.text + this.children.map((c) => c.textContent).join(""); }
  set textContent(v) { for (const c of [...this.children]) c.remove(); this.text = String(v); }
  *walk() { for (const c of this.children) { yield c; yield* c.walk(); } }
  // ".class", "tag" or "[attr=value]", one simple selector only.
  querySelectorAll(sel) {
    const m = sel.match(/^\[([\w-]+)="?([^"\]]*)"?\]$/);
    const test = m ? (e) => e.getAttribute(m[1]) === m[2]
      : sel.startsWith(".") ? (e) => e.className.split(" ").includes(sel.slice(1))
      : (e) => e.tagName === sel.toUpperCase();
    return [...this.walk()].filter(test);
  }
  querySelector(sel) { return this.querySelectorAll(sel)[0] || null; }
}

const body = new Element("body");
const html = fs.readFileSync(htmlPath, "utf8");
for (const m of html.matchAll(/<(\w+)[^>]*\sid="([^"]+)"/g)) { const e = new Element(m[1]); e.setAttribute("id", m[2]); body.append(e); }
// Elements the page shows from the start (not hidden in index.html) start visible.
for (const m of html.matchAll(/<\w+[^>]*\sid="([^"]+)"[^>]*>/g)) body.querySelector(`[id="${m[1]}"]`).hidden = /\shidden[\s>]/.test(m[0]);
const document = {
  body,
  createElement: (tag) => new Element(tag),
  getElementById: (id) => { for (const e of body.walk()) if (e.id === id) return e; return null; },
};

let pending = null;
const answers = answerPaths.map((p) => JSON.parse(fs.readFileSync(p, "utf8")));
const fetch = async () => {
  const a = answers.shift();
  if (a.fail === "network") throw new TypeError("Failed to fetch");
  if (a.fail) return { ok: false, status: a.fail, json: async () => ({}) };
  return { ok: true, status: 200, json: async () => a };
};
const context = { document, fetch, setTimeout: (fn) => { pending = fn; }, console };
vm.createContext(context);

function view() {
  const services = document.getElementById("services").children.map((box) => ({
    service: box.getAttribute("data-service"),
    className: box.className,
    name: box.querySelector("h3").textContent,
    meta: box.querySelector(".meta").textContent,
    figures: box.querySelector(".figures").textContent,
    http: box.querySelector(".http").textContent,
    httpHidden: !!box.querySelector(".http").hidden,
    rows: box.querySelector("tbody").children.map((tr) => ({
      key: tr.getAttribute("data-key"), marked: !!tr.marked, className: tr.className,
      cells: Object.fromEntries(tr.children.map((td) => [td.getAttribute("data-col"), td.textContent])),
      pills: tr.children.filter((td) => td.children[0]).map((td) => td.children[0].className),
    })),
  }));
  for (const box of document.getElementById("services").children) for (const tr of box.querySelector("tbody").children) tr.marked = true;
  const text = (id) => document.getElementById(id).textContent;
  const ids = ["status", "generation", "active", "total", "rate", "in-rate", "out-rate", "backends-up", "errors", "stale",
    "req-rate", "http-5xx"];
  return {
    ...Object.fromEntries(ids.map((id) => [id, text(id)])),
    statusClass: document.getElementById("status").className,
    staleHidden: document.getElementById("stale").hidden,
    bodyClass: body.className,
    problems: document.getElementById("problem-list").children.map((li) => li.textContent),
    problemsHidden: document.getElementById("problems").hidden,
    events: document.getElementById("events").children.map((li) => ({
      level: li.className, where: li.querySelector(".where").textContent, what: li.querySelector(".what").textContent })),
    listeners: document.getElementById("listeners").children.map((tr) => tr.children.map((td) => td.textContent)),
    providers: document.getElementById("providers").children.map((x) => x.textContent),
    services,
  };
}

(async () => {
  vm.runInContext(fs.readFileSync(scriptPath, "utf8"), context, { filename: "dashboard.js" });
  const views = [];
  while (true) {
    for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r));
    views.push(view());
    if (!answers.length || !pending) break;
    const next = pending; pending = null; next();
  }
  process.stdout.write(JSON.stringify(views));
})();
