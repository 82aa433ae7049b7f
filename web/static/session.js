// Logged in or not: the login form, the live indicator, the session's role
// and CSRF token, and the API calls that bring the login form back on 401.
import { $ } from "./dom.js";
import { isViewer, page } from "./state.js";

const LIVE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  "logged-out": "Logged out",
};

export function setLive(kind) {
  const el = $("live-indicator");
  if (el.dataset.live === kind) return;
  el.dataset.live = kind;
  el.className = "live live-" + kind;
  el.textContent = LIVE_TEXT[kind];
  $("stale-note").hidden = !(page.loggedIn && (kind === "reconnecting" || kind === "offline"));
  document.body.classList.toggle("stale", kind === "reconnecting" || kind === "offline");
}

export function closeStream() {
  if (page.source) {
    page.source.close();
    page.source = null;
  }
  if (page.retryTimer) {
    clearTimeout(page.retryTimer);
    page.retryTimer = null;
  }
}

export function showLogin(message) {
  page.loggedIn = false;
  closeStream();
  const dlg = $("confirm-dialog");
  if (dlg.open) dlg.close("cancel");
  $("app").hidden = true;
  $("logout-link").hidden = true;
  $("login").hidden = false;
  const msg = $("login-message");
  msg.hidden = !message;
  msg.textContent = message || "";
  setLive("logged-out");
  $("login-token").focus();
}

export function showApp() {
  page.loggedIn = true;
  $("login").hidden = true;
  $("app").hidden = false;
}

// api calls the dashboard API. A 401 means the session is gone: the login
// form comes back. Network failures throw.
export async function api(method, path) {
  const opts = { method: method, credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = page.csrf;
  const res = await fetch(path, opts);
  let body;
  try {
    body = await res.json();
  } catch (e) {
    body = { ok: false, error: "unexpected answer from the dashboard (HTTP " + res.status + ")" };
  }
  if (res.status === 401 && page.loggedIn) {
    showLogin("Your session has ended. Log in again.");
  }
  return { status: res.status, body: body || {} };
}

export function applySession(body) {
  page.csrf = body.csrf_token || "";
  page.defaultBot = body.default_bot || "bot";
  page.role = body.role === "viewer" ? "viewer" : "operator";
  // Logging out is a POST with the session's logout token, so no other
  // site can log this browser out.
  $("logout-csrf").value = body.logout_token || "";
  $("logout-link").hidden = body.auth !== "cookie";
  applyRole();
  if (body.version) $("live-indicator").title = "dashboard " + body.version + (body.host ? " on " + body.host : "");
}

// applyRole hides the emergency card's controls from a viewer and says
// why; the table rows drop their buttons in renderRowActions.
function applyRole() {
  const viewer = isViewer();
  document.body.classList.toggle("viewer", viewer);
  $("view-only").hidden = !viewer;
  $("view-only-note").hidden = !viewer;
  $("bot-actions").hidden = viewer;
  if (viewer) {
    const dlg = $("confirm-dialog");
    if (dlg.open) dlg.close("cancel");
  }
}
