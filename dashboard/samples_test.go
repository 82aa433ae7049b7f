package dashboard

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/samples"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// runSampling opens td, shortens its sampling interval to every, and runs
// it like mustRun until the test ends (or the returned stop); the interval
// can only be set between Open and Run.
func runSampling(t *testing.T, td *testDashboard, every time.Duration) (stop func()) {
	t.Helper()
	if err := td.Open(); err != nil {
		t.Fatalf("open dashboard: %v", err)
	}
	td.Dashboard.sampleEvery = every
	return mustRun(t, td)
}

// cpuAgent answers status for bot name with a CPU percent the test sets,
// as a real agent reports its bot's.
func cpuAgent(t *testing.T, nc *nats.Conn, name string, cpu *atomic.Int64) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{Name: bus.AgentService, Version: "0.0.1", Metadata: map[string]string{"name": name}})
	if err != nil {
		t.Fatalf("add agent service: %v", err)
	}
	t.Cleanup(func() { svc.Stop() })
	err = svc.AddEndpoint(bus.OpStatus, micro.HandlerFunc(func(r micro.Request) {
		r.Respond(bus.Encode(bus.Status{
			Name: name, State: bus.StateRunning, PID: 101, Host: "test-host",
			Agent:      bus.AgentInfo{PID: os.Getpid(), Connected: true},
			CPUPercent: float64(cpu.Load()), RSSBytes: 1 << 20,
		}))
	}), micro.WithEndpointSubject(bus.AgentSubject(name, bus.OpStatus)), micro.WithEndpointMetadata(map[string]string{"name": name}))
	if err != nil {
		t.Fatalf("add status endpoint: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

type samplesBody struct {
	OK      bool             `json:"ok"`
	Samples []samples.Sample `json:"samples"`
	Note    string           `json:"note"`
}

func getSamples(t *testing.T, td *testDashboard, token, name string) (int, samplesBody) {
	t.Helper()
	r := call(t, "GET", td.base+"/api/bots/"+name+"/samples", bearer(token), nil)
	var b samplesBody
	if r.code == 200 {
		r.json(t, &b)
	}
	return r.code, b
}

// hasCPU reports whether some sample shows cpu.
func hasCPU(ss []samples.Sample, cpu float64) bool {
	for _, s := range ss {
		if s.CPU == cpu {
			return true
		}
	}
	return false
}

// TestSamplesRecordedServedAndSurviveARestart: the dashboard samples what
// the agent reports into JetStream, serves it to the viewer too, and a
// dashboard started afterwards on the same data serves the same samples.
func TestSamplesRecordedServedAndSurviveARestart(t *testing.T) {
	first := newTestDashboard(t)
	stop := runSampling(t, first, 100*time.Millisecond)
	nc := connect(t, first)
	var cpu atomic.Int64
	cpu.Store(7)
	cpuAgent(t, nc, "charted", &cpu)
	waitFor(t, "samples with cpu 7", func() bool {
		code, b := getSamples(t, first, first.AccessToken(), "charted")
		return code == 200 && b.OK && hasCPU(b.Samples, 7)
	})
	cpu.Store(42)
	waitFor(t, "samples with cpu 42", func() bool {
		code, b := getSamples(t, first, first.ViewerAccessToken(), "charted")
		return code == 200 && hasCPU(b.Samples, 42)
	})
	_, before := getSamples(t, first, first.AccessToken(), "charted")
	for i, s := range before.Samples {
		if s.RSS != 1<<20 || s.T <= 0 {
			t.Fatalf("sample %d = %+v, want rss 1 MiB and a time", i, s)
		}
		if i > 0 && s.T < before.Samples[i-1].T {
			t.Fatalf("samples not oldest first: %d then %d", before.Samples[i-1].T, s.T)
		}
	}
	nc.Close()
	stop()

	second := newTestDashboard(t)
	second.DataDir = first.DataDir
	runSampling(t, second, time.Hour) // samples once at start, then not for the test
	// The bot is unknown to the new dashboard until it hears of it.
	nc2 := connect(t, second)
	cpuAgent(t, nc2, "charted", &cpu)
	waitFor(t, "the bot known again", func() bool {
		code, _ := getSamples(t, second, second.AccessToken(), "charted")
		return code == 200
	})
	_, after := getSamples(t, second, second.AccessToken(), "charted")
	if len(after.Samples) < len(before.Samples) || !hasCPU(after.Samples, 7) || !hasCPU(after.Samples, 42) {
		t.Fatalf("after a restart: %d samples (cpu 7: %v, 42: %v), want at least the %d from before",
			len(after.Samples), hasCPU(after.Samples, 7), hasCPU(after.Samples, 42), len(before.Samples))
	}
	if code, _ := getSamples(t, second, second.AccessToken(), "nobody"); code != 404 {
		t.Errorf("samples of an unknown bot: HTTP %d, want 404", code)
	}
	if code, _ := getSamples(t, second, second.AccessToken(), "bad.name"); code != 400 {
		t.Errorf("samples of a bad name: HTTP %d, want 400", code)
	}
	if r := call(t, "GET", second.base+"/api/bots/charted/samples", nil, nil); r.code != 401 {
		t.Errorf("samples without a token: HTTP %d, want 401", r.code)
	}
}

// TestSamplesStreamIsBounded: the stream keeps an hour per bot at most, and
// its size is capped, so 10,000 bots cannot fill the disk.
func TestSamplesStreamIsBounded(t *testing.T) {
	td := newTestDashboard(t)
	runSampling(t, td, 50*time.Millisecond)
	nc := connect(t, td)
	var cpu atomic.Int64
	cpuAgent(t, nc, "bounded", &cpu)
	js, err := jetstream.New(connectAs(t, td, bus.LoginOperator))
	if err != nil {
		t.Fatal(err)
	}
	var cfg jetstream.StreamConfig
	waitFor(t, "samples stream", func() bool {
		s, err := js.Stream(context.Background(), samples.StreamName)
		if err != nil {
			return false
		}
		cfg = s.CachedInfo().Config
		return true
	})
	if cfg.MaxAge != time.Hour || cfg.MaxMsgsPerSubject != 360 || cfg.MaxBytes <= 0 || cfg.MaxMsgSize <= 0 || cfg.Discard != jetstream.DiscardOld {
		t.Fatalf("samples stream limits: age %v, per bot %d, bytes %d, msg %d, discard %v",
			cfg.MaxAge, cfg.MaxMsgsPerSubject, cfg.MaxBytes, cfg.MaxMsgSize, cfg.Discard)
	}
	// Past the per-bot limit, the bot's oldest samples go.
	var full []samples.Sample
	waitLong(t, "360 samples taken", func() bool {
		_, b := getSamples(t, td, td.AccessToken(), "bounded")
		full = b.Samples
		return len(full) == 360
	})
	// Three more rounds stored: the series moved on and still holds 360. (A
	// read that a round overtakes ends at the last sample it saw first, so
	// it may show 359: only more than 360 is wrong.)
	waitFor(t, "three more samples stored, 360 kept", func() bool {
		_, b := getSamples(t, td, td.AccessToken(), "bounded")
		if len(b.Samples) > 360 {
			t.Fatalf("kept %d samples of one bot, want 360", len(b.Samples))
		}
		return len(b.Samples) == 360 && b.Samples[0].T > full[2].T
	})
}

// TestSamplesNotWritableByAgents: only dashboards store samples; an agent's
// login cannot forge a bot's chart.
func TestSamplesNotWritableByAgents(t *testing.T) {
	td := newTestDashboard(t)
	runSampling(t, td, time.Hour)
	nc := connect(t, td)
	errs := make(chan error, 1)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	})
	var cpu atomic.Int64
	cpuAgent(t, nc, "forged", &cpu)
	waitFor(t, "the bot known", func() bool {
		code, _ := getSamples(t, td, td.AccessToken(), "forged")
		return code == 200
	})
	if err := nc.Publish(samples.Subject("forged"), []byte(`{"t":1,"cpu":99,"rss":1}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		t.Logf("the bus refused: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatalf("the bus did not refuse an agent's publish to %s", samples.Subject("forged"))
	}
	_, b := getSamples(t, td, td.AccessToken(), "forged")
	if hasCPU(b.Samples, 99) {
		t.Fatalf("a forged sample was stored: %+v", b.Samples)
	}
}

// TestTimelineFromHistory: the restart timeline route reads the bot's
// events from the history stream, oldest first.
func TestTimelineFromHistory(t *testing.T) {
	td := newTestDashboard(t)
	runSampling(t, td, time.Hour)
	nc := connect(t, td)
	now := time.Now().UTC()
	for i, typ := range []bus.EventType{bus.EventCrashed, bus.EventCrashed} {
		publishEvent(t, nc, bus.Event{Time: now.Add(time.Duration(i) * time.Millisecond), Name: "timed", Type: typ, PID: 40 + i, Reason: "tl-" + strconv.Itoa(i)})
	}
	js := waitForStream(t, connectAs(t, td, bus.LoginOperator))
	waitStored(t, js, []string{"tl-0", "tl-1"})
	var body struct {
		OK     bool        `json:"ok"`
		Events []bus.Event `json:"events"`
		Note   string      `json:"note"`
	}
	waitFor(t, "the timeline from the stream", func() bool {
		r := call(t, "GET", td.base+"/api/bots/timed/timeline", bearer(td.ViewerAccessToken()), nil)
		if r.code != 200 {
			return false
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		return body.Note == "" && len(body.Events) == 2
	})
	if body.Events[0].Reason != "tl-0" || body.Events[1].Reason != "tl-1" {
		t.Fatalf("timeline %v, want tl-0 then tl-1", reasons(body.Events))
	}
}

// TestSamplesWithoutHistory: with --no-history there is no JetStream; the
// routes still answer, with no samples and a note saying why, and the
// timeline from the events held in memory.
func TestSamplesWithoutHistory(t *testing.T) {
	td := newTestDashboard(t)
	td.NoHistory = true
	runSampling(t, td, 50*time.Millisecond)
	nc := connect(t, td)
	var cpu atomic.Int64
	cpuAgent(t, nc, "plain", &cpu)
	publishEvent(t, nc, bus.Event{Time: time.Now().UTC(), Name: "plain", Type: bus.EventCrashed, PID: 7, Reason: "in-memory"})
	waitFor(t, "the bot known", func() bool {
		code, _ := getSamples(t, td, td.AccessToken(), "plain")
		return code == 200
	})
	_, b := getSamples(t, td, td.AccessToken(), "plain")
	if !b.OK || len(b.Samples) != 0 || b.Note == "" {
		t.Fatalf("samples without history: %+v, want ok, none, and a note", b)
	}
	var tl struct {
		Events []bus.Event `json:"events"`
	}
	waitFor(t, "the timeline from memory", func() bool {
		r := call(t, "GET", td.base+"/api/bots/plain/timeline", bearer(td.AccessToken()), nil)
		return r.code == 200 && json.Unmarshal(r.body, &tl) == nil && len(tl.Events) == 1 && tl.Events[0].Reason == "in-memory"
	})
}
