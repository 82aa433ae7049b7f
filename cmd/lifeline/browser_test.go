package main

// Browser tests: the dashboard page in headless Chromium, driven with
// chromedp against a real dashboard, agent and demo bot (e2eNewStack). They
// check what an operator sees and does: log in, read the bot's state,
// restart it through the confirm dialog, and watch crashes and a dashboard
// restart arrive without reloading. Screenshots (desktop and phone width)
// go to $LIFELINE_ARTIFACTS, else testdata/artifacts.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/browsertest"
)

// Timeouts of the browser tests. The stack's bot heartbeats every 100 ms,
// so every change reaches the page within a second or two; the generous
// bounds only matter on a loaded CI machine.
const (
	browserWait    = 20 * time.Second
	browserCommand = 30 * time.Second // a restart waits for the bot to stop
)

// probes is run in every document before the page's own script: it records
// script errors and CSP violations, and counts the page's non-GET requests,
// so tests can prove a cancelled dialog sent nothing. Injected through the
// DevTools protocol, it is not subject to the page's CSP.
const probes = `
window.__probe = { errors: [], csp: [], writes: 0 };
window.addEventListener("error", (e) => __probe.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => __probe.errors.push("unhandled rejection: " + e.reason));
document.addEventListener("securitypolicyviolation", (e) => __probe.csp.push(e.violatedDirective + " " + e.blockedURI));
(() => {
  const f = window.fetch;
  window.fetch = function (input, init) {
    if (init && init.method && init.method !== "GET") __probe.writes++;
    return f.apply(this, arguments);
  };
})();
`

// startChromium starts a headless Chromium with a fresh profile, closed
// when the test ends, and returns a context for it. Without Chromium the
// browser tests skip, except in CI, where they fail.
func startChromium(t testing.TB) context.Context { return browsertest.Start(t) }

// browser is one tab, in a browser context of its own (its own cookies),
// closed when the test ends.
type browser struct {
	t   testing.TB
	ctx context.Context
}

func newTab(t testing.TB, chromium context.Context) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(chromium, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	b := &browser{t: t, ctx: ctx}
	b.addProbes(ctx)
	return b
}

func (b *browser) addProbes(ctx context.Context) {
	b.t.Helper()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: probes}); err != nil {
		b.t.Fatalf("add probes: %v", err)
	}
}

// do runs actions with a deadline.
func (b *browser) do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.describe())
	}
}

// navigate loads url and returns the HTTP status of the response.
func (b *browser) navigate(url string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(url))
	if err != nil {
		b.t.Fatalf("navigate: %v", err)
	}
	return resp.Status
}

// clickAndLoad clicks the element with the id and waits for the page it
// leads to, returning the HTTP status of the response.
func (b *browser) clickAndLoad(id string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("click #%s: %v\npage: %s", id, err, b.describe())
	}
	return resp.Status
}

func (b *browser) click(id string) {
	b.t.Helper()
	b.do("click #"+id, browserWait, chromedp.Click(chromedp.ID(id)))
}

// key sends a key press to the focused element.
func (b *browser) key(what, keys string) {
	b.t.Helper()
	b.do("press "+what, browserWait, chromedp.KeyEvent(keys))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) text(id string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf("document.getElementById(%q).textContent.trim()", id))
}

// waitFor polls a JavaScript condition in the page until it holds.
func (b *browser) waitFor(what string, timeout time.Duration, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		b.t.Fatalf("waited %s for %s: %v\npage: %s", timeout, what, err, b.describe())
	}
}

