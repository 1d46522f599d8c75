// Drives the Sluice console in headless Chromium against a running server, through the
// page as a person would, and checks each effect through the API. Run by
// crates/sluice/tests/console.rs, which starts the real binary and sets:
//   SLUICE_URL, SLUICE_KEY (the default tenant's key), SLUICE_ADMIN (the admin token),
//   CHROMIUM (the browser binary), and optionally SCREENSHOTS (a directory to write
//   the README's screenshots to).
// Exits non-zero, naming the step, on the first failure.
import { chromium } from "playwright-core";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const base = process.env.SLUICE_URL;
const key = process.env.SLUICE_KEY;
const admin = process.env.SLUICE_ADMIN;
const shots = process.env.SCREENSHOTS || "";
if (!base || !key || !admin) throw new Error("set SLUICE_URL, SLUICE_KEY and SLUICE_ADMIN");

const STEP_MS = 15000;
let step = "start";
const problems = [];

async function call(method, p, body, credential = key) {
  const res = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${credential}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function ingest(type, n) {
  const r = await call("POST", "/v1/events", { event_type: type, payload: { n, note: `<b>not html</b> ${n}` } });
  if (r.status !== 201) throw new Error(`ingest: ${r.status}`);
  return r.json.event_id;
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

async function shot(page, name) {
  if (!shots) return;
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: false });
}

