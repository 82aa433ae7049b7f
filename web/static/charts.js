// lifeline dashboard: pictures of one bot (issue 13). CPU and memory over
// the last hour and heartbeat age as a sparkline, drawn with the vendored
// uPlot (vendor/uPlot.iife.min.js, MIT), plus a restart timeline over the
// last 24 hours drawn on a canvas. Separate from app.js on purpose: it reads
// /api/session, /api/bots/NAME/samples and /api/bots/NAME/timeline, and
// touches only the #charts card.
//
// Only one bot is charted at a time: the default bot at first, then the one
// whose row the operator picks in the list. Nothing is fetched while the card
// is out of view or the tab is hidden, so 1,000 bots cost the page nothing
// more than one.
(function () {
  "use strict";

  const SAMPLES_EVERY_MS = 10000; // the dashboard samples every 10 s
  const TIMELINE_EVERY_MS = 15000;
  const GAP_S = 35; // a longer silence between samples breaks the line
  const DAY_MS = 24 * 3600 * 1000;
  const $ = (id) => document.getElementById(id);

  const ui = {
    card: $("charts"),
    bot: $("charts-bot"),
    form: $("charts-form"),
    input: $("charts-input"),
    note: $("charts-note"),
    cpu: $("chart-cpu"),
    rss: $("chart-rss"),
    hb: $("chart-hb"),
    timeline: $("chart-timeline"),
    summary: $("chart-timeline-summary"),
  };
  if (!ui.card || typeof window.uPlot !== "function") return;

  const state = {
    bot: "",
    visible: false,
    plots: { cpu: null, rss: null, hb: null },
    samplesTimer: 0,
    timelineTimer: 0,
    events: [],
    since: 0,
    gen: 0, // bumped on every bot change, so late answers are dropped
  };

  function note(text) {
    ui.note.textContent = text;
    ui.note.hidden = text === "";
  }

  function formatBytes(n) {
    if (n == null) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  // clock labels the time axis with the local hour and minute only: uPlot's
  // own labels add dates that overlap in a small chart.
  // Seconds too when the series spans only a few minutes.
  function clock(sec, withSeconds) {
    const d = new Date(sec * 1000);
    const two = (n) => String(n).padStart(2, "0");
    return two(d.getHours()) + ":" + two(d.getMinutes()) + (withSeconds ? ":" + two(d.getSeconds()) : "");
  }

  function width(el) {
    return Math.max(120, Math.floor(el.getBoundingClientRect().width));
  }

  // columns turns samples into uPlot's columns, with a null wherever the
  // dashboard was away longer than GAP_S, so the line breaks there.
  function columns(samples) {
    const t = [], cpu = [], rss = [], hb = [];
    let prev = 0;
    for (const s of samples) {
      const x = s.t / 1000;
      if (prev && x - prev > GAP_S) {
        t.push(prev + 1);
        cpu.push(null);
        rss.push(null);
        hb.push(null);
      }
      t.push(x);
      cpu.push(s.cpu);
      rss.push(s.rss);
      hb.push(s.hb_age_ms == null ? null : s.hb_age_ms / 1000);
      prev = x;
    }
    return { t: t, cpu: cpu, rss: rss, hb: hb };
  }

  function plotOpts(el, label, stroke, fill, value, spark) {
    const opts = {
      width: width(el),
      height: spark ? 48 : 140,
      // The newest value is in the caption; a legend would only repeat it.
      legend: { show: false },
      cursor: { show: !spark, points: { show: false } },
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(hi || 0, spark ? 1 : 0.001) * 1.1] } },
      series: [
        {},
        { label: label, stroke: stroke, fill: fill, width: spark ? 1.5 : 2, value: (u, v) => (v == null ? "–" : value(v)), spanGaps: false, points: { show: false } },
      ],
      axes: spark
        ? [{ show: false }, { show: false }]
        : [
            { stroke: "#56606e", grid: { stroke: "#e4e7eb" }, ticks: { stroke: "#cfd4db" }, space: 56, values: (u, vals) => vals.map((v) => clock(v, u.scales.x.max - u.scales.x.min < 600)) },
            { stroke: "#56606e", grid: { stroke: "#e4e7eb" }, ticks: { stroke: "#cfd4db" }, size: 64, values: (u, vals) => vals.map((v) => value(v)) },
          ],
    };
    return opts;
  }

  function draw(key, el, data, opts) {
    const p = state.plots[key];
    if (p) {
      p.setData(data);
      return;
    }
    el.replaceChildren();
    state.plots[key] = new window.uPlot(opts, data, el);
  }

  function destroyPlots() {
    for (const k of Object.keys(state.plots)) {
      if (state.plots[k]) state.plots[k].destroy();
      state.plots[k] = null;
    }
  }

  function renderSamples(samples) {
    const c = columns(samples);
    draw("cpu", ui.cpu, [c.t, c.cpu], plotOpts(ui.cpu, "CPU", "#1a56db", "rgba(26,86,219,0.12)", (v) => v.toFixed(1) + " %", false));
    draw("rss", ui.rss, [c.t, c.rss], plotOpts(ui.rss, "Memory", "#17652f", "rgba(23,101,47,0.12)", formatBytes, false));
    draw("hb", ui.hb, [c.t, c.hb], plotOpts(ui.hb, "Heartbeat age", "#7a4f00", "rgba(122,79,0,0.10)", (v) => v.toFixed(1) + " s", true));
    const last = samples.length ? samples[samples.length - 1] : null;
    ui.card.dataset.samples = String(samples.length);
    ui.card.dataset.firstT = samples.length ? String(samples[0].t) : "";
    ui.card.dataset.lastT = last ? String(last.t) : "";
    ui.card.dataset.lastCpu = last ? String(last.cpu) : "";
    ui.card.dataset.lastRss = last ? String(last.rss) : "";
    $("chart-cpu-now").textContent = last ? last.cpu.toFixed(1) + " %" : "–";
    $("chart-rss-now").textContent = last ? formatBytes(last.rss) : "–";
    $("chart-hb-now").textContent = last && last.hb_age_ms != null ? (last.hb_age_ms / 1000).toFixed(1) + " s" : "–";
  }

  // kind sorts a lifecycle event into the timeline's three rows, or none.
  function kind(type) {
    switch (type) {
      case "crashed":
        return "crash";
      case "hung":
        return "hang";
      case "restarted":
        return "request";
    }
    return "";
  }

  const KINDS = [
    { key: "crash", label: "Crashes", one: "crash", color: "#a61b12" },
    { key: "hang", label: "Hangs", one: "hang", color: "#b36b00" },
    { key: "request", label: "Requests", one: "request", color: "#1a56db" },
  ];

  function renderTimeline() {
    const canvas = ui.timeline;
    const dpr = window.devicePixelRatio || 1;
    const w = width(canvas.parentElement);
    const rowH = 18, left = 72, top = 4, h = top + KINDS.length * rowH + 18;
    canvas.width = w * dpr;
    canvas.height = h * dpr;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const now = Date.now();
    const since = now - DAY_MS;
    const x = (ms) => left + ((ms - since) / DAY_MS) * (w - left - 8);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    const counts = { crash: 0, hang: 0, request: 0 };
    KINDS.forEach((k, i) => {
      const y = top + i * rowH + rowH / 2;
      ctx.fillStyle = "#56606e";
      ctx.fillText(k.label, 0, y);
      ctx.strokeStyle = "#e4e7eb";
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(w - 8, y);
      ctx.stroke();
    });
    for (const e of state.events) {
      const k = kind(e.type);
      const t = Date.parse(e.time);
      if (!k || !(t >= since)) continue;
      counts[k]++;
      const i = KINDS.findIndex((d) => d.key === k);
      ctx.fillStyle = KINDS[i].color;
      ctx.fillRect(Math.round(x(t)) - 1, top + i * rowH + 3, 3, rowH - 6);
    }
    // Hours along the bottom: every 6 h, in local time.
    ctx.fillStyle = "#56606e";
    ctx.textBaseline = "alphabetic";
    for (let hrs = 24; hrs >= 0; hrs -= 6) {
      const ms = now - hrs * 3600 * 1000;
      const label = hrs === 0 ? "now" : "−" + hrs + " h";
      const tx = Math.min(Math.max(x(ms) - 12, left), w - 30);
      ctx.fillText(label, tx, h - 3);
    }
    const parts = KINDS.map((k) => counts[k.key] + " " + (counts[k.key] === 1 ? k.one : k.label.toLowerCase()));
    ui.summary.textContent = parts.join(", ");
    canvas.setAttribute("aria-label", "Restart timeline of " + state.bot + ", last 24 hours: " + parts.join(", "));
    ui.card.dataset.crashes = String(counts.crash);
    ui.card.dataset.hangs = String(counts.hang);
    ui.card.dataset.requests = String(counts.request);
  }

  async function getJSON(path) {
    const res = await fetch(path, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
    let body = {};
    try {
      body = await res.json();
    } catch (e) {
      body = {};
    }
    return { status: res.status, body: body };
  }

  async function loadSamples() {
    const gen = state.gen, bot = state.bot;
    if (!bot) return;
    try {
      const r = await getJSON("/api/bots/" + encodeURIComponent(bot) + "/samples");
      if (gen !== state.gen) return;
      if (r.status === 404) {
        note("No bot named " + bot + " is known to the dashboard.");
        renderSamples([]);
        return;
      }
      if (r.status !== 200) {
        note(r.body.error || "samples unavailable (HTTP " + r.status + ")");
        return;
      }
      note(r.body.note || (r.body.samples.length === 0 ? "No samples yet: the dashboard takes one every 10 seconds." : ""));
      renderSamples(r.body.samples || []);
    } catch (e) {
      // Offline: app.js says so; keep the last picture.
    }
  }

  async function loadTimeline() {
    const gen = state.gen, bot = state.bot;
    if (!bot) return;
    try {
      const r = await getJSON("/api/bots/" + encodeURIComponent(bot) + "/timeline");
      if (gen !== state.gen || r.status !== 200) return;
      state.events = r.body.events || [];
      renderTimeline();
    } catch (e) {
      // Offline: keep the last picture.
    }
  }

  function stopTimers() {
    clearInterval(state.samplesTimer);
    clearInterval(state.timelineTimer);
    state.samplesTimer = state.timelineTimer = 0;
  }

  // refresh fetches now and keeps fetching while the card is in view and
  // the tab shown; otherwise it stops.
  function refresh() {
    stopTimers();
    if (!state.bot || !state.visible || document.hidden || ui.card.hidden) return;
    loadSamples();
    loadTimeline();
    state.samplesTimer = setInterval(loadSamples, SAMPLES_EVERY_MS / 2);
    state.timelineTimer = setInterval(loadTimeline, TIMELINE_EVERY_MS);
  }

  function select(bot) {
    if (!bot || bot === state.bot) return;
    state.bot = bot;
    state.gen++;
    state.events = [];
    ui.bot.textContent = bot;
    ui.input.value = bot;
    ui.card.dataset.bot = bot;
    ui.card.dataset.samples = "";
    destroyPlots();
    refresh();
  }

  function resize() {
    for (const [k, el] of [["cpu", ui.cpu], ["rss", ui.rss], ["hb", ui.hb]]) {
      const p = state.plots[k];
      if (p) p.setSize({ width: width(el), height: p.height });
    }
    if (state.bot) renderTimeline();
  }

  async function start() {
    let r;
    try {
      r = await getJSON("/api/session");
    } catch (e) {
      setTimeout(start, 5000);
      return;
    }
    if (r.status === 401) {
      // app.js shows the login form; the page reloads after logging in.
      return;
    }
    if (r.status !== 200) {
      setTimeout(start, 5000);
      return;
    }
    ui.card.hidden = false;
    select(r.body.default_bot || "bot");
  }

  document.addEventListener("DOMContentLoaded", () => {
    // Picking a row (not one of its buttons) charts that bot.
    const table = $("bots-table");
    if (table) {
      table.addEventListener("click", (ev) => {
        if (ev.target.closest("button")) return;
        const tr = ev.target.closest("tr[data-bot]");
        if (tr) {
          select(tr.dataset.bot);
          if (!state.visible) ui.card.scrollIntoView({ block: "nearest" });
        }
      });
    }
    ui.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      select(ui.input.value.trim());
    });
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        const v = entries.some((e) => e.isIntersecting);
        if (v !== state.visible) {
          state.visible = v;
          refresh();
        }
      }).observe(ui.card);
    } else {
      state.visible = true;
    }
    document.addEventListener("visibilitychange", refresh);
    let pending = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(resize);
    });
    start();
  });
})();
