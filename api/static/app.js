/* LiveLedger dashboards: no framework, no CDN. Pages: index, stream (live, SSE), creator, finance. */
"use strict";

const EXPONENTS = { JPY: 0, KRW: 0, VND: 0, CLP: 0, ISK: 0, UGX: 0, XAF: 0, XOF: 0, PYG: 0, RWF: 0,
  KWD: 3, BHD: 3, OMR: 3, JOD: 3, TND: 3, IQD: 3, LYD: 3, CLF: 4, UYW: 4 };
const KEY = "liveledger.key";
const COLORS = ["#4f8cff", "#2fd3a4", "#ffb547", "#c77dff", "#ff5d6c"];

// --- key handling: ?key= moves into sessionStorage and out of the address bar ---------------------
(function takeKeyFromUrl() {
  const url = new URL(window.location.href);
  const k = url.searchParams.get("key");
  if (k) {
    sessionStorage.setItem(KEY, k);
    url.searchParams.delete("key");
    history.replaceState(null, "", url.pathname + (url.search || "") + url.hash);
  }
})();
function apiKey() { return sessionStorage.getItem(KEY) || ""; }

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + apiKey() }, opts.headers || {});
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const err = body && body.error ? body.error : { code: String(resp.status), message: String(body) };
    const e = new Error(err.message + (err.details && err.details.length ? " (" +
      err.details.map((d) => d.field + ": " + d.reason).join("; ") + ")" : ""));
    e.status = resp.status;
    throw e;
  }
  return body;
}

function showError(e) {
  const box = document.getElementById("error");
  if (!box) return;
  if (!e) { box.hidden = true; return; }
  box.hidden = false;
  let msg = e.message || String(e);
  if (e.status === 401) msg = "Unknown or missing API key — open /dashboard and sign in. " + msg;
  if (e.status === 403 || e.status === 404) msg = "Not available with this key: " + msg;
  box.textContent = msg;
}

