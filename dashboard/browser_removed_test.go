package dashboard

// The page in headless Chromium against an in-process dashboard: here, not
// with the other browser tests in cmd/lifeline, because a bot is forgotten
// only after the expiry, which a test can shorten (state.setExpiry) only
// from inside this package.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/browsertest"
)

// pageWait bounds each wait for the page; a change reaches it within a
// second or two, the rest is for a loaded CI machine.
const pageWait = 20 * time.Second

// pageProbes runs in every document before the page's own script: it
// counts the page's full reads of /api/bots (one per stream connection, see
// resync in web/static/stream.js) and records script errors. Injected
// through the DevTools protocol, it is not subject to the page's CSP.
const pageProbes = `
window.__probe = { errors: [], botReads: 0 };
window.addEventListener("error", (e) => __probe.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => __probe.errors.push("unhandled rejection: " + e.reason));
(() => {
  const f = window.fetch;
  window.fetch = function (input) {
    if (new URL(String(input), location.href).pathname === "/api/bots") __probe.botReads++;
    return f.apply(this, arguments);
  };
})();
`

// openPage starts a headless Chromium (skipped without one, but failing
// in CI), stopped when the test ends, and returns it with pageProbes
// installed.
func openPage(t *testing.T) context.Context {
	t.Helper()
	ctx := browsertest.Start(t)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pageProbes}); err != nil {
		t.Fatalf("add probes: %v", err)
	}
	return ctx
}

// pageEval evaluates a JavaScript expression in the page.
func pageEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, pageWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// pageWaitFor polls a JavaScript condition in the page until it holds.
func pageWaitFor(t *testing.T, tab context.Context, what, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, pageWait)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(pageWait)))
	if err != nil {
		t.Fatalf("waited %s for %s: %v\nrows: %q, probes: %s", pageWait, what, err,
			pageEval[[]string](t, tab, pageRows), pageEval[string](t, tab, "JSON.stringify(window.__probe)"))
	}
}

// pageRows lists data-bot of the bot list's rows.
const pageRows = `Array.from(document.querySelectorAll("#bots-table tbody tr[data-bot]")).map((r) => r.dataset.bot)`

// heartbeatWhile publishes a heartbeat for name every 200 ms until beating
// returns false or the test ends.
func heartbeatWhile(t *testing.T, td *testDashboard, name string, beating func() bool) {
	t.Helper()
	nc := connect(t, td)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); beating(); seq++ {
			hb := bus.Heartbeat{Name: name, PID: 4242, Seq: seq, Time: time.Now().UTC()}
			if err := nc.Publish(bus.HeartbeatSubject(name), bus.Encode(hb)); err != nil {
				t.Errorf("heartbeat %s: %v", name, err)
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
}

// TestBrowserDropsForgottenBotsRow: when the dashboard forgets a silent bot,
// the page drops its row on the stream's "removed" event, without a reload
// and without a new full read of /api/bots (which would also drop it, and
// so hide a page that ignores the event), while the rows of a bot that
// keeps heartbeating and of the default bot stay.
func TestBrowserDropsForgottenBotsRow(t *testing.T) {
	tab := openPage(t)
	td := startDashboard(t)
	td.state.setExpiry(2 * time.Second)
	var passing atomic.Bool
	passing.Store(true)
	heartbeatWhile(t, td, "passing", passing.Load)
	heartbeatWhile(t, td, "staying", func() bool { return true })

	ctx, cancel := context.WithTimeout(tab, pageWait)
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(td.base+"/login?token="+url.QueryEscape(td.AccessToken())))
	cancel()
	if err != nil {
		t.Fatalf("open the login link: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("login link ended on HTTP %d", resp.Status)
	}
	pageWaitFor(t, tab, "the live page listing both bots and the default one", fmt.Sprintf(`
		document.getElementById("live-indicator").dataset.live === "live" &&
		(() => { const r = %s; return r.includes("passing") && r.includes("staying") && r.includes("bot"); })()`, pageRows))
	// Marks that a reload or a new stream connection would lose or move.
	pageEval[bool](t, tab, "window.__noReload = true")
	reads := pageEval[int](t, tab, "window.__probe.botReads")
	if reads < 1 {
		t.Fatalf("the page read /api/bots %d times before listing the bots: the probe misses its reads", reads)
	}

	passing.Store(false)
	waitFor(t, "the dashboard to forget the silent bot", func() bool { return !td.state.known("passing") })
	pageWaitFor(t, tab, "the forgotten bot's row gone", fmt.Sprintf(`!%s.includes("passing")`, pageRows))

	if rows := pageEval[[]string](t, tab, pageRows); !slices.Contains(rows, "staying") || !slices.Contains(rows, "bot") {
		t.Errorf("after the removal the list shows %q, want the heartbeating bot and the default bot still there", rows)
	}
	if !pageEval[bool](t, tab, "window.__noReload === true") {
		t.Errorf("the page reloaded")
	}
	if got := pageEval[int](t, tab, "window.__probe.botReads"); got != reads {
		t.Errorf("the page read /api/bots again (%d reads, %d before): the row went with a full read, not with the removed event", got, reads)
	}
	if live := pageEval[string](t, tab, `document.getElementById("live-indicator").dataset.live`); live != "live" {
		t.Errorf("the stream is %q, want live throughout", live)
	}
	if errs := pageEval[[]string](t, tab, "window.__probe.errors"); len(errs) > 0 {
		t.Errorf("script errors in the page: %q", errs)
	}
}
