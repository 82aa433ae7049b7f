// lifeline dashboard page: reads /api/session, then keeps the bots' status
// live through the /api/stream event source. No framework, no CDN.
"use strict";

(function () {
  const MAX_EVENTS = 100;

  const page = {
    csrf: "",
    defaultBot: "bot",
    bots: new Map(), // name -> {status, receivedAt}
    events: [],
    source: null,
  };

  const $ = (id) => document.getElementById(id);

  const STATE_LABEL = {
    running: "Running",
    starting: "Starting",
    stopping: "Stopping",
    stopped: "Stopped",
    backoff: "Stopped",
    hung: "Hung",
    unknown: "Unknown",
  };
  const STATE_CLASS = {
    running: "state-running",
    stopped: "state-stopped",
    backoff: "state-stopped",
  };

  function stateLabel(state) {
    return STATE_LABEL[state] || "Unknown";
  }
  function stateClass(state) {
    return STATE_CLASS[state] || "state-unknown";
  }

  function setLive(kind, text) {
    const el = $("live-indicator");
    el.className = "live live-" + kind;
    el.textContent = text;
    el.dataset.live = kind;
  }

  function showLogin(message) {
    $("app").hidden = true;
    $("logout-link").hidden = true;
    $("login").hidden = false;
    setLive("offline", message || "Logged out");
    if (page.source) {
      page.source.close();
      page.source = null;
    }
  }

  // api calls the dashboard API; a 401 anywhere means the session is gone.
  async function api(method, path) {
    const opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") {
      opts.headers["X-CSRF-Token"] = page.csrf;
    }
    const res = await fetch(path, opts);
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = { ok: false, error: "unexpected answer (HTTP " + res.status + ")" };
    }
    if (res.status === 401) {
      showLogin("Logged out");
    }
    return { status: res.status, body: body };
  }

  function formatAge(ms) {
    if (ms === undefined || ms === null) return "–";
    if (ms < 1000) return ms + " ms ago";
    const s = Math.round(ms / 1000);
    if (s < 120) return s + " s ago";
    const m = Math.round(s / 60);
    if (m < 120) return m + " min ago";
    return Math.round(m / 60) + " h ago";
  }

  // heartbeatAge adds the time since the status arrived to the age it had then.
  function heartbeatAge(entry) {
    const st = entry.status;
    if (st.heartbeat_age_ms === undefined || st.heartbeat_age_ms === null) return null;
    return st.heartbeat_age_ms + (Date.now() - entry.receivedAt);
  }

  function formatExit(exit) {
    if (!exit) return "–";
    const parts = [];
    if (exit.signal) parts.push("signal " + exit.signal);
    else parts.push("code " + exit.code);
    if (exit.reason) parts.push(exit.reason);
    if (exit.at) parts.push(new Date(exit.at).toLocaleString());
    return parts.join(", ");
  }

  function formatAgent(st) {
    if (!st.agent || !st.agent.connected) return "not connected";
    let s = "connected";
    if (st.agent.pid) s += " (PID " + st.agent.pid + ")";
    return s;
  }

  function renderCard() {
    const name = page.defaultBot;
    $("bot-name").textContent = name;
    const entry = page.bots.get(name);
    const st = entry ? entry.status : { name: name, state: "unknown", agent: { connected: false } };
    const badge = $("bot-state");
    badge.textContent = stateLabel(st.state);
    badge.className = "badge " + stateClass(st.state);
    badge.dataset.state = st.state;
    badge.title = st.state;
    $("bot-pid").textContent = st.pid ? String(st.pid) : "–";
    $("bot-host").textContent = st.host || "–";
    $("bot-heartbeat").textContent = entry ? formatAge(heartbeatAge(entry)) : "–";
    $("bot-restarts").textContent = st.restarts !== undefined ? String(st.restarts) : "–";
    $("bot-last-exit").textContent = formatExit(st.last_exit);
    $("bot-agent").textContent = formatAgent(st);
    const problem = $("bot-problem");
    problem.hidden = !st.problem;
    problem.textContent = st.problem || "";
  }

  function actionButton(name, op, label) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.className = "small" + (op === "start" ? "" : " danger");
    b.dataset.bot = name;
    b.dataset.op = op;
    return b;
  }

  function renderTable() {
    const tbody = $("bots-table").querySelector("tbody");
    const names = Array.from(page.bots.keys()).sort();
    const rows = [];
    for (const name of names) {
      const entry = page.bots.get(name);
      const st = entry.status;
      const tr = document.createElement("tr");
      tr.dataset.bot = name;
      const cells = [
        name,
        null,
        st.pid ? String(st.pid) : "–",
        st.host || "–",
        formatAge(heartbeatAge(entry)),
        st.restarts !== undefined ? String(st.restarts) : "–",
        formatAgent(st),
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        if (text === null) {
          const badge = document.createElement("span");
          badge.className = "badge " + stateClass(st.state);
          badge.dataset.state = st.state;
          badge.textContent = stateLabel(st.state);
          td.appendChild(badge);
        } else {
          td.textContent = text;
        }
        tr.appendChild(td);
      }
      const actions = document.createElement("td");
      actions.className = "row-actions";
      actions.appendChild(actionButton(name, "restart", "Restart"));
      actions.appendChild(actionButton(name, "stop", "Stop"));
      actions.appendChild(actionButton(name, "start", "Start"));
      tr.appendChild(actions);
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
  }

  function renderEvents() {
    const list = $("events");
    const items = page.events.map((e) => {
      const li = document.createElement("li");
      li.className = "event event-" + e.type;
      const time = document.createElement("time");
      time.dateTime = e.time;
      time.textContent = new Date(e.time).toLocaleTimeString();
      const what = document.createElement("span");
      let text = e.name + " " + e.type;
      if (e.pid) text += " (PID " + e.pid + ")";
      if (e.reason) text += ": " + e.reason;
      if (e.requested_by) text += " — by " + e.requested_by;
      what.textContent = text;
      li.append(time, " ", what);
      return li;
    });
    if (items.length === 0) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No events yet.";
      items.push(li);
    }
    list.replaceChildren(...items);
  }

  function render() {
    renderCard();
    renderTable();
  }

  function setStatus(st) {
    page.bots.set(st.name, { status: st, receivedAt: Date.now() });
  }

  function describeReply(op, status, body) {
    if (body && body.ok) {
      if (op === "restart") {
        let s = "Restarted: PID " + (body.old_pid || "–") + " → " + (body.new_pid || "–");
        if (body.took_ms !== undefined) s += " in " + body.took_ms + " ms";
        return s;
      }
      return (op === "stop" ? "Stopped" : "Started") + (body.pid ? " (PID " + body.pid + ")" : "");
    }
    const msg = body && body.error ? body.error : "HTTP " + status;
    return op.charAt(0).toUpperCase() + op.slice(1) + " failed: " + msg;
  }

  async function command(name, op, resultEl, button) {
    if (!window.confirm(op.charAt(0).toUpperCase() + op.slice(1) + " bot \u201c" + name + "\u201d?")) {
      return;
    }
    button.disabled = true;
    resultEl.className = "result pending";
    resultEl.textContent = op.charAt(0).toUpperCase() + op.slice(1) + "ing " + name + "…";
    const path = name === page.defaultBot && op === "restart"
      ? "/api/bot/restart"
      : "/api/bots/" + encodeURIComponent(name) + "/" + op;
    try {
      const r = await api("POST", path);
      resultEl.className = "result " + (r.body && r.body.ok ? "ok" : "error");
      resultEl.textContent = describeReply(op, r.status, r.body);
    } catch (e) {
      resultEl.className = "result error";
      resultEl.textContent = op + " failed: " + e.message;
    } finally {
      button.disabled = false;
    }
  }

  function connectStream() {
    if (page.source) page.source.close();
    setLive("connecting", "Connecting…");
    const es = new EventSource("/api/stream");
    page.source = es;
    es.addEventListener("open", () => setLive("live", "Live"));
    es.addEventListener("status", (ev) => {
      try {
        setStatus(JSON.parse(ev.data));
        render();
      } catch (e) {
        /* a malformed message must not stop the page */
      }
    });
    es.addEventListener("event", (ev) => {
      try {
        page.events.unshift(JSON.parse(ev.data));
        page.events.length = Math.min(page.events.length, MAX_EVENTS);
        renderEvents();
      } catch (e) {
        /* ignore */
      }
    });
    es.addEventListener("error", async () => {
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (401 or shutdown): find out which,
        // then try again later ourselves.
        setLive("reconnecting", "Reconnecting…");
        page.source = null;
        try {
          const r = await api("GET", "/api/session");
          if (r.status === 401) return;
        } catch (e) {
          /* dashboard down: keep trying */
        }
        setTimeout(() => {
          if (!page.source && $("login").hidden) connectStream();
        }, 3000);
        return;
      }
      setLive("reconnecting", "Reconnecting…");
    });
  }

  async function start() {
    let r;
    try {
      r = await api("GET", "/api/session");
    } catch (e) {
      setLive("offline", "Dashboard unreachable");
      setTimeout(start, 3000);
      return;
    }
    if (r.status === 401) return; // login shown
    if (r.status !== 200) {
      setLive("offline", "Error: " + ((r.body && r.body.error) || r.status));
      return;
    }
    page.csrf = r.body.csrf_token || "";
    page.defaultBot = r.body.default_bot || "bot";
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout-link").hidden = r.body.auth !== "cookie";

    const [bots, events] = await Promise.all([api("GET", "/api/bots"), api("GET", "/api/events")]);
    if (bots.status === 200 && bots.body.bots) {
      for (const st of bots.body.bots) setStatus(st);
    }
    if (events.status === 200 && events.body.events) {
      page.events = events.body.events.slice(0, MAX_EVENTS);
    }
    render();
    renderEvents();
    connectStream();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("restart-btn").addEventListener("click", (ev) => {
      command(page.defaultBot, "restart", $("restart-result"), ev.currentTarget);
    });
    $("bots-table").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-op]");
      if (b) command(b.dataset.bot, b.dataset.op, $("bots-result"), b);
    });
    // Heartbeat ages keep growing between messages.
    setInterval(() => {
      if (!$("app").hidden) render();
    }, 1000);
    start();
  });
})();
