package dashboard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics with hdr and returns the response.
func scrape(t *testing.T, td *testDashboard, hdr map[string]string) response {
	t.Helper()
	return call(t, http.MethodGet, td.base+"/metrics", hdr, nil)
}

// metricValue finds series (name{labels} as printed, labels in name order)
// in a text exposition.
func metricValue(body []byte, series string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		return v, err == nil
	}
	return 0, false
}

// waitMetrics scrapes with the access token until every series has its
// wanted value (math: ==), or fails after 10 s showing what it last saw.
func waitMetrics(t *testing.T, td *testDashboard, want map[string]float64) []byte {
	t.Helper()
	var body []byte
	var miss string
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := scrape(t, td, bearer(td.AccessToken()))
		body, miss = r.body, ""
		if r.code != http.StatusOK {
			miss = fmt.Sprintf("HTTP %d", r.code)
		}
		for series, v := range want {
			if got, ok := metricValue(body, series); !ok || got != v {
				miss += fmt.Sprintf(" %s=%v(found %v), want %v;", series, got, ok, v)
			}
		}
		if miss == "" {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never matched:%s\n%s", miss, grepLifeline(body))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// grepLifeline keeps the lifeline_ lines of an exposition, for messages.
func grepLifeline(body []byte) string {
	var out []string
	for l := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(l, "lifeline_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// scriptedAgent answers status requests for one bot on the real bus with
// whatever status the test sets, so that a test can walk the bot through
// its states.
type scriptedAgent struct {
	mu sync.Mutex
	st bus.Status
}

func startScriptedAgent(t *testing.T, nc *nats.Conn, st bus.Status) *scriptedAgent {
	t.Helper()
	a := &scriptedAgent{st: st}
	svc, err := micro.AddService(nc, micro.Config{Name: bus.AgentService, Version: "0.0.1", Metadata: map[string]string{"name": st.Name}})
	if err != nil {
		t.Fatalf("add agent service: %v", err)
	}
	t.Cleanup(func() { svc.Stop() })
	err = svc.AddEndpoint(bus.OpStatus, micro.HandlerFunc(func(r micro.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		r.Respond(bus.Encode(a.st))
	}), micro.WithEndpointSubject(bus.AgentSubject(st.Name, bus.OpStatus)))
	if err != nil {
		t.Fatalf("add status endpoint: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return a
}

func (a *scriptedAgent) set(change func(*bus.Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	change(&a.st)
}

// metricsEvent publishes a lifecycle event of bot as its agent would.
func metricsEvent(t *testing.T, nc *nats.Conn, name string, typ bus.EventType, pid int) {
	t.Helper()
	e := bus.Event{Time: time.Now(), Name: name, Type: typ, PID: pid}
	if err := nc.Publish(bus.EventsSubject(name), bus.Encode(e)); err != nil {
		t.Fatalf("publish event: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// /metrics answers the access token and the viewer token, as Bearer or as a
// login session, and nothing else: without them it is 401 like /api/, and
// shows no bot.
func TestMetricsAuth(t *testing.T) {
	td := startDashboard(t)
	startFakeAgent(t, connect(t, td), "bot")
	refused := map[string]map[string]string{
		"no token":           nil,
		"wrong token":        bearer(strings.Repeat("x", 43)),
		"empty bearer":       {"Authorization": "Bearer "},
		"basic scheme":       {"Authorization": "Basic " + td.AccessToken()},
		"token as cookie":    {"Cookie": SessionCookie + "=" + td.AccessToken()},
		"forged cookie":      {"Cookie": SessionCookie + "=v1.x.0.sig"},
		"viewer with suffix": bearer(td.ViewerAccessToken() + "x"),
	}
	for what, hdr := range refused {
		r := scrape(t, td, hdr)
		if r.code != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401", what, r.code)
		}
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", what)
		}
		if bytes.Contains(r.body, []byte("lifeline_")) || bytes.Contains(r.body, []byte("go_")) {
			t.Errorf("%s: metrics leaked: %s", what, r.body)
		}
	}

	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	login := call(t, http.MethodPost, td.base+"/login", form, strings.NewReader("token="+url.QueryEscape(td.ViewerAccessToken())))
	allowed := map[string]map[string]string{
		"access token":   bearer(td.AccessToken()),
		"viewer token":   bearer(td.ViewerAccessToken()),
		"viewer session": {"Cookie": SessionCookie + "=" + sessionCookie(t, login)},
	}
	for what, hdr := range allowed {
		r := scrape(t, td, hdr)
		if r.code != http.StatusOK {
			t.Fatalf("%s: HTTP %d %s", what, r.code, r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: Content-Type %q", what, ct)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", what, r.header.Get("Cache-Control"))
		}
		for _, want := range []string{"lifeline_bots ", "go_goroutines ", "process_resident_memory_bytes ", `lifeline_bot_up{bot="bot"`} {
			if !bytes.Contains(r.body, []byte(want)) {
				t.Errorf("%s: no %q in\n%s", what, want, r.body)
			}
		}
	}

	// A write method is no way in either.
	if r := call(t, http.MethodPost, td.base+"/metrics", bearer(td.AccessToken()), nil); r.code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: HTTP %d, want 405", r.code)
	}
}

// The bot's series follow what its agent and its events say: running,
// killed and restarted (restarts_total and the crashed count go up),
// backoff, hung, stopped, and a heartbeat age that grows in silence.
func TestMetricsFollowBot(t *testing.T) {
	td := startDashboard(t)
	nc := connect(t, td)
	a := startScriptedAgent(t, nc, bus.Status{
		Name: "m1", State: bus.StateRunning, PID: 4242, Host: "web-1", RSSBytes: 5 << 20, CPUPercent: 12.5,
		HeartbeatAgeMS: new(int64(250)),
		Agent:          bus.AgentInfo{PID: os.Getpid(), Host: "web-1", Connected: true},
	})
	beat := func(pid int) {
		hb := bus.Heartbeat{Name: "m1", PID: pid, Host: "web-1", Seq: 1, Time: time.Now(), StartedAt: time.Now()}
		if err := nc.Publish(bus.HeartbeatSubject("m1"), bus.Encode(hb)); err != nil {
			t.Fatalf("publish heartbeat: %v", err)
		}
	}
	beat(4242)
	metricsEvent(t, nc, "m1", bus.EventStarted, 4242)
	want := map[string]float64{
		`lifeline_bots`:                                  2,
		`lifeline_bad_messages_total`:                    0,
		`lifeline_bot_up{bot="m1",host="web-1"}`:         1,
		`lifeline_bot_restarts_total{bot="m1"}`:          0,
		`lifeline_bot_resident_memory_bytes{bot="m1"}`:   5 << 20,
		`lifeline_bot_cpu_percent{bot="m1"}`:             12.5,
		`lifeline_events_total{bot="m1",type="started"}`: 1,
		`lifeline_events_total{bot="m1",type="crashed"}`: 0,
		// The default bot, never heard of: known, not up.
		`lifeline_bot_state{bot="bot",state="unknown"}`: 1,
		`lifeline_bot_up{bot="bot",host=""}`:            0,
		`lifeline_bot_restarts_total{bot="bot"}`:        0,
	}
	states := func(current bus.State) {
		for _, s := range botStates {
			want[fmt.Sprintf(`lifeline_bot_state{bot="m1",state="%s"}`, s)] = boolValue(s == current)
		}
	}
	states(bus.StateRunning)
	body := waitMetrics(t, td, want)
	if age, ok := metricValue(body, `lifeline_bot_heartbeat_age_seconds{bot="m1"}`); !ok || age < 0 || age > 5 {
		t.Errorf("heartbeat age %v (found %v)", age, ok)
	}
	if _, ok := metricValue(body, `lifeline_bot_heartbeat_age_seconds{bot="bot"}`); ok {
		t.Errorf("an age for a bot that never sent a heartbeat")
	}
	for _, typ := range []string{"other", "stopped", "killed"} {
		if _, ok := metricValue(body, `lifeline_events_total{bot="m1",type="`+typ+`"}`); ok {
			t.Errorf("a %s count that stayed at 0 is reported", typ)
		}
	}

	// Killed: the agent counts a restart and the bot runs again.
	a.set(func(st *bus.Status) { st.Restarts, st.PID = 1, 4243 })
	metricsEvent(t, nc, "m1", bus.EventCrashed, 4242)
	metricsEvent(t, nc, "m1", bus.EventStarted, 4243)
	beat(4243)
	want[`lifeline_bot_restarts_total{bot="m1"}`] = 1
	want[`lifeline_events_total{bot="m1",type="crashed"}`] = 1
	want[`lifeline_events_total{bot="m1",type="started"}`] = 2
	waitMetrics(t, td, want)

	// Crashing again: in backoff, not up.
	a.set(func(st *bus.Status) { st.State, st.Restarts, st.PID = bus.StateBackoff, 2, 0 })
	metricsEvent(t, nc, "m1", bus.EventCrashed, 4243)
	metricsEvent(t, nc, "m1", bus.EventBackoff, 0)
	want[`lifeline_bot_up{bot="m1",host="web-1"}`] = 0
	want[`lifeline_bot_restarts_total{bot="m1"}`] = 2
	want[`lifeline_events_total{bot="m1",type="crashed"}`] = 2
	want[`lifeline_events_total{bot="m1",type="backoff"}`] = 1
	states(bus.StateBackoff)
	delete(want, `lifeline_bot_resident_memory_bytes{bot="m1"}`)
	delete(want, `lifeline_bot_cpu_percent{bot="m1"}`)
	body = waitMetrics(t, td, want)
	if _, ok := metricValue(body, `lifeline_bot_resident_memory_bytes{bot="m1"}`); ok {
		t.Errorf("memory of a bot with no process")
	}

	// Restarted, then hung.
	a.set(func(st *bus.Status) { st.State, st.PID = bus.StateRunning, 4244 })
	metricsEvent(t, nc, "m1", bus.EventStarted, 4244)
	beat(4244)
	want[`lifeline_bot_up{bot="m1",host="web-1"}`] = 1
	want[`lifeline_events_total{bot="m1",type="started"}`] = 3
	states(bus.StateRunning)
	waitMetrics(t, td, want)
	a.set(func(st *bus.Status) { st.State = bus.StateHung })
	metricsEvent(t, nc, "m1", bus.EventHung, 4244)
	want[`lifeline_bot_up{bot="m1",host="web-1"}`] = 0
	want[`lifeline_events_total{bot="m1",type="hung"}`] = 1
	states(bus.StateHung)
	waitMetrics(t, td, want)

	// Stopped on request.
	a.set(func(st *bus.Status) { st.State, st.PID = bus.StateStopped, 0 })
	metricsEvent(t, nc, "m1", bus.EventStopped, 4244)
	want[`lifeline_events_total{bot="m1",type="stopped"}`] = 1
	states(bus.StateStopped)
	waitMetrics(t, td, want)
}

// Made-up event types and states cannot grow a bot's series without bound:
// unknown types all count as "other", and an unknown current state is one
// more series.
func TestMetricsBounded(t *testing.T) {
	st := newState("bot")
	for i := range 1000 {
		st.event(bus.Event{Time: time.Now(), Name: "b", Type: bus.EventType(fmt.Sprintf("made-up-%d", i))})
	}
	st.event(bus.Event{Time: time.Now(), Name: "b", Type: bus.EventCrashed})
	st.agentAnswer("b", &bus.Status{Name: "b", State: "resting", Restarts: 3})
	body := gatherText(t, st)
	for series, v := range map[string]float64{
		`lifeline_events_total{bot="b",type="other"}`:   1000,
		`lifeline_events_total{bot="b",type="crashed"}`: 1,
		`lifeline_bot_state{bot="b",state="resting"}`:   1,
		`lifeline_bot_state{bot="b",state="running"}`:   0,
		`lifeline_bot_restarts_total{bot="b"}`:          3,
	} {
		if got, ok := metricValue(body, series); !ok || got != v {
			t.Errorf("%s = %v (found %v), want %v", series, got, ok, v)
		}
	}
	if n := strings.Count(string(body), `lifeline_events_total{bot="b"`); n != len(watchedEvents)+1 {
		t.Errorf("%d event series for b, want %d (watched and other)", n, len(watchedEvents)+1)
	}
	if n := strings.Count(string(body), `lifeline_bot_state{bot="b"`); n != len(botStates)+1 {
		t.Errorf("%d state series for b, want %d", n, len(botStates)+1)
	}

	// A forgotten bot leaves the metrics with its counts.
	st.setExpiry(time.Nanosecond)
	waitFor(t, "b forgotten", func() bool { st.tick(); return !st.known("b") })
	if body := gatherText(t, st); bytes.Contains(body, []byte(`bot="b"`)) {
		t.Errorf("forgotten bot still reported:\n%s", grepLifeline(body))
	}
}

// gatherText is the whole text exposition of st: its bots and the Go and
// process metrics.
func gatherText(t *testing.T, st *state) []byte {
	t.Helper()
	var buf bytes.Buffer
	newMetricsSet(st, slog.New(slog.DiscardHandler)).WritePrometheus(&buf)
	return buf.Bytes()
}

// parseMetrics parses an exposition with Prometheus's own parser, which
// fails on a malformed line, a family split in two or a bad escape.
func parseMetrics(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return mfs
}

// The names, types, units and help texts follow Prometheus's conventions,
// as client_golang's linter checks them: the bots' series, and the whole
// registry with the Go and process collectors.
func TestMetricsLint(t *testing.T) {
	st := newState("bot")
	now := time.Now()
	st.heartbeat(bus.Heartbeat{Name: "b", PID: 7, Host: "h", Time: now, StartedAt: now})
	st.agentAnswer("b", &bus.Status{Name: "b", State: bus.StateRunning, PID: 7, Host: "h", Restarts: 1, RSSBytes: 1 << 20, CPUPercent: 3,
		HeartbeatAgeMS: new(int64(250)),
		Agent:          bus.AgentInfo{Connected: true, Host: "h"}})
	st.event(bus.Event{Time: now, Name: "b", Type: bus.EventStarted, PID: 7})
	body := gatherText(t, st)
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		if !libraryNoHelp(p.Metric, p.Text) {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
	// Every lifeline_ family is there, with its type and help text.
	mfs := parseMetrics(t, body)
	for _, f := range metricFamilies {
		mf, ok := mfs[f.name]
		if !ok || mf.GetHelp() != f.help || !strings.EqualFold(mf.GetType().String(), f.typ) {
			t.Errorf("family %s: got %v", f.name, mf)
		}
	}
	// And Prometheus's own checker agrees, where it is installed (Debian:
	// apt-get install prometheus).
	if promtool, err := exec.LookPath("promtool"); err != nil {
		t.Logf("promtool not installed: linted with client_golang's linter only")
	} else {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, _ := cmd.CombinedOutput() // exit status 3 for lint problems: the lines say which
		for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			metric, text, ok := strings.Cut(l, " ") // "name problem"
			if l != "" && (!ok || !libraryNoHelp(metric, text)) {
				t.Errorf("promtool check metrics: %s", l)
			}
		}
	}
	for _, name := range []string{"lifeline_bot_up", "lifeline_bot_state", "lifeline_bot_restarts_total",
		"lifeline_bot_heartbeat_age_seconds", "lifeline_bot_resident_memory_bytes", "lifeline_bot_cpu_percent",
		"lifeline_events_total", "go_goroutines", "process_cpu_seconds_total"} {
		if !bytes.Contains(body, []byte("\n"+name+"{")) && !bytes.Contains(body, []byte("\n"+name+" ")) {
			t.Errorf("no %s in\n%s", name, body)
		}
	}
}

// libraryNoHelp tells a lint problem that is expected: VictoriaMetrics's
// go_* and process_* metrics have no HELP text (the library writes none).
// Everything else about them, and anything about lifeline_ metrics, is a
// problem.
func libraryNoHelp(metric, text string) bool {
	return text == "no help text" && (strings.HasPrefix(metric, "go_") || strings.HasPrefix(metric, "process_"))
}

// A scrape at fleet size: 10,000 bots (1,000 under -race) are all there, the state's lock is
// held only to copy them out (heartbeats wait that long at most), and the
// whole answer is compressed for Prometheus.
func TestMetricsFleetScrape(t *testing.T) {
	n := 10_000
	if raceBuild {
		n = 1_000 // the same code, in a tenth of a minute
	}
	st := newState("bot")
	now := time.Now()
	for i := range n {
		name := fmt.Sprintf("bot-%05d", i)
		st.heartbeat(bus.Heartbeat{Name: name, PID: 1000 + i, Host: "h", Time: now, StartedAt: now})
		st.agentAnswer(name, &bus.Status{Name: name, State: bus.StateRunning, PID: 1000 + i, Host: "h", RSSBytes: 1 << 20,
			Agent: bus.AgentInfo{Connected: true}, HeartbeatAgeMS: new(int64(100))})
		st.event(bus.Event{Time: now, Name: name, Type: bus.EventStarted, PID: 1000 + i})
	}
	start := time.Now()
	samples, _ := st.metricsSnapshot()
	locked := time.Since(start)
	if len(samples) != n+1 {
		t.Fatalf("%d samples, want %d", len(samples), n+1)
	}
	app := fiber.New()
	app.Get("/metrics", serveMetrics(newMetricsSet(st, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler)))
	start = time.Now()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := app.Test(req, fiber.TestConfig{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	zipped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("HTTP %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != metricsContentType {
		t.Errorf("Content-Type %q", ct)
	}
	t.Logf("%d bots: state locked %v, scrape %v, %d KiB gzipped", n, locked, took, len(zipped)>>10)
	body := gatherText(t, st)
	if got, ok := metricValue(body, fmt.Sprintf(`lifeline_bot_up{bot="bot-%05d",host="h"}`, n-1)); !ok || got != 1 {
		t.Errorf("last bot up = %v (found %v)", got, ok)
	}
	if c := bytes.Count(body, []byte("\nlifeline_bot_up{")); c != n+1 {
		t.Errorf("%d up series, want %d", c, n+1)
	}
}

// The Grafana dashboard in examples/ is valid JSON, and every lifeline_
// metric its queries use is one /metrics serves.
func TestMetricsGrafanaExample(t *testing.T) {
	data, err := os.ReadFile("../examples/grafana/lifeline.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("lifeline.json: %v", err)
	}
	served := map[string]bool{}
	for _, f := range metricFamilies {
		served[f.name] = true
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range regexp.MustCompile(`lifeline_[a-z_]+`).FindAllString(tg.Expr, -1) {
				used[m] = true
				if !served[m] {
					t.Errorf("panel %q uses %s, which /metrics does not serve (%v)", p.Title, m, served)
				}
			}
		}
	}
	for _, m := range []string{"lifeline_bot_up", "lifeline_bot_state", "lifeline_bot_restarts_total",
		"lifeline_bot_heartbeat_age_seconds", "lifeline_bot_resident_memory_bytes", "lifeline_bot_cpu_percent"} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// Label values are escaped as the text format wants, so a bot named with a
// quote, a backslash or a line feed cannot break the exposition or forge a
// series; a name that is not UTF-8 (Prometheus would reject the whole
// scrape) leaves that bot out and keeps the others.
func TestMetricsLabelEscaping(t *testing.T) {
	st := newState("bot")
	now := time.Now()
	odd := "we\"ird\\name\n} lifeline_bot_up{bot=\"forged\"} 1"
	for _, name := range []string{odd, "bad\xffname"} {
		st.heartbeat(bus.Heartbeat{Name: name, PID: 7, Host: "h\"1", Time: now, StartedAt: now})
		st.event(bus.Event{Time: now, Name: name, Type: bus.EventCrashed})
	}
	if !st.known(odd) || !st.known("bad\xffname") {
		t.Fatal("the state refused the test's bot names")
	}
	body := gatherText(t, st)
	mfs := parseMetrics(t, body)
	bots := map[string]string{}
	for _, m := range mfs["lifeline_bot_up"].GetMetric() {
		var bot, host string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "bot":
				bot = l.GetValue()
			case "host":
				host = l.GetValue()
			}
		}
		bots[bot] = host
	}
	if len(bots) != 2 || bots[odd] != "h\"1" || bots["bot"] != "" {
		t.Errorf("up series for %q, want the dashboard's own bot and %q with host %q", bots, odd, "h\"1")
	}
	if got := len(mfs["lifeline_events_total"].GetMetric()); got != len(watchedEvents) {
		t.Errorf("%d event series, want %d (the odd bot's watched types)", got, len(watchedEvents))
	}
	if v, ok := metricValue(body, "lifeline_bots"); !ok || v != 2 {
		t.Errorf("lifeline_bots = %v (found %v), want 2 (the bad name left out)", v, ok)
	}
}

// At most metricsInFlight scrapes run at once: with the state's lock held
// (a slow pass over a big fleet), the scrapes beyond those get 503 at
// once, and the others finish once the lock is free.
func TestMetricsInFlight(t *testing.T) {
	st := newState("bot")
	log := slog.New(slog.DiscardHandler)
	app := fiber.New()
	app.Get("/metrics", serveMetrics(newMetricsSet(st, log), log))
	codes := make(chan int)
	st.mu.Lock()
	locked := true
	defer func() {
		if locked {
			st.mu.Unlock()
		}
	}()
	const extra = 2
	for range metricsInFlight + extra {
		go func() {
			resp, err := app.Test(httptest.NewRequest(http.MethodGet, "/metrics", nil), fiber.TestConfig{Timeout: 30 * time.Second})
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	deadline := time.After(10 * time.Second)
	for range extra {
		select {
		case c := <-codes:
			if c != http.StatusServiceUnavailable {
				t.Errorf("a scrape beyond %d answered %d, want 503", metricsInFlight, c)
			}
		case <-deadline:
			t.Fatal("no scrape was turned away while the state was locked")
		}
	}
	st.mu.Unlock()
	locked = false
	for range metricsInFlight {
		select {
		case c := <-codes:
			if c != http.StatusOK {
				t.Errorf("a waiting scrape answered %d, want 200", c)
			}
		case <-deadline:
			t.Fatal("the waiting scrapes never finished")
		}
	}
}