// describe sums up what the page shows, for failure messages.
func (b *browser) describe() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		url: location.href,
		live: document.getElementById("live-indicator") && document.getElementById("live-indicator").dataset.live,
		login: !!document.getElementById("login") && !document.getElementById("login").hidden,
		state: document.getElementById("bot-state") && document.getElementById("bot-state").dataset.state,
		pid: document.getElementById("bot-pid") && document.getElementById("bot-pid").textContent,
		result: document.getElementById("restart-result") && document.getElementById("restart-result").textContent,
		events: Array.from(document.querySelectorAll("#events li")).slice(0, 6).map((li) => li.textContent),
		probe: window.__probe,
		body: document.body ? document.body.innerText.slice(0, 600) : "",
	})`))
	if err != nil {
		return "(cannot read the page: " + err.Error() + ")"
	}
	return v
}

// checkProbes fails the test if the page had script errors or CSP
// violations.
func (b *browser) checkProbes() {
	b.t.Helper()
	var p struct {
		Errors []string `json:"errors"`
		CSP    []string `json:"csp"`
	}
	if err := json.Unmarshal([]byte(eval[string](b, "JSON.stringify(window.__probe)")), &p); err != nil {
		b.t.Fatalf("read probes: %v", err)
	}
	if len(p.Errors) > 0 {
		b.t.Errorf("script errors in the page: %q", p.Errors)
	}
	if len(p.CSP) > 0 {
		b.t.Errorf("CSP violations in the page: %q", p.CSP)
	}
}

// pagePID is the PID the emergency card shows.
func (b *browser) pagePID() int {
	b.t.Helper()
	s := b.text("bot-pid")
	pid, err := strconv.Atoi(s)
	if err != nil {
		b.t.Fatalf("#bot-pid shows %q, not a PID\npage: %s", s, b.describe())
	}
	return pid
}

// waitRunning waits until the card shows the bot running with pid (any PID
// when pid is 0) and the stream is live.
func (b *browser) waitRunning(what string, pid int) {
	b.t.Helper()
	pidCond := `/^\d+$/.test(document.getElementById("bot-pid").textContent)`
	if pid != 0 {
		pidCond = fmt.Sprintf(`document.getElementById("bot-pid").textContent === "%d"`, pid)
	}
	b.waitFor(what, browserWait, `document.getElementById("live-indicator").dataset.live === "live" &&
		document.getElementById("bot-state").dataset.state === "running" &&
		document.getElementById("bot-state").textContent === "Running" && `+pidCond)
}

// waitShowsAPI waits until the page shows the bot running with the PID the
// API reports, asking the API again when the PID moved on meanwhile.
func (b *browser) waitShowsAPI(s *e2eStack, what string) int {
	b.t.Helper()
	deadline := time.Now().Add(browserWait)
	for {
		st := s.running()
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById("live-indicator").dataset.live === "live" &&
			document.getElementById("bot-state").dataset.state === "running" &&
			document.getElementById("bot-pid").textContent === "%d"`, st.PID),
			chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(time.Second)))
		cancel()
		if err == nil {
			return st.PID
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waited %s for the page to show %s as the API does (PID %d)\npage: %s", browserWait, what, st.PID, b.describe())
		}
	}
}

// screenshot saves a full-page PNG at the given viewport width as a test
// artifact and checks that the page fits that width.
func (b *browser) screenshot(name string, width, height int64) {
	b.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if width < 600 {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	b.do("resize to "+strconv.FormatInt(width, 10), browserWait, chromedp.EmulateViewport(width, height, opts...))
	b.waitFor(fmt.Sprintf("layout at %d px", width), browserWait, fmt.Sprintf("window.innerWidth === %d", width))
	if sw := eval[int](b, "document.documentElement.scrollWidth"); sw > int(width) {
		b.t.Errorf("%s: the page is %d px wide in a %d px viewport (horizontal scrolling)", name, sw, width)
	}
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactDir(b.t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
	b.t.Logf("screenshot (%d px wide): %s", width, path)
	b.do("reset viewport", browserWait, chromedp.EmulateReset())
}

// artifactDir is where tests leave files for people to look at:
// $LIFELINE_ARTIFACTS, else testdata/artifacts (ignored by git).
func artifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("LIFELINE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return abs
}

// login opens the login link printed at start and waits for the live page.
func (b *browser) login(s *e2eStack) {
	b.t.Helper()
	if code := b.navigate(s.httpURL + "/login?token=" + url.QueryEscape(s.token)); code != http.StatusOK {
		b.t.Fatalf("login link ended on HTTP %d", code)
	}
	if loc := eval[string](b, "location.pathname + location.search"); loc != "/" {
		b.t.Errorf("after login the address is %q, want / (the token must leave the address bar)", loc)
	}
	b.waitFor("the page instead of the login form", browserWait,
		`!document.getElementById("app").hidden && document.getElementById("login").hidden`)
}

var restartedRE = regexp.MustCompile(`PID (\d+) → (\d+)`)

// TestBrowser drives the page in one Chromium, each subtest in a fresh tab
// with no cookies against a stack of its own.
func TestBrowser(t *testing.T) {
	chromium := startChromium(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *browser)
	}{
		{"LoginRestartAndCancel", testBrowserLoginRestartAndCancel},
		{"ShowsCrash", testBrowserShowsCrash},
		{"StopStartAndNoAgent", testBrowserStopStartAndNoAgent},
		{"ReconnectsAfterDashboardRestart", testBrowserReconnects},
		{"WithoutSession", testBrowserWithoutSession},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newTab(t, chromium)) })
	}
}

