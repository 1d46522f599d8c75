// The Sluice console: one page over the public API (and the open /metrics), no build
// step, no dependencies. Charts are small hand-written SVG: five line charts do not
// justify a charting library's weight or an npm build in the release path.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const SESSION = "sluice.credential";
const HISTORY_POINTS = 150; // 5 minutes at one sample every 2 s
const TAIL_ROWS_MAX = 500;

const state = { credential: null, mode: null, timer: null, samples: [], last: null, tail: null };

// ---------------------------------------------------------------- API

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.credential}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (!res.ok) {
    const err = new Error((data && data.detail) || `${res.status} ${res.statusText}`);
    err.status = res.status; err.code = data && data.code;
    throw err;
  }
  return data;
}

function toast(message, bad = false) {
  const t = $("#toast");
  t.textContent = message; t.className = bad ? "toast bad" : "toast"; t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

const fail = (e) => toast(e.message || String(e), true);

// ---------------------------------------------------------------- sign-in

async function signIn(credential) {
  state.credential = credential;
  try {
    await api("GET", "/v1/consumers");
    state.mode = "key";
  } catch (e) {
    if (e.status === 403) { state.mode = "key"; }
    else {
      try { await api("GET", "/v1/admin/tenants"); state.mode = "admin"; }
      catch { state.credential = null; throw new Error("Neither an API key nor the admin token: " + e.message); }
    }
  }
  sessionStorage.setItem(SESSION, credential);
  $("#login").hidden = true; $("#app").hidden = false;
  $("#who").textContent = state.mode === "admin" ? "admin" : "API key";
  for (const a of document.querySelectorAll("nav a")) a.hidden = Boolean(a.dataset.needs) && a.dataset.needs !== state.mode;
  startMetrics();
  route();
}

function signOut() {
  sessionStorage.removeItem(SESSION);
  stopTail();
  clearInterval(state.timer);
  state.credential = null; state.samples = []; state.last = null;
  $("#app").hidden = true; $("#login").hidden = false;
  $("#credential").value = "";
}

// ---------------------------------------------------------------- routing

function route() {
  const want = (location.hash || "#overview").slice(1);
  const link = document.querySelector(`nav a[data-view="${want}"]`);
  const view = link && !link.hidden ? want : "overview";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  if (view !== "tail") stopTail();
  ({ overview: drawCharts, events: loadConsumers, subscriptions: loadSubscriptions, tenants: loadTenants, tail: () => {} })[view]();
}

// ---------------------------------------------------------------- metrics

function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (rows, name, pred = () => true) => rows.filter((r) => r.name === name && pred(r.labels)).reduce((a, r) => a + r.value, 0);

function sample(rows) {
  const fsyncBuckets = rows.filter((r) => r.name === "sluice_store_fsync_seconds_bucket").map((r) => ({ le: r.labels.le === "+Inf" ? Infinity : Number(r.labels.le), n: r.value })).sort((a, b) => a.le - b.le);
  const errors = {};
  for (const r of rows) if (r.name === "sluice_http_problems_total") errors[r.labels.code] = r.value;
  return {
    t: Date.now(),
    ingested: sum(rows, "sluice_events_ingested_total"),
    delivered: sum(rows, "sluice_webhook_deliveries_total"),
    acked: sum(rows, "sluice_inbox_acked_total"),
    depth: sum(rows, "sluice_pending_events"),
    tails: sum(rows, "sluice_tail_streams_open"),
    fsyncCount: sum(rows, "sluice_store_fsync_seconds_count"),
    fsyncSum: sum(rows, "sluice_store_fsync_seconds_sum"),
    fsyncBuckets, errors,
  };
}

function p99(prev, cur) {
  const total = cur.fsyncCount - prev.fsyncCount;
  if (total <= 0) return null;
  const target = total * 0.99;
  for (const b of cur.fsyncBuckets) {
    const before = prev.fsyncBuckets.find((x) => x.le === b.le);
    if (b.n - (before ? before.n : 0) >= target) return Number.isFinite(b.le) ? b.le * 1000 : null;
  }
  return null;
}

async function pollMetrics() {
  try {
    const res = await fetch("/metrics");
    const cur = sample(parseMetrics(await res.text()));
    const prev = state.last;
    state.last = cur;
    if (prev) {
      const dt = (cur.t - prev.t) / 1000;
      const rate = (k) => Math.max(0, (cur[k] - prev[k]) / dt);
      const fsyncs = cur.fsyncCount - prev.fsyncCount;
      const errors = {};
      for (const [code, n] of Object.entries(cur.errors)) errors[code] = Math.max(0, (n - (prev.errors[code] || 0)) / dt);
      state.samples.push({
        t: cur.t, ingest: rate("ingested"), delivered: rate("delivered"), acked: rate("acked"), depth: cur.depth,
        syncMean: fsyncs > 0 ? ((cur.fsyncSum - prev.fsyncSum) / fsyncs) * 1000 : null, syncP99: p99(prev, cur), errors,
      });
      if (state.samples.length > HISTORY_POINTS) state.samples.shift();
    }
    if (!$("#view-overview").hidden) drawCharts();
  } catch (e) { /* the next poll tries again; the stats show the last good sample */ }
}

function startMetrics() {
  clearInterval(state.timer);
  pollMetrics();
  state.timer = setInterval(pollMetrics, 2000);
}

// ---------------------------------------------------------------- charts

const PALETTE = ["#2f6fed", "#1a7f4b", "#b25e09", "#c0362c", "#7a4cc2", "#0e8a9a", "#8a6d1a", "#5a6372"];

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  const s = Number.isInteger(v) && a < 1e4 ? String(v) : a >= 1e6 ? (v / 1e6).toFixed(1) + "M" : a >= 1e4 ? (v / 1e3).toFixed(1) + "k" : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  return unit ? `${s} ${unit}` : s;
}

