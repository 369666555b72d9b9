// tests/e2e/dashboard.js URL TOKEN SHOTDIR SESSION_ID CERT PORTAL IQN2
//
// Drives Debian's Chromium (playwright-core, never a downloaded browser) through the
// dashboard against a real `toegw serve` and tgtd:
//   - a wrong token is refused; /#token=TOKEN logs in, leaves the address bar and is kept
//     (a reload needs no token) and never goes into a request URL;
//   - the stacks, the session made by the test on the TOE, its volumes and the unified
//     connection table are shown; the page's own API connections are hidden until asked;
//   - a target (IQN2 at PORTAL) is discovered and logged in to from the page (stack auto),
//     and is in GET /api/v1/sessions;
//   - with reads running through that session's volume (GET /api/v1/volumes/{id}/data in a
//     loop), the TOE's chart carries them; the TOE's link taken down from the page moves
//     the session to the host stack ("toe link down") and the host stack's chart takes the
//     reads over; the link comes back up from the page;
//   - a reservation is made and deleted from the page; a capture is started, downloaded as
//     pcap and stopped; an API error is shown in words;
//   - keyboard: a dialog opens with Enter and closes with Escape;
//   - no console errors, no horizontal overflow at 800 px; screenshots at 1400 and 800 px
//     (SHOTDIR/dashboard-1400.png, dashboard-800.png).
// Prints one "ok NAME" or "not ok NAME: why" line per check; exit 0 when all passed.
//
// The page is loaded over https and checked against CERT, the appliance's (self-signed)
// certificate: the browser trusts exactly that certificate's public key
// (--ignore-certificate-errors-spki-list with its SHA-256 SPKI hash), and a browser without
// it must refuse the page.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const https = require("https");
const { chromium } = require("playwright-core");

const [url, token, shotDir, sessionId, certFile, portal, iqn2] = process.argv.slice(2);
const cert = fs.readFileSync(certFile);
let failed = 0;
function check(name, cond, why) {
  if (cond) console.log(`ok ${name}`);
  else { failed++; console.log(`not ok ${name}: ${String(why).replace(/\s+/g, " ").slice(0, 400)}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const baseArgs = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"];

// The base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium pins it.
function spkiHash() {
  const c = new crypto.X509Certificate(cert);
  const spki = c.publicKey.export({ type: "spki", format: "der" });
  return crypto.createHash("sha256").update(spki).digest("base64");
}

function launch(extra) {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: baseArgs.concat(extra) });
}

// The API from the test itself (not through the page), trusting the appliance's certificate.
function api(method, path) {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(path, url), {
      method, ca: cert, headers: { Authorization: "Bearer " + token },
    }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        const json = /json/.test(res.headers["content-type"] || "") ? JSON.parse(body) : null;
        resolve({ status: res.statusCode, json, len: body.length });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

async function until(what, fn, ms) {
  const end = Date.now() + (ms || 20000);
  let last;
  while (Date.now() < end) {
    try { last = await fn(); } catch (e) { last = e; }
    if (last === true) return true;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what} (last: ${String(last).slice(0, 200)})`);
}

// Without the appliance's key pinned, the browser must refuse the page.
async function checkUntrustedRefused() {
  const browser = await launch([]);
  try {
    const page = await browser.newPage();
    let why = "the page loaded";
    try {
      await page.goto(url);
    } catch (e) {
      why = String(e);
    }
    check("untrusted_certificate_refused", /ERR_CERT/.test(why), why.slice(0, 200));
  } finally {
    await browser.close();
  }
}

// A fresh browser profile: the token form refuses a wrong token.
async function checkWrongToken(browser) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const resp = await page.goto(url);
  check("page_loads", (await page.title()).includes("toegw"), "no toegw title");
  const sec = await resp.securityDetails();
  check("page_over_tls", sec && /^TLS 1\.[23]$/.test(sec.protocol),
        `security details: ${JSON.stringify(sec)}`);
  check("secure_context", await page.evaluate(() => window.isSecureContext &&
                                                  location.protocol === "https:"),
        "the page is not a secure https context");
  await page.fill("#token", "not-the-token");
  await page.click("#login button[type=submit]");
  await page.waitForFunction(() => /token refused/.test(document.getElementById("status").textContent),
                             null, { timeout: 10000 }).catch(() => {});
  check("wrong_token_refused", (await page.textContent("#status")).includes("token refused"),
        `status says "${await page.textContent("#status")}"`);
  await ctx.close();
}

// The value the page's chart `id` drew last for its line `n` (0: in or read), the max of
// the last k samples.
function chartRecent(page, id, n, k) {
  return page.evaluate(([id, n, k]) => {
    const c = window.toegwCharts[id];
    if (!c) return -1;
    const v = c.lines[n].values.slice(-k).filter((x) => x != null);
    return v.length ? Math.max(...v) : 0;
  }, [id, n, k]);
}

