"""`GET /_admin`: the built-in status page.

The page is one constant document: inline CSS and a small script, no external assets,
and no data. The script fetches `/_admin/status.json` (`proxy/ops/status.py`) and the
warm-up jobs (`GET /_warm`, `proxy/ops/warm.py`) at once and every 2 s, and builds the
tables with `textContent`, never `innerHTML`: URLs, hosts and purge fields are
attacker-controlled, and nothing from the proxy's state is ever interpolated into HTML,
so there is nothing to escape server-side. A Content-Security-Policy (`<meta>`, hashes
of the inline style and script) refuses any other script or style.

Authorization: `/_admin` is an admin path like every other (`proxy/ops/access.py`). A browser
cannot add a bearer header to a navigation, so with `[admin] token` set the operator
opens `/_admin#token=<token>`: the fragment never leaves the browser (not in the request,
not in server or proxy logs); the script reads it, removes it from the address bar and
sends it as `Authorization: Bearer` on each refresh. For that, the 401 answer to
`/_admin` carries this same data-free page (`unauthorized`) instead of a plain-text
error: status, `WWW-Authenticate` and what an unauthorized client learns stay the same."""

from __future__ import annotations

import base64
import hashlib

from starlette.requests import Request
from starlette.responses import Response

from proxy.ops.responses import Header, answer

PATH = "/_admin"
CONTENT_TYPE = b"text/html; charset=utf-8"

_STYLE = """
:root { --fg: #1d2430; --muted: #5b6676; --line: #dde2ea; --bg: #f5f7fa; --card: #fff;
  --accent: #2563eb; --ok: #15803d; --bad: #b91c1c; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap;
  padding: 12px 24px; background: #111827; color: #f3f4f6; }
header h1 { margin: 0; font-size: 20px; font-weight: 650; letter-spacing: .2px; }
header .meta { color: #cbd5e1; }
header .refresh { margin-left: auto; color: #cbd5e1; }
header time { color: #fff; font-variant-numeric: tabular-nums; }
main { padding: 16px 24px 32px; display: grid; gap: 16px;
  grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 16px; min-width: 0; }
section.wide, .cards { grid-column: 1 / -1; }
h2 { margin: 0 0 8px; font-size: 15px; font-weight: 650; }
.cards { display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 16px; }
.card h2 { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .6px; font-weight: 600; }
.big { font-size: 28px; font-weight: 650; font-variant-numeric: tabular-nums; }
.sub { color: var(--muted); font-size: 12px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.empty { color: var(--muted); font-style: italic; }
.obj { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px;
  overflow-wrap: anywhere; }
.name { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; white-space: nowrap; }
.rank { width: 3em; }
.share { width: 28%; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; color: #fff; }
.badge.up, .badge.closed, .badge.ready { background: var(--ok); }
.badge.down, .badge.open, .badge.not-ready { background: var(--bad); }
.badge.ejected, .badge.half-open, .badge.trial { background: var(--warn); }
.badge.no { background: #94a3b8; }
.bar { position: relative; height: 6px; background: var(--line); border-radius: 3px;
  margin-top: 3px; min-width: 60px; }
.bar > span { position: absolute; left: 0; top: 0; bottom: 0; background: var(--accent);
  border-radius: 3px; }
.notice { grid-column: 1 / -1; margin: 0; padding: 10px 14px; border-radius: 8px;
  background: #fef3c7; border: 1px solid #f59e0b; }
.note { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; }
.chip { border: 1px solid var(--line); border-radius: 12px; padding: 1px 10px; }
.chip b { font-variant-numeric: tabular-nums; }
"""

