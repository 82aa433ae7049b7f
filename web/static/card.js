// The Emergency Bot Controls card: the default bot's facts, and its
// buttons disabled while one of its commands is under way.
import { $, setBadge, setText } from "./dom.js";
import { agentKnows, formatAge, formatAgent, formatBytes, formatCPU, formatExit, heartbeatAge, note, stateLabel, uptime } from "./format.js";
import { page } from "./state.js";

export function renderCard() {
  const name = page.defaultBot;
  setText($("bot-name"), name);
  const entry = page.bots.get(name);
  const st = entry ? entry.status : { name: name, state: "unknown", agent: { connected: false } };
  setBadge($("bot-state"), st.state);
  setText($("bot-pid"), st.pid ? String(st.pid) : "–");
  setText($("bot-host"), st.host || "–");
  setText($("bot-uptime"), uptime(st));
  setText($("bot-heartbeat"), entry ? formatAge(heartbeatAge(entry)) : "–");
  setText($("bot-restarts"), st.restarts !== undefined ? String(st.restarts) : "–");
  setText($("bot-last-exit"), formatExit(st.last_exit));
  const agent = $("bot-agent");
  setText(agent, formatAgent(st));
  agent.classList.toggle("warn", !(st.agent && st.agent.connected));
  setText($("bot-resources"), agentKnows(st) ? formatCPU(st) + " · " + formatBytes(st.rss_bytes) : "–");
  // sd_notify STATUS= and whether hangs are detected (issue 12), as sent.
  setText($("bot-status-text"), st.status_text || "–");
  setText($("bot-hang"), st.hang_detection || "–");
  document.title = stateLabel(st.state) + (st.pid ? " (PID " + st.pid + ")" : "") + " · " + name + " · lifeline";
  const problem = $("bot-problem");
  const text = note(st);
  problem.hidden = !text;
  setText(problem, text);
}

export function renderButtons() {
  const name = page.defaultBot;
  const busy = ["restart", "stop", "start"].some((op) => page.busy.has(name + "/" + op));
  for (const id of ["restart-btn", "stop-btn", "start-btn"]) $(id).disabled = busy;
  $("emergency").setAttribute("aria-busy", busy ? "true" : "false");
}
