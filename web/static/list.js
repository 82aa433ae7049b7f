// The "All bots" list: filter, problems first, grouped by host on demand,
// PAGE_ROWS rows at a time with "Show more", each row with its buttons.
// frame.js decides when it is sorted and drawn.
import { $, setBadge, setText } from "./dom.js";
import { agentKnows, capitalize, formatAge, formatBytes, formatCPU, formatStats, heartbeatAge } from "./format.js";
import { isViewer, page, PROBLEM } from "./state.js";

// The list shows this many bots at first and this many more per "Show
// more": a fleet of 10,000 stays one small table, problems on top, and
// the filter finds the rest.
const PAGE_ROWS = 200;

// view is the bot list as shown: the filtered, sorted items.
const view = {
  filter: "",
  group: false,
  limit: PAGE_ROWS,
  items: [], // entries, and {group} headers when grouped by host
  matched: 0,
  problems: 0,
  shown: 0,
};

// filterBy takes the filter box and the grouping, and starts again from
// the first page.
export function filterBy(text, group) {
  view.filter = text;
  view.group = group;
  view.limit = PAGE_ROWS;
}

// showMore shows PAGE_ROWS more bots.
export function showMore() {
  view.limit += PAGE_ROWS;
}

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

// updateRows writes the rows of the named bots that are shown.
export function updateRows(names) {
  for (const name of names) {
    const row = rows.get(name);
    const entry = page.bots.get(name);
    if (row && entry) updateRow(row, entry);
  }
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
export function rebuildView() {
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
export function renderList() {
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
export function tickRows() {
  for (const [name, row] of rows) {
    const entry = page.bots.get(name);
    if (entry) setText(row.cells[4], formatAge(heartbeatAge(entry)));
  }
}