// A webhook receiver on this machine: answers 200 and counts what it got.
let received = 0;
const receiver = http.createServer((req, res) => { req.resume(); req.on("end", () => { received++; res.end("ok"); }); });
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const hook = `http://127.0.0.1:${receiver.address().port}/hook`;

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
try {
  // bypassCSP: Playwright's waitForFunction evaluates its predicate as a string, which
  // the console's own policy (script-src 'self', no eval) rightly refuses; the policy
  // itself is checked below, on the response header.
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });

  step = "the page is served with a strict content security policy";
  const served = await page.goto(`${base}/ui/`);
  const csp = served.headers()["content-security-policy"] || "";
  expect(csp.includes("script-src 'self'") && !csp.includes("unsafe"), `CSP: ${csp}`);

  step = "a wrong credential is refused with a message";
  await page.fill("#credential", "sk_wrong");
  await page.click("#login-form button");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0);
  expect(await page.isVisible("#login"), "still on the sign-in screen");
  problems.length = 0; // the 401s of that attempt are expected console noise

  step = "sign in with the API key";
  for (let i = 0; i < 60; i++) await ingest(i % 2 ? "order.created" : "user.joined", i);
  await page.fill("#credential", key);
  await page.click("#login-form button");
  await page.waitForSelector("#app:not([hidden])");
  expect(await page.isHidden('nav a[data-view="tenants"]'), "a key does not see the admin view");

  step = "the overview charts fill in, with axes and units";
  await page.waitForFunction(() => document.querySelectorAll("#chart-ingest svg text").length >= 10);
  for (let i = 0; i < 30; i++) await ingest("order.created", 100 + i);
  await page.waitForSelector("#chart-ingest polyline", { timeout: 20000 });
  const caption = await page.textContent("#chart-ingest figcaption");
  expect(caption.includes("events/s"), `ingest chart has its unit: ${caption}`);
  // For the README's picture only (never in CI): let the charts fill with whatever load
  // runs beside the server (the screenshot recipe in the README runs one).
  const settle = shots ? Number(process.env.SCREENSHOT_SETTLE_MS || 0) : 0;
  if (settle > 0) await page.waitForTimeout(settle);
  await shot(page, "console-overview");

  step = "events: the inbox lists, pages with the cursor, and shows a payload";
  await page.click('nav a[data-view="events"]');
  await page.selectOption("#ev-limit", "25");
  await page.click("#events-filter button");
  await page.waitForFunction(() => document.querySelectorAll("#ev-table tbody tr[data-id]").length === 25);
  const first = await page.$$eval("#ev-table tbody tr[data-id]", (rows) => rows.map((r) => r.dataset.id));
  await page.click("#ev-next");
  await page.waitForFunction((f) => { const r = document.querySelector("#ev-table tbody tr[data-id]"); return r && r.dataset.id !== f; }, first[0]);
  const second = await page.$$eval("#ev-table tbody tr[data-id]", (rows) => rows.map((r) => r.dataset.id));
  expect(second.every((id) => !first.includes(id)), "the next page holds other events");
  expect(second[0] > first[first.length - 1], "pages are in ingest order");
  await page.click("#ev-first");
  await page.waitForFunction((f) => document.querySelector("#ev-table tbody tr[data-id]").dataset.id === f, first[0]);

  step = "events: the type filter";
  await page.fill("#ev-type", "user.joined");
  await page.click("#events-filter button");
  await page.waitForFunction(() => [...document.querySelectorAll("#ev-table tbody tr[data-id] td:nth-child(2)")].every((td) => td.textContent === "user.joined"));

  step = "events: the payload viewer shows the payload as text, never as HTML";
  const target = await page.$eval("#ev-table tbody tr[data-id]", (r) => r.dataset.id);
  await page.click(`#ev-table tbody tr[data-id="${target}"]`);
  await page.waitForSelector("#ev-payload");
  const payload = await page.textContent("#ev-payload");
  expect(payload.includes("<b>not html</b>"), `payload shown verbatim: ${payload}`);
  expect((await page.$$("#ev-payload b")).length === 0, "no markup from a payload");
  await shot(page, "console-events");

  step = "events: ack from the page acks through the API";
  await page.click("#ev-ack");
  await page.waitForFunction((t) => !document.querySelector(`#ev-table tbody tr[data-id="${t}"]`), target);
  const acked = await call("GET", `/v1/events/${target}`);
  expect(acked.json.state === "acked", `acked through the page: ${JSON.stringify(acked.json)}`);

  step = "events: delete asks once more, then deletes";
  const victim = await page.$eval("#ev-table tbody tr[data-id]", (r) => r.dataset.id);
  await page.click(`#ev-table tbody tr[data-id="${victim}"]`);
  await page.waitForSelector("#ev-delete");
  await page.click("#ev-delete");
  expect((await call("GET", `/v1/events/${victim}`)).status === 200, "one click does not delete");
  await page.click("#ev-delete");
  await page.waitForFunction(() => document.querySelector("#ev-detail").textContent.includes("Deleted"));
  expect((await call("GET", `/v1/events/${victim}`)).status === 404, "deleted through the page");

  step = "live tail: streams new events, filtered by type";
  await page.click('nav a[data-view="tail"]');
  await page.fill("#tail-type", "tail.wanted");
  await page.click("#tail-start");
  await page.waitForFunction(() => document.querySelector("#tail-status").textContent === "streaming");
  const unwanted = await ingest("tail.other", 1);
  const wanted = await ingest("tail.wanted", 2);
  await page.waitForSelector(`#tail-table tr[data-id="${wanted}"]`);
  expect(!(await page.$(`#tail-table tr[data-id="${unwanted}"]`)), "the filter keeps other types out");
  await shot(page, "console-tail");
  await page.click("#tail-stop");

  step = "subscriptions: test event, attempts, pause and resume, rotate";
  const sub = await call("POST", "/v1/subscriptions", { target_url: hook, event_types: ["console.*"] });
  expect(sub.status === 201, `subscription created: ${JSON.stringify(sub.json)}`);
  await page.click('nav a[data-view="subscriptions"]');
  await page.click(`#sub-table tr[data-id="${sub.json.id}"]`);
  await page.waitForSelector("#sub-test");
  await page.click("#sub-test");
  await page.waitForFunction(() => [...document.querySelectorAll("#sub-detail td")].some((td) => td.textContent === "200"), null, { timeout: 20000 }).catch(async () => {
    // The attempt may land after the page's reload: look again.
    await page.click(`#sub-table tr[data-id="${sub.json.id}"]`);
    await page.waitForFunction(() => [...document.querySelectorAll("#sub-detail td")].some((td) => td.textContent === "200"));
  });
  expect(received >= 1, "the receiver got the test delivery");
  await page.click("#sub-pause");
  await page.waitForFunction(() => document.querySelector("#sub-pause") && document.querySelector("#sub-pause").textContent === "Resume");
  expect((await call("GET", `/v1/subscriptions/${sub.json.id}`)).json.status === "paused", "paused through the page");
  await page.click("#sub-pause");
  await page.waitForFunction(() => document.querySelector("#sub-pause") && document.querySelector("#sub-pause").textContent === "Pause");
  await page.click("#sub-rotate");
  await page.waitForSelector("#sub-secret .secret");
  expect((await page.textContent("#sub-secret .secret")).startsWith("whsec_"), "the new secret is shown once");
  await shot(page, "console-subscriptions");

  step = "tenants and keys with the admin token: create, limits, key shown once, revoke";
  await page.click("#logout");
  await page.fill("#credential", admin);
  await page.click("#login-form button");
  await page.waitForSelector('nav a[data-view="tenants"]:not([hidden])');
  expect(await page.isHidden('nav a[data-view="events"]'), "the admin token has no tenant views");
  await page.click('nav a[data-view="tenants"]');
  await page.fill("#tenant-name", "acme");
  await page.click("#tenant-form button");
  await page.waitForSelector('#tenant-table tr[data-name="acme"]');
  await page.click('#tenant-table tr[data-name="acme"]');
  await page.waitForSelector("#limits-form");
  await page.fill("#lim-rate", "250");
  await page.click("#limits-form button");
  await page.waitForFunction(() => document.querySelector('#tenant-table tr[data-name="acme"] td:nth-child(2)').textContent === "250");
  await page.click("#key-create");
  await page.waitForSelector("#new-key");
  const newKey = (await page.textContent("#new-key")).trim();
  expect((await call("GET", "/v1/consumers", undefined, newKey)).status === 200, "the new key works");
  await shot(page, "console-tenants");
  await page.click("#tenant-detail button.revoke");
  await page.waitForSelector("#tenant-detail .state.dead");
  expect((await call("GET", "/v1/consumers", undefined, newKey)).status === 401, "the revoked key is refused at once");

  step = "a phone's width: no sideways scrolling, charts still drawn";
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('nav a[data-view="overview"]');
  await page.waitForSelector("#chart-ingest svg");
  const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, `no horizontal overflow at 390 px (${overflow} px)`);
  await shot(page, "console-phone");

  step = "no script errors anywhere";
  const real = problems.filter((p) => !p.includes("401") && !p.includes("Failed to load resource"));
  expect(real.length === 0, real.join("\n"));
  console.log("console: every step passed");
} catch (e) {
  console.error(`console test failed at "${step}": ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  receiver.close();
}