function lineChart(el, title, unit, series) {
  // Drawn at the size it is shown, so labels stay 11 px on a phone as on a desktop.
  const W = Math.max(280, Math.round(el.clientWidth - 34)), H = W < 480 ? 160 : 190, L = 52, R = 12, T = 10, B = 24;
  const now = Date.now(), span = HISTORY_POINTS * 2000, t0 = now - span;
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null));
  const max = niceMax(Math.max(0, ...values));
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  let svg = `<svg viewBox="0 0 ${W} ${H}" style="height:${H}px" role="img" aria-label="${esc(title)}">`;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, yy = y(v);
    svg += `<line class="${i ? "grid" : "axis"}" x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}"/>`;
    svg += `<text x="${L - 6}" y="${yy + 4}" text-anchor="end">${esc(fmt(v))}</text>`;
  }
  for (let m = 0; m <= 5; m++) {
    const t = t0 + (m * span) / 5;
    svg += `<text x="${x(t)}" y="${H - 6}" text-anchor="middle">${m === 5 ? "now" : `−${5 - m}m`}</text>`;
  }
  svg += `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/>`;
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[1] !== null && p[0] >= t0).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    if (pts.length > 1) svg += `<polyline fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2" stroke-linejoin="round" points="${pts.join(" ")}"/>`;
    else if (pts.length === 1) { const [cx, cy] = pts[0].split(","); svg += `<circle cx="${cx}" cy="${cy}" r="3" fill="${PALETTE[i % PALETTE.length]}"/>`; }
  });
  svg += "</svg>";
  const latest = series.map((s) => { const p = s.points[s.points.length - 1]; return p ? p[1] : null; });
  const legend = series.length > 1 || series[0].name ? `<div class="legend">${series.map((s, i) => `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>${esc(s.name)} ${esc(fmt(latest[i], unit))}</span>`).join("")}</div>` : "";
  el.innerHTML = `<figcaption>${esc(title)} <span>${esc(unit)}</span></figcaption>${svg}${legend}`;
}

