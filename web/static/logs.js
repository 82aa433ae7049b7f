// lifeline dashboard: the live log tail of one bot (issue 12). Separate from
// app.js on purpose: it only reads /api/session and the logs endpoints, and
// touches only the #logs card. Lines arrive as server-sent "logs" batches
// from /api/bots/NAME/logs/stream (the agent pushes them; nothing polls).
// Logs may hold secrets, so the dashboard serves them to operators only; a
// viewer sees a note instead.
(function () {
  "use strict";

  const MAX_LINES = 2000; // kept on the page; older lines are dropped
  const $ = (id) => document.getElementById(id);

  const ui = {
    card: $("logs"),
    bot: $("logs-bot"),
    follow: $("logs-follow"),
    clear: $("logs-clear"),
    out: $("logs-out"),
    note: $("logs-note"),
  };
  if (!ui.card) return;

  let es = null;
  let current = "";

  function note(text) {
    ui.note.textContent = text;
    ui.note.hidden = text === "";
  }

  function addLines(lines) {
    const atBottom = ui.out.scrollTop + ui.out.clientHeight >= ui.out.scrollHeight - 4;
    const frag = document.createDocumentFragment();
    for (const l of lines) {
      const div = document.createElement("div");
      div.className = "log-line log-" + (l.stream === "stderr" || l.stream === "stdout" ? l.stream : "lifeline");
      const time = document.createElement("time");
      time.className = "log-time";
      time.dateTime = l.time;
      time.textContent = (l.time || "").slice(11, 23);
      const text = document.createElement("span");
      text.className = "log-text";
      text.textContent = l.text + (l.cut ? " …" : "");
      div.append(time, " ", text);
      div.title = l.stream;
      frag.append(div);
    }
    ui.out.append(frag);
    while (ui.out.childElementCount > MAX_LINES) ui.out.firstElementChild.remove();
    if (atBottom) ui.out.scrollTop = ui.out.scrollHeight;
  }

  function stop() {
    if (es) {
      es.close();
      es = null;
    }
  }

  function start() {
    stop();
    const name = ui.bot.value.trim();
    current = name;
    ui.out.replaceChildren();
    if (!name) return;
    const path = "/api/bots/" + encodeURIComponent(name) + "/logs";
    if (!ui.follow.checked) {
      fetch(path + "?n=200", { credentials: "same-origin" })
        .then((r) => r.json().then((b) => ({ ok: r.ok, b })))
        .then(({ ok, b }) => {
          if (name !== current) return;
          if (!ok) return note(b.error || "cannot read the logs");
          note(b.omitted ? b.omitted + " older lines left out" : "");
          addLines(b.lines || []);
        })
        .catch(() => note("cannot reach the dashboard"));
      return;
    }
    note("Connecting…");
    es = new EventSource(path + "/stream?n=200");
    es.addEventListener("logs", (e) => {
      note("");
      try {
        addLines(JSON.parse(e.data).lines || []);
      } catch (_) {
        /* a bad batch is skipped */
      }
    });
    es.addEventListener("logs-error", (e) => {
      let msg = "the agent stopped; waiting for it";
      try {
        msg = JSON.parse(e.data).error || msg;
      } catch (_) {
        /* keep the default */
      }
      note(msg);
    });
    es.onerror = () => {
      if (es && es.readyState === EventSource.CLOSED) {
        // A refusal (403 for a viewer, 404...) closes the stream: ask why.
        fetch(path + "?n=0", { credentials: "same-origin" })
          .then((r) => r.json())
          .then((b) => note(b.error || "the live tail ended"))
          .catch(() => note("the live tail ended"));
      } else {
        note("Reconnecting…");
      }
    };
  }

  async function init() {
    let s;
    try {
      const r = await fetch("/api/session", { credentials: "same-origin" });
      if (!r.ok) return; // not logged in: app.js shows the login form
      s = await r.json();
    } catch (_) {
      return;
    }
    ui.card.hidden = false;
    if (s.role !== "operator") {
      ui.bot.disabled = ui.follow.disabled = ui.clear.disabled = true;
      note("Logs may hold secrets: only operators may read them. Log in with the access token to see them.");
      return;
    }
    ui.bot.value = s.default_bot || "bot";
    ui.bot.addEventListener("change", start);
    ui.follow.addEventListener("change", start);
    ui.clear.addEventListener("click", () => ui.out.replaceChildren());
    // Open a bot's tail from its row: any element with data-logs-bot.
    document.addEventListener("click", (e) => {
      const t = e.target.closest && e.target.closest("[data-logs-bot]");
      if (t) {
        ui.bot.value = t.dataset.logsBot;
        start();
        ui.card.scrollIntoView({ block: "nearest" });
      }
    });
    start();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