_SCRIPT = r"""
"use strict";
(() => {
  const REFRESH_MS = 2000;
  // #token=... : read once, kept in memory only, and taken out of the address bar.
  let token = null;
  const found = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (found) {
    token = decodeURIComponent(found[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
  let refreshes = 0;
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function count(n) {
    if (n === null || n === undefined) return "\u2013";
    return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  function bytes(n) {
    if (n === null || n === undefined) return "\u2013";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(Math.round(n))) + " " + units[i];
  }
  function pct(r) {
    return r === null || r === undefined ? "\u2013" : (r * 100).toFixed(1) + "%";
  }
  function ms(v) { return v === null || v === undefined ? "\u2013" : v.toFixed(1) + " ms"; }
  function badge(text, cls) { return el("span", text, "badge " + (cls || text)); }
  function bar(ratio) {
    const outer = el("div", null, "bar");
    const inner = el("span");
    inner.style.width = Math.max(0, Math.min(1, ratio || 0)) * 100 + "%";
    outer.appendChild(inner);
    return outer;
  }
  function stack(...nodes) {
    const d = el("div");
    for (const n of nodes) d.appendChild(typeof n === "string" ? el("div", n) : n);
    return d;
  }
  function text(v) {
    // Any JSON value as plain text (purge records hold whatever their producer put in).
    if (v === null || v === undefined) return "\u2013";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v === "number") return Number.isInteger(v) ? count(v) : String(v);
    if (Array.isArray(v)) return v.length ? v.map(text).join(", ") : "\u2013";
    if (typeof v === "object") {
      return Object.entries(v).map(([k, x]) => k + ": " + text(x)).join(", ");
    }
    return String(v);
  }
  function when(v) {
    return typeof v === "number" && v > 1e9 ? new Date(v * 1000).toISOString()
      .replace("T", " ").slice(0, 19) + " UTC" : text(v);
  }
  // cells: strings (-> text cells) or [node-or-string, className]
  function fill(id, rows, cells, empty) {
    const body = $(id).tBodies[0];
    const out = document.createDocumentFragment();
    for (const row of rows) {
      const tr = el("tr");
      for (const c of cells(row)) {
        const [v, cls] = Array.isArray(c) ? c : [c, ""];
        const td = el("td", null, cls);
        if (v instanceof Node) td.appendChild(v); else td.textContent = String(v);
        tr.appendChild(td);
      }
      out.appendChild(tr);
    }
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", empty, "empty");
      td.colSpan = $(id).tHead.rows[0].cells.length;
      tr.appendChild(td);
      out.appendChild(tr);
    }
    body.replaceChildren(out);
  }

  function render(d) {
    const meta = "pid " + d.pid + (d.workers > 1 ? " \u00b7 one of " + d.workers +
      " workers (numbers are this worker's)" : "");
    $("meta").replaceChildren(el("span", meta + " "),
      badge(d.ready ? "ready" : "not ready", d.ready ? "ready" : "not-ready"));
    $("hit-ratio").textContent = pct(d.hit_ratio);
    $("hit-detail").textContent = count(d.hits) + " of " + count(d.lookups) + " lookups";
    $("requests").textContent = count(d.requests);
    $("client-bytes").textContent = bytes(d.bytes.client);
    $("origin-bytes").textContent = bytes(d.bytes.origin);
    $("offload").textContent = pct(d.bytes.offload);

    fill("origins", d.origins, (o) => {
      const req = Object.entries(o.requests || {}).map(([k, n]) => k + " " + count(n));
      const ej = o.groups.filter((g) => g.passive !== "ok" && g.passive !== "off");
      return [
        [o.name, "name"], o.kind || "\u2013", [badge(o.state)],
        [ej.length ? stack(...ej.map((g) => badge(g.passive + (g.implicit ? "" : " in " +
          g.group)))) : badge("no", "no")],
        [ms(o.ewma_ms), "num"], [ms(o.p95_ms), "num"], [count(o.inflight), "num"],
        [count(o.ejections), "num"],
        req.length ? req.join(", ") : "\u2013", [bytes(o.bytes), "num"],
      ];
    }, "no origins");

    fill("routes", d.routes, (r) => [
      [r.route, "name"], [count(r.requests), "num"],
      [stack(pct(r.hit_ratio), bar(r.hit_ratio)), "num"],
      [count(r.hits) + " / " + count(r.lookups), "num"], [bytes(r.client_bytes), "num"],
    ], "no routes");

    const chips = $("outcomes");
    chips.replaceChildren();
    for (const [k, n] of Object.entries(d.outcomes)) {
      const c = el("span", k + " ", "chip");
      c.appendChild(el("b", count(n)));
      chips.appendChild(c);
    }
    if (!chips.childNodes.length) chips.appendChild(el("span", "no requests yet", "note"));

    fill("tiers", d.tiers, (t) => {
      // errors, timeouts, read_errors, write_errors, ...: whichever the tier reports
      const failed = Object.keys(t).filter((k) => /^(errors|timeouts|\w+_errors)$/.test(k));
      const errs = failed.length ? count(failed.reduce((a, k) => a + (t[k] || 0), 0)) :
        "\u2013";
      const shown = new Set(["name", "bytes", "max_bytes", "entries", "evictions", "hits",
        "misses", "circuit_state", "circuit_state_code", ...failed]);
      const rest = Object.entries(t).filter(([k]) => !shown.has(k));
      const size = t.max_bytes ? stack(bytes(t.bytes) + " of " + bytes(t.max_bytes),
        bar(t.bytes / t.max_bytes)) : "\u2013";
      return [
        [t.name, "name"], [size, "num"], ["entries" in t ? count(t.entries) : "\u2013", "num"],
        ["evictions" in t ? count(t.evictions) : "\u2013", "num"],
        ["hits" in t ? count(t.hits) : "\u2013", "num"],
        ["misses" in t ? count(t.misses) : "\u2013", "num"], [errs, "num"],
        [t.circuit_state ? badge(t.circuit_state) : "\u2013"],
        rest.length ? rest.map(([k, v]) => k + " " + text(v)).join(", ") : "\u2013",
      ];
    }, "no tiers");

    const most = d.top_objects.length ? d.top_objects[0].requests : 0;
    fill("top", d.top_objects, (t) => [
      [String(d.top_objects.indexOf(t) + 1), "num rank"], [t.object, "obj"],
      [stack(count(t.requests), bar(most ? t.requests / most : 0)), "num"],
    ], "no requests for objects yet");
    $("top-note").hidden = !d.top_objects_pruned;

    const keys = [];
    for (const p of d.recent_purges) for (const k of Object.keys(p)) {
      if (!keys.includes(k)) keys.push(k);
    }
    const head = $("purges").tHead.rows[0];
    head.replaceChildren(...(keys.length ? keys : ["purge"]).map((k) => el("th", k)));
    fill("purges", d.recent_purges, (p) => keys.map((k) =>
      /^(time|ts|at|when|started|finished)$/.test(k) ? when(p[k]) : text(p[k])),
    "no purges since this process started");
  }

  // Warm-up jobs (POST /_warm): this process's, newest first.
  async function refreshWarm(headers) {
    const r = await fetch("/_warm", { headers, credentials: "same-origin", cache: "no-store" });
    if (!r.ok) return;
    const w = await r.json();
    fill("warm", w.jobs, (j) => [
      [j.id, "name"], j.source,
      [badge(j.state, j.state === "done" ? "up" : "trial")],
      [stack(count(j.done) + " / " + count(j.total), bar(j.total ? j.done / j.total : 1)), "num"],
      [count(j.warmed), "num"], [count(j.hits), "num"], [count(j.failed), "num"],
      [bytes(j.bytes), "num"], when(j.started),
    ], "no warm-up jobs since this process started");
  }

  function notice(message) {
    const n = $("notice");
    n.textContent = message;
    n.hidden = !message;
  }

  async function refresh() {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    try {
      const r = await fetch("/_admin/status.json",
        { headers, credentials: "same-origin", cache: "no-store" });
      if (r.status === 401) {
        notice("This proxy needs its admin token: open /_admin#token=<token> " +
          "(the part after # never leaves the browser).");
      } else if (!r.ok) {
        notice("status.json answered " + r.status + (r.status === 403 && token ?
          ": wrong token" : ""));
      } else {
        const d = await r.json();
        render(d);
        await refreshWarm(headers);
        notice("");
        refreshes += 1;
        const t = $("refreshed");
        t.dateTime = new Date(d.generated * 1000).toISOString();
        t.textContent = when(d.generated);
        t.dataset.refreshes = String(refreshes);
      }
    } catch (e) {
      notice("refresh failed: " + e);
    }
    setTimeout(refresh, REFRESH_MS);
  }
  refresh();
})();
"""

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="@CSP@">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeshield admin</title>
<link rel="icon" href="data:,">
<style>@STYLE@</style>
</head>
<body>
<header>
<h1>edgeshield</h1>
<span class="meta" id="meta"></span>
<span class="refresh">last refresh: <time id="refreshed" data-refreshes="0">never</time></span>
</header>
<main>
<p class="notice" id="notice" hidden></p>
<noscript><p class="notice">This page needs JavaScript; its data is
<a href="/_admin/status.json">/_admin/status.json</a>.</p></noscript>
<div class="cards">
<div class="card" id="card-hit-ratio"><h2>Hit ratio</h2>
<div class="big" id="hit-ratio">&ndash;</div>
<div class="sub" id="hit-detail"></div></div>
<div class="card"><h2>Requests</h2><div class="big" id="requests">&ndash;</div>
<div class="sub">operations endpoints excluded</div></div>
<div class="card"><h2>Served to clients</h2><div class="big" id="client-bytes">&ndash;</div>
<div class="sub">body bytes, all routes</div></div>
<div class="card"><h2>From origins</h2><div class="big" id="origin-bytes">&ndash;</div>
<div class="sub">body bytes fetched</div></div>
<div class="card"><h2>Offload</h2><div class="big" id="offload">&ndash;</div>
<div class="sub">1 &minus; origin / served bytes</div></div>
</div>
<section class="wide" id="section-origins"><h2>Origins</h2>
<table id="origins"><thead><tr><th>origin</th><th>kind</th><th>health</th><th>ejected</th>
<th class="num">latency EWMA</th><th class="num">p95</th><th class="num">in flight</th>
<th class="num">ejections</th><th>origin requests</th><th class="num">bytes</th></tr></thead>
<tbody></tbody></table></section>
<section id="section-routes"><h2>Routes</h2>
<table id="routes"><thead><tr><th>route</th><th class="num">requests</th>
<th class="num">hit ratio</th><th class="num">hits / lookups</th><th class="num">served</th>
</tr></thead><tbody></tbody></table>
</section>
<section id="section-outcomes"><h2>Outcomes</h2><div class="chips" id="outcomes"></div>
<p class="note">Hit ratio: hit and stale answers over lookups (hit, stale, miss,
collapsed). A collapsed request shared another's origin fetch.</p></section>
<section class="wide" id="section-tiers"><h2>Cache tiers</h2>
<table id="tiers"><thead><tr><th>tier</th><th class="num">size</th><th class="num">entries</th>
<th class="num">evictions</th><th class="num">hits</th><th class="num">misses</th>
<th class="num">errors</th><th>circuit</th><th>other</th></tr></thead><tbody></tbody></table>
</section>
<section class="wide" id="section-top"><h2>Top objects</h2>
<table id="top"><thead><tr><th class="num rank">#</th><th>object (cache key)</th>
<th class="num share">requests</th></tr></thead><tbody></tbody></table>
<p class="note" id="top-note" hidden>Approximate: the table keeps the most requested
objects, and an object is counted from when it last entered it.</p></section>
<section class="wide" id="section-warm"><h2>Warm-up jobs</h2>
<table id="warm"><thead><tr><th>job</th><th>source</th><th>state</th>
<th class="num">done / total</th><th class="num">warmed</th><th class="num">hits</th>
<th class="num">failed</th><th class="num">bytes</th><th>started</th></tr></thead>
<tbody></tbody></table></section>
<section class="wide" id="section-purges"><h2>Recent purges</h2>
<table id="purges"><thead><tr><th>purge</th></tr></thead><tbody></tbody></table></section>
</main>
<script>@SCRIPT@</script>
</body>
</html>
"""


def _sha256(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


def render() -> bytes:
    """The page, with a CSP that allows exactly its own inline style and script."""
    csp = (
        f"default-src 'none'; script-src '{_sha256(_SCRIPT)}'; style-src '{_sha256(_STYLE)}'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    return (
        _TEMPLATE.replace("@CSP@", csp)
        .replace("@STYLE@", _STYLE)
        .replace("@SCRIPT@", _SCRIPT)
        .encode()
    )


PAGE = render()  # immutable; the page never changes while the process runs


async def page(request: Request) -> Response:
    return answer(request, PAGE, CONTENT_TYPE)


def unauthorized(request: Request, extra: list[Header]) -> Response:
    """401 for `/_admin` with the data-free page as its body, so a browser opened on
    `/_admin#token=...` runs the script that sends the token (see the module doc)."""
    return answer(request, PAGE, CONTENT_TYPE, 401, extra)