async function confirmDialog(page) {
  await page.waitForSelector("#confirm[open]", { timeout: 5000 });
  await page.click("#confirm-ok");
  await page.waitForSelector("#confirm:not([open])", { state: "attached", timeout: 5000 });
}

// Reads through the volume while `run.on`: 1 MiB at a time through the API.
async function readLoop(vid, run) {
  while (run.on) {
    try {
      const r = await api("GET", `/api/v1/volumes/${vid}/data?offset=0&length=1048576`);
      if (r.status === 200) run.bytes += r.len;
      else await sleep(100);
    } catch (e) {
      await sleep(100);
    }
  }
}

async function checkLoginFromPage(page) {
  await page.click("#open-login");
  await page.fill("#d-portal", portal);
  await page.selectOption("#d-stack", "auto");
  await page.click("#d-discover");
  await confirmDialog(page);
  const item = page.locator("#d-targets li", { hasText: iqn2 });
  await item.waitFor({ timeout: 20000 });
  await item.locator("button").click();
  await confirmDialog(page);
  await page.waitForSelector("#login-dialog:not([open])", { state: "attached", timeout: 30000 });
  const list = (await api("GET", "/api/v1/sessions")).json;
  const s = list.find((x) => x.target === iqn2);
  check("login_from_page", s && s.state === "logged_in",
        `GET /api/v1/sessions: ${JSON.stringify(list.map((x) => [x.target, x.state]))}`);
  return s;
}

async function checkFallback(page, s) {
  const vid = s.luns[0].volume;
  const run = { on: true, bytes: 0 };
  const loop = readLoop(vid, run);
  try {
    check("page_session_on_toe", s.stack === "toe", `the page's session is on '${s.stack}'`);
    await until("reads in the TOE's chart", async () =>
      (await chartRecent(page, "toe-throughput", 0, 3)) > 200000, 20000).catch(() => {});
    const toeIn = await chartRecent(page, "toe-throughput", 0, 3);
    const hostIn = await chartRecent(page, "host-throughput", 0, 3);
    check("chart_toe_carries_reads", toeIn > 200000 && hostIn < toeIn / 4,
          `toe in ${toeIn} B/s, host in ${hostIn} B/s (read ${run.bytes} bytes)`);

    await page.click("button[data-action=link][data-arg=down]");
    await confirmDialog(page);
    let why = "";
    await until("the session on the host stack", async () => {
      const x = (await api("GET", `/api/v1/sessions/${s.id}`)).json;
      why = JSON.stringify({ state: x.state, stack: x.stack, conn: x.connection });
      return x.state === "logged_in" && x.stack === "host";
    }, 30000).catch(() => {});
    const x = (await api("GET", `/api/v1/sessions/${s.id}`)).json;
    check("fallback_to_host", x.stack === "host" &&
          x.connection.placement_reason === "toe link down", why);
    await until("the page shows it", async () => {
      const row = await page.textContent(`#sessions tr[data-key="${s.id}"]`);
      return /host/.test(row) && /toe link down/.test(row);
    }, 10000).catch(() => {});
    const row = await page.textContent(`#sessions tr[data-key="${s.id}"]`);
    check("page_shows_fallback", /host/.test(row) && /toe link down/.test(row), row);
    // the newest sample: the reads on the host stack, none left on the TOE
    await until("reads in the host stack's chart only", async () => {
      const h = await chartRecent(page, "host-throughput", 0, 1);
      return h > 200000 && (await chartRecent(page, "toe-throughput", 0, 1)) < h / 4;
    }, 20000).catch(() => {});
    const hostIn2 = await chartRecent(page, "host-throughput", 0, 1);
    const toeIn2 = await chartRecent(page, "toe-throughput", 0, 1);
    check("chart_host_takes_over", hostIn2 > 200000 && toeIn2 < hostIn2 / 4,
          `host in ${hostIn2} B/s, toe in ${toeIn2} B/s (read ${run.bytes} bytes)`);
    const toeCard = await page.textContent("#stacks .stack.toe");
    check("toe_card_link_down", /down/.test(toeCard), toeCard);
  } finally {
    run.on = false;
    await loop;
  }
  await page.click("button[data-action=link][data-arg=up]");
  await confirmDialog(page);
  await until("the link up", async () =>
    (await api("GET", "/api/v1/stacks/toe")).json.state === "up", 10000).catch(() => {});
  check("link_up_from_page", (await api("GET", "/api/v1/stacks/toe")).json.state === "up",
        "the TOE's link is not up");
}