function drawCharts() {
  const s = state.samples, last = s[s.length - 1];
  const lastSync = [...s].reverse().find((p) => p.syncP99 !== null);
  const stat = (label, value) => `<div class="stat"><b>${esc(value)}</b><span>${esc(label)}</span></div>`;
  $("#stats").innerHTML = [
    stat("events ingested / s", last ? fmt(last.ingest) : "–"),
    stat("webhook deliveries / s", last ? fmt(last.delivered) : "–"),
    stat("pending in inboxes", state.last ? fmt(state.last.depth) : "–"),
    stat("latest fsync p99", lastSync ? fmt(lastSync.syncP99, "ms") : "–"),
    stat("live tails open", state.last ? fmt(state.last.tails) : "–"),
  ].join("");
  const pts = (k) => s.map((p) => [p.t, p[k]]);
  lineChart($("#chart-ingest"), "Ingest rate", "events/s", [{ name: "", points: pts("ingest") }]);
  lineChart($("#chart-delivery"), "Delivery rate", "events/s", [{ name: "webhook deliveries", points: pts("delivered") }, { name: "inbox acks", points: pts("acked") }]);
  lineChart($("#chart-depth"), "Inbox depth", "events", [{ name: "", points: pts("depth") }]);
  lineChart($("#chart-sync"), "Sync latency", "ms", [{ name: "p99 (bucket bound)", points: pts("syncP99") }, { name: "mean", points: pts("syncMean") }]);
  const codes = [...new Set(s.flatMap((p) => Object.keys(p.errors)))].sort();
  const errorSeries = codes.length ? codes.map((c) => ({ name: c, points: s.map((p) => [p.t, p.errors[c] || 0]) })) : [{ name: "no errors yet", points: s.map((p) => [p.t, 0]) }];
  lineChart($("#chart-errors"), "Errors by code", "per s", errorSeries);
}

// ---------------------------------------------------------------- events

const events = { cursor: null, pages: [] };

async function loadConsumers() {
  const select = $("#ev-consumer");
  try {
    const list = await api("GET", "/v1/consumers");
    const current = select.value;
    select.innerHTML = list.consumers.map((c) => `<option value="${esc(c.name)}">${esc(c.name)} (${c.pending})</option>`).join("");
    if (current) select.value = current;
  } catch (e) { fail(e); }
  events.cursor = null;
  loadEvents();
}

function eventsQuery(cursor) {
  const q = new URLSearchParams({ consumer: $("#ev-consumer").value || "default", limit: $("#ev-limit").value });
  const t = $("#ev-type").value.trim();
  if (t) q.set("event_type", t);
  if (cursor) q.set("cursor", cursor);
  return q;
}

async function loadEvents(cursor = null) {
  try {
    const page = await api("GET", `/v1/inbox?${eventsQuery(cursor)}`);
    const tbody = $("#ev-table tbody");
    tbody.innerHTML = page.events.map((e) => `<tr data-id="${esc(e.event_id)}"><td class="mono">${esc(e.event_id)}</td><td>${esc(e.event_type)}</td><td>${esc(e.received_at)}</td><td><span class="state ${esc(e.state)}">${esc(e.state)}</span></td><td>${e.delivery_count}</td></tr>`).join("") || `<tr><td colspan="5" class="muted">No pending events.</td></tr>`;
    events.cursor = page.has_more ? page.next_cursor : null;
    $("#ev-next").disabled = !events.cursor;
    $("#ev-status").textContent = `${page.events.length} shown${page.has_more ? ", more after" : ""}`;
  } catch (e) { fail(e); }
}

async function showEvent(id) {
  for (const tr of document.querySelectorAll("#ev-table tbody tr")) tr.classList.toggle("selected", tr.dataset.id === id);
  const consumer = $("#ev-consumer").value || "default";
  const box = $("#ev-detail");
  try {
    const e = await api("GET", `/v1/events/${encodeURIComponent(id)}?consumer=${encodeURIComponent(consumer)}`);
    box.innerHTML = `<h3 class="mono">${esc(e.event_id)}</h3>
      <dl><dt>Type</dt><dd>${esc(e.event_type)}</dd><dt>Source</dt><dd>${esc(e.source ?? "–")}</dd>
      <dt>Received</dt><dd>${esc(e.received_at)}</dd><dt>Occurred</dt><dd>${esc(e.occurred_at ?? "–")}</dd>
      <dt>State</dt><dd><span class="state ${esc(e.state)}">${esc(e.state)}</span> in ${esc(consumer)}</dd><dt>Deliveries</dt><dd>${e.delivery_count}</dd></dl>
      <div class="actions"><button id="ev-ack">Ack</button><button id="ev-delete" class="danger">Delete</button></div>
      <pre id="ev-payload">${esc(JSON.stringify(e.payload, null, 2))}</pre>`;
    $("#ev-ack").onclick = async () => {
      try { await api("POST", `/v1/events/${encodeURIComponent(id)}/ack?consumer=${encodeURIComponent(consumer)}`); toast(`Acked ${id}`); loadConsumers(); }
      catch (err) { fail(err); }
    };
    const del = $("#ev-delete");
    del.onclick = async () => {
      if (!del.dataset.armed) { del.dataset.armed = "1"; del.textContent = "Delete from every consumer?"; return; }
      try { await api("DELETE", `/v1/events/${encodeURIComponent(id)}`); toast(`Deleted ${id}`); box.innerHTML = `<p class="muted">Deleted.</p>`; loadConsumers(); }
      catch (err) { fail(err); }
    };
  } catch (err) { box.innerHTML = `<p class="error">${esc(err.message)}</p>`; }
}

