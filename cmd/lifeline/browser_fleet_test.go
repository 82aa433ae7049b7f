package main

// The page at fleet size: a real dashboard, agent and demo bot, plus 1,000
// simulated bots on the same bus. The simulator logs in with the bus
// directory's agent login (data/bus/agent.nk, which may supervise any bot),
// publishes a heartbeat for each running simulated bot once a second, spread
// over the second as a fleet of separate agents would, and answers
// lifeline.agent.<name>.status and micro discovery ($SRV.INFO.lifeline-agent)
// for them as their agents would. A heartbeat makes the dashboard list a bot
// and ask its agent once; discovery is what makes it ask again for a bot
// whose first answer was lost, and what finds the hung ones, which send no
// heartbeat. One subscription per bot answers discovery, as one micro
// service per bot would: the bus lets a login answer a request it received
// once per delivery.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

const (
	fleetSize  = 1000 // the tests' fleet; a simulator takes any size up to 10,000
	fleetHosts = 10   // sim-host-0 holds the first tenth (bot-0000..bot-0099 of 1,000), and so on
)

// fleetSim is the simulated part of the fleet.
type fleetSim struct {
	heartbeats atomic.Int64 // published so far
	answers    atomic.Int64 // status requests answered

	mu     sync.Mutex
	size   int
	lastHB []time.Time // time of each bot's last heartbeat
}

func (sim *fleetSim) host(i int) string { return fmt.Sprintf("sim-host-%d", i/(sim.size/fleetHosts)) }

func fleetName(i int) string { return fmt.Sprintf("bot-%04d", i) }

// fleetState is the state of simulated bot i: bot-xx07 is hung (one per
// host), bot-0500 is in backoff, the rest run.
func fleetState(i int) bus.State {
	switch {
	case i%100 == 7:
		return bus.StateHung
	case i == 500:
		return bus.StateBackoff
	}
	return bus.StateRunning
}

// fleetStatus is what the agent of simulated bot i answers. Like a real
// agent it reports the time of the bot's last heartbeat, so an answer that
// brings nothing new changes nothing on the dashboard.
func (sim *fleetSim) fleetStatus(i int, started time.Time) bus.Status {
	now := time.Now()
	host := sim.host(i)
	st := bus.Status{
		Name: fleetName(i), State: fleetState(i), Host: host, Restarts: i % 3,
		Agent: bus.AgentInfo{PID: 200000 + i, Host: host, Connected: true},
	}
	switch st.State {
	case bus.StateRunning:
		sim.mu.Lock()
		last := sim.lastHB[i]
		sim.mu.Unlock()
		st.PID, st.StartedAt = 100000+i, &started
		if !last.IsZero() {
			age := now.Sub(last).Milliseconds()
			st.LastHeartbeatAt, st.HeartbeatAgeMS = &last, &age
		}
	case bus.StateHung:
		age := now.Sub(started).Milliseconds()
		st.PID, st.StartedAt, st.LastHeartbeatAt, st.HeartbeatAgeMS = 100000+i, &started, &started, &age
	case bus.StateBackoff:
		next := started.Add(time.Hour)
		st.NextStartAt = &next
		st.LastExit = &bus.Exit{At: started, Code: 1, Reason: "crashed"}
	}
	return st
}