async function checkReservation(page) {
  await page.fill("#r-holder", "dash-page");
  await page.click("#reserve button[type=submit]");
  await confirmDialog(page);
  let r;
  await until("the reservation", async () => {
    r = (await api("GET", "/api/v1/reservations")).json.find((x) => x.holder === "dash-page");
    return !!r && (await page.textContent("#reservations")).includes("dash-page");
  }, 10000).catch(() => {});
  check("reservation_created_from_page", r, "no reservation of holder dash-page");
  if (!r) return;
  await page.click(`#reservations button[data-action=unreserve][data-arg="${r.id}"]`);
  await confirmDialog(page);
  await until("the reservation gone", async () =>
    !(await api("GET", "/api/v1/reservations")).json.some((x) => x.id === r.id) &&
    !(await page.textContent("#reservations")).includes("dash-page"), 10000).catch(() => {});
  const left = (await api("GET", "/api/v1/reservations")).json;
  check("reservation_deleted_from_page", !left.some((x) => x.id === r.id), JSON.stringify(left));
}

async function checkTables(page) {
  const stacks = await page.textContent("#stacks");
  check("stacks_shown", stacks.includes("TOE") && stacks.includes("host") &&
        /MAC/.test(stacks) && /capacity used/.test(stacks), stacks.slice(0, 300));
  const sessions = await page.textContent("#sessions");
  check("session_listed", sessions.includes(sessionId), sessions.slice(0, 300));
  check("session_on_toe", /logged_in\s*toe\s*offloaded/.test(sessions.replace(/\s+/g, " ")),
        sessions.slice(0, 300));
  const volumes = await page.textContent("#volumes");
  check("volume_export_shown", volumes.includes("nbds://") || volumes.includes("nbd://"),
        volumes.slice(0, 200));
  check("volume_size_binary", / MiB/.test(volumes), volumes.slice(0, 200));
  const conns = await page.textContent("#connections");
  check("offloaded_connection_shown", conns.includes("offloaded") && conns.includes(sessionId),
        "no offloaded row owned by the session");
  check("host_connection_shown", conns.includes("tgtd"), "no host-stack row of tgtd");
  const port = new URL(url).port;
  check("own_connections_hidden", !conns.includes(`:${port}`), conns.slice(0, 300));
  await page.check("#f-api");
  await until("own connections", async () =>
    (await page.textContent("#connections")).includes(`:${port}`), 5000).catch(() => {});
  check("own_connections_on_toggle", (await page.textContent("#connections")).includes(`:${port}`),
        "the toggle shows no connection to the API's port");
  await page.uncheck("#f-api");
  await page.selectOption("#f-stack", "toe");
  await until("the filter", async () => !(await page.textContent("#connections")).includes("tgtd"),
              5000).catch(() => {});
  const toeOnly = await page.textContent("#connections");
  check("connection_filter", !toeOnly.includes("tgtd") && toeOnly.includes(sessionId),
        toeOnly.slice(0, 300));
  await page.selectOption("#f-stack", "");
  // a session's negotiated parameters on demand
  await page.click(`#sessions button[data-action=expand][data-arg="${sessionId}"]`);
  await page.waitForSelector(`#sessions tr[data-key="${sessionId}#detail"]`, { timeout: 5000 })
    .catch(() => {});
  const detail = await page.textContent("#sessions");
  check("negotiated_on_demand", /max_burst_length/.test(detail), detail.slice(0, 300));
  await page.click(`#sessions button[data-action=expand][data-arg="${sessionId}"]`);
  // a volume links to its session: its row expanded and focused
  await page.click(`#volumes button[data-action=show-session][data-arg="${sessionId}"]`);
  const shown = await page.evaluate((id) => document.activeElement.dataset.arg === id &&
    !!document.querySelector(`#sessions tr[data-key="${id}#detail"]`), sessionId);
  check("volume_links_session", shown, "the session's row is not expanded and focused");
}

// A capture started from the page, its pcap downloaded by the browser, then stopped.
async function checkCapture(page) {
  await page.click("#capture-start");
  await confirmDialog(page);
  await until("the capture", async () =>
    /capturing since/.test(await page.textContent("#capture-status")), 10000).catch(() => {});
  check("capture_started_from_page", (await api("GET", "/api/v1/capture")).json.running === true,
        await page.textContent("#capture-status"));
  await sleep(1500);
  let magic = "";
  try {
    const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 10000 }),
                                    page.click("#capture-download")]);
    await dl.saveAs(`${shotDir}/page.pcap`);
    magic = fs.readFileSync(`${shotDir}/page.pcap`).subarray(0, 4).toString("hex");
  } catch (e) {
    magic = String(e);
  }
  check("capture_downloaded", magic === "d4c3b2a1" || magic === "4d3cb2a1", `pcap starts ${magic}`);
  await page.click("#capture-stop");
  await confirmDialog(page);
  await until("the capture stopped", async () =>
    (await api("GET", "/api/v1/capture")).json.running === false, 10000).catch(() => {});
  check("capture_stopped_from_page", (await api("GET", "/api/v1/capture")).json.running === false,
        await page.textContent("#capture-status"));
}