func testBrowserLoginRestartAndCancel(t *testing.T, b *browser) {
	s := e2eNewStack(t)
	api := s.running()

	b.login(s)
	b.waitRunning("Running with a PID", 0)
	if pid := b.pagePID(); pid != api.PID {
		// The bot may have been replaced in between; the API has the last word.
		b.waitShowsAPI(s, "the bot's PID")
	}
	if got := b.text("logout-link"); got != "Log out" || eval[bool](b, `document.getElementById("logout-link").hidden`) {
		t.Errorf("no logout link for a cookie session (%q)", got)
	}
	b.checkProbes()
	// Restarting must not reload the page: this mark would be gone.
	eval[bool](b, "window.__noReload = true")

	// Restart, confirmed in the dialog.
	old := b.pagePID()
	b.click("restart-btn")
	b.waitFor("the confirm dialog", browserWait, `document.getElementById("confirm-dialog").open`)
	if title := b.text("confirm-title"); !strings.Contains(title, "Restart") {
		t.Errorf("dialog title %q does not say what it confirms", title)
	}
	b.click("confirm-ok")
	b.waitFor("the success message", browserCommand,
		`document.getElementById("restart-result").classList.contains("ok") && /PID \d+ → \d+/.test(document.getElementById("restart-result").textContent)`)
	msg := b.text("restart-result")
	m := restartedRE.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("message %q lacks old → new PID", msg)
	}
	oldPID, _ := strconv.Atoi(m[1])
	newPID, _ := strconv.Atoi(m[2])
	if oldPID != old || newPID == old || newPID <= 0 {
		t.Fatalf("message %q: want PID %d → a new PID", msg, old)
	}
	b.waitRunning("the new PID on the card", newPID)
	b.waitFor("the restarted event", browserWait,
		fmt.Sprintf(`document.querySelector('#events li[data-type="restarted"][data-pid="%d"]')`, newPID))
	if top := eval[string](b, `document.querySelector("#events li").dataset.type`); top != "restarted" && top != "started" {
		t.Errorf("newest event is %q, want the restart on top", top)
	}
	if st, raw := s.status(); st.PID != newPID {
		t.Errorf("the API says PID %d, the page %d: %s", st.PID, newPID, raw)
	}
	if !eval[bool](b, "window.__noReload === true") {
		t.Errorf("the page reloaded during the restart")
	}

	// Cancel with the mouse, then with the keyboard (Enter opens, Escape
	// cancels): nothing is sent, nothing restarts.
	eventsBefore := len(s.events())
	writesBefore := eval[int](b, "window.__probe.writes")
	b.click("restart-btn")
	b.waitFor("the confirm dialog", browserWait, `document.getElementById("confirm-dialog").open`)
	b.click("confirm-cancel")
	b.waitFor("the dialog closed, cancelled", browserWait,
		`!document.getElementById("confirm-dialog").open && document.getElementById("confirm-dialog").dataset.answer === "cancelled"`)

	b.do("focus Restart", browserWait, chromedp.Focus(chromedp.ID("restart-btn")))
	b.key("Enter", kb.Enter)
	b.waitFor("the confirm dialog, opened from the keyboard", browserWait,
		`document.getElementById("confirm-dialog").open && document.activeElement.id === "confirm-cancel"`)
	b.key("Escape", kb.Escape)
	b.waitFor("the dialog closed by Escape, cancelled", browserWait,
		`!document.getElementById("confirm-dialog").open && document.getElementById("confirm-dialog").dataset.answer === "cancelled"`)

	if w := eval[int](b, "window.__probe.writes"); w != writesBefore {
		t.Errorf("cancelled dialogs sent %d requests", w-writesBefore)
	}
	// Nothing restarted the bot. (Only a bot that stalled for the stack's
	// 1 s hang timeout on a loaded machine may have been replaced, and that
	// shows as events other than restarted.)
	evs := s.events()
	if added := evs[:max(len(evs)-eventsBefore, 0)]; len(added) > 0 {
		for _, ev := range added {
			if ev.Type == bus.EventRestarted {
				t.Errorf("after cancelling, the bot was restarted: %+v", ev)
			}
		}
		t.Logf("events while cancelling, not asked for by the page: %+v", added)
	} else {
		if pid := b.pagePID(); pid != newPID {
			t.Errorf("after cancelling, the page shows PID %d, want %d", pid, newPID)
		}
		if st, raw := s.status(); st.PID != newPID {
			t.Errorf("after cancelling, the API says PID %d, want %d: %s", st.PID, newPID, raw)
		}
	}
	if got := b.text("restart-result"); got != msg {
		t.Errorf("after cancelling, the message changed from %q to %q", msg, got)
	}

	b.screenshot("dashboard-desktop.png", 1280, 900)
	b.screenshot("dashboard-phone.png", 375, 812)
	b.checkProbes()
}

