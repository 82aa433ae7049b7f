// Restart, stop and start, from the card or a row: the confirm dialog,
// the request (once more with a fresh CSRF token after a 403), the reply
// in the result line, and a fresh read of the bot.
import { $ } from "./dom.js";
import { capitalize } from "./format.js";
import { render, setStatus } from "./frame.js";
import { api, applySession } from "./session.js";
import { isViewer, page } from "./state.js";

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

export async function command(name, op, resultEl, returnFocus) {
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
