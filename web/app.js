// The dashboard's script (web/index.html). Plain JavaScript, no framework, nothing loaded
// from elsewhere. Everything shown is text content: nothing from the API is parsed as HTML.
//
// The token is asked once and kept in this browser (localStorage); /#token=TOKEN sets it
// without it ever reaching the server (a fragment is not sent) and is then taken out of
// the address bar. Every API call sends it as a bearer token. The views are polled once a
// second; the charts come from GET /api/v1/history, which the appliance keeps itself, so a
// reload finds the last ten minutes again.
"use strict";
(() => {
  const TOKEN_KEY = "toegw-token";
  const POLL_MS = 1000;
  const WINDOW_MS = 600 * 1000;
  const $ = (id) => document.getElementById(id);

  const state = {
    token: "", info: null, stacks: [], sessions: [], volumes: [], conns: [], reservations: [],
    capture: null, hist: null, expanded: new Set(), polls: 0, timer: null, busy: false,
  };
  // What the charts draw, by chart id (also read by the browser tests).
  const charts = {};
  window.toegwCharts = charts;

  // ------------------------------------------------------------------ small helpers

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {}))
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
    for (const c of children)
      if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const tag = (v) => el("span", { class: "tag " + String(v).replace(/[^a-z_]/g, "") }, v);
  const button = (label, action, arg, extra) =>
    el("button", Object.assign({ type: "button", "data-action": action, "data-arg": arg || "" },
                               extra || {}), label);

  // sizes in binary units, rates in decimal ones
  function size(n) {
    if (n == null) return "";
    const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i && n < 100 && n !== Math.round(n) ? n.toFixed(1) : Math.round(n)) + " " + u[i];
  }
  function rate(n) {
    if (n == null) return "–";
    const u = ["B/s", "kB/s", "MB/s", "GB/s"];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return ((i && n < 100) || (n < 10 && n !== Math.round(n)) ? n.toFixed(1) : Math.round(n)) + " " + u[i];
  }
  function iops(n) {
    if (n == null) return "–";
    return (n >= 1000 ? (n / 1000).toFixed(1) + "k"
            : n < 10 && n !== Math.round(n) ? n.toFixed(1) : Math.round(n)) + " IOPS";
  }
  function latency(us) {
    if (us == null) return "–";
    return us >= 1000 ? (us / 1000).toFixed(us >= 100000 ? 0 : 1) + " ms" : us + " µs";
  }
  const portOf = (addr) => Number(String(addr || "").split(":").pop());

  // ------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(status, title, detail) {
      super(detail ? `${title}: ${detail}` : title);
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  async function api(method, path, body) {
    const opt = { method, cache: "no-store", headers: { Authorization: "Bearer " + state.token } };
    if (body !== undefined) {
      opt.headers["Content-Type"] = "application/json";
      opt.body = JSON.stringify(body);
    }
    const r = await fetch(path, opt);
    const ctype = r.headers.get("Content-Type") || "";
    if (!r.ok) {
      let title = `the appliance answered ${r.status}`, detail = "";
      if (/json/.test(ctype)) {
        try {
          const p = await r.json();
          title = p.title || title;
          detail = p.detail || "";
        } catch (e) { /* not JSON after all: keep the status */ }
      }
      throw new ApiError(r.status, title, detail);
    }
    if (r.status === 204) return null;
    return /json/.test(ctype) ? r.json() : r.blob();
  }

  // An error in words: the problem's title and detail, or why the request went nowhere.
  function words(e) {
    if (e instanceof ApiError) return `${e.title}${e.detail ? ": " + e.detail : ""} (HTTP ${e.status})`;
    return "cannot reach the appliance: " + (e && e.message ? e.message : String(e));
  }

  function showError(what, e) {
    $("error-text").textContent = `${what} failed: ${words(e)}`;
    $("error").hidden = false;
  }

  function setStatus(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = cls || "";
  }

  // ------------------------------------------------------------------ tables

  // Rows are kept while they look the same, so a focused button stays focused; buttons act
  // through data-action (one listener for the page).
  function renderTable(id, cols, rows, keyOf, empty, detail) {
    const t = $(id);
    if (!t.tHead) {
      t.createTHead().append(el("tr", {}, ...cols.map(c =>
        el("th", { scope: "col", class: c.num ? "num" : null }, c.h))));
      t.createTBody();
    }
    const body = t.tBodies[0];
    const old = new Map();
    for (const tr of body.rows) old.set(tr.dataset.key, tr);
    const out = [];
    const keep = (key, tr) => {
      tr.dataset.key = key;
      const prev = old.get(key);
      out.push(prev && prev.innerHTML === tr.innerHTML && prev.className === tr.className ? prev : tr);
    };
    t.tHead.hidden = rows.length === 0;
    if (!rows.length)
      keep("-empty", el("tr", {}, el("td", { class: "empty", colspan: cols.length }, empty)));
    for (const r of rows) {
      const key = keyOf(r);
      keep(key, el("tr", {}, ...cols.map(c => el("td", { class: c.cls || (c.num ? "num" : null) }, c.f(r)))));
      const d = detail && detail(r);
      if (d) keep(key + "#detail", el("tr", { class: "detail" }, el("td", { colspan: cols.length }, d)));
    }
    const same = out.length === body.rows.length && out.every((tr, i) => tr === body.rows[i]);
    if (same) return;
    const focused = document.activeElement;
    const refocus = focused && body.contains(focused) && focused.dataset.action
      ? `[data-action="${CSS.escape(focused.dataset.action)}"][data-arg="${CSS.escape(focused.dataset.arg)}"]`
      : null;
    body.replaceChildren(...out);
    if (refocus) {
      const again = body.querySelector(refocus);
      if (again) again.focus();
    }
  }

  // ------------------------------------------------------------------ history

  // The ring as series by key ("host.in", "vol:v-1.rb", "sess:s-1.lat", ...), aligned with t.
  function flatten(h) {
    const s = {
      "host.in": h.stacks.host.bytes_in, "host.out": h.stacks.host.bytes_out,
      "toe.in": h.stacks.toe.bytes_in, "toe.out": h.stacks.toe.bytes_out,
    };
    const meta = {};
    for (const v of h.volumes) {
      const k = "vol:" + v.id;
      Object.assign(s, { [k + ".rb"]: v.read_bytes, [k + ".wb"]: v.write_bytes,
                         [k + ".r"]: v.reads, [k + ".w"]: v.writes });
      meta[k] = { id: v.id, session: v.session, present: v.present };
    }
    for (const x of h.sessions) {
      const k = "sess:" + x.id;
      Object.assign(s, { [k + ".rb"]: x.read_bytes, [k + ".wb"]: x.write_bytes,
                         [k + ".cmd"]: x.commands, [k + ".lat"]: x.latency_us,
                         [k + ".stack"]: x.stack });
      meta[k] = { id: x.id, target: x.target, present: x.present };
    }
    return { first: h.first, last: h.last, capacity: h.capacity, t: h.t.slice(), s, meta };
  }

  function mergeHistory(h) {
    const add = flatten(h);
    const H = state.hist;
    if (!H || h.first !== H.last + 1) {
      state.hist = add;
      return;
    }
    const n = add.t.length, old = H.t.length;
    H.t.push(...add.t);
    for (const [k, v] of Object.entries(add.s)) {
      if (!H.s[k]) H.s[k] = new Array(old).fill(null);
      H.s[k].push(...v);
    }
    for (const k of Object.keys(H.s))
      if (!add.s[k]) for (let i = 0; i < n; i++) H.s[k].push(null);
    Object.assign(H.meta, add.meta);
    for (const k of Object.keys(H.meta)) if (!add.meta[k]) H.meta[k].present = false;
    H.last = h.last;
    const extra = H.t.length - H.capacity;
    if (extra > 0) {
      H.t.splice(0, extra);
      for (const v of Object.values(H.s)) v.splice(0, extra);
    }
    // series that hold nothing any more (a session or volume gone ten minutes ago) go
    for (const k of Object.keys(H.meta))
      if (!H.meta[k].present && !H.s[k + ".rb"].some(v => v !== null)) {
        for (const sk of Object.keys(H.s)) if (sk.startsWith(k + ".")) delete H.s[sk];
        delete H.meta[k];
      }
  }

  const lastOf = (arr) => (arr && arr.length ? arr[arr.length - 1] : null);

  // Commands per second of the sessions on a stack, per sample.
  function stackIops(stack) {
    const H = state.hist;
    const out = new Array(H.t.length).fill(0);
    for (const k of Object.keys(H.meta)) {
      if (!k.startsWith("sess:")) continue;
      const cmd = H.s[k + ".cmd"], st = H.s[k + ".stack"];
      for (let i = 0; i < out.length; i++) if (st[i] === stack) out[i] += cmd[i] || 0;
    }
    return out;
  }

  // ------------------------------------------------------------------ charts

  function niceMax(m) {
    if (!(m > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(m)));
    for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= m) return f * p;
    return 10 * p;
  }

  function draw(cv, t, lines, fmt) {
    const dpr = window.devicePixelRatio || 1;
    const w = cv.clientWidth, h = cv.clientHeight;
    if (!w || !h) return;
    cv.width = Math.round(w * dpr);
    cv.height = Math.round(h * dpr);
    const g = cv.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const L = 64, R = 6, T = 6, B = 18, pw = w - L - R, ph = h - T - B;
    const now = t.length ? t[t.length - 1] : Date.now(), t0 = now - WINDOW_MS;
    let max = 0;
    for (const l of lines) for (const v of l.values) if (v > max) max = v;
    max = niceMax(max);
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    g.fillStyle = "#5d6678";
    g.strokeStyle = "#e3e6ec";
    for (let i = 0; i <= 2; i++) {
      const y = Math.round(T + ph * i / 2) + 0.5;
      g.beginPath(); g.moveTo(L, y); g.lineTo(w - R, y); g.stroke();
      g.textAlign = "right";
      g.fillText(fmt(max * (1 - i / 2)), L - 4, y + 4);
    }
    g.textAlign = "left"; g.fillText("−10 min", L, h - 4);
    g.textAlign = "center"; g.fillText("−5 min", L + pw / 2, h - 4);
    g.textAlign = "right"; g.fillText("now", w - R, h - 4);
    for (const l of lines) {
      g.strokeStyle = l.color;
      g.lineWidth = 1.6;
      g.beginPath();
      let pen = false;
      for (let i = 0; i < t.length; i++) {
        const v = l.values[i];
        if (v == null || t[i] < t0) { pen = false; continue; }
        const x = L + (t[i] - t0) / WINDOW_MS * pw, y = T + ph - Math.min(v, max) / max * ph;
        if (pen) g.lineTo(x, y); else g.moveTo(x, y);
        pen = true;
      }
      g.stroke();
    }
  }

  // One chart card in box (made once, by id), drawn with these lines.
  function chart(box, id, title, lines, fmt) {
    charts[id] = { title, lines: lines.map(l => ({ label: l.label, values: l.values })) };
    let card = box.querySelector(`[data-chart="${CSS.escape(id)}"]`);
    if (!card) {
      const legend = el("div", { class: "legend" });
      card = el("figure", { class: "chart", "data-chart": id },
                el("figcaption", { class: "title" }, el("span", {}, title), el("span", { class: "now" })),
                el("canvas", { role: "img", "aria-label": title + ", the last 10 minutes" }), legend);
      for (const l of lines)
        legend.append(el("span", {}, el("i", { "data-color": l.color }), l.label));
      for (const i of legend.querySelectorAll("i")) i.style.background = i.dataset.color;
      box.append(card);
    }
    card.querySelector(".now").textContent = lines.map(l => fmt(lastOf(l.values))).join(" / ");
    draw(card.querySelector("canvas"), state.hist.t, lines, fmt);
  }

  const COLORS = { toe: "#0b7a53", toeOut: "#58b894", host: "#3451b2", hostOut: "#8ea2e6",
                   read: "#3451b2", write: "#c2410c" };
  const SESSION_COLORS = ["#7c3aed", "#0891b2", "#c2410c", "#0b7a53", "#be185d", "#3451b2"];

  function renderCharts() {
    const H = state.hist;
    if (!H) return;
    const sbox = $("charts-stacks");
    for (const [st, name, c1, c2] of [["toe", "TOE", COLORS.toe, COLORS.toeOut],
                                      ["host", "host stack", COLORS.host, COLORS.hostOut]]) {
      chart(sbox, `${st}-throughput`, `${name}: throughput`, [
        { label: "in", color: c1, values: H.s[st + ".in"] },
        { label: "out", color: c2, values: H.s[st + ".out"] }], rate);
      chart(sbox, `${st}-iops`, `${name}: IOPS of its sessions`, [
        { label: "commands", color: c1, values: stackIops(st) }], iops);
    }
    const sess = Object.keys(H.meta).filter(k => k.startsWith("sess:"));
    const lat = sess.map((k, i) => ({ label: H.meta[k].id, color: SESSION_COLORS[i % SESSION_COLORS.length],
                                      values: H.s[k + ".lat"] }));
    const lbox = sbox.querySelector('[data-chart="latency"]');
    if (lbox && lbox.querySelectorAll(".legend span").length !== lat.length) lbox.remove();
    chart(sbox, "latency", "Mean command latency per session", lat, latency);

    const vbox = $("charts-volumes");
    const vols = Object.keys(H.meta).filter(k => k.startsWith("vol:"));
    for (const card of [...vbox.children])
      if (!card.dataset.chart || !vols.some(k => card.dataset.chart.startsWith(H.meta[k].id + "-")))
        card.remove();
    if (!vols.length) vbox.append(el("p", { class: "empty" }, "no volumes"));
    for (const k of vols) {
      const id = H.meta[k].id;
      chart(vbox, `${id}-throughput`, `${id}: throughput`, [
        { label: "read", color: COLORS.read, values: H.s[k + ".rb"] },
        { label: "write", color: COLORS.write, values: H.s[k + ".wb"] }], rate);
      chart(vbox, `${id}-iops`, `${id}: IOPS`, [
        { label: "reads", color: COLORS.read, values: H.s[k + ".r"] },
        { label: "writes", color: COLORS.write, values: H.s[k + ".w"] }], iops);
    }
  }

  // ------------------------------------------------------------------ stacks

  function kv(pairs) {
    const box = el("div", { class: "kv" });
    for (const [k, v] of pairs) box.append(el("span", {}, k), el("span", {}, v));
    return box;
  }

  function stackRates(st) {
    const H = state.hist;
    return H ? `in ${rate(lastOf(H.s[st + ".in"]))}, out ${rate(lastOf(H.s[st + ".out"]))}` : "–";
  }

  function toeCard(s) {
    const info = (state.info && state.info.toe) || {};
    const c = s.counters || {};
    const head = el("div", { class: "head" }, el("b", {}, "TOE"), tag(s.state || "absent"));
    if (s.state === "absent")
      return el("div", { class: "stack toe" }, head, kv([["mode", info.mode || "none"]]));
    head.append(s.state === "up" ? button("Take link down", "link", "down")
                                 : button("Bring link up", "link", "up"));
    const f = s.faults || {};
    const faults = ["drop", "dup", "reorder", "corrupt"].filter(k => f[k] > 0)
      .map(k => `${k} ${(f[k] * 100).toFixed(1)} %`);
    const used = s.max_conns ? s.conns / s.max_conns : 0;
    const bar = el("span", { class: "bar" }, el("i"));
    bar.firstChild.style.width = Math.min(100, used * 100).toFixed(1) + "%";
    return el("div", { class: "stack toe" }, head, kv([
      ["mode / uplink", `${info.mode || "tap"}${info.uplink ? " via " + info.uplink : ""}${info.nat ? ", NAT" : ""}`],
      ["address", `${s.addr}/${s.prefix} on ${s.ifname}`],
      ["MAC / MTU", `${s.mac} / ${s.mtu}`],
      ["capacity used", el("span", {}, bar, `${s.conns} of ${s.max_conns} connections`)],
      ["throughput", el("span", { class: "big", "data-rate": "toe" }, stackRates("toe"))],
      ["faults active", faults.length ? el("span", { class: "faults" }, faults.join(", ")) : "none"],
      ["established / retransmits", `${c.curr_estab ?? "–"} / ${c.retrans_segs ?? "–"}`],
    ]));
  }

  function hostCard(s, toe) {
    const c = s.counters || {};
    const onHost = state.sessions.filter(x => x.stack === "host").length;
    return el("div", { class: "stack host" },
              el("div", { class: "head" }, el("b", {}, "host stack"), tag("up")), kv([
      ["mode", "the machine's own TCP/IP"],
      ["address", toe && toe.host_addr ? `${toe.host_addr}/${toe.host_prefix} on the TOE's link` : "–"],
      ["MAC", "the host's interfaces"],
      ["capacity used", `${c.curr_estab ?? "–"} connections established, ${onHost} session(s)`],
      ["throughput", el("span", { class: "big", "data-rate": "host" }, stackRates("host"))],
      ["faults active", "none (faults are injected on the TOE's wire only)"],
      ["opens / resets", `${(c.active_opens ?? 0) + (c.passive_opens ?? 0)} / ${c.out_rsts ?? "–"}`],
    ]));
  }

  function renderStacks() {
    const host = state.stacks.find(s => s.name === "host") || { name: "host" };
    const toe = state.stacks.find(s => s.name === "toe") || { name: "toe", state: "absent" };
    const box = $("stacks");
    const focused = document.activeElement && box.contains(document.activeElement);
    box.replaceChildren(toeCard(toe), hostCard(host, toe));
    if (focused) { const b = box.querySelector("button"); if (b) b.focus(); }
    const on = (st) => state.sessions.filter(x => x.stack === st).length;
    const cs = (st) => state.conns.filter(r => r.stack === st).length;
    $("picture").textContent = `one port space: ${on("toe")} session(s) offloaded, ${on("host")} on the host stack; ` +
      `${cs("toe")} TOE and ${cs("host")} host connection(s) listed`;
  }

  // ------------------------------------------------------------------ sessions, volumes

  function sessionDetail(s) {
    if (!state.expanded.has(s.id)) return null;
    const n = s.negotiated || {};
    const params = el("div", { class: "params" });
    for (const [k, v] of Object.entries(n)) params.append(el("span", {}, el("b", {}, k + " "), String(v)));
    const cn = s.connection;
    const c = s.counters || {};
    return el("div", {},
              el("p", {}, cn ? `connection ${cn.local} → ${cn.remote} on the ${cn.stack} stack` : "not connected",
                 `; initiator ${s.initiator_name || "–"}; ${c.commands ?? 0} commands, ${c.errors ?? 0} errors, ` +
                 `${c.recoveries ?? 0} recoveries`),
              el("b", {}, "negotiated parameters"), params);
  }

  function sessionLatency(id) {
    const H = state.hist;
    if (!H || !H.s["sess:" + id + ".lat"]) return null;
    const lat = H.s["sess:" + id + ".lat"];
    for (let i = lat.length - 1; i >= Math.max(0, lat.length - 5); i--) if (lat[i] != null) return lat[i];
    return null;
  }

  function renderSessions() {
    const H = state.hist;
    const r = (id, k) => (H ? lastOf(H.s[`sess:${id}.${k}`]) : null);
    renderTable("sessions", [
      { h: "", f: s => button(state.expanded.has(s.id) ? "▾" : "▸", "expand", s.id,
                              { class: "small", "aria-expanded": state.expanded.has(s.id) ? "true" : "false",
                                "aria-label": "negotiated parameters of " + s.id }) },
      { h: "id", f: s => s.id }, { h: "target", f: s => s.target }, { h: "portal", f: s => s.portal },
      { h: "state", f: s => tag(s.state) },
      { h: "stack", f: s => (s.stack ? tag(s.stack) : "–") },
      { h: "placement", f: s => (s.connection && s.connection.placement_reason) || "–" },
      { h: "latency", num: 1, f: s => latency(sessionLatency(s.id)) },
      { h: "read", num: 1, f: s => rate(r(s.id, "rb")) },
      { h: "write", num: 1, f: s => rate(r(s.id, "wb")) },
      { h: "LUNs", num: 1, f: s => (s.luns || []).length },
      { h: "error", cls: "wrap", f: s => s.error || "" },
      { h: "", f: s => button("Log out", "logout", s.id, { class: "small" }) },
    ], state.sessions, s => s.id, "no sessions: log in to a target", sessionDetail);
  }

  function copyButton(text) {
    return button("Copy", "copy", text, { class: "small", "aria-label": "copy " + text });
  }

  function renderVolumes() {
    const H = state.hist;
    const r = (id, k) => (H ? lastOf(H.s[`vol:${id}.${k}`]) : null);
    renderTable("volumes", [
      { h: "id", f: v => v.id },
      { h: "session", f: v => (v.session ? button(v.session, "show-session", v.session,
                                                   { class: "small link", title: "show session " + v.session })
                                        : "–") },
      { h: "LUN", num: 1, f: v => v.lun },
      { h: "size", num: 1, f: v => size(v.size_bytes) }, { h: "block", num: 1, f: v => v.block_size },
      { h: "device", f: v => `${v.vendor || ""} ${v.product || ""}`.trim() },
      { h: "read", num: 1, f: v => rate(r(v.id, "rb")) }, { h: "write", num: 1, f: v => rate(r(v.id, "wb")) },
      { h: "export", f: v => el("span", {}, el("span", { class: "uri" }, v.export), " ", copyButton(v.export)) },
    ], state.volumes, v => v.id, "no volumes");
  }

  // ------------------------------------------------------------------ connections, reservations

  function apiPort() {
    return Number(location.port) || (location.protocol === "https:" ? 443 : 80);
  }

  function connQuery() {
    const q = new URLSearchParams();
    if ($("f-stack").value) q.set("stack", $("f-stack").value);
    if ($("f-state").value) q.set("state", $("f-state").value);
    const owner = $("f-owner").value.trim();
    if (owner && /^[A-Za-z0-9_.:/-]{1,64}$/.test(owner)) q.set("owner", owner);
    const s = q.toString();
    return s ? "?" + s : "";
  }

  function renderConnections() {
    const port = apiPort();
    const mine = (r) => portOf(r.local) === port || portOf(r.remote) === port;
    const rows = $("f-api").checked ? state.conns : state.conns.filter(r => !mine(r));
    const hidden = state.conns.length - rows.length;
    renderTable("connections", [
      { h: "stack", f: r => tag(r.stack) }, { h: "offload", f: r => tag(r.offload_state) },
      { h: "local", f: r => r.local }, { h: "remote", f: r => r.remote }, { h: "state", f: r => r.state },
      { h: "owner", f: r => r.owner || "" }, { h: "placement", f: r => r.placement_reason || "" },
      { h: "bytes in", num: 1, f: r => size(r.bytes_in) }, { h: "bytes out", num: 1, f: r => size(r.bytes_out) },
    ], rows, r => r.id, hidden ? `no connections (${hidden} of this page hidden)` : "no connections");
  }

  function renderReservations() {
    renderTable("reservations", [
      { h: "id", f: r => r.id }, { h: "holder", f: r => r.holder }, { h: "port", num: 1, f: r => r.port },
      { h: "stack", f: r => r.stack }, { h: "in use", f: r => (r.in_use ? "yes" : "no") },
      { h: "created", f: r => r.created },
      { h: "", f: r => button("Delete", "unreserve", r.id, { class: "small" }) },
    ], state.reservations, r => r.id, "no reservations");
  }

  function renderCapture() {
    const c = state.capture;
    const running = !!(c && c.running);
    $("capture-status").textContent = c === null ? "no capture: this appliance has no TOE"
      : running ? `capturing since ${c.started}: ${c.frames} frames in a ring of ${size(c.ring_bytes)}`
      : "no capture running";
    $("capture-stop").disabled = !running;
    $("capture-download").disabled = !running;
    $("capture-start").textContent = running ? "Restart capture" : "Start capture";
  }

  function renderAll() {
    renderStacks();
    renderCharts();
    renderSessions();
    renderVolumes();
    renderConnections();
    renderReservations();
    renderCapture();
    const i = state.info;
    if (i) $("about").textContent = `${i.version ? "v" + i.version + " · " : ""}${i.initiator_name || ""}` +
      ` · up ${Math.floor(i.uptime_s / 3600)} h ${Math.floor(i.uptime_s / 60) % 60} min`;
  }

  // ------------------------------------------------------------------ polling

  async function poll() {
    state.timer = null;
    if (!state.token || state.busy) return;
    state.busy = true;
    const t0 = performance.now(), asked = state.token;
    try {
      const hq = state.hist ? "?since=" + state.hist.last : "";
      const want = [api("GET", "/api/v1/stacks"), api("GET", "/api/v1/sessions"),
                    api("GET", "/api/v1/volumes"), api("GET", "/api/v1/connections" + connQuery()),
                    api("GET", "/api/v1/reservations"),
                    api("GET", "/api/v1/capture").catch(e => (e.status === 409 ? null : Promise.reject(e))),
                    api("GET", "/api/v1/history" + hq)];
      if (state.polls % 30 === 0) want.push(api("GET", "/api/v1/info"));
      const [stacks, sessions, volumes, conns, reservations, capture, hist, info] = await Promise.all(want);
      Object.assign(state, { stacks, sessions, volumes, conns, reservations, capture });
      if (info) state.info = info;
      mergeHistory(hist);
      state.polls++;
      renderAll();
      setStatus("live, updated " + new Date().toLocaleTimeString(), "live");
      showLoggedIn(true);
    } catch (e) {
      if (e.status === 401) {
        setStatus("token refused: enter the API token", "bad");
        showLoggedIn(false);
        state.busy = false;
        if (state.token !== asked) later(0);   /* a new token came in meanwhile */
        return;
      }
      setStatus(words(e), "bad");
    }
    state.busy = false;
    later(Math.max(0, POLL_MS - (performance.now() - t0)));
  }

  function later(ms) {
    if (state.timer) clearTimeout(state.timer);
    state.timer = setTimeout(poll, ms);
  }

  function showLoggedIn(yes) {
    $("login").hidden = yes;
    $("forget").hidden = !yes;
  }

  function useToken(t) {
    state.token = t;
    localStorage.setItem(TOKEN_KEY, t);
    state.hist = null;
    state.polls = 0;
    if (!state.busy) later(0);
  }

  // ------------------------------------------------------------------ actions

  // Ask first; resolve true on OK. Enter confirms, Escape cancels (the dialog's own keys).
  function confirmAction(title, text, ok) {
    const d = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = ok || "OK";
    d.returnValue = "cancel";
    d.showModal();
    $("confirm-ok").focus();
    return new Promise(resolve => d.addEventListener("close", () => resolve(d.returnValue === "ok"),
                                                      { once: true }));
  }

  async function act(what, fn) {
    try {
      const r = await fn();
      $("error").hidden = true;
      later(0);
      return r;
    } catch (e) {
      showError(what, e);
      throw e;
    }
  }

  const actions = {
    expand(id) {
      if (state.expanded.has(id)) state.expanded.delete(id); else state.expanded.add(id);
      renderSessions();
    },
    // a volume's session: its row, expanded, in view and focused
    "show-session"(id) {
      state.expanded.add(id);
      renderSessions();
      const b = $("sessions").querySelector(`button[data-action="expand"][data-arg="${CSS.escape(id)}"]`);
      if (b) { b.scrollIntoView({ block: "center" }); b.focus(); }
    },
    async logout(id) {
      const s = state.sessions.find(x => x.id === id);
      if (!await confirmAction("Log out?", `Log session ${id} out of ${s ? s.target : "its target"}? ` +
                               "Its volumes and their NBD exports go away.", "Log out")) return;
      await act("logging out " + id, () => api("DELETE", "/api/v1/sessions/" + encodeURIComponent(id)));
    },
    async unreserve(id) {
      if (!await confirmAction("Delete the reservation?", `Delete reservation ${id}? Its port returns to the pool.`,
                               "Delete")) return;
      await act("deleting reservation " + id, () => api("DELETE", "/api/v1/reservations/" + encodeURIComponent(id)));
    },
    async link(dir) {
      const text = dir === "down"
        ? "Take the TOE's link down? Sessions on the TOE lose their connection: those that may use either stack move to the host stack."
        : "Bring the TOE's link up?";
      if (!await confirmAction(dir === "down" ? "Take the TOE's link down?" : "Bring the TOE's link up?", text,
                               dir === "down" ? "Take link down" : "Bring link up")) return;
      await act(`setting the TOE's link ${dir}`, () => api("PATCH", "/api/v1/stacks/toe", { link: dir }));
    },
    async copy(text) {
      try {
        await navigator.clipboard.writeText(text);
        setStatus("copied " + text, "live");
      } catch (e) {
        showError("copying to the clipboard", e);
      }
    },
  };

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b || !actions[b.dataset.action]) return;
    Promise.resolve(actions[b.dataset.action](b.dataset.arg)).catch(() => {});
  });

  async function reserve(ev) {
    ev.preventDefault();
    const body = { holder: $("r-holder").value.trim(), stack: $("r-stack").value };
    if ($("r-port").value) body.port = Number($("r-port").value);
    if (!await confirmAction("Reserve a port?", `Reserve ${body.port ? "port " + body.port : "a free port"} ` +
                             `for "${body.holder}" on the ${body.stack} stack?`, "Reserve")) return;
    const r = await act("reserving a port", () => api("POST", "/api/v1/reservations", body)).catch(() => null);
    if (r) setStatus(`reserved port ${r.port} (reservation ${r.id})`, "live");
  }

  async function captureStart() {
    if (!await confirmAction("Start a capture?", "Keep the newest frames of the TOE's wire in memory " +
                             "(a ring of 64 MiB)? A running capture is replaced.", "Start")) return;
    await act("starting the capture", () => api("POST", "/api/v1/capture")).catch(() => {});
  }

  async function captureStop() {
    if (!await confirmAction("Stop the capture?", "Stop the capture and discard its frames?", "Stop")) return;
    await act("stopping the capture", () => api("DELETE", "/api/v1/capture")).catch(() => {});
  }

  async function captureDownload() {
    try {
      const blob = await api("GET", "/api/v1/capture.pcap");
      const a = el("a", { href: URL.createObjectURL(blob), download: "toe.pcap" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) {
      showError("downloading the capture", e);
    }
  }

  // Discover, then log in to one of the targets found.
  async function discover(ev) {
    ev.preventDefault();
    const portal = $("d-portal").value.trim(), stack = $("d-stack").value;
    const list = $("d-targets");
    if (!await confirmAction("Discover targets?", `Ask the portal ${portal} for its targets ` +
                             `(a discovery session, stack: ${stack})?`, "Discover")) return;
    $("d-error").textContent = "";
    list.replaceChildren(el("li", { class: "empty" }, "discovering…"));
    try {
      const r = await api("POST", "/api/v1/discovery", { portal, stack });
      list.replaceChildren();
      if (!r.targets.length) list.append(el("li", { class: "empty" }, "the portal lists no targets"));
      for (const t of r.targets) {
        const b = el("button", { type: "button" }, "Log in");
        b.addEventListener("click", () => login(portal, t.iqn, stack));
        list.append(el("li", {}, el("span", {}, t.iqn), b));
      }
      const first = list.querySelector("button");
      if (first) first.focus();
    } catch (e) {
      list.replaceChildren();
      $("d-error").textContent = "discovery failed: " + words(e);
    }
  }

  async function login(portal, iqn, stack) {
    if (!await confirmAction("Log in?", `Log in to ${iqn} at ${portal} (stack: ${stack})?`, "Log in")) return;
    $("d-error").textContent = "logging in…";
    try {
      const s = await api("POST", "/api/v1/sessions", { portal, target: iqn, stack });
      $("d-error").textContent = "";
      $("login-dialog").close();
      setStatus(`logged in: ${s.id} on the ${s.stack} stack`, "live");
      later(0);
    } catch (e) {
      $("d-error").textContent = "login failed: " + words(e);
    }
  }

  // ------------------------------------------------------------------ start

  // /#token=TOKEN: keep it, and take it out of the address bar (and so out of the history).
  function takeHashToken() {
    const m = /^#token=([^&]+)/.exec(location.hash);
    if (!m) return null;
    const t = decodeURIComponent(m[1]);
    localStorage.setItem(TOKEN_KEY, t);
    history.replaceState(null, "", location.pathname + location.search);
    return t;
  }

  function start() {
    takeHashToken();
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      useToken($("token").value.trim());
    });
    $("forget").addEventListener("click", () => {
      localStorage.removeItem(TOKEN_KEY);
      state.token = "";
      $("token").value = "";
      showLoggedIn(false);
      setStatus("enter the API token to connect");
      $("token").focus();
    });
    $("error-close").addEventListener("click", () => { $("error").hidden = true; });
    $("open-login").addEventListener("click", () => {
      $("d-error").textContent = "";
      $("login-dialog").showModal();
      $("d-portal").focus();
    });
    $("d-close").addEventListener("click", () => $("login-dialog").close());
    $("discover-form").addEventListener("submit", discover);
    $("reserve").addEventListener("submit", reserve);
    $("capture-start").addEventListener("click", captureStart);
    $("capture-stop").addEventListener("click", captureStop);
    $("capture-download").addEventListener("click", captureDownload);
    $("conn-filter").addEventListener("submit", (ev) => ev.preventDefault());
    for (const id of ["f-stack", "f-state", "f-owner"])
      $(id).addEventListener("change", () => later(0));
    $("f-api").addEventListener("change", renderConnections);
    window.addEventListener("resize", () => renderCharts());
    window.addEventListener("hashchange", () => {
      const t = takeHashToken();
      if (t) { $("token").value = t; useToken(t); }
    });
    const saved = localStorage.getItem(TOKEN_KEY) || "";
    $("token").value = saved;
    if (saved) useToken(saved);
  }

  start();
})();
