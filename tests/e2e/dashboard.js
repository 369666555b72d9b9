// tests/e2e/dashboard.js URL TOKEN SCREENSHOT SESSION_ID [CERT]
//
// Drives Debian's Chromium (playwright-core, never a downloaded browser) through the
// dashboard: a wrong token is refused, the right one shows the stacks, the session with its
// TOE connection, its volumes, and an offloaded row in the unified connection table. Prints
// one "ok NAME" or "not ok NAME: why" line per check; exit 0 when all passed.
//
// An https:// URL is checked against CERT, the appliance's (self-signed) certificate: the
// browser trusts exactly that certificate's public key (--ignore-certificate-errors-spki-list
// with its SHA-256 SPKI hash), and a browser without it must refuse the page.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const { chromium } = require("playwright-core");

const [url, token, shot, sessionId, certFile] = process.argv.slice(2);
const https = url.startsWith("https://");
let failed = 0;
function check(name, cond, why) {
  if (cond) console.log(`ok ${name}`);
  else { failed++; console.log(`not ok ${name}: ${why}`); }
}

const baseArgs = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"];

// The base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium pins it.
function spkiHash(file) {
  const cert = new crypto.X509Certificate(fs.readFileSync(file));
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  return crypto.createHash("sha256").update(spki).digest("base64");
}

function launch(extra) {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: baseArgs.concat(extra) });
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

(async () => {
  if (https) await checkUntrustedRefused();
  const browser = await launch(
    https ? [`--ignore-certificate-errors-spki-list=${spkiHash(certFile)}`] : []);
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const resp = await page.goto(url);
    check("page_loads", (await page.title()).includes("toegw"), "no toegw title");
    if (https) {
      const sec = await resp.securityDetails();
      check("page_over_tls", sec && /^TLS 1\.[23]$/.test(sec.protocol),
            `security details: ${JSON.stringify(sec)}`);
      check("secure_context", await page.evaluate(() => window.isSecureContext &&
                                                      location.protocol === "https:"),
            "the page is not a secure https context");
    }

    await page.fill("#token", "not-the-token");
    await page.click("button[type=submit]");
    await page.waitForFunction(() => document.getElementById("status").textContent !== "" &&
                                     !/^enter/.test(document.getElementById("status").textContent));
    check("wrong_token_refused",
          (await page.textContent("#status")).includes("token refused"),
          `status says "${await page.textContent("#status")}"`);

    await page.fill("#token", token);
    await page.click("button[type=submit]");
    await page.waitForFunction(() => /updated/.test(document.getElementById("status").textContent),
                               null, { timeout: 10000 });
    const stacks = await page.textContent("#stacks");
    check("stacks_shown", stacks.includes("TOE") && stacks.includes("host"),
          `stacks: ${stacks.slice(0, 200)}`);
    const sessions = await page.textContent("#sessions");
    check("session_listed", sessions.includes(sessionId), `sessions: ${sessions.slice(0, 300)}`);
    check("session_on_toe", /logged_in\s*toe/.test(sessions.replace(/\s+/g, " ")),
          `sessions: ${sessions.slice(0, 300)}`);
    const volumes = await page.textContent("#volumes");
    check("volume_export_shown", volumes.includes("nbd://"), `volumes: ${volumes.slice(0, 200)}`);
    const conns = await page.textContent("#connections");
    check("offloaded_connection_shown", conns.includes("offloaded") && conns.includes(sessionId),
          "no offloaded row owned by the session");
    check("host_connection_shown", conns.includes("tgtd"), "no host-stack row of tgtd");
    check("no_script_errors", errors.length === 0, errors.join("; "));
    await page.screenshot({ path: shot, fullPage: true });
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.log(`not ok run: ${e}`); process.exit(1); });