// --- formatting (money stays integer: exact decimal strings) --------------------------------------
function group(intStr) { return intStr.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
function money(minor, currency) {
  const exp = EXPONENTS[currency] ?? 2;
  const n = BigInt(minor);
  const neg = n < 0n;
  const abs = neg ? -n : n;
  const base = 10n ** BigInt(exp);
  const whole = group((abs / base).toString());
  const frac = exp ? "." + (abs % base).toString().padStart(exp, "0") : "";
  return (neg ? "−" : "") + whole + frac + " " + currency;
}
function num(n) { return group(String(n)); }
function pct(x) { return (x * 100).toFixed(x >= 0.1 ? 1 : 2) + "%"; }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
function setText(id, text) {
  const node = document.getElementById(id);
  if (node && node.textContent !== text) {
    node.textContent = text;
    node.classList.add("flash");
    setTimeout(() => node.classList.remove("flash"), 400);
  }
}

// --- time charts: uPlot (vendored, static/vendor/; MIT) ---------------------------------------------
const CHARTS = new WeakMap();
function lineChart(node, series, fmt) {
  // series: [{name, color, points: [[t ms, v], ...]}] -> one uPlot per container, data replaced on update
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  let entry = CHARTS.get(node);
  if (!xs.length) {
    if (entry) { entry.plot.destroy(); CHARTS.delete(node); }
    node.replaceChildren(el("div", { class: "empty" }, "waiting for data…"));
    return;
  }
  if (xs[xs.length - 1] - xs[0] < 60000) xs.unshift(xs[xs.length - 1] - 60000);  // at least a minute wide
  const data = [xs.map((t) => t / 1000), ...series.map((s) => {
    const byT = new Map(s.points);
    return xs.map((t) => (byT.has(t) ? byT.get(t) : null));
  })];
  const key = series.map((s) => s.name).join("|");
  if (entry && entry.key === key) { entry.plot.setData(data); return; }
  if (entry) entry.plot.destroy();
  node.replaceChildren();
  const grid = { stroke: "rgba(138,148,166,.15)" };
  const plot = new uPlot({
    width: Math.max(280, node.clientWidth || 600), height: 220,
    legend: { show: series.length > 1 }, cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [{ stroke: "#8a94a6", grid }, { stroke: "#8a94a6", grid, size: 70, values: (u, vals) => vals.map(fmt) }],
    series: [{}, ...series.map((s) => ({ label: s.name, stroke: s.color, width: 2, fill: s.color + "22",
      spanGaps: true }))],
  }, data, node);
  CHARTS.set(node, { key, plot });
  new ResizeObserver(() => plot.setSize({ width: Math.max(280, node.clientWidth), height: 220 })).observe(node);
}

// --- page: live stream dashboard ---------------------------------------------------------------------
function streamPage() {
  const streamId = document.body.dataset.streamId;
  const base = "/v1/streams/" + encodeURIComponent(streamId);
  const samples = []; // {t, viewers, gmv: {CUR: n}}
  let latest = null;
  let redraw = false;

  let creatorsDue = 0;
  async function renderCreators() {
    const now = Date.now();
    if (now < creatorsDue) return;  // at most one re-read a second
    creatorsDue = now + 1000;
    let data;
    try { data = await api(base + "/creators/live"); } catch (e) { return; }
    const body = document.querySelector("#stream-creators tbody");
    body.replaceChildren(...(data.creators.length ? data.creators.map((r) => el("tr", { "data-creator": r.creator_id },
      el("td", {}, r.creator_id), el("td", { class: "num" }, num(r.clicks)), el("td", { class: "num" }, num(r.orders)),
      el("td", { class: "num" }, pct(r.cvr)), el("td", { class: "num" }, amounts(r.gmv, "net_minor")),
      el("td", { class: "num" }, amounts(r.commission, "amount_minor")))) :
      [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no creator activity in this stream yet"))]));
  }

  function render(live) {
    latest = live;
    renderCreators();
    setText("k-viewers_now", num(live.viewers_now));
    setText("k-peak_viewers", num(live.peak_viewers));
    setText("k-views", num(live.views));
    setText("k-unique_viewers", num(live.unique_viewers));
    setText("k-clicks", num(live.clicks));
    setText("k-add_to_carts", num(live.add_to_carts));
    setText("k-orders", num(live.orders));
    setText("k-ctr", pct(live.ctr));
    setText("k-cvr", pct(live.cvr));
    setText("k-gmv", live.gmv.length ? live.gmv.map((g) => money(g.net_minor, g.currency)).join(" · ") : "0");
    document.getElementById("updated").textContent = live.updated_at
      ? "updated " + new Date(live.updated_at).toLocaleTimeString() : "no events yet";
    renderFunnel(live);
    renderTop(live.top_products);
    const now = Date.now();
    const last = samples[samples.length - 1];
    const point = { t: now, viewers: live.viewers_now,
      gmv: Object.fromEntries(live.gmv.map((g) => [g.currency, g.net_minor])) };
    if (last && now - last.t < 2000) samples[samples.length - 1] = point; else samples.push(point);
    scheduleCharts();
  }

  function renderFunnel(live) {
    const steps = [["Views", live.views], ["Clicks", live.clicks], ["Add to carts", live.add_to_carts],
      ["Orders", live.orders]];
    const max = Math.max(1, ...steps.map((s) => s[1]));
    const box = document.getElementById("funnel");
    box.replaceChildren(...steps.map(([name, n], i) => {
      const fill = el("div", { class: "fill" });
      fill.style.width = Math.max(0.5, (100 * n) / max) + "%";
      const prev = i ? steps[i - 1][1] : 0;
      const rate = i ? (prev ? pct(n / prev) : "–") + " of " + steps[i - 1][0].toLowerCase() : "";
      return el("div", { class: "step", "data-step": name },
        el("div", {}, name, el("div", { class: "rate" }, rate)),
        el("div", { class: "track" }, fill), el("div", { class: "num" }, num(n)));
    }));
  }

  function renderTop(rows) {
    const body = document.getElementById("top-products");
    if (!rows.length) { body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no clicks yet"))); return; }
    const max = Math.max(1, ...rows.map((r) => r.clicks));
    body.replaceChildren(...rows.map((r) => {
      const bar = el("div", { class: "minibar" });
      bar.style.width = (100 * r.clicks) / max + "%";
      return el("tr", {}, el("td", {}, r.product_id), el("td", { class: "num" }, num(r.clicks)),
        el("td", { class: "num" }, num(r.orders)),
        el("td", { class: "num" }, amounts(r.line_revenue || [], "amount_minor")), el("td", {}, bar));
    }));
  }

  function scheduleCharts() {
    if (redraw) return;
    redraw = true;
    requestAnimationFrame(() => { redraw = false; drawCharts(); });
  }
  function drawCharts() {
    const pts = samples.slice(-720);
    lineChart(document.getElementById("chart-viewers"),
      [{ name: "viewers", color: COLORS[0], points: pts.map((p) => [p.t, p.viewers]) }], (v) => num(Math.round(v)));
    const currencies = [...new Set(pts.flatMap((p) => Object.keys(p.gmv)))].sort();
    const cur = currencies[0];
    document.getElementById("rev-currency").textContent = cur ? "(" + currencies.join(", ") + ")" : "";
    lineChart(document.getElementById("chart-revenue"), currencies.map((c, i) => ({
      name: c, color: COLORS[(i + 1) % COLORS.length],
      points: pts.filter((p) => c in p.gmv).map((p) => [p.t, p.gmv[c]]),
    })), (v) => (cur ? money(Math.round(v), cur).replace(/ [A-Z]{3}$/, "") : String(v)));
  }

  function setState(cls, text) {
    const dot = document.getElementById("live-dot");
    dot.className = "dot " + cls;
    document.getElementById("live-state").textContent = text;
    document.body.dataset.sse = cls;
  }

  async function start() {
    try {
      const [live, series] = await Promise.all([api(base + "/live"), api(base + "/live/series")]);
      for (const p of series.points) samples.push({ t: p.t, viewers: p.viewers, gmv: p.gmv });
      render(live);
    } catch (e) { showError(e); if (e.status && e.status < 500) { setState("down", "no access"); return; } }
    const es = new EventSource(base + "/live/events?key=" + encodeURIComponent(apiKey()));
    es.addEventListener("open", () => { setState("live", "live"); showError(null); });
    es.addEventListener("live", (ev) => { render(JSON.parse(ev.data)); document.body.dataset.events =
      String(Number(document.body.dataset.events || 0) + 1); });
    es.addEventListener("error", () => setState(es.readyState === 2 ? "down" : "", es.readyState === 2
      ? "disconnected" : "reconnecting…"));
    setInterval(() => { if (latest) drawCharts(); }, 10000);
  }
  drawCharts();
  start();
}

// --- page: creator earnings ---------------------------------------------------------------------
function creatorPage() {
  const creatorId = document.body.dataset.creatorId;
  let data = null;
  const params = () => {
    const q = new URLSearchParams();
    const from = document.getElementById("from").value, to = document.getElementById("to").value;
    const asOf = document.getElementById("as_of").value;
    if (from) q.set("from", from);
    if (to) { const d = new Date(to + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + 1); q.set("to", d.toISOString().slice(0, 10)); }
    if (asOf) { const d = new Date(asOf + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + 1); q.set("as_of", d.toISOString()); }
    return q.toString();
  };
  const money4 = (r) => [r.commission.pending, r.commission.approved, r.commission.paid, r.commission.reversed]
    .map((v) => el("td", { class: "num" + (v < 0 ? " neg" : "") }, money(v, r.currency)));
  function table(id, keyName, rows) {
    const t = document.getElementById(id);
    const head = el("tr", {}, el("th", {}, keyName.replace("_id", "")), el("th", {}, "Currency"),
      el("th", { class: "num" }, "Orders"), el("th", { class: "num" }, "Net revenue"),
      ...["Pending", "Approved", "Paid", "Reversed"].map((h) => el("th", { class: "num" }, h)));
    const body = rows.length ? rows.map((r) => el("tr", {}, el("td", {}, r[keyName]), el("td", {}, r.currency),
      el("td", { class: "num" }, num(r.orders)), el("td", { class: "num" }, money(r.net_minor, r.currency)),
      ...money4(r))) : [el("tr", {}, el("td", { colspan: 8, class: "muted" }, "nothing yet"))];
    t.replaceChildren(el("thead", {}, head), el("tbody", {}, body));
  }
  async function load() {
    try {
      data = await api("/v1/creators/" + encodeURIComponent(creatorId) + "/earnings?" + params());
      showError(null);
    } catch (e) { showError(e); return; }
    document.getElementById("asof").textContent = "status as of " + new Date(data.as_of).toLocaleString();
    const totals = document.getElementById("totals");
    totals.replaceChildren(...(data.currencies.length ? data.currencies.flatMap((c) => {
      const cm = c.commission;
      return [
        el("div", { class: "kpi hero" }, el("div", { class: "label" }, "Commission " + c.currency),
          el("div", { class: "value" }, money(cm.pending + cm.approved + cm.paid, c.currency)),
          el("div", { class: "sub" }, num(c.orders) + " orders · net " + money(c.net_minor, c.currency))),
        ...[["Pending", cm.pending], ["Approved", cm.approved], ["Paid", cm.paid], ["Reversed", cm.reversed]].map(
          ([n, v]) => el("div", { class: "kpi" }, el("div", { class: "label" }, n),
            el("div", { class: "value" }, money(v, c.currency)))),
      ];
    }) : [el("div", { class: "kpi" }, el("div", { class: "label" }, "Commission"), el("div", { class: "value" }, "–"),
      el("div", { class: "sub" }, "no attributed orders yet"))]));
    table("by-campaign", "campaign_id", data.by_campaign);
    table("by-stream", "stream_id", data.by_stream);
    // earnings over time: cumulative commission (all statuses) per currency, by order day
    const currencies = [...new Set(data.by_day.map((d) => d.currency))].sort();
    lineChart(document.getElementById("chart-earnings"), currencies.map((c, i) => {
      let total = 0;
      return { name: c, color: COLORS[i % COLORS.length], points: data.by_day.filter((d) => d.currency === c)
        .map((d) => { const cm = d.commission; total += cm.pending + cm.approved + cm.paid;
          return [Date.parse(d.day + "T00:00:00Z"), total]; }) };
    }), (v) => (currencies.length === 1 ? money(Math.round(v), currencies[0]).replace(/ [A-Z]{3}$/, "") : String(v)));
  }
  let pendingDue = 0;
  let pendingText = "…";
  async function renderPending() {  // pending is a time rule over orders: from the earnings endpoint
    if (Date.now() < pendingDue) return;
    pendingDue = Date.now() + 5000;
    try {
      const e = await api("/v1/creators/" + encodeURIComponent(creatorId) + "/earnings");
      pendingText = e.currencies.length ? e.currencies.map((c) => money(c.commission.pending, c.currency))
        .join(" · ") : "–";
      setText("k-pending", pendingText);
    } catch (err) { /* shown by the earnings tables */ }
  }
  function renderLive(live) {
    const days = live.brands.map((b) => b.today);
    const sum = (field, key) => days.flatMap((b) => b[field]).reduce((acc, m) => {
      acc[m.currency] = (acc[m.currency] || 0) + m[key]; return acc; }, {});
    const clicks = days.reduce((n, b) => n + b.clicks, 0);
    const clickOrders = days.reduce((n, b) => n + b.click_orders, 0);
    const orders = days.reduce((n, b) => n + b.orders, 0);
    const fmt = (m) => Object.keys(m).length ? Object.entries(m).sort().map(([c, v]) => money(v, c)).join(" · ") : "–";
    document.getElementById("live-kpis").replaceChildren(
      ...[["Clicks today", num(clicks), "k-clicks"], ["Orders today", num(orders), "k-orders"],
        ["CVR today", pct(clicks ? clickOrders / clicks : 0), "k-cvr"],
        ["Revenue today", fmt(sum("gmv", "net_minor")), "k-gmv"],
        ["Commission today", fmt(sum("commission", "amount_minor")), "k-commission"],
        ["Pending commission", pendingText, "k-pending"]].map(([n, v, id]) =>
        el("div", { class: "kpi" }, el("div", { class: "label" }, n), el("div", { class: "value", id }, v))));
    renderPending();
    const head = el("tr", {}, ...["Link", "Brand", "Campaign"].map((h) => el("th", {}, h)),
      ...["Clicks", "Orders", "CVR", "Revenue"].map((h) => el("th", { class: "num" }, h)));
    const body = live.links.length ? live.links.map((l) => el("tr", { "data-link": l.link_code },
      el("td", {}, el("code", {}, l.url), el("button", { type: "button", class: "secondary copy",
        onclick: () => navigator.clipboard && navigator.clipboard.writeText(l.url) }, "copy")),
      el("td", {}, l.brand_id), el("td", {}, l.campaign_id), el("td", { class: "num" }, num(l.clicks)),
      el("td", { class: "num" }, num(l.orders)), el("td", { class: "num" }, pct(l.cvr)),
      el("td", { class: "num" }, amounts(l.gmv, "net_minor")))) :
      [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no links yet"))];
    document.getElementById("links").replaceChildren(el("thead", {}, head), el("tbody", {}, body));
    document.getElementById("live-updated").textContent = live.updated_at
      ? "updated " + new Date(live.updated_at).toLocaleTimeString() : "";
    document.body.dataset.events = String(Number(document.body.dataset.events || 0) + 1);
  }
  async function startLive() {
    const base = "/v1/creators/" + encodeURIComponent(creatorId) + "/live";
    try { renderLive(await api(base)); } catch (e) { showError(e); return; }
    const es = new EventSource(base + "/events?key=" + encodeURIComponent(apiKey()));
    es.addEventListener("live", (ev) => renderLive(JSON.parse(ev.data)));
  }
  startLive();
  document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  document.getElementById("csv").addEventListener("click", () => {
    if (!data) return;
    const lines = [["group", "id", "currency", "orders", "net_minor", "pending", "approved", "paid", "reversed"]];
    const push = (g, id, r) => lines.push([g, id, r.currency, r.orders, r.net_minor, r.commission.pending,
      r.commission.approved, r.commission.paid, r.commission.reversed]);
    data.currencies.forEach((r) => push("total", creatorId, r));
    data.by_campaign.forEach((r) => push("campaign", r.campaign_id, r));
    data.by_stream.forEach((r) => push("stream", r.stream_id, r));
    download(creatorId + "-earnings.csv", lines.map((l) => l.join(",")).join("\n") + "\n");
  });
  load();
}

function download(name, text) {
  const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// --- page: finance ----------------------------------------------------------------------------------
function financePage() {
  const head = (...names) => el("thead", {}, el("tr", {}, names.map((n) =>
    el("th", { class: /^(Amount|Orders|Lines|Ledger|Live|Δ|Threshold|Lag|Partition)/.test(n) ? "num" : "" }, n))));
  async function loadBatches() {
    const t = document.getElementById("batches");
    try {
      const { payouts } = await api("/v1/finance/payouts");
      t.replaceChildren(head("Batch", "Period end", "Totals", "Lines", ""), el("tbody", {}, payouts.length
        ? payouts.map((b) => el("tr", {}, el("td", {}, b.payout_id), el("td", {}, b.period_end),
          el("td", {}, b.totals.map((x) => money(x.amount_minor, x.currency)).join(" · ") || "–"),
          el("td", { class: "num" }, b.lines.length),
          el("td", {}, el("button", { class: "linkbtn", onclick: () => showBatch(b) }, "view"), " ",
            el("button", { class: "linkbtn", onclick: () => csv(b.payout_id) }, "CSV"))))
        : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no payout batches yet"))]));
    } catch (e) { showError(e); }
  }
  function showBatch(b) {
    document.getElementById("batch-detail").hidden = false;
    document.getElementById("batch-id").textContent = b.payout_id + " (" + b.period_end + ")";
    const row = (l, extra) => el("tr", {}, el("td", {}, l.creator_id), el("td", {}, l.currency),
      el("td", { class: "num" + (l.amount_minor < 0 ? " neg" : "") }, money(l.amount_minor, l.currency)),
      el("td", { class: "num" }, l.orders), ...extra);
    document.getElementById("batch-lines").replaceChildren(head("Creator", "Currency", "Amount", "Orders"),
      el("tbody", {}, b.lines.map((l) => row(l, []))));
    document.getElementById("batch-carried").replaceChildren(
      head("Creator", "Currency", "Amount", "Orders", "Threshold", "Reason"),
      el("tbody", {}, b.carried_over.map((l) => row(l, [el("td", { class: "num" }, money(l.threshold_minor, l.currency)),
        el("td", {}, l.reason)]))));
  }
  async function csv(id) {
    try {
      const text = await api("/v1/finance/payouts/" + encodeURIComponent(id) + ".csv");
      download(id + ".csv", text);
    } catch (e) { showError(e); }
  }
  async function loadRecon() {
    try {
      const r = await api("/v1/finance/reconciliation");
      document.getElementById("generated").textContent = "reconciled " + new Date(r.generated_at).toLocaleTimeString();
      const st = document.getElementById("recon-status");
      st.textContent = r.status === "ok" ? "ledger = live" : r.creators_with_differences + " with differences";
      st.className = "pill " + (r.status === "ok" ? "ok" : "bad");
      const ev = r.events;
      document.getElementById("events").replaceChildren(...[["Received", ev.received], ["Accepted", ev.accepted],
        ["Rejected", ev.rejected], ["Dead-lettered", ev.dead_lettered], ["De-duplicated", ev.deduplicated]]
        .map(([n, v]) => el("div", { class: "kpi" }, el("div", { class: "label" }, n), el("div", { class: "value" }, num(v)))));
      document.getElementById("creators").replaceChildren(head("Creator", "Currency", "Ledger commission",
        "Live commission", "Ledger orders", "Live orders", "Differences"), el("tbody", {}, r.creators.length
        ? r.creators.map((c) => el("tr", { class: c.differences.length ? "diff" : "" }, el("td", {}, c.creator_id),
          el("td", {}, c.currency), el("td", { class: "num" }, money(c.ledger.commission_minor, c.currency)),
          el("td", { class: "num" }, money(c.live.commission_minor, c.currency)),
          el("td", { class: "num" }, c.ledger.orders), el("td", { class: "num" }, c.live.orders),
          el("td", {}, c.differences.map((d) => d.field + " " + (d.difference > 0 ? "+" : "") + d.difference).join(", ") || "✓")))
        : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no creators yet"))]));
    } catch (e) { showError(e); }
  }
  async function loadWatermark() {
    try {
      const w = await api("/v1/finance/watermark");
      const at = w.complete_up_to ? new Date(w.complete_up_to) : null;
      setText("wm-complete", at ? at.toISOString().slice(11, 19) + " UTC" : "unknown");
      setText("wm-date", at ? at.toISOString().slice(0, 10) : "");
      const lag = at ? Math.max(0, (Date.now() - at.getTime()) / 1000) : null;
      setText("wm-lag", lag === null ? "–" : lag < 120 ? lag.toFixed(1) + " s" : Math.round(lag / 60) + " min");
      const behind = w.partitions.filter((e) => e.lag > 0 || e.complete_up_to === null);
      setText("wm-behind", String(behind.length));
      const ok = at !== null && lag < 10 && !w.stale;
      const st = document.getElementById("wm-status");
      st.textContent = w.stale ? "stale (" + (w.error || "reading failed") + ")" : ok ? "caught up" : "behind";
      st.className = "pill " + (ok ? "ok" : "bad");
      document.getElementById("wm-stages").replaceChildren(head("Stage", "Topic", "Partition", "Lag", "Complete up to",
        "Basis"), el("tbody", {}, behind.length
        ? behind.map((e) => el("tr", { class: "diff" }, el("td", {}, e.stage), el("td", {}, e.topic),
          el("td", { class: "num" }, e.partition), el("td", { class: "num" }, num(e.lag)),
          el("td", {}, e.complete_up_to || "unknown"), el("td", {}, e.basis)))
        : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "every stage has applied everything"))]));
    } catch (e) { showError(e); }
  }
  document.getElementById("period_end").value = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
  document.getElementById("payout-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const msg = document.getElementById("payout-msg");
    try {
      const b = await api("/v1/finance/payouts", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ period_end: document.getElementById("period_end").value,
          force: document.getElementById("payout-force").checked }) });
      msg.textContent = "batch " + b.payout_id + ": " + b.lines.length + " lines paid, " + b.carried_over.length + " carried over";
      showError(null);
      showBatch(b);
      loadBatches();
    } catch (err) { showError(err); }
  });
  document.getElementById("orders-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = document.getElementById("recon-file").files[0];
    const brand = document.getElementById("recon-brand").value;
    const out = document.getElementById("orders-result");
    try {
      const r = await api("/v1/finance/reconciliation/orders?brand_id=" + encodeURIComponent(brand),
        { method: "POST", headers: { "Content-Type": "text/csv" }, body: await file.text() });
      const list = (title, rows, f) => el("div", {}, el("h3", {}, title + " (" + rows.length + ")"),
        rows.length ? el("table", { class: "table" }, el("tbody", {}, rows.slice(0, 200).map(f))) : el("div", { class: "muted" }, "none"));
      out.replaceChildren(
        el("p", {}, el("span", { class: "pill " + (r.status === "ok" ? "ok" : "bad") }, r.status), " ",
          r.csv_orders + " orders in the CSV, " + r.ledger_orders + " in the ledger for the period, " + r.matched + " match"),
        list("Missing in the ledger", r.missing_in_ledger, (o) => el("tr", {}, el("td", {}, o.order_id), el("td", {}, o.occurred_at),
          el("td", { class: "num" }, money(o.net_minor, o.currency)))),
        list("Missing in the CSV", r.missing_in_csv, (o) => el("tr", {}, el("td", {}, o.order_id), el("td", {}, o.occurred_at),
          el("td", { class: "num" }, money(o.net_minor, o.currency)))),
        list("Amount mismatches", r.mismatches, (m) => el("tr", {}, el("td", {}, m.order_id), el("td", {}, m.field),
          el("td", {}, "CSV " + m.csv), el("td", {}, "ledger " + m.ledger))));
      showError(null);
    } catch (err) { showError(err); }
  });
  loadBatches();
  loadRecon();
  loadWatermark();
  setInterval(loadRecon, 15000);
  setInterval(loadWatermark, 2000);
}

// --- page: index (sign in) -----------------------------------------------------------------------
function indexPage() {
  const form = document.getElementById("login");
  let target = "stream";
  form.querySelectorAll("button[data-go]").forEach((b) => b.addEventListener("click", () => { target = b.dataset.go; }));
  document.getElementById("key").value = apiKey();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("key").value.trim());
    const stream = document.getElementById("stream").value.trim();
    const creator = document.getElementById("creator").value.trim();
    const brand = document.getElementById("brand").value.trim();
    if (target === "brand" && brand) location.href = "/dashboard/brands/" + encodeURIComponent(brand);
    else if (target === "stream" && stream) location.href = "/dashboard/streams/" + encodeURIComponent(stream);
    else if (target === "creator" && creator) location.href = "/dashboard/creators/" + encodeURIComponent(creator);
    else if (target === "finance") location.href = "/dashboard/finance";
  });
}

