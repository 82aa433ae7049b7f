// The recent events list: newest first, at most MAX_EVENTS, each once.
import { $ } from "./dom.js";
import { formatTime } from "./format.js";
import { page } from "./state.js";

const MAX_EVENTS = 100;

function eventKey(e) {
  return [e.time, e.name, e.type, e.pid || 0, e.reason || ""].join("|");
}

export function addEvents(list) {
  let changed = false;
  for (const e of list) {
    if (!e || !e.type) continue;
    const k = eventKey(e);
    if (page.eventKeys.has(k)) continue;
    page.eventKeys.add(k);
    page.events.push({ e: e, n: ++page.arrivals, at: new Date(e.time).getTime() || 0 });
    changed = true;
  }
  if (!changed) return;
  page.events.sort((a, b) => b.at - a.at || b.n - a.n);
  for (const x of page.events.splice(MAX_EVENTS)) page.eventKeys.delete(eventKey(x.e));
  renderEvents();
}

const eventItems = new Map(); // key -> li

function eventItem(e) {
  const li = document.createElement("li");
  li.className = "event event-" + e.type;
  li.dataset.type = e.type;
  li.dataset.bot = e.name;
  if (e.pid) li.dataset.pid = String(e.pid);
  const time = document.createElement("time");
  time.dateTime = e.time;
  time.textContent = formatTime(e.time);
  const name = document.createElement("span");
  name.className = "event-bot";
  name.textContent = e.name;
  const type = document.createElement("span");
  type.className = "event-type";
  type.textContent = e.type;
  const parts = [];
  if (e.pid) parts.push("PID " + e.pid);
  if (e.reason) parts.push(e.reason);
  if (e.requested_by) parts.push("asked by " + e.requested_by);
  const detail = document.createElement("span");
  detail.className = "event-detail";
  detail.textContent = parts.join(" · ");
  li.append(time, " ", name, " ", type, " ", detail);
  return li;
}

// renderEvents inserts new items in place and keeps the old ones, so the
// aria-live list announces only what is new.
export function renderEvents() {
  const list = $("events");
  const keep = new Set();
  page.events.forEach(({ e }, i) => {
    const k = eventKey(e);
    keep.add(k);
    let li = eventItems.get(k);
    if (!li) {
      li = eventItem(e);
      eventItems.set(k, li);
    }
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  for (const [k, li] of eventItems) {
    if (!keep.has(k)) {
      li.remove();
      eventItems.delete(k);
    }
  }
  $("events-empty").hidden = page.events.length > 0;
}