func testBrowserShowsCrash(t *testing.T, b *browser) {
	s := e2eNewStack(t)
	s.running()
	b.login(s)
	pid := b.waitShowsAPI(s, "the running bot")

	if err := e2eKill(pid); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	b.waitFor("the crashed event for the killed PID", browserWait,
		fmt.Sprintf(`document.querySelector('#events li[data-type="crashed"][data-pid="%d"]')`, pid))
	b.waitFor("a respawned PID", browserWait, fmt.Sprintf(`document.getElementById("bot-state").dataset.state === "running" &&
		/^\d+$/.test(document.getElementById("bot-pid").textContent) && document.getElementById("bot-pid").textContent !== "%d"`, pid))
	if newPID := b.waitShowsAPI(s, "the respawned bot"); newPID == pid {
		t.Fatalf("the page still shows the killed PID %d", pid)
	}
	if exit := b.text("bot-last-exit"); !strings.Contains(exit, "killed") && !strings.Contains(exit, "signal") {
		t.Errorf("last exit shows %q, want the kill", exit)
	}
	if r := b.text("bot-restarts"); r == "0" || r == "–" {
		t.Errorf("restarts shows %q after a crash", r)
	}
	b.checkProbes()
}

func testBrowserStopStartAndNoAgent(t *testing.T, b *browser) {
	s := e2eNewStack(t)
	s.running()
	b.login(s)
	pid := b.waitShowsAPI(s, "the running bot")

	// Stop, confirmed: Stopped in red, no PID.
	b.click("stop-btn")
	b.waitFor("the confirm dialog", browserWait, `document.getElementById("confirm-dialog").open`)
	if title := b.text("confirm-title"); !strings.Contains(title, "Stop") {
		t.Errorf("dialog title %q does not say what it confirms", title)
	}
	b.click("confirm-ok")
	b.waitFor("the stopped bot", browserCommand, `document.getElementById("restart-result").classList.contains("ok") &&
		document.getElementById("restart-result").textContent.includes("Stopped") &&
		document.getElementById("bot-state").dataset.state === "stopped" &&
		document.getElementById("bot-state").textContent === "Stopped" &&
		document.getElementById("bot-pid").textContent === "–"`)
	if cls := eval[string](b, `document.getElementById("bot-state").className`); !strings.Contains(cls, "state-stopped") {
		t.Errorf("the Stopped badge has class %q", cls)
	}
	s.waitStatus("the bot stopped", func(st bus.Status) bool { return st.State == bus.StateStopped })
	e2eWaitGone(t, pid)

	// Start, confirmed: running again with a new PID.
	b.click("start-btn")
	b.waitFor("the confirm dialog", browserWait, `document.getElementById("confirm-dialog").open`)
	b.click("confirm-ok")
	b.waitFor("the started message", browserCommand, `document.getElementById("restart-result").classList.contains("ok") &&
		document.getElementById("restart-result").textContent.includes("Started")`)
	if started := b.waitShowsAPI(s, "the started bot"); started == pid {
		t.Errorf("started bot has the old PID %d", pid)
	}

	// Without an agent, Restart shows the API's error.
	s.agent.signal(syscall.SIGKILL)
	s.agent.wait(10 * time.Second)
	b.waitFor("the agent shown as not connected", browserWait, `document.getElementById("bot-agent").textContent === "not connected"`)
	b.click("restart-btn")
	b.waitFor("the confirm dialog", browserWait, `document.getElementById("confirm-dialog").open`)
	b.click("confirm-ok")
	b.waitFor("the error message", browserCommand, `document.getElementById("restart-result").classList.contains("error") &&
		document.getElementById("restart-result").textContent.includes("no agent is supervising")`)
	b.checkProbes()
}

