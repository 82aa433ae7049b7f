// The live stream: /api/stream's status, statuses and event messages, a
// full read at every (re)connection, and reconnecting when the browser
// gives up.
import { addEvents } from "./events.js";
import { forgetBot, render, setStatus } from "./frame.js";
import { api, applySession, closeStream, setLive } from "./session.js";
import { page, RETRY_MAX_MS, RETRY_MIN_MS } from "./state.js";

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
        forgetBot(name);
      }
    }
  }
  if (events.status === 200 && Array.isArray(events.body.events)) {
    addEvents(events.body.events.slice().reverse()); // oldest first, as they arrived
  }
  render();
}

export function connectStream() {
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
  // Bots the dashboard forgot (silent past its expiry): their rows go.
  es.addEventListener("removed", (ev) => {
    if (page.source !== es) return;
    let names;
    try {
      names = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (!Array.isArray(names)) return;
    for (const name of names) if (typeof name === "string") forgetBot(name);
    render();
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