// startFleetSim starts the simulator on the stack's bus; it stops when the
// test ends.
func startFleetSim(t testing.TB, s *e2eStack, size int, period time.Duration) *fleetSim {
	t.Helper()
	nc := s.connectAs(bus.LoginAgent)
	sim := &fleetSim{size: size, lastHB: make([]time.Time, size)}
	started := time.Now()
	index := make(map[string]int, size)
	for i := range size {
		index[fleetName(i)] = i
	}
	// One subscription answers for every simulated bot; requests for the
	// real bot are left to its real agent.
	_, err := nc.Subscribe(bus.AgentSubject("*", bus.OpStatus), func(m *nats.Msg) {
		i, ok := index[bus.NameFromSubject(m.Subject)]
		if !ok || m.Reply == "" {
			return
		}
		if m.Respond(bus.Encode(sim.fleetStatus(i, started))) == nil {
			sim.answers.Add(1)
		}
	})
	if err != nil {
		t.Fatalf("simulator: subscribe to status requests: %v", err)
	}
	infoSubject, err := micro.ControlSubject(micro.InfoVerb, bus.AgentService, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range size {
		// Above 1,000 bots only the silent ones answer discovery: the bus
		// tracks a bounded number of replies a login owes, and refuses
		// the rest (10,000 answers to one request from one connection
		// drown it in refusals).
		if size > 1000 && fleetState(i) == bus.StateRunning {
			continue
		}
		st := sim.fleetStatus(i, started)
		info := bus.Encode(micro.Info{
			ServiceIdentity: micro.ServiceIdentity{Name: bus.AgentService, ID: fmt.Sprintf("sim%04d", i), Version: "0.0.0-sim",
				Metadata: map[string]string{"name": st.Name, "host": st.Host, "pid": fmt.Sprint(st.Agent.PID)}},
			Type:        micro.InfoResponseType,
			Description: "simulated agent of " + st.Name,
		})
		if _, err := nc.Subscribe(infoSubject, func(m *nats.Msg) { m.Respond(info) }); err != nil {
			t.Fatalf("simulator: subscribe to discovery: %v", err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("simulator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		// One heartbeat per running bot every period, spread over it (a
		// hundredth of the fleet at a time), as separate agents would send
		// them, not all at once.
		tick := time.NewTicker(period / 100)
		defer tick.Stop()
		var seq uint64
		for next := 0; ; {
			for range size / 100 {
				i := next
				next = (next + 1) % size
				if fleetState(i) != bus.StateRunning {
					continue
				}
				seq++
				sim.mu.Lock()
				sim.lastHB[i] = time.Now()
				hb := bus.Heartbeat{Name: fleetName(i), PID: 100000 + i, Host: sim.host(i),
					Seq: seq, Time: sim.lastHB[i], StartedAt: started}
				sim.mu.Unlock()
				if nc.Publish(bus.HeartbeatSubject(hb.Name), bus.Encode(hb)) == nil {
					sim.heartbeats.Add(1)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return sim
}

// setFilter puts text in the filter box as typing would (an input event).
func (b *browser) setFilter(text string) {
	b.t.Helper()
	eval[bool](b, fmt.Sprintf(`(() => { const f = document.getElementById("bots-filter");
		f.value = %q; f.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, text))
}

// rowsOf lists data-bot of the list's bot rows, in order.
const rowsOf = `Array.from(document.querySelectorAll("#bots-table tbody tr[data-bot]")).map((r) => r.dataset.bot)`

// TestBrowserFleet: with 1,001 bots the page lists problems first, renders
// a capped list and keeps its rows across heartbeats, filters, groups by
// host, and restarts the real bot from the list through the confirm dialog.
func TestBrowserFleet(t *testing.T) {
	chromium := startChromium(t)
	// The simulator and Chromium load the machine: the real bot gets the
	// default hang timeout, not the stack's quick 1 s.
	s := e2eNewStack(t, "--heartbeat-timeout", "5s")
	s.running()
	// Heartbeats every 5 s: 200 a second still reach the page as status
	// updates, and the test stays steady on a loaded machine (the stream
	// drops a client that falls 64 messages behind). TestBrowserFleetBig
	// measures 1 s.
	sim := startFleetSim(t, s, fleetSize, 5*time.Second)
	b := newTab(t, chromium)
	b.login(s)

	// Every bot is known; problems first: ten hung, then the one in
	// backoff, then the running ones by name, the real bot among them.
	b.waitFor("1,001 bots listed, problems first", time.Minute, fmt.Sprintf(`document.getElementById("bots-table").dataset.matched === "%d" &&
		(() => { const r = %s; return r.length > 12 && r[0] === "bot-0007" && r[9] === "bot-0907" && r[10] === "bot-0500" &&
			r[11] === "bot" && r[12] === "bot-0000"; })()`, fleetSize+1, rowsOf))
	states := eval[[]string](b, `Array.from(document.querySelectorAll("#bots-table tbody tr[data-bot]")).slice(0, 12).map((r) => r.dataset.state)`)
	for i, want := range []string{"hung", "hung", "hung", "hung", "hung", "hung", "hung", "hung", "hung", "hung", "backoff", "running"} {
		if states[i] != want {
			t.Errorf("row %d is %q, want %q (rows: %q)", i, states[i], want, states)
		}
	}
	if n := eval[int](b, `document.querySelectorAll("#bots-table tbody tr").length`); n > 200 {
		t.Errorf("%d rows in the table: the list must render a capped window, not the whole fleet", n)
	}
	if !eval[bool](b, `!document.getElementById("bots-more").hidden && document.getElementById("bots-summary").textContent.includes("1,001 bots") &&
		document.getElementById("bots-summary").textContent.includes("11 problems")`) {
		t.Errorf("summary %q / more button hidden %v", b.text("bots-summary"), eval[bool](b, `document.getElementById("bots-more").hidden`))
	}
	// The emergency card stays above the list, for the default bot.
	if !eval[bool](b, `document.getElementById("emergency").getBoundingClientRect().top < document.getElementById("bots-table").getBoundingClientRect().top &&
		document.getElementById("bot-name").textContent === "bot"`) {
		t.Errorf("the emergency card is not on top for the default bot")
	}
	b.waitRunning("the card shows the real bot running", 0)

	// Heartbeats update rows in place: mark every row shown, let 1,000
	// heartbeats arrive, and count rows added, removed or moved meanwhile.
	eval[bool](b, `(() => {
		window.__fleet = { moved: 0, added: [] };
		for (const r of document.querySelectorAll("#bots-table tbody tr")) r.__mark = true;
		new MutationObserver((ms) => { for (const m of ms) {
			window.__fleet.moved += m.addedNodes.length + m.removedNodes.length;
			for (const n of m.addedNodes) if (__fleet.added.length < 8) __fleet.added.push(n.dataset.bot + " " + n.dataset.state + " " + n.textContent.slice(0, 60));
		} })
			.observe(document.querySelector("#bots-table tbody"), { childList: true });
		return true; })()`)
	from := sim.heartbeats.Load()
	e2eWait(t, time.Minute, "1,000 more heartbeats published", func() (bool, string) {
		n := sim.heartbeats.Load() - from
		return n >= 1000, fmt.Sprint(n)
	})
	b.waitFor("the stream live", browserWait, `document.getElementById("live-indicator").dataset.live === "live"`)
	moved := eval[int](b, "window.__fleet.moved")
	kept := eval[int](b, `Array.from(document.querySelectorAll("#bots-table tbody tr")).filter((r) => r.__mark).length`)
	shown := eval[int](b, `document.querySelectorAll("#bots-table tbody tr").length`)
	t.Logf("during 1,000 heartbeats: %d row insertions/removals, %d of %d rows kept their element; rows inserted: %s",
		moved, kept, shown, eval[string](b, "JSON.stringify(window.__fleet.added)"))
	// A bot whose status request timed out on a loaded machine moves up
	// (no agent) and back, so rows may move; a re-render per heartbeat
	// would replace all 200 rows for every frame with a heartbeat in it,
	// tens of thousands of insertions in these seconds.
	if moved > 2000 {
		t.Errorf("the list was re-rendered by heartbeats: %d rows inserted or removed during 1,000 heartbeats (%d of %d rows kept)", moved, kept, shown)
	}

	// Filter: typed, it narrows the list at once.
	b.do("type in the filter", browserWait, chromedp.SendKeys(chromedp.ID("bots-filter"), "bot-00"))
	b.waitFor("100 bots matching bot-00", browserWait, fmt.Sprintf(`document.getElementById("bots-table").dataset.matched === "100" &&
		(() => { const r = %s; return r.length === 100 && r.every((n) => n.startsWith("bot-00")) && r[0] === "bot-0007"; })()`, rowsOf))
	b.setFilter("state:hung")
	b.waitFor("the ten hung bots", browserWait, fmt.Sprintf(`(() => { const r = %s; return r.length === 10 && r.every((n) => /^bot-\d\d07$/.test(n)); })()`, rowsOf))
	b.setFilter("no-such-bot")
	b.waitFor("the no-match note", browserWait, `document.querySelectorAll("#bots-table tbody tr").length === 0 &&
		!document.getElementById("bots-empty").hidden && document.getElementById("bots-empty").textContent.includes("matches")`)

	// Group by host: a header per host, the hosts with problems first,
	// each starting with its hung bot.
	b.setFilter("")
	b.click("bots-group")
	b.waitFor("groups by host", browserWait, `(() => {
		const rows = Array.from(document.querySelectorAll("#bots-table tbody tr"));
		return rows.length > 3 && rows[0].dataset.group === "sim-host-0" && rows[1].dataset.bot === "bot-0007" &&
			rows[0].textContent.includes("100 bots") && rows[0].textContent.includes("1 problem"); })()`)
	host, _ := os.Hostname()
	b.setFilter("host:" + host)
	b.waitFor("the real bot's host alone", browserWait, fmt.Sprintf(`(() => {
		const rows = Array.from(document.querySelectorAll("#bots-table tbody tr"));
		return rows.length === 2 && rows[0].dataset.group === %q && rows[1].dataset.bot === "bot"; })()`, host))

	// Restart the real bot from its row: confirm, then a new PID.
	api := s.running()
	old := api.PID
	b.waitFor("the row shows the bot's PID", browserWait, fmt.Sprintf(`document.querySelector('#bots-table tr[data-bot="bot"] td:nth-child(3)').textContent === "%d"`, old))
	b.do("click Restart in the row", browserWait, chromedp.Click(chromedp.CSS(`#bots-table tr[data-bot="bot"] button[data-op="restart"]`)))
	b.waitFor("the confirm dialog", browserWait, `document.getElementById("confirm-dialog").open && document.getElementById("confirm-dialog").dataset.bot === "bot"`)
	b.click("confirm-ok")
	b.waitFor("the restart message", browserCommand, `document.getElementById("bots-result").classList.contains("ok") &&
		/PID \d+ → \d+/.test(document.getElementById("bots-result").textContent)`)
	m := restartedRE.FindStringSubmatch(b.text("bots-result"))
	if m == nil || m[1] != fmt.Sprint(old) || m[2] == m[1] {
		t.Fatalf("restart message %q: want PID %d → a new PID", b.text("bots-result"), old)
	}
	st := s.waitStatus("the bot running with a new PID", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID != old && st.PID > 0
	})
	b.waitFor("the row shows the new PID", browserWait, fmt.Sprintf(`document.querySelector('#bots-table tr[data-bot="bot"] td:nth-child(3)').textContent === "%d"`, st.PID))
	if !strings.Contains(b.text("bots-result"), fmt.Sprintf("→ %s", m[2])) {
		t.Errorf("result %q", b.text("bots-result"))
	}
	t.Logf("simulator: %d heartbeats, %d status answers", sim.heartbeats.Load(), sim.answers.Load())
	b.screenshot("dashboard-fleet.png", 1280, 900)
	b.checkProbes()

	// The agent stops its bot on the way out, so no respawned bot outlives
	// the test (a bot killed by the harness before its agent would be).
	s.agent.signal(syscall.SIGTERM)
	s.agent.wait(browserCommand)
}

// BenchmarkBrowserFleet measures the page with a simulated fleet of
// LIFELINE_FLEET_BOTS bots (a multiple of 100 up to 10,000; 1,000 unless
// set), heartbeats every LIFELINE_FLEET_PERIOD per bot (default 1s):
//
//	LIFELINE_FLEET_BOTS=10000 go test -run '^$' -bench BrowserFleet ./cmd/lifeline/
//
// It reports how long the list takes to fill, the slowest filter (to the
// next frame), and the main thread's long tasks and the stream's
// reconnections during ten rounds of heartbeats; it fails only when the
// page breaks. `make bench-smoke` (CI) runs it once, so it cannot rot.
func BenchmarkBrowserFleet(b *testing.B) {
	size := 1000
	if v := os.Getenv("LIFELINE_FLEET_BOTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 10000 || n%100 != 0 {
			b.Fatalf("LIFELINE_FLEET_BOTS=%q: want a multiple of 100 up to 10000", v)
		}
		size = n
	}
	period := time.Second
	if v := os.Getenv("LIFELINE_FLEET_PERIOD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond {
			b.Fatalf("LIFELINE_FLEET_PERIOD=%q: want a duration of 100ms or more", v)
		}
		period = d
	}
	chromium := startChromium(b)
	s := e2eNewStack(b, "--heartbeat-timeout", "5s")
	s.running()
	start := time.Now()
	sim := startFleetSim(b, s, size, period)
	tab := newTab(b, chromium)
	tab.login(s)
	eval[bool](tab, `(() => {
		window.__big = { long: 0, longMS: 0, reconnects: 0 };
		new PerformanceObserver((l) => { for (const e of l.getEntries()) { __big.long++; __big.longMS += e.duration; } }).observe({ type: "longtask" });
		new MutationObserver(() => { if (document.getElementById("live-indicator").dataset.live === "reconnecting") __big.reconnects++; })
			.observe(document.getElementById("live-indicator"), { attributes: true, attributeFilter: ["data-live"] });
		return true; })()`)
	tab.waitFor("every bot listed", 3*time.Minute, fmt.Sprintf(`document.getElementById("bots-table").dataset.matched === "%d"`, size+1))
	filled := time.Since(start)
	eval[bool](tab, `(() => { __big.long = 0; __big.longMS = 0; return true; })()`)
	from := sim.heartbeats.Load()
	e2eWait(b, 2*time.Minute, "ten rounds of heartbeats", func() (bool, string) {
		n := sim.heartbeats.Load() - from
		return n >= int64(size)*9, fmt.Sprint(n)
	})
	var big struct {
		Long       int     `json:"long"`
		LongMS     float64 `json:"longMS"`
		Reconnects int     `json:"reconnects"`
	}
	if err := json.Unmarshal([]byte(eval[string](tab, "JSON.stringify(window.__big)")), &big); err != nil {
		b.Fatalf("read the page's counters: %v", err)
	}
	var slowest float64
	for _, f := range []string{"bot-12", "state:hung", "is:problem", ""} {
		ms := eval[float64](tab, fmt.Sprintf(`new Promise((resolve) => { const f = document.getElementById("bots-filter"); const t0 = performance.now();
			f.value = %q; f.dispatchEvent(new Event("input")); requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0))); })`, f))
		b.Logf("filter %q: %.1f ms to the next frame (the sort itself %s ms), %s of %d shown", f, ms,
			eval[string](tab, `document.getElementById("bots-table").dataset.sortMs`), eval[string](tab, `document.getElementById("bots-table").dataset.shown`), size+1)
		slowest = max(slowest, ms)
	}
	tab.click("bots-group")
	tab.waitFor("groups", browserWait, `document.querySelector("#bots-table tr.group-row")`)
	tab.checkProbes()
	b.ReportMetric(float64(size), "bots")
	b.ReportMetric(float64(filled.Milliseconds()), "fill-ms")
	b.ReportMetric(slowest, "slowest-filter-ms")
	b.ReportMetric(float64(big.Long), "long-tasks")
	b.ReportMetric(big.LongMS, "long-task-ms")
	b.ReportMetric(float64(big.Reconnects), "reconnects")
	s.agent.signal(syscall.SIGTERM)
	s.agent.wait(browserCommand)
}