// --- page: brand overview (streams, creator leaderboard; live via SSE) -----------------------------
function firstAmount(list, field) { return list.length ? list[0][field] : 0; }
function amounts(list, field) {
  return list.length ? list.map((g) => money(g[field], g.currency)).join(" · ") : "–";
}
function sparkline(points) {
  const w = 120, h = 28;
  const node = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "spark", role: "img", "aria-label": "trend" });
  if (points.length < 2) return node;
  const max = Math.max(1, ...points), step = w / (points.length - 1);
  node.append(svg("polyline", { fill: "none", stroke: COLORS[1], "stroke-width": "2",
    points: points.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - ((h - 4) * v) / max).toFixed(1)}`).join(" ") }));
  return node;
}

function brandPage() {
  const brandId = document.body.dataset.brandId;
  const base = "/v1/brands/" + encodeURIComponent(brandId);
  let sortKey = "orders";
  let rows = [];
  const trend = {}; // creator -> recent orders values, one per change (sparkline)
  let es = null;

  function sortValue(r, key) {
    if (key === "gmv") return firstAmount(r.gmv, "net_minor");
    if (key === "commission") return firstAmount(r.commission, "amount_minor");
    return r[key];
  }
  function renderLeaderboard(data) {
    rows = data.creators;
    for (const r of rows) {
      const t = trend[r.creator_id] || (trend[r.creator_id] = []);
      if (!t.length || t[t.length - 1] !== r.orders) t.push(r.orders);
      if (t.length > 30) t.shift();
    }
    const sorted = [...rows].sort((a, b) => sortValue(b, sortKey) - sortValue(a, sortKey)
      || a.creator_id.localeCompare(b.creator_id));
    const body = document.querySelector("#leaderboard tbody");
    body.replaceChildren(...(sorted.length ? sorted.map((r) => el("tr", { "data-creator": r.creator_id },
      el("td", {}, r.creator_id), el("td", { class: "num", "data-f": "clicks" }, num(r.clicks)),
      el("td", { class: "num", "data-f": "orders" }, num(r.orders)), el("td", { class: "num", "data-f": "cvr" }, pct(r.cvr)),
      el("td", { class: "num", "data-f": "gmv" }, amounts(r.gmv, "net_minor")),
      el("td", { class: "num", "data-f": "commission" }, amounts(r.commission, "amount_minor")),
      el("td", { class: "spark-col" }, sparkline(trend[r.creator_id] || [])))) :
      [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no creator activity yet"))]));
    document.querySelectorAll("#leaderboard th.sort").forEach((th) =>
      th.classList.toggle("sorted", th.dataset.sort === sortKey));
    document.getElementById("updated").textContent = data.updated_at
      ? "updated " + new Date(data.updated_at).toLocaleTimeString() : "";
    document.body.dataset.events = String(Number(document.body.dataset.events || 0) + 1);
  }
  function renderStreams(data) {
    const body = document.querySelector("#streams tbody");
    const select = document.getElementById("f-stream");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "all streams"),
      ...data.streams.map((s) => el("option", { value: s.stream_id }, s.title || s.stream_id)));
    select.value = chosen;
    body.replaceChildren(...(data.streams.length ? data.streams.map((s) => el("tr", { "data-stream": s.stream_id },
      el("td", {}, el("a", { href: "/dashboard/streams/" + encodeURIComponent(s.stream_id) }, s.title || s.stream_id)),
      el("td", {}, s.creator_id), el("td", {}, el("span", { class: "pill " + (s.live_now ? "live" : "") },
        s.live_now ? "live now" : "offline")),
      el("td", { class: "num" }, num(s.viewers_now)), el("td", { class: "num" }, num(s.clicks)),
      el("td", { class: "num" }, num(s.orders)), el("td", { class: "num" }, amounts(s.gmv, "net_minor")))) :
      [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no streams"))]));
  }
  function query() {
    const q = new URLSearchParams();
    const stream = document.getElementById("f-stream").value, campaign = document.getElementById("f-campaign").value.trim();
    if (stream) q.set("stream_id", stream); else if (campaign) q.set("campaign_id", campaign);
    return q;
  }
  function setState(cls, text) {
    document.getElementById("live-dot").className = "dot " + cls;
    document.getElementById("live-state").textContent = text;
    document.body.dataset.sse = cls;
  }
  function listen() {
    if (es) es.close();
    const q = query();
    q.set("key", apiKey());
    es = new EventSource(base + "/creators/live/events?" + q.toString());
    es.addEventListener("open", () => { setState("live", "live"); showError(null); });
    es.addEventListener("live", (ev) => renderLeaderboard(JSON.parse(ev.data)));
    es.addEventListener("error", () => setState(es.readyState === 2 ? "down" : "", es.readyState === 2
      ? "disconnected" : "reconnecting…"));
  }
  async function load() {
    try {
      const [streams, lb, series] = await Promise.all([api(base + "/streams/live"),
        api(base + "/creators/live?" + query()), api(base + "/creators/series")]);
      for (const p of series.points) {  // the sparklines start from the server's samples
        for (const [cid, v] of Object.entries(p.creators)) {
          const t = trend[cid] || (trend[cid] = []);
          if (!t.length || t[t.length - 1] !== v.orders) t.push(v.orders);
          if (t.length > 30) t.shift();
        }
      }
      renderStreams(streams);
      renderLeaderboard(lb);
      showError(null);
    } catch (e) { showError(e); setState("down", "no access"); return false; }
    return true;
  }
  document.querySelectorAll("#leaderboard th.sort").forEach((th) => th.addEventListener("click", () => {
    sortKey = th.dataset.sort;
    renderLeaderboard({ creators: rows, updated_at: null });
  }));
  document.getElementById("lb-filters").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await load()) listen();
  });
  load().then((ok) => { if (ok) listen(); });
  setInterval(async () => { try { renderStreams(await api(base + "/streams/live")); } catch (e) { /* next time */ } }, 5000);
}

const PAGES = { index: indexPage, stream: streamPage, creator: creatorPage, finance: financePage, brand: brandPage };
(PAGES[document.body.dataset.page] || (() => {}))();
