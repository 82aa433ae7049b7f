package main

// The page's charts (issue 13): CPU, memory and heartbeat age over the last
// hour and the restart timeline, drawn for a real agent and demo bot, live,
// and the same after the dashboard restarts (the samples and the events are
// kept in JetStream). Screenshots at desktop and phone width go to
// $LIFELINE_ARTIFACTS, else testdata/artifacts, like the other browser tests.

import (
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// chartsWait bounds waiting for the charts: the dashboard samples every 10
// s and the page asks for samples every 5 s and for the timeline every 15 s.
const chartsWait = 45 * time.Second

// chartData reads a data attribute of the #charts card.
func (b *browser) chartData(key string) string {
	b.t.Helper()
	return eval[string](b, `document.getElementById("charts").dataset.`+key+` || ""`)
}

func (b *browser) chartInt(key string) int64 {
	b.t.Helper()
	n, _ := strconv.ParseInt(b.chartData(key), 10, 64)
	return n
}

func TestBrowserCharts(t *testing.T) {
	chromium := startChromium(t)
	b := newTab(t, chromium)
	s := e2eNewStack(t)
	st := s.running()
	b.login(s)

	// Present: the default bot's card, three uPlot charts and the timeline.
	b.waitFor("the charts card for the default bot", browserWait, fmt.Sprintf(`!document.getElementById("charts").hidden &&
		document.getElementById("charts").dataset.bot === %q && document.getElementById("charts-bot").textContent === %q`, st.Name, st.Name))
	b.waitFor("the first samples drawn", chartsWait, `Number(document.getElementById("charts").dataset.samples) >= 1 &&
		document.querySelectorAll("#chart-cpu .uplot canvas, #chart-rss .uplot canvas, #chart-hb .uplot canvas").length === 3`)

	// The timeline: a crash (kill -9) and a requested restart.
	if err := e2eKill(st.PID); err != nil {
		t.Fatalf("kill -9 %d: %v", st.PID, err)
	}
	s.waitEvent("crashed", st.PID)
	st = s.running()
	if code, body := s.api(http.MethodPost, "/api/bots/"+st.Name+"/restart"); code != http.StatusOK {
		t.Fatalf("restart: HTTP %d %s", code, body)
	}
	b.waitFor("a crash and a request on the timeline", chartsWait, `Number(document.getElementById("charts").dataset.crashes) >= 1 &&
		Number(document.getElementById("charts").dataset.requests) >= 1 &&
		/^[1-9][0-9]* crash/.test(document.getElementById("chart-timeline-summary").textContent)`)

	// Live: new samples arrive without reloading.
	eval[bool](b, "window.__noReload = true")
	n, last := b.chartInt("samples"), b.chartInt("lastT")
	b.waitFor("a newer sample drawn", chartsWait, fmt.Sprintf(`Number(document.getElementById("charts").dataset.lastT) > %d &&
		Number(document.getElementById("charts").dataset.samples) > %d`, last, n))

	// The newest sample comes from the agent's status: the demo bot's
	// memory (its first may predate the agent's first answer).
	if rss := b.chartInt("lastRss"); rss <= 0 {
		t.Errorf("the memory chart's last sample is %d bytes, want the demo bot's RSS", rss)
	}
	if txt := b.text("chart-rss-now"); txt == "–" || txt == "" || txt == "0 B" {
		t.Errorf("#chart-rss-now shows %q", txt)
	}
	b.screenshot("charts-desktop.png", 1280, 800)
	b.screenshot("charts-phone.png", 390, 844)

	// After a dashboard restart the page shows the same series, from its
	// first sample, and the same timeline, then keeps growing.
	first, n, last := b.chartInt("firstT"), b.chartInt("samples"), b.chartInt("lastT")
	crashes := b.chartInt("crashes")
	s.dash.signal(syscall.SIGTERM)
	if code := s.dash.wait(15 * time.Second); code != 0 {
		t.Fatalf("dashboard exited %d on SIGTERM", code)
	}
	s.startDashboard()
	b.waitShowsAPI(s, "the bot after the dashboard restart")
	b.waitFor("samples from before the restart and after it", chartsWait, fmt.Sprintf(`(() => {
		const d = document.getElementById("charts").dataset;
		return Number(d.firstT) === %d && Number(d.samples) > %d && Number(d.lastT) > %d && Number(d.crashes) >= %d;
	})()`, first, n, last, crashes))
	if !eval[bool](b, "window.__noReload === true") {
		t.Errorf("the page reloaded")
	}
	b.screenshot("charts-after-restart-desktop.png", 1280, 800)
	b.checkProbes()
}
