// What the page knows: the session, every bot's last status, the events,
// the live connection and the commands under way. Shared by every module;
// nothing here touches the DOM.

export const RETRY_MIN_MS = 1000;
export const RETRY_MAX_MS = 5000;

export const page = {
  csrf: "",
  role: "operator", // "viewer" sees no controls; the server refuses its commands anyway
  defaultBot: "bot",
  bots: new Map(), // name -> {status, receivedAt, seq}
  seq: 0, // counts status updates, so an older full read never overwrites a newer update
  events: [], // newest first
  arrivals: 0, // orders events with equal times: the later arrival first
  eventKeys: new Set(),
  source: null,
  retryTimer: null,
  retryDelay: RETRY_MIN_MS,
  loggedIn: false,
  busy: new Set(), // "name/op" under way
};

export function isViewer() {
  return page.role === "viewer";
}

// problemRank orders bots for someone looking for trouble, as `lifeline
// ls` does: hung, backoff, unknown, no agent or a problem, then starting,
// stopping, stopped, and running last. Ranks up to PROBLEM are problems.
const RANK = { hung: 0, backoff: 1, unknown: 2, starting: 4, stopping: 5, stopped: 6, running: 8 };
export const PROBLEM = 3;
export function problemRank(st) {
  // Own keys only: a state such as "constructor" from the bus is unknown.
  const r = Object.hasOwn(RANK, st.state) ? RANK[st.state] : undefined;
  if (r === undefined || r < PROBLEM) return r === undefined ? RANK.unknown : r;
  if (!st.agent || !st.agent.connected || st.problem) return PROBLEM;
  return r;
}
