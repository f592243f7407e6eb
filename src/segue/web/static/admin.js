// The admin console: /v1/admin with an admin key; nothing is shown to a key without the scope.
"use strict";

(() => {
  const { api, el, notice, confirm } = segue;
  const $ = (id) => document.getElementById(id);
  const STORE = "segue.admin";
  const POLL_MS = 2000;

  let key = sessionStorage.getItem(STORE);
  let previous = null; // the last health reading, for rates
  let poller = null;
  const call = (path, options = {}) => api(path, { key, ...options });

  const fmt = (v, digits = 1) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
  const stat = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));

  function table(headers, rows) {
    return el("div", { class: "table-wrap" },
      el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows.map((r) => el("tr", r.attrs || {}, r.cells.map((c) => el("td", {}, c)))))));
  }

  // -- who may see what --------------------------------------------------------------------------
  async function start() {
    let ready = {};
    try { ready = await api("/v1/ready"); } catch (e) { ready = e.body || {}; }
    try {
      await call("/v1/admin/model"); // the API decides: only a key with the admin scope passes
    } catch (e) {
      $("console").hidden = true;
      if (e.status === 401 && ready.auth) {
        $("key-form").hidden = false;
        if (key) notice(`That key was not accepted: ${e.message}`);
      } else if (e.status === 403 || e.status === 401) {
        $("denied").hidden = false;
        $("who").hidden = false;
      } else {
        notice(`The API does not answer: ${e.message}`);
      }
      document.body.dataset.ready = "1";
      return;
    }
    $("key-form").hidden = true;
    $("denied").hidden = true;
    $("console").hidden = false;
    $("who").hidden = !ready.auth;
    await Promise.all([health(), registry(), runs(), experiments(), campaigns(), deadLetters(), data()]);
    poller = setInterval(() => { health(); }, POLL_MS);
    document.body.dataset.ready = "1";
  }

  // -- health ---------------------------------------------------------------------------------------
  async function health() {
    let h;
    try { h = await call("/v1/admin/health"); } catch (e) { $("health-at").textContent = e.message; return; }
    // rates between two readings; the first reading gives the average since the process started
    const base = previous || { at: h.at - h.uptime_s, requests: 0, events_ingested: 0 };
    const dt = h.at - base.at;
    const rate = (field) => (dt > 0 ? (h[field] - base[field]) / dt : null);
    $("health").replaceChildren(
      stat("requests/s", fmt(rate("requests"))),
      stat("p50 ms", fmt(h.p50_ms)),
      stat("p99 ms", fmt(h.p99_ms)),
      stat("events/s", fmt(rate("events_ingested"))),
      stat("stream lag", h.stream_lag ?? "—"),
      stat("dead letters", h.dead_letters ?? "—"),
      stat("5xx", h.errors),
      stat("model", `${h.model || "none"} ${h.version || ""}`),
      stat("state", h.state),
      stat("degraded", h.degraded.length ? h.degraded.join(", ") : "nothing"),
      stat("fallbacks", Object.entries(h.fallbacks).map(([k, v]) => `${k} ${v}`).join(", ") || "none"),
      stat("lists by path", Object.entries(h.recommendations).map(([k, v]) => `${k} ${v}`).join(", ") || "none"),
    );
    $("health-at").textContent = `up ${Math.round(h.uptime_s)} s · ${h.requests} requests`;
    previous = h;
  }

  // -- the registry -----------------------------------------------------------------------------
  async function registry() {
    let reg;
    try { reg = await call("/v1/admin/registry"); } catch (e) { $("registry-note").textContent = e.message; return; }
    $("registry-note").textContent = reg.entries.length
      ? `This process serves “${reg.serving}”; the gate compares ${reg.key_metric}.`
      : "No registry versions yet: segue flow run publishes them (segue train serves from its folder).";
    $("registry").replaceChildren(...reg.entries.map((entry) => el("div", { dataset: { entry: entry.name } },
      el("div", { class: "row between" },
        el("h3", {}, entry.name),
        entry.rollback_to ? el("button", { type: "button", class: "danger", id: `rollback-${entry.name}`,
          onclick: () => rollback(entry) }, `Roll back to ${entry.rollback_to}`) : null),
      table(["version", "model", reg.key_metric, "gate", "events", "created", ""],
        entry.versions.slice().reverse().map((v) => ({
          attrs: { dataset: { version: v.version, serving: String(v.serving) } },
          cells: [
            v.version + (v.serving ? " (serving)" : ""),
            v.model_type || "?",
            fmt(v.key_metric, 4),
            v.gate ? (v.gate.passed ? "passed" : (v.gate.forced ? "forced" : "refused")) : "—",
            (v.training_data.events ?? "—").toLocaleString(),
            (v.created_at || "").slice(0, 19),
            v.serving ? "" : el("button", { type: "button", onclick: () => promote(entry, v),
              "aria-label": `Promote ${entry.name} ${v.version}` }, "Promote"),
          ],
        }))),
      entry.history.length ? el("p", { class: "muted" }, "Last change: ",
        (() => { const h = entry.history[entry.history.length - 1]; return `${h.action} ${h.version} (was ${h.previous || "none"}) at ${h.at}`; })()) : null,
      entry.name === reg.serving && entry.versions.length > 1 ? compareForm(entry) : null)));
  }

  // -- what a version changes in one listener's list -------------------------------------------------
  function compareForm(entry) {
    const versions = entry.versions.map((v) => v.version).reverse();
    const pick = (id, label, chosen) => el("div", {},
      el("label", { for: id }, label),
      el("select", { id }, versions.map((v) => el("option", { value: v, selected: v === chosen }, v))));
    const form = el("form", { class: "compare", id: "compare-form" },
      el("h3", {}, "What a version changes for one listener"),
      el("div", { class: "grid3" },
        el("div", {}, el("label", { for: "compare-user" }, "Listener id"),
          el("input", { id: "compare-user", required: true, value: $("compare-user") ? $("compare-user").value : "" })),
        pick("compare-a", "Version A", entry.rollback_to || versions[1] || versions[0]),
        pick("compare-b", "Version B", entry.production || versions[0])),
      el("button", { type: "submit" }, "Compare"),
      el("div", { id: "compare-out", "aria-live": "polite" }));
    form.addEventListener("submit", (event) => { event.preventDefault(); compare(entry.name); });
    return form;
  }

  async function compare(name) {
    const out = $("compare-out");
    let c;
    try {
      c = await call(`/v1/admin/registry/${encodeURIComponent(name)}/compare`, {
        params: { user_id: $("compare-user").value.trim(), a: $("compare-a").value, b: $("compare-b").value, k: 10 } });
    } catch (e) { out.replaceChildren(el("p", { class: "warn" }, e.message)); return; }
    const added = new Set(c.added);
    const removed = new Set(c.removed);
    const rows = [];
    for (let r = 0; r < Math.max(c.a.items.length, c.b.items.length); r += 1) {
      const x = c.a.items[r];
      const y = c.b.items[r];
      rows.push({ attrs: { dataset: { rank: String(r + 1) } }, cells: [
        String(r + 1),
        x ? el("span", { class: removed.has(x.item_id) ? "gone" : "", dataset: { itemId: x.item_id } }, x.title, removed.has(x.item_id) ? " (out)" : "") : "",
        y ? el("span", { class: added.has(y.item_id) ? "new" : "", dataset: { itemId: y.item_id } }, y.title, added.has(y.item_id) ? " (in)" : "") : "",
      ] });
    }
    out.replaceChildren(
      el("p", { id: "compare-summary" }, `${c.user_id}: ${c.added.length} in, ${c.removed.length} out, ` +
        `${Math.round(c.overlap * 100)} % kept (${c.a.version} ${c.a.path}, ${c.b.version} ${c.b.path}).`),
      table(["#", `${c.a.version}`, `${c.b.version}`], rows));
  }

  async function promote(entry, v) {
    const ok = await confirm(`Promote ${entry.name} ${v.version}?`,
      `${v.version} (${v.model_type}, ${entry.production ? `replacing ${entry.production}` : "the first to serve"}) ` +
      "serves every listener from now on, after the gate.", "Promote");
    if (!ok) return;
    try {
      const done = await call(`/v1/admin/registry/${encodeURIComponent(entry.name)}/promote`, { method: "POST", body: { version: v.version } });
      notice(`${entry.name}: ${done.version} now serves${done.loaded ? " here" : ""}.`);
    } catch (e) {
      if (e.status === 409 && await confirm("The gate refused", `${e.message}. Promote anyway?`, "Promote anyway")) {
        try {
          await call(`/v1/admin/registry/${encodeURIComponent(entry.name)}/promote`, { method: "POST", body: { version: v.version, force: true } });
          notice(`${entry.name}: ${v.version} now serves (gate skipped).`);
        } catch (e2) { notice(`Not promoted: ${e2.message}`); }
      } else notice(`Not promoted: ${e.message}`);
    }
    await registry();
  }

  async function rollback(entry) {
    const ok = await confirm(`Roll ${entry.name} back?`,
      `${entry.rollback_to} serves again instead of ${entry.production}, with its published lists.`, "Roll back");
    if (!ok) return;
    try {
      const done = await call(`/v1/admin/registry/${encodeURIComponent(entry.name)}/rollback`, { method: "POST" });
      notice(`${entry.name}: rolled back to ${done.version}.`);
    } catch (e) { notice(`Not rolled back: ${e.message}`); }
    await registry();
  }

  // -- runs, campaigns, dead letters, data ---------------------------------------------------------
  async function runs() {
    try {
      const r = await call("/v1/admin/runs");
      $("runs").replaceChildren(
        r.note ? el("p", { class: "muted" }, r.note) : "",
        r.runs.length ? table(["run", "status", "created", "parameters", "metrics", ""], r.runs.map((x) => ({
          attrs: { dataset: { run: x.run_id } },
          cells: [
            x.run_id, x.status, x.created_at.slice(0, 19),
            Object.entries(x.parameters).filter(([, v]) => v !== "").map(([k, v]) => `${k}=${v}`).join(", "),
            Object.entries(x.metrics).map(([k, v]) => `${k}=${typeof v === "number" ? v.toFixed(4) : v}`).join(", "),
            el("button", { type: "button", "aria-label": `Steps of run ${x.run_id}`, onclick: () => steps(x.run_id) }, "Steps"),
          ] }))) : "",
        el("div", { id: "steps", "aria-live": "polite" }));
    } catch (e) { $("runs").replaceChildren(el("p", {}, e.message)); }
  }

  async function steps(runId) {
    const box = $("steps");
    try {
      const found = await call(`/v1/admin/runs/${encodeURIComponent(runId)}/steps`);
      box.replaceChildren(el("h3", {}, `Run ${runId}: its steps`),
        table(["step", "status", "tasks", "started", "seconds", "error"], found.map((st) => ({
          attrs: { dataset: { step: st.name, status: st.status } },
          cells: [st.name, st.status, st.tasks, (st.started_at || "").slice(0, 19), fmt(st.seconds), st.error || ""],
        }))));
    } catch (e) { box.replaceChildren(el("p", { class: "warn" }, e.message)); }
  }

  async function experiments() {
    try {
      const list = await call("/v1/admin/experiments");
      const when = (ms) => (ms ? new Date(ms).toISOString().slice(0, 16).replace("T", " ") : "—");
      $("experiments").replaceChildren(list.length
        ? table(["experiment", "status", "layer", "variants", "started", "stopped"], list.map((x) => ({ cells: [
          x.id, x.status, x.layer,
          x.variants.map((v) => `${v.name} ${Math.round(v.share * 100)} %` +
            (Object.keys(v.settings).length ? ` (${Object.entries(v.settings).map(([k, val]) => `${k}=${val}`).join(", ")})` : "")).join("; "),
          when(x.started_ms), when(x.stopped_ms)] })))
        : el("p", { class: "muted" }, "No experiments yet: segue experiments create NAME."));
    } catch (e) { $("experiments").replaceChildren(el("p", {}, e.message)); }
  }

  async function campaigns() {
    try {
      const c = await call("/v1/admin/campaigns");
      const rows = [];
      for (const [name, channels] of Object.entries(c.campaigns)) {
        for (const [channel, counts] of Object.entries(channels)) {
          rows.push({ cells: [name, channel, Object.entries(counts).map(([s, n]) => `${s} ${n}`).join(", "),
            channel === Object.keys(channels)[0]
              ? el("button", { type: "button", "aria-label": `Lift of campaign ${name}`, onclick: () => lift(name) }, "Lift")
              : ""] });
        }
      }
      $("campaigns").replaceChildren(
        el("dl", { class: "stats" }, Object.entries(c.statuses).map(([s, n]) => stat(s, n))),
        rows.length ? table(["campaign", "channel", "messages by status", ""], rows)
          : el("p", { class: "muted" }, "No campaigns yet: segue nba run --campaign NAME."),
        el("div", { id: "lift", "aria-live": "polite" }));
    } catch (e) { $("campaigns").replaceChildren(el("p", {}, e.message)); }
  }

  async function lift(name) {
    const box = $("lift");
    try {
      const l = await call(`/v1/admin/campaigns/${encodeURIComponent(name)}/lift`);
      const pct = (x) => (x === null ? "—" : `${(x * 100).toFixed(1)} %`);
      const signed = (x) => (x === null ? "—" : `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)} pt`);
      box.replaceChildren(el("p", { id: "lift-summary" },
        `${name}: ${l.messages.toLocaleString()} messages, CTR ${pct(l.ctr)}, ${l.conversions.toLocaleString()} conversions; ` +
        `reactivated within ${l.window_days} days ${l.treated_reactivated}/${l.treated_inactive} treated against ` +
        `${l.holdout_reactivated}/${l.holdout_inactive} held out: lift ${signed(l.lift)} [${signed(l.low)}, ${signed(l.high)}] (95 %, Newcombe).`));
    } catch (e) { box.replaceChildren(el("p", { class: "warn" }, e.message)); }
  }

  async function deadLetters() {
    try {
      const letters = await call("/v1/admin/dead-letters", { params: { limit: 50 } });
      $("dead-replay").disabled = $("dead-drop").disabled = !letters.length;
      $("dead").replaceChildren(letters.length
        ? table(["id", "attempts", "error", "event"], letters.map((d) => ({ cells: [
          d.id, d.attempts, d.error, `${d.event.type || ""} ${d.event.user_id || ""} → ${d.event.item_id || ""}`] })))
        : el("p", { class: "muted" }, "No dead letters."));
    } catch (e) { $("dead").replaceChildren(el("p", {}, e.message)); }
  }

  async function deadAction(action) {
    const ok = await confirm(`${action === "replay" ? "Replay" : "Drop"} every dead letter?`,
      action === "replay" ? "They are published on the stream again." : "They are deleted for good.",
      action === "replay" ? "Replay" : "Drop");
    if (!ok) return;
    try {
      const done = await call(`/v1/admin/dead-letters/${action}`, { method: "POST", body: { all: true } });
      notice(`${done.done.length} dead letters ${action === "replay" ? "replayed" : "dropped"}.`);
    } catch (e) { notice(e.message); }
    await deadLetters();
  }

  async function data() {
    try {
      const s = await call("/v1/admin/stats");
      $("data").replaceChildren(...Object.entries(s.tables).map(([t, n]) => stat(t, n.toLocaleString())));
      const counts = (m) => Object.entries(m).map(([t, n]) => `${n.toLocaleString()} ${t}`).join(", ");
      $("imports").replaceChildren(s.imports.length
        ? table(["started", "command", "from", "status", "rows", "stored", "seconds"], s.imports.map((r) => ({
          attrs: { dataset: { status: r.status } },
          cells: [r.started_at.replace("T", " ").slice(0, 19), r.command + (r.kind ? ` (${r.kind})` : ""), r.source,
            r.status === "failed" ? el("span", { class: "warn" }, `failed: ${r.error}`) : r.status,
            r.rows === null ? "—" : r.rows.toLocaleString(),
            counts(r.inserted) || "—", fmt(r.seconds)],
        })))
        : el("p", { class: "muted" }, "No imports recorded yet: segue import csv|parquet|lastfm|lyrics|audio."));
    } catch (e) { $("data").replaceChildren(el("p", {}, e.message)); }
  }

  // -- wiring ------------------------------------------------------------------------------------------
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    key = $("admin-key").value;
    sessionStorage.setItem(STORE, key);
    start();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(STORE);
    key = null;
    if (poller) clearInterval(poller);
    $("console").hidden = true;
    $("denied").hidden = true;
    $("who").hidden = true;
    $("key-form").hidden = false;
  });
  $("dead-replay").addEventListener("click", () => deadAction("replay"));
  $("dead-drop").addEventListener("click", () => deadAction("drop"));
  start();
})();