// ---------------------------------------------------------------- live tail

function stopTail() {
  if (state.tail) { state.tail.abort(); state.tail = null; }
  $("#tail-start").disabled = false; $("#tail-stop").disabled = true;
  $("#tail-status").textContent = "stopped";
}

async function startTail() {
  stopTail();
  const ctl = new AbortController();
  state.tail = ctl;
  $("#tail-start").disabled = true; $("#tail-stop").disabled = false;
  const type = $("#tail-type").value.trim();
  let lastId = null;
  while (state.tail === ctl) {
    try {
      const headers = { Authorization: `Bearer ${state.credential}`, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const res = await fetch(`/v1/stream${type ? `?event_type=${encodeURIComponent(type)}` : ""}`, { headers, signal: ctl.signal });
      if (!res.ok) { const p = await res.json().catch(() => ({})); throw new Error(p.detail || `${res.status}`); }
      $("#tail-status").textContent = lastId ? `resumed after ${lastId}` : "streaming";
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let at;
        while ((at = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, at); buf = buf.slice(at + 2);
          const msg = { event: "message", id: null, data: "" };
          for (const line of frame.split("\n")) {
            if (line.startsWith("event:")) msg.event = line.slice(6).trim();
            else if (line.startsWith("id:")) msg.id = line.slice(3).trim();
            else if (line.startsWith("data:")) msg.data += line.slice(5).trim();
          }
          if (msg.id) lastId = msg.id;
          if (msg.event === "lagged") $("#tail-status").textContent = "lagged: resuming from the last event seen";
          else if (msg.data) addTailRow(JSON.parse(msg.data));
        }
      }
    } catch (e) {
      if (state.tail !== ctl) return;
      $("#tail-status").textContent = `reconnecting: ${e.message}`;
    }
    if (state.tail === ctl) await new Promise((r) => setTimeout(r, 1000));
  }
}

function addTailRow(e) {
  const tbody = $("#tail-table tbody");
  const tr = document.createElement("tr");
  tr.dataset.id = e.event_id;
  tr.innerHTML = `<td class="mono">${esc(e.event_id)}</td><td>${esc(e.event_type)}</td><td>${esc(e.received_at)}</td><td class="mono payload">${esc(JSON.stringify(e.payload))}</td>`;
  tbody.prepend(tr);
  while (tbody.rows.length > TAIL_ROWS_MAX) tbody.deleteRow(-1);
}

// ---------------------------------------------------------------- subscriptions

async function loadSubscriptions() {
  try {
    const list = await api("GET", "/v1/subscriptions");
    $("#sub-table tbody").innerHTML = list.subscriptions.map((s) => `<tr data-id="${esc(s.id)}"><td class="mono">${esc(s.target_url)}</td><td><span class="state ${esc(s.status)}">${esc(s.status)}</span></td><td>${esc(s.event_types.join(", ") || "all")}</td><td>${esc(s.ordering)}</td></tr>`).join("") || `<tr><td colspan="4" class="muted">No subscriptions. Create one with POST /v1/subscriptions.</td></tr>`;
  } catch (e) { $("#sub-table tbody").innerHTML = `<tr><td colspan="4" class="error">${esc(e.message)}</td></tr>`; }
}