func testBrowserReconnects(t *testing.T, b *browser) {
	s := e2eNewStack(t)
	s.running()
	b.login(s)
	pid := b.waitShowsAPI(s, "the running bot")
	eval[bool](b, "window.__noReload = true")

	s.dash.signal(syscall.SIGTERM)
	if code := s.dash.wait(15 * time.Second); code != 0 {
		t.Fatalf("dashboard exited %d on SIGTERM", code)
	}
	b.waitFor("the reconnecting indicator", browserWait, `document.getElementById("live-indicator").dataset.live === "reconnecting" &&
		document.getElementById("live-indicator").textContent.includes("Reconnecting") && !document.getElementById("stale-note").hidden`)

	// While the dashboard is away, the agent alone replaces a killed bot:
	// the page must learn the new PID when it comes back.
	if err := e2eKill(pid); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	e2eWait(t, browserWait, "the agent to respawn the bot", func() (bool, string) {
		p, err := s.pidFromFile()
		return err == nil && p != pid && e2eAlive(p), fmt.Sprintf("pid file: %d %v", p, err)
	})

	s.startDashboard()
	newPID := b.waitShowsAPI(s, "the current bot after the dashboard restart")
	if newPID == pid {
		t.Errorf("the page shows the PID killed while the dashboard was down (%d)", pid)
	}
	b.waitFor("the stale note gone", browserWait, `document.getElementById("stale-note").hidden`)
	if !eval[bool](b, "window.__noReload === true") {
		t.Errorf("the page reloaded to reconnect")
	}
	b.checkProbes()
}

func testBrowserWithoutSession(t *testing.T, b *browser) {
	s := e2eNewStack(t)
	s.running()

	// A fresh browser has no cookie: the page shows the login form.
	b.navigate(s.httpURL + "/")
	b.waitFor("the login form", browserWait, `!document.getElementById("login").hidden && document.getElementById("app").hidden &&
		document.getElementById("live-indicator").dataset.live === "logged-out"`)
	// ... and the API refuses the browser, for reads and writes alike.
	for _, call := range []string{
		`fetch("/api/bots").then((r) => r.status)`,
		`fetch("/api/stream").then((r) => r.status)`,
		`fetch("/api/bot/restart", {method: "POST"}).then((r) => r.status)`,
	} {
		if code := eval[int](b, call); code != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401", call, code)
		}
	}
	if code, body := s.api("GET", "/api/bots"); code != http.StatusOK {
		t.Errorf("with the token the API answers HTTP %d: %s", code, body)
	}

	// A wrong token pasted in the form: a clear message.
	b.do("type a wrong token", browserWait, chromedp.SendKeys(chromedp.ID("login-token"), "not-the-token"))
	if code := b.clickAndLoad("login-btn"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: HTTP %d, want 401", code)
	}
	b.waitFor("the wrong-token message", browserWait, `document.getElementById("login-message") &&
		document.getElementById("login-message").textContent.includes("Wrong token")`)
	if loc := eval[string](b, "location.search"); strings.Contains(loc, "not-the-token") {
		t.Errorf("the token is in the address bar: %q", loc)
	}
	b.screenshot("login-phone.png", 375, 812)

	// The right one: the page, live.
	b.do("type the token", browserWait, chromedp.SendKeys(chromedp.ID("login-token"), s.token))
	if code := b.clickAndLoad("login-btn"); code != http.StatusOK {
		t.Errorf("login: HTTP %d, want 200 after the redirect", code)
	}
	b.waitRunning("the live page after logging in with the form", 0)
	b.checkSessionCookie(s)
	if c := eval[string](b, "document.cookie"); strings.Contains(c, "lifeline_session") {
		t.Errorf("the session cookie is readable by scripts: %q", c)
	}

	// Log out: the login form again, and the API refuses the browser.
	if code := b.clickAndLoad("logout-link"); code != http.StatusOK {
		t.Errorf("logout: HTTP %d", code)
	}
	b.waitFor("the login form after logging out", browserWait, `!document.getElementById("login").hidden && document.getElementById("app").hidden`)
	if code := eval[int](b, `fetch("/api/bots").then((r) => r.status)`); code != http.StatusUnauthorized {
		t.Errorf("after logout the API answers HTTP %d, want 401", code)
	}
	b.checkProbes()
}

// checkSessionCookie checks the session cookie the browser holds: HttpOnly,
// SameSite=Strict, and not the token itself.
func (b *browser) checkSessionCookie(s *e2eStack) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	r, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.httpURL + "/"}})
	if err != nil {
		b.t.Fatalf("read cookies: %v", err)
	}
	found := false
	for _, c := range r.Cookies {
		if c.Name != "lifeline_session" {
			continue
		}
		found = true
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || strings.Contains(c.Value, s.token) {
			b.t.Errorf("session cookie: HttpOnly %v, SameSite %q, carries the token %v",
				c.HTTPOnly, c.SameSite, strings.Contains(c.Value, s.token))
		}
	}
	if !found {
		b.t.Errorf("no session cookie after logging in")
	}
}