// Enter on a focused button opens its dialog; Escape closes it.
async function checkKeyboard(page) {
  await page.focus("#open-login");
  await page.keyboard.press("Enter");
  const opened = await page.waitForSelector("#login-dialog[open]", { timeout: 3000 })
    .then(() => true, () => false);
  const inside = await page.evaluate(() =>
    document.getElementById("login-dialog").contains(document.activeElement));
  await page.keyboard.press("Escape");
  const closed = await page.waitForSelector("#login-dialog:not([open])",
                                            { state: "attached", timeout: 3000 })
    .then(() => true, () => false);
  check("keyboard_dialog", opened && inside && closed,
        `opened ${opened}, focus inside ${inside}, closed by Escape ${closed}`);
}

async function checkNarrow(page) {
  await page.setViewportSize({ width: 800, height: 1000 });
  await sleep(1500);
  const over = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth, view: document.documentElement.clientWidth,
    wide: [...document.querySelectorAll("main *")].filter((e) => {
      const r = e.getBoundingClientRect();
      return r.right > document.documentElement.clientWidth + 1 && !e.closest(".scroll");
    }).slice(0, 3).map((e) => e.tagName + "." + e.className),
  }));
  check("no_overflow_800", over.doc <= over.view && over.wide.length === 0, JSON.stringify(over));
  await page.screenshot({ path: `${shotDir}/dashboard-800.png`, fullPage: true });
  await page.setViewportSize({ width: 1400, height: 1000 });
}

// An API error in words: a port outside --port-range is refused with 422 and its detail.
async function checkErrorShown(page) {
  await page.fill("#r-holder", "dash-bad");
  await page.fill("#r-port", "1");
  await page.click("#reserve button[type=submit]");
  await confirmDialog(page);
  await page.waitForSelector("#error:not([hidden])", { timeout: 5000 }).catch(() => {});
  const text = await page.textContent("#error-text");
  check("api_error_in_words", /422/.test(text) && /port/.test(text) && text.length > 30, text);
}

(async () => {
  await checkUntrustedRefused();
  const browser = await launch([`--ignore-certificate-errors-spki-list=${spkiHash()}`]);
  try {
    await checkWrongToken(browser);
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const page = await ctx.newPage();
    const errors = [], urls = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.on("request", (r) => urls.push(r.url()));

    await page.goto(`${url}#token=${encodeURIComponent(token)}`);
    await page.waitForFunction(() => /updated/.test(document.getElementById("status").textContent),
                               null, { timeout: 10000 }).catch(() => {});
    check("hash_token_logs_in", /updated/.test(await page.textContent("#status")),
          `status says "${await page.textContent("#status")}"`);
    check("hash_token_removed", await page.evaluate(() => location.hash === "" &&
                                                        !location.href.includes("token")),
          await page.evaluate(() => location.href));
    check("token_kept", await page.evaluate((t) => localStorage.getItem("toegw-token") === t, token),
          "localStorage has no token");

    await checkTables(page);
    const s = await checkLoginFromPage(page);
    if (s) await checkFallback(page, s);
    await checkReservation(page);
    await checkCapture(page);
    await checkKeyboard(page);

    // a reload needs no token, and finds the charts again (the appliance keeps them)
    const before = await page.evaluate(() => window.toegwCharts["host-throughput"].lines[0].values.length);
    await page.reload();
    await page.waitForFunction(() => /updated/.test(document.getElementById("status").textContent),
                               null, { timeout: 10000 }).catch(() => {});
    const after = await page.evaluate(() =>
      window.toegwCharts["host-throughput"] ? window.toegwCharts["host-throughput"].lines[0].values.length : 0);
    check("reload_keeps_token_and_history", after >= before && before > 5,
          `samples before the reload ${before}, after ${after}`);

    await page.screenshot({ path: `${shotDir}/dashboard-1400.png`, fullPage: true });
    await checkNarrow(page);
    check("no_console_errors", errors.length === 0, errors.join("; "));
    check("token_not_in_urls", urls.length > 10 && !urls.some((u) => u.includes(token)),
          `${urls.length} requests, ${urls.filter((u) => u.includes(token)).length} with the token`);
    await checkErrorShown(page);
    await ctx.close();
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.log(`not ok run: ${String(e).replace(/\s+/g, " ")}`); process.exit(1); });
