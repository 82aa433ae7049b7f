// lifeline dashboard page. It asks /api/session whether the browser is
// logged in, then keeps every bot's status live through the /api/stream
// event source, and re-reads the full state each time the stream
// (re)connects. No framework, no build step, no CDN; the CSP allows no
// inline script or style, so everything here works through the DOM.
import { watchAlerts } from "./alerts.js";
import { renderButtons, renderCard } from "./card.js";
import { $, setBadge, setText } from "./dom.js";
import { addEvents, renderEvents } from "./events.js";
import { agentKnows, capitalize, formatAge, formatBytes, formatCPU, formatStats, heartbeatAge, stateLabel } from "./format.js";
import { api, applySession, closeStream, setLive, showApp, showLogin } from "./session.js";
import { isViewer, page, PROBLEM, problemRank, RETRY_MAX_MS, RETRY_MIN_MS } from "./state.js";

(function () {
  // The list shows this many bots at first and this many more per "Show
  // more": a fleet of 10,000 stays one small table, problems on top, and
  // the filter finds the rest.
  const PAGE_ROWS = 200;
  // Sorting a big fleet again costs milliseconds: while bots keep changing
  // state, the list is re-sorted at most once per 20 times what the last
  // sort took (capped at this), so sorting never takes over the page. Rows
  // shown still update every frame; what the operator asks for (filter,
  // grouping, show more) sorts at once.
  const ORDER_MAX_DELAY_MS = 1000;

  // ---- state ------------------------------------------------------------

  // view is the bot list as shown: the filtered, sorted items, and what
  // changed since the last frame. Status updates only mark what changed;
  // the DOM work happens once per animation frame, and only a change of a
  // bot's place (new bot, other state, other host) sorts the list again.
  const view = {
    filter: "",
    group: false,
    limit: PAGE_ROWS,
    items: [], // entries, and {group} headers when grouped by host
    matched: 0,
    problems: 0,
    shown: 0,
    orderDirty: true,
    urgent: true, // sort at the next frame, whatever the last sort cost
    nextOrder: 0, // performance.now() before which a sort waits
    dirtyRows: new Set(), // names whose row text may have changed
    cardDirty: true,
    frame: 0,
    timer: 0,
  };

  function setStatus(st) {
    page.seq++;
    const prev = page.bots.get(st.name);
    const state = st.state || "unknown";
    const entry = {
      name: st.name,
      status: st,
      receivedAt: Date.now(),
      seq: page.seq,
      rank: problemRank(st),
      host: st.host || "",
      state: state,
    };
    entry.lname = st.name.toLowerCase();
    entry.lhost = entry.host.toLowerCase();
    entry.lstate = state + " " + stateLabel(state).toLowerCase() + (entry.rank <= PROBLEM ? " problem" : "");
    entry.text = entry.lname + " " + entry.lhost + " " + entry.lstate;
    page.bots.set(st.name, entry);
    if (!prev || prev.rank !== entry.rank || prev.host !== entry.host || prev.state !== entry.state) {
      view.orderDirty = true; // its place in the list, or whether it matches, may change
    }
    view.dirtyRows.add(st.name);
    if (st.name === page.defaultBot) view.cardDirty = true;
    schedule();
  }

  // schedule asks for one flush at the next animation frame. Browsers pause
  // animation frames in hidden tabs, so a timer flushes too, less often.
  function schedule() {
    if (view.frame) return;
    view.frame = requestAnimationFrame(flush);
    if (!view.timer) view.timer = setTimeout(flush, 250);
  }

  // reorder asks for a sort at the next frame: the operator is waiting.
  function reorder() {
    view.orderDirty = true;
    view.urgent = true;
    schedule();
  }

  function flush() {
    if (view.frame) cancelAnimationFrame(view.frame);
    if (view.timer) clearTimeout(view.timer);
    view.frame = 0;
    view.timer = 0;
    if (view.orderDirty) {
      const now = performance.now();
      if (view.urgent || now >= view.nextOrder) {
        view.orderDirty = false;
        view.urgent = false;
        view.dirtyRows.clear(); // renderList writes every row it shows
        rebuildView();
        renderList();
        const took = performance.now() - now;
        view.nextOrder = performance.now() + Math.min(ORDER_MAX_DELAY_MS, took * 20);
        $("bots-table").dataset.sortMs = took.toFixed(1);
      } else {
        view.timer = setTimeout(flush, view.nextOrder - now); // the sort waits its turn
      }
    }
    if (view.dirtyRows.size > 0) {
      for (const name of view.dirtyRows) {
        const row = rows.get(name);
        const entry = page.bots.get(name);
        if (row && entry) updateRow(row, entry);
      }
      view.dirtyRows.clear();
    }
    if (view.cardDirty) {
      view.cardDirty = false;
      renderCard();
    }
  }

  // resync re-reads everything: after the first connection and after every
  // reconnection, since the dashboard may have restarted meanwhile.
  async function resync() {
    const since = page.seq;
    let session, bots, events;
    try {
      [session, bots, events] = await Promise.all([
        api("GET", "/api/session"),
        api("GET", "/api/bots"),
        api("GET", "/api/events"),
      ]);
    } catch (e) {
      return; // the stream's error handler reports the outage
    }
    if (!page.loggedIn) return;
    if (session.status === 200) applySession(session.body);
    if (bots.status === 200 && Array.isArray(bots.body.bots)) {
      const seen = new Set();
      for (const st of bots.body.bots) {
        seen.add(st.name);
        const cur = page.bots.get(st.name);
        if (!cur || cur.seq <= since) setStatus(st);
      }
      for (const [name, cur] of page.bots) {
        if (!seen.has(name) && cur.seq <= since) {
          page.bots.delete(name);
          view.orderDirty = true;
        }
      }
    }
    if (events.status === 200 && Array.isArray(events.body.events)) {
      addEvents(events.body.events.slice().reverse()); // oldest first, as they arrived
    }
    render();
  }

  // ---- rendering --------------------------------------------------------

  const COLUMNS = ["Bot", "State", "PID", "Host", "Heartbeat", "Restarts", "CPU", "Memory", "Stats", ""];
  const rows = new Map(); // name -> {tr, cells, badge, agentNote}; only the bots shown
  const groupRows = new Map(); // host -> {tr, cell}; only the groups shown

  function actionButton(name, op, label) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.className = "small" + (op === "start" ? "" : " danger");
    b.dataset.bot = name;
    b.dataset.op = op;
    b.setAttribute("aria-label", capitalize(op) + " " + name);
    return b;
  }

  function newRow(name) {
    const tr = document.createElement("tr");
    tr.dataset.bot = name;
    const cells = COLUMNS.map((label, i) => {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      if (label) td.dataset.label = label;
      tr.appendChild(td);
      return td;
    });
    const badge = document.createElement("span");
    const agentNote = document.createElement("span");
    agentNote.className = "agent-note";
    cells[1].append(badge, agentNote);
    for (const i of [2, 4, 5, 6, 7]) cells[i].className = "num";
    cells[8].className = "stats";
    cells[9].className = "row-actions";
    setText(cells[0], name);
    return { tr: tr, cells: cells, badge: badge, agentNote: agentNote };
  }

  // renderRowActions gives an operator's row its buttons and takes them
  // away from a viewer's.
  function renderRowActions(name, cell) {
    const has = cell.childElementCount > 0;
    if (isViewer()) {
      if (has) cell.replaceChildren();
      return;
    }
    if (!has) cell.append(actionButton(name, "restart", "Restart"), actionButton(name, "stop", "Stop"), actionButton(name, "start", "Start"));
    const busy = ["restart", "stop", "start"].some((op) => page.busy.has(name + "/" + op));
    for (const b of cell.querySelectorAll("button")) if (b.disabled !== busy) b.disabled = busy;
  }

  // updateRow writes one bot's row; setText leaves unchanged cells alone.
  function updateRow(row, entry) {
    const st = entry.status;
    const c = row.cells;
    if (row.tr.dataset.state !== entry.state) row.tr.dataset.state = entry.state;
    if (row.tr.dataset.host !== entry.host) row.tr.dataset.host = entry.host;
    row.tr.classList.toggle("problem-row", entry.rank <= PROBLEM);
    setBadge(row.badge, st.state);
    setText(row.agentNote, st.agent && st.agent.connected ? "" : "no agent");
    setText(c[2], st.pid ? String(st.pid) : "–");
    setText(c[3], st.host || "–");
    setText(c[4], formatAge(heartbeatAge(entry)));
    setText(c[5], st.restarts !== undefined ? String(st.restarts) : "–");
    setText(c[6], formatCPU(st));
    setText(c[7], agentKnows(st) ? formatBytes(st.rss_bytes) : "–");
    setText(c[8], formatStats(st.stats));
    renderRowActions(entry.name, c[9]);
  }

  // parseFilter splits the filter box into terms that must all match: a
  // plain word matches the name, host or state; name:, host: and state:
  // match one field; is:problem matches the problems.
  function parseFilter(text) {
    return text.toLowerCase().split(/\s+/).filter(Boolean).map((t) => {
      const m = /^(name|host|state|is):(.*)$/.exec(t);
      return m ? { field: m[1], value: m[2] } : { field: "", value: t };
    });
  }

  function matches(entry, terms) {
    for (const t of terms) {
      let hay;
      switch (t.field) {
        case "name": hay = entry.lname; break;
        case "host": hay = entry.lhost; break;
        case "state": hay = entry.lstate; break;
        case "is": hay = entry.rank <= PROBLEM ? "problem" : ""; break;
        default: hay = entry.text;
      }
      if (!hay.includes(t.value)) return false;
    }
    return true;
  }

  function byRankThenName(a, b) {
    return a.rank - b.rank || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  }

  // rebuildView filters and sorts every bot: problems first, then by name;
  // grouped by host, the groups with the worst problems first.
  function rebuildView() {
    const terms = parseFilter(view.filter);
    const list = [];
    let problems = 0;
    for (const e of page.bots.values()) {
      if (e.rank <= PROBLEM) problems++;
      if (terms.length === 0 || matches(e, terms)) list.push(e);
    }
    list.sort(byRankThenName);
    view.matched = list.length;
    view.problems = problems;
    if (!view.group) {
      view.items = list;
      return;
    }
    const groups = new Map();
    for (const e of list) {
      let g = groups.get(e.host);
      if (!g) {
        g = { host: e.host, worst: e.rank, count: 0, problems: 0, items: [] };
        groups.set(e.host, g);
      }
      g.count++;
      if (e.rank <= PROBLEM) g.problems++;
      g.items.push(e); // already in order
    }
    const sorted = Array.from(groups.values()).sort((a, b) =>
      a.worst - b.worst || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
    view.items = [];
    for (const g of sorted) {
      view.items.push({ group: g });
      for (const e of g.items) view.items.push(e);
    }
  }

  function groupRow(g) {
    let r = groupRows.get(g.host);
    if (!r) {
      const tr = document.createElement("tr");
      tr.className = "group-row";
      tr.dataset.group = g.host;
      const cell = document.createElement("th");
      cell.scope = "rowgroup";
      cell.colSpan = COLUMNS.length;
      tr.appendChild(cell);
      r = { tr: tr, cell: cell };
      groupRows.set(g.host, r);
    }
    let text = (g.host || "no host") + " · " + g.count + (g.count === 1 ? " bot" : " bots");
    if (g.problems) text += " · " + g.problems + (g.problems === 1 ? " problem" : " problems");
    setText(r.cell, text);
    r.tr.classList.toggle("problem-row", g.problems > 0);
    return r.tr;
  }

  // renderList shows the first view.limit bots of the view, reusing the
  // rows already in the table and moving only those out of place.
  function renderList() {
    const tbody = $("bots-table").tBodies[0];
    const want = [];
    let shown = 0;
    for (const it of view.items) {
      if (shown >= view.limit) break;
      if (it.group) {
        want.push(groupRow(it.group));
        continue;
      }
      let row = rows.get(it.name);
      if (!row) {
        row = newRow(it.name);
        rows.set(it.name, row);
      }
      updateRow(row, it);
      want.push(row.tr);
      shown++;
    }
    const keep = new Set(want);
    for (const [name, row] of rows) {
      if (!keep.has(row.tr)) {
        row.tr.remove();
        rows.delete(name);
      }
    }
    for (const [host, r] of groupRows) {
      if (!keep.has(r.tr)) {
        r.tr.remove();
        groupRows.delete(host);
      }
    }
    want.forEach((tr, i) => {
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    view.shown = shown;
    renderSummary();
  }

  function count(n, one, many) {
    return n.toLocaleString("en-US") + " " + (n === 1 ? one : many);
  }

  function renderSummary() {
    const total = page.bots.size;
    let s = count(total, "bot", "bots") + " · " + count(view.problems, "problem", "problems");
    if (view.filter.trim()) s += " · " + count(view.matched, "match", "matches");
    if (view.shown < view.matched) s += " · showing the first " + view.shown.toLocaleString("en-US");
    setText($("bots-summary"), s);
    const more = $("bots-more");
    const left = view.matched - view.shown;
    more.hidden = left <= 0;
    if (left > 0) setText(more, "Show " + Math.min(left, PAGE_ROWS).toLocaleString("en-US") + " more (" + left.toLocaleString("en-US") + " not shown)");
    const empty = $("bots-empty");
    empty.hidden = view.matched > 0;
    setText(empty, total === 0 ? "No bots known yet." : "No bot matches the filter.");
    $("bots-table").dataset.shown = String(view.shown);
    $("bots-table").dataset.matched = String(view.matched);
  }

  // tickRows moves the heartbeat ages on in the rows shown; nothing else in
  // a row changes with time alone.
  function tickRows() {
    for (const [name, row] of rows) {
      const entry = page.bots.get(name);
      if (entry) setText(row.cells[4], formatAge(heartbeatAge(entry)));
    }
  }

  // render redraws everything now: after a full read, and when a command's
  // busy state or the login's role changed.
  function render() {
    view.orderDirty = true;
    view.urgent = true;
    view.cardDirty = true;
    flush();
    renderButtons();
  }

  // ---- commands ---------------------------------------------------------

  const CONFIRM = {
    restart: {
      title: "Restart bot “%s”?",
      text: "The agent asks the bot to finish its current item and exit, kills it if it does not, and starts a new process.",
      ok: "Restart",
    },
    stop: {
      title: "Stop bot “%s”?",
      text: "The agent stops the bot and does not start it again until someone presses Start.",
      ok: "Stop",
    },
    start: {
      title: "Start bot “%s”?",
      text: "The agent starts the bot if it is not running.",
      ok: "Start",
    },
  };

  // confirmAction opens the confirm dialog and resolves to true only when
  // the operator pressed the confirm button (not Cancel, not Escape).
  function confirmAction(op, name) {
    const dlg = $("confirm-dialog");
    const c = CONFIRM[op];
    const st = page.bots.get(name);
    const pid = st && st.status.pid ? " Its PID is now " + st.status.pid + "." : "";
    $("confirm-title").textContent = c.title.replace("%s", name);
    $("confirm-text").textContent = c.text + pid;
    $("confirm-ok").textContent = c.ok;
    $("confirm-ok").className = op === "start" ? "primary" : "danger";
    dlg.dataset.op = op;
    dlg.dataset.bot = name;
    dlg.dataset.answer = "";
    return new Promise((resolve) => {
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "confirm"), { once: true });
      dlg.returnValue = "";
      dlg.showModal();
      $("confirm-cancel").focus(); // the safe choice is the default
    });
  }

  function describeReply(op, name, status, body) {
    if (body && body.ok) {
      if (op === "restart") {
        let s = "Restarted " + name + ": PID " + (body.old_pid || "–") + " → " + (body.new_pid || "–");
        if (body.took_ms !== undefined) s += " in " + (body.took_ms / 1000).toFixed(1) + " s";
        return s + ".";
      }
      return (op === "stop" ? "Stopped " : "Started ") + name + (body.pid ? " (PID " + body.pid + ")" : "") + ".";
    }
    const msg = body && body.error ? body.error : "HTTP " + status;
    return capitalize(op) + " failed: " + msg;
  }

  async function command(name, op, resultEl, returnFocus) {
    const key = name + "/" + op;
    if (page.busy.has(key) || isViewer()) return;
    const ok = await confirmAction(op, name);
    // The answer stays on the dialog, for tests and for debugging.
    $("confirm-dialog").dataset.answer = ok ? "confirmed" : "cancelled";
    if (returnFocus && document.body.contains(returnFocus)) returnFocus.focus();
    if (!ok) return;
    page.busy.add(key);
    render();
    resultEl.className = "result pending";
    resultEl.textContent = { restart: "Restarting", stop: "Stopping", start: "Starting" }[op] + " " + name + "…";
    const path = name === page.defaultBot && op === "restart"
      ? "/api/bot/restart"
      : "/api/bots/" + encodeURIComponent(name) + "/" + op;
    try {
      let r = await api("POST", path);
      if (r.status === 403) {
        // The CSRF token is stale (a new login elsewhere): nothing was
        // done, so fetch a fresh one and try once more.
        // A viewer's 403 stays: the fresh session says so and hides the
        // controls.
        const s = await api("GET", "/api/session");
        if (s.status === 200) {
          applySession(s.body);
          if (!isViewer()) r = await api("POST", path);
        }
      }
      if (r.status === 401) return;
      resultEl.className = "result " + (r.body.ok ? "ok" : "error");
      resultEl.textContent = describeReply(op, name, r.status, r.body);
    } catch (e) {
      resultEl.className = "result error";
      resultEl.textContent = capitalize(op) + " failed: the dashboard did not answer (" + e.message + ").";
    } finally {
      page.busy.delete(key);
      render();
    }
    refreshBot(name);
  }

  // refreshBot reads one bot's status at once, so the result of a command
  // shows even before the stream brings it.
  async function refreshBot(name) {
    const since = page.seq;
    try {
      const r = await api("GET", "/api/bots/" + encodeURIComponent(name));
      const cur = page.bots.get(name);
      if (r.status === 200 && r.body.name === name && (!cur || cur.seq <= since)) {
        setStatus(r.body);
      }
    } catch (e) {
      /* the stream reports outages */
    }
  }

  // ---- live stream ------------------------------------------------------

  function connectStream() {
    closeStream();
    if (!page.loggedIn) return;
    const es = new EventSource("/api/stream");
    page.source = es;
    es.addEventListener("open", () => {
      if (page.source !== es) return;
      page.retryDelay = RETRY_MIN_MS;
      setLive("live");
      resync();
    });
    es.addEventListener("status", (ev) => {
      if (page.source !== es) return;
      let st;
      try {
        st = JSON.parse(ev.data);
      } catch (e) {
        return; // a malformed message must not stop the page
      }
      if (!st || !st.name) return;
      setStatus(st);
    });
    // A batch of statuses in one message, for a dashboard that coalesces
    // its updates: each is taken as if it came alone.
    es.addEventListener("statuses", (ev) => {
      if (page.source !== es) return;
      let list;
      try {
        list = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (!Array.isArray(list)) return;
      for (const st of list) if (st && st.name) setStatus(st);
    });
    es.addEventListener("event", (ev) => {
      if (page.source !== es) return;
      try {
        addEvents([JSON.parse(ev.data)]);
      } catch (e) {
        /* ignore */
      }
    });
    es.addEventListener("error", () => {
      if (page.source !== es) return;
      setLive("reconnecting");
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (the server answered with an error, such as
        // 401 or 503 while shutting down): retry ourselves.
        page.source = null;
        scheduleReconnect();
      }
      // Otherwise the browser reconnects by itself.
    });
  }

  function scheduleReconnect() {
    if (page.retryTimer || !page.loggedIn) return;
    const delay = page.retryDelay;
    page.retryDelay = Math.min(page.retryDelay * 2, RETRY_MAX_MS);
    page.retryTimer = setTimeout(async () => {
      page.retryTimer = null;
      try {
        const r = await api("GET", "/api/session");
        if (r.status === 401) return; // the login form is back
        if (r.status === 200) {
          applySession(r.body);
          connectStream();
          return;
        }
      } catch (e) {
        /* still down */
      }
      scheduleReconnect();
    }, delay);
  }

  async function start() {
    let r;
    try {
      r = await api("GET", "/api/session");
    } catch (e) {
      setLive("offline");
      setTimeout(start, RETRY_MAX_MS);
      return;
    }
    if (r.status === 401) {
      showLogin("");
      return;
    }
    if (r.status !== 200) {
      setLive("offline");
      setTimeout(start, RETRY_MAX_MS);
      return;
    }
    applySession(r.body);
    showApp();
    // The browser may have restored the filter box after a reload.
    view.filter = $("bots-filter").value;
    view.group = $("bots-group").checked;
    render();
    renderEvents();
    setLive("connecting");
    connectStream();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const dlg = $("confirm-dialog");
    $("confirm-ok").addEventListener("click", () => dlg.close("confirm"));
    $("confirm-cancel").addEventListener("click", () => dlg.close("cancel"));
    $("restart-btn").addEventListener("click", (ev) => command(page.defaultBot, "restart", $("restart-result"), ev.currentTarget));
    $("stop-btn").addEventListener("click", (ev) => command(page.defaultBot, "stop", $("restart-result"), ev.currentTarget));
    $("start-btn").addEventListener("click", (ev) => command(page.defaultBot, "start", $("restart-result"), ev.currentTarget));
    $("bots-table").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-op]");
      if (b) command(b.dataset.bot, b.dataset.op, $("bots-result"), b);
    });
    // Heartbeat ages and uptimes keep growing between messages.
    setInterval(() => {
      if (page.loggedIn) {
        renderCard();
        tickRows();
      }
    }, 1000);
    const filter = $("bots-filter");
    const refilter = () => {
      view.filter = filter.value;
      view.group = $("bots-group").checked;
      view.limit = PAGE_ROWS;
      reorder();
    };
    filter.addEventListener("input", refilter);
    $("bots-group").addEventListener("change", refilter);
    $("bots-more").addEventListener("click", () => {
      view.limit += PAGE_ROWS;
      reorder();
    });
    start();
    watchAlerts();
  });
})();
