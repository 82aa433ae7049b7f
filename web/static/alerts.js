// The alerts notice (alerts.go): every 15 s, once logged in, it asks
// /api/alerts and shows a notice above the page while the last delivery of
// an alert failed. The dashboard keeps retrying on its own; the notice only
// says so. It shares nothing with the rest of the page.

async function checkAlerts() {
  const app = document.getElementById("app");
  if (!app || app.hidden) return;
  let info;
  try {
    const res = await fetch("/api/alerts", { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
    if (res.status !== 200) return;
    info = await res.json();
  } catch (e) {
    return;
  }
  let note = document.getElementById("alerts-note");
  if (!note) {
    note = document.createElement("p");
    note.id = "alerts-note";
    note.className = "stale-note";
    note.setAttribute("role", "status");
    note.hidden = true;
    app.insertBefore(note, app.firstChild);
  }
  const last = info && info.failing && Array.isArray(info.failures) ? info.failures[0] : null;
  note.hidden = !last;
  if (last) {
    note.textContent = "Alerts are not getting through: sending the " + last.kind + " for " + last.bot + " to " +
      last.target + " failed " + last.attempts + " time(s) (" + last.error + "). The dashboard keeps retrying.";
  }
}

// watchAlerts starts the checks.
export function watchAlerts() {
  setInterval(checkAlerts, 15000);
  setTimeout(checkAlerts, 2000);
}