async function showSubscription(id) {
  for (const tr of document.querySelectorAll("#sub-table tbody tr")) tr.classList.toggle("selected", tr.dataset.id === id);
  const box = $("#sub-detail");
  const base = `/v1/subscriptions/${encodeURIComponent(id)}`;
  try {
    const [s, attempts, dead] = await Promise.all([api("GET", base), api("GET", `${base}/attempts?limit=20`), api("GET", `${base}/dead-letters?limit=20`)]);
    box.innerHTML = `<h3 class="mono">${esc(s.id)}</h3>
      <dl><dt>Target</dt><dd class="mono">${esc(s.target_url)}</dd><dt>Status</dt><dd><span class="state ${esc(s.status)}">${esc(s.status)}</span> ${esc(s.disabled_reason ?? "")}</dd>
      <dt>Types</dt><dd>${esc(s.event_types.join(", ") || "all")}</dd><dt>Ordering</dt><dd>${esc(s.ordering)}</dd>
      <dt>Backlog</dt><dd>${s.backlog}</dd><dt>In flight</dt><dd>${s.in_flight}, retrying ${s.retrying}</dd><dt>Dead letters</dt><dd>${s.dead_letters}</dd></dl>
      <div class="actions"><button id="sub-test">Send test event</button><button id="sub-pause" class="ghost">${s.status === "active" ? "Pause" : "Resume"}</button><button id="sub-rotate" class="ghost">Rotate secret</button></div>
      <div id="sub-secret"></div>
      <h3>Attempts</h3>
      <div class="table-wrap"><table><thead><tr><th>Event</th><th>#</th><th>Status</th><th>Latency</th><th>Outcome</th></tr></thead><tbody>${attempts.attempts.map((a) => `<tr><td class="mono">${esc(a.event_id)}</td><td>${a.attempt}</td><td>${esc(a.response_status ?? a.error ?? "–")}</td><td>${a.latency_ms} ms</td><td>${esc(a.outcome)}</td></tr>`).join("") || `<tr><td colspan="5" class="muted">No attempts yet.</td></tr>`}</tbody></table></div>
      <h3>Dead letters</h3>
      <div class="table-wrap"><table><thead><tr><th>Event</th><th>Attempts</th><th></th></tr></thead><tbody>${dead.dead_letters.map((d) => `<tr><td class="mono">${esc(d.event.event_id)}</td><td>${d.attempts}</td><td><button class="ghost replay" data-id="${esc(d.event.event_id)}">Replay</button></td></tr>`).join("") || `<tr><td colspan="3" class="muted">None.</td></tr>`}</tbody></table></div>`;
    $("#sub-test").onclick = () => api("POST", `${base}/test`).then(() => { toast("Test event queued"); showSubscription(id); }, fail);
    $("#sub-pause").onclick = () => api("PATCH", base, { status: s.status === "active" ? "paused" : "active" }).then(() => { loadSubscriptions(); showSubscription(id); }, fail);
    $("#sub-rotate").onclick = () => api("POST", `${base}/rotate-secret`).then((r) => { $("#sub-secret").innerHTML = `<p>New signing secret, shown once:</p><div class="secret">${esc(r.secret)}</div>`; }, fail);
    for (const b of box.querySelectorAll("button.replay")) b.onclick = () => api("POST", `${base}/replay`, { event_ids: [b.dataset.id] }).then(() => { toast("Replay queued"); showSubscription(id); }, fail);
  } catch (e) { box.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}

// ---------------------------------------------------------------- tenants and keys

async function loadTenants() {
  try {
    const list = await api("GET", "/v1/admin/tenants");
    const lim = (t, k) => t.limits[k] ?? "default";
    $("#tenant-table tbody").innerHTML = list.tenants.map((t) => `<tr data-name="${esc(t.name)}"><td>${esc(t.name)}</td><td>${esc(lim(t, "rate_per_second"))}</td><td>${esc(lim(t, "rate_burst"))}</td><td>${esc(lim(t, "max_payload_bytes"))}</td></tr>`).join("");
  } catch (e) { fail(e); }
}

async function showTenant(name) {
  for (const tr of document.querySelectorAll("#tenant-table tbody tr")) tr.classList.toggle("selected", tr.dataset.name === name);
  const box = $("#tenant-detail");
  const base = `/v1/admin/tenants/${encodeURIComponent(name)}`;
  try {
    const [tenants, keys] = await Promise.all([api("GET", "/v1/admin/tenants"), api("GET", `${base}/keys`)]);
    const t = tenants.tenants.find((x) => x.name === name);
    box.innerHTML = `<h3>${esc(name)}</h3>
      <form id="limits-form" class="toolbar">
        <label>Rate / s <input id="lim-rate" type="number" min="1" value="${esc(t.limits.rate_per_second ?? "")}" placeholder="default"></label>
        <label>Burst <input id="lim-burst" type="number" min="1" value="${esc(t.limits.rate_burst ?? "")}" placeholder="default"></label>
        <label>Max payload (bytes) <input id="lim-payload" type="number" min="1" value="${esc(t.limits.max_payload_bytes ?? "")}" placeholder="default"></label>
        <button type="submit">Save limits</button>
      </form>
      <div class="actions"><button id="key-create">Create key</button></div>
      <div id="key-secret"></div>
      <div class="table-wrap"><table><thead><tr><th>Key</th><th>Scopes</th><th>Created</th><th></th></tr></thead><tbody>${keys.keys.map((k) => `<tr><td class="mono">${esc(k.prefix)}…</td><td>${esc(k.scopes.join(", "))}</td><td>${esc(k.created_at)}</td><td>${k.revoked_at ? `<span class="state dead">revoked</span>` : `<button class="danger revoke" data-id="${esc(k.key_id)}">Revoke</button>`}</td></tr>`).join("")}</tbody></table></div>`;
    const num = (sel) => { const v = $(sel).value.trim(); return v === "" ? null : Number(v); };
    $("#limits-form").onsubmit = (ev) => {
      ev.preventDefault();
      api("PATCH", base, { limits: { rate_per_second: num("#lim-rate"), rate_burst: num("#lim-burst"), max_payload_bytes: num("#lim-payload") } }).then(() => { toast("Limits saved"); loadTenants(); }, fail);
    };
    $("#key-create").onclick = () => api("POST", `${base}/keys`, {}).then((k) => {
      showTenant(name).then(() => { $("#key-secret").innerHTML = `<p>New key, shown once: copy it now.</p><div class="secret" id="new-key">${esc(k.key)}</div>`; });
    }, fail);
    for (const b of box.querySelectorAll("button.revoke")) b.onclick = () => api("DELETE", `/v1/admin/keys/${encodeURIComponent(b.dataset.id)}`).then(() => { toast("Key revoked"); showTenant(name); }, fail);
  } catch (e) { box.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}

// ---------------------------------------------------------------- wiring

$("#login-form").onsubmit = (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  signIn($("#credential").value.trim()).catch((e) => { $("#login-error").textContent = e.message; });
};
$("#logout").onclick = signOut;
window.addEventListener("hashchange", route);
$("#events-filter").onsubmit = (ev) => { ev.preventDefault(); loadEvents(); };
$("#ev-consumer").onchange = () => loadEvents();
$("#ev-first").onclick = () => loadEvents();
$("#ev-next").onclick = () => events.cursor && loadEvents(events.cursor);
$("#ev-table tbody").onclick = (ev) => { const tr = ev.target.closest("tr[data-id]"); if (tr) showEvent(tr.dataset.id); };
$("#tail-form").onsubmit = (ev) => { ev.preventDefault(); startTail(); };
$("#tail-stop").onclick = stopTail;
$("#sub-table tbody").onclick = (ev) => { const tr = ev.target.closest("tr[data-id]"); if (tr) showSubscription(tr.dataset.id); };
$("#tenant-table tbody").onclick = (ev) => { const tr = ev.target.closest("tr[data-name]"); if (tr) showTenant(tr.dataset.name); };
$("#tenant-form").onsubmit = (ev) => {
  ev.preventDefault();
  api("POST", "/v1/admin/tenants", { name: $("#tenant-name").value.trim() }).then(() => { $("#tenant-name").value = ""; toast("Tenant created"); loadTenants(); }, fail);
};

const saved = sessionStorage.getItem(SESSION);
window.addEventListener("resize", () => { if (!$("#view-overview").hidden) drawCharts(); });
if (saved) signIn(saved).catch(() => { sessionStorage.removeItem(SESSION); $("#login").hidden = false; });
else $("#login").hidden = false;
