// Text for the page: state names, durations, sizes, exits and the note
// under a bot's state. Pure functions of a status (and the clock).

const STATE_LABEL = {
  running: "Running",
  starting: "Starting",
  stopping: "Stopping",
  stopped: "Stopped",
  backoff: "Stopped (backoff)",
  hung: "Hung",
  unknown: "Unknown",
};
const STATE_CLASS = {
  running: "state-running",
  stopped: "state-stopped",
  backoff: "state-stopped",
};

export function stateLabel(state) {
  return (Object.hasOwn(STATE_LABEL, state) && STATE_LABEL[state]) || "Unknown";
}
export function stateClass(state) {
  return (Object.hasOwn(STATE_CLASS, state) && STATE_CLASS[state]) || "state-unknown";
}
export function capitalize(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function formatDuration(ms) {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + (s % 60) + " s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + " h " + (m % 60) + " min";
  return Math.floor(h / 24) + " d " + (h % 24) + " h";
}

export function formatAge(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return "just now";
  return formatDuration(ms) + " ago";
}

export function formatBytes(n) {
  if (!n) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
}

// agentKnows says whether CPU and memory figures are real: only an agent
// measures them.
export function agentKnows(st) {
  return !!(st.pid && st.agent && st.agent.connected);
}

export function formatCPU(st) {
  if (!agentKnows(st) || typeof st.cpu_percent !== "number") return "–";
  return st.cpu_percent.toFixed(1) + " %";
}

export function formatTime(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

export function formatExit(exit) {
  if (!exit) return "–";
  const how = exit.signal ? "signal " + exit.signal : "exit code " + exit.code;
  let s = exit.reason ? exit.reason + " (" + how + ")" : how;
  const at = exit.at ? formatTime(exit.at) : "";
  if (at) s += " at " + at;
  return s;
}

export function formatAgent(st) {
  if (!st.agent || !st.agent.connected) return "not connected";
  let s = "connected";
  if (st.agent.pid) s += ", PID " + st.agent.pid;
  if (st.agent.host && st.agent.host !== st.host) s += " on " + st.agent.host;
  return s;
}

export function formatStats(stats) {
  if (!stats) return "–";
  const keys = Object.keys(stats).sort();
  if (keys.length === 0) return "–";
  return keys.map((k) => k.replace(/_/g, " ") + " " + stats[k]).join(" · ");
}

// heartbeatAge is the age the status reported plus the time since it came.
export function heartbeatAge(entry) {
  const st = entry.status;
  if (st.heartbeat_age_ms === undefined || st.heartbeat_age_ms === null) return null;
  return st.heartbeat_age_ms + (Date.now() - entry.receivedAt);
}

export function uptime(st) {
  if (!st.pid || !st.started_at) return "–";
  if (st.state !== "running" && st.state !== "hung" && st.state !== "starting" && st.state !== "stopping") return "–";
  const since = new Date(st.started_at);
  if (isNaN(since)) return "–";
  return formatDuration(Date.now() - since.getTime());
}

export function note(st) {
  if (st.problem) return st.problem;
  if (st.state === "backoff" && st.next_start_at) {
    const ms = new Date(st.next_start_at).getTime() - Date.now();
    return "The bot keeps crashing; the agent waits before starting it again" +
      (ms > 0 ? " (next start in " + formatDuration(ms + 999) + ")." : ".");
  }
  if (st.state === "hung") return "No heartbeat from the bot: the agent is about to kill and restart it.";
  if ((!st.agent || !st.agent.connected) && st.state !== "running") {
    return "No agent answers for this bot: start one with “lifeline agent --name " + st.name + "” on the bot's host.";
  }
  return "";
}
