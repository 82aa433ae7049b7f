// Status updates reach the DOM once per animation frame: an update only
// marks what changed, and only a change of a bot's place (new bot, other
// state, other host) sorts the list again.
import { renderButtons, renderCard } from "./card.js";
import { $ } from "./dom.js";
import { stateLabel } from "./format.js";
import { rebuildView, renderList, updateRows } from "./list.js";
import { page, PROBLEM, problemRank } from "./state.js";

// Sorting a big fleet again costs milliseconds: while bots keep changing
// state, the list is re-sorted at most once per 20 times what the last
// sort took (capped at this), so sorting never takes over the page. Rows
// shown still update every frame; what the operator asks for (filter,
// grouping, show more) sorts at once.
const ORDER_MAX_DELAY_MS = 1000;

// pending is what the next flush has to do.
const pending = {
  orderDirty: true,
  urgent: true, // sort at the next frame, whatever the last sort cost
  nextOrder: 0, // performance.now() before which a sort waits
  dirtyRows: new Set(), // names whose row text may have changed
  cardDirty: true,
  frame: 0,
  timer: 0,
};

export function setStatus(st) {
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
    pending.orderDirty = true; // its place in the list, or whether it matches, may change
  }
  pending.dirtyRows.add(st.name);
  if (st.name === page.defaultBot) pending.cardDirty = true;
  schedule();
}

// schedule asks for one flush at the next animation frame. Browsers pause
// animation frames in hidden tabs, so a timer flushes too, less often.
function schedule() {
  if (pending.frame) return;
  pending.frame = requestAnimationFrame(flush);
  if (!pending.timer) pending.timer = setTimeout(flush, 250);
}

// reorder asks for a sort at the next frame: the operator is waiting.
export function reorder() {
  pending.orderDirty = true;
  pending.urgent = true;
  schedule();
}

function flush() {
  if (pending.frame) cancelAnimationFrame(pending.frame);
  if (pending.timer) clearTimeout(pending.timer);
  pending.frame = 0;
  pending.timer = 0;
  if (pending.orderDirty) {
    const now = performance.now();
    if (pending.urgent || now >= pending.nextOrder) {
      pending.orderDirty = false;
      pending.urgent = false;
      pending.dirtyRows.clear(); // renderList writes every row it shows
      rebuildView();
      renderList();
      const took = performance.now() - now;
      pending.nextOrder = performance.now() + Math.min(ORDER_MAX_DELAY_MS, took * 20);
      $("bots-table").dataset.sortMs = took.toFixed(1);
    } else {
      pending.timer = setTimeout(flush, pending.nextOrder - now); // the sort waits its turn
    }
  }
  if (pending.dirtyRows.size > 0) {
    updateRows(pending.dirtyRows);
    pending.dirtyRows.clear();
  }
  if (pending.cardDirty) {
    pending.cardDirty = false;
    renderCard();
  }
}

// forgetBot drops a bot the dashboard no longer knows.
export function forgetBot(name) {
  page.bots.delete(name);
  pending.orderDirty = true;
}

// render redraws everything now: after a full read, and when a command's
// busy state or the login's role changed.
export function render() {
  pending.orderDirty = true;
  pending.urgent = true;
  pending.cardDirty = true;
  flush();
  renderButtons();
}
