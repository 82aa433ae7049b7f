// lifeline dashboard page. It asks /api/session whether the browser is
// logged in, then keeps every bot's status live through the /api/stream
// event source, and re-reads the full state each time the stream
// (re)connects. No framework, no build step, no CDN; the CSP allows no
// inline script or style, so everything here works through the DOM.
//
// This module only starts the page and wires its controls; each part has
// its own module: list.js (all bots), card.js (Emergency Bot Controls),
// commands.js (restart, stop, start), stream.js (live updates), frame.js
// (when the DOM is redrawn), events.js, session.js, alerts.js.
import { watchAlerts } from "./alerts.js";
import { renderCard } from "./card.js";
import { command } from "./commands.js";
import { $ } from "./dom.js";
import { renderEvents } from "./events.js";
import { render, reorder } from "./frame.js";
import { filterBy, showMore, tickRows } from "./list.js";
import { api, applySession, setLive, showApp, showLogin } from "./session.js";
import { page, RETRY_MAX_MS } from "./state.js";
import { connectStream } from "./stream.js";

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
  filterBy($("bots-filter").value, $("bots-group").checked);
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
    filterBy(filter.value, $("bots-group").checked);
    reorder();
  };
  filter.addEventListener("input", refilter);
  $("bots-group").addEventListener("change", refilter);
  $("bots-more").addEventListener("click", () => {
    showMore();
    reorder();
  });
  start();
  watchAlerts();
});
