// tests/e2e/dashboard.js URL TOKEN SCREENSHOT SESSION_ID
//
// Drives Debian's Chromium (playwright-core, never a downloaded browser) through the
// dashboard: a wrong token is refused, the right one shows the stacks, the session with its
// TOE connection, its volumes, and an offloaded row in the unified connection table. Prints
// one "ok NAME" or "not ok NAME: why" line per check; exit 0 when all passed.
"use strict";
const { chromium } = require("playwright-core");

const [url, token, shot, sessionId] = process.argv.slice(2);
let failed = 0;
function check(name, cond, why) {
  if (cond) console.log(`ok ${name}`);
  else { failed++; console.log(`not ok ${name}: ${why}`); }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    check("page_loads", (await page.title()).includes("toegw"), "no toegw title");

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
