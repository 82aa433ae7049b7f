package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/history"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// Tests of issue 9's limits: what one login on the bus can make the
// dashboard keep. Each attack leaves the other bots' rows and history as they
// were.

// TestStateForgetsSilentBots: made-up names leave once silent for the
// expiry; a bot whose agent answers, one that heartbeats and the default bot
// stay.
func TestStateForgetsSilentBots(t *testing.T) {
	s, clock := newTestState()
	for i := range 50 {
		s.heartbeat(bus.Heartbeat{Name: fmt.Sprintf("fake-%d", i), PID: 1, Time: clock.t})
	}
	s.agentAnswer("supervised", &bus.Status{Name: "supervised", State: bus.StateStopped})
	s.event(bus.Event{Time: clock.t, Name: "eventful", Type: bus.EventCrashed})
	for range 10 {
		clock.t = clock.t.Add(botExpiry / 5)
		s.agentAnswer("supervised", &bus.Status{Name: "supervised", State: bus.StateStopped}) // answers every poll
		s.heartbeat(bus.Heartbeat{Name: "beating", PID: 2, Time: clock.t})
		s.tick()
	}
	if got := s.names(); !slices.Equal(got, []string{"beating", "bot", "supervised"}) {
		t.Fatalf("after the expiry the table holds %q", got)
	}
	// Silence about a forgotten bot does not bring it back; its agent does.
	s.agentAnswer("fake-1", nil)
	if s.known("fake-1") {
		t.Fatal("a silent agent brought a forgotten bot back")
	}
	if !s.agentAnswer("fake-1", &bus.Status{Name: "fake-1"}) || !s.known("fake-1") {
		t.Fatal("an answering agent did not list its bot again")
	}
}

// TestStateFullTableLoggedOnce: past the safety cap, new bots are refused
// with one log line, never silently, and silent bots make room.
func TestStateFullTableLoggedOnce(t *testing.T) {
	s, clock := newTestState()
	var logs syncBuffer
	s.setLog(slog.New(slog.NewTextHandler(&logs, nil)))
	s.maxBots = 10
	for i := range 30 {
		s.heartbeat(bus.Heartbeat{Name: fmt.Sprintf("fake-%d", i), PID: 1, Time: clock.t})
	}
	if n := len(s.names()); n != 10 {
		t.Fatalf("%d bots tracked, want the cap of 10", n)
	}
	if n := strings.Count(logs.String(), "bot table full"); n != 1 {
		t.Fatalf("table full logged %d times, want once:\n%s", n, logs.String())
	}
	clock.t = clock.t.Add(botExpiry + time.Second)
	if !s.heartbeat(bus.Heartbeat{Name: "real", PID: 2, Time: clock.t}) {
		t.Fatal("a real bot was refused after the flood fell silent")
	}
	if st, ok := s.status("real"); !ok || st.State != bus.StateRunning {
		t.Fatalf("real bot after the flood: %+v, %v", st, ok)
	}
}

// TestEventsOfOneBotDoNotPushOutAnother's: the dashboard's recent events
// keep a quiet bot's few events while another floods.
func TestEventsOfOneBotDoNotPushOutAnothers(t *testing.T) {
	s, clock := newTestState()
	for i := range 3 {
		s.event(bus.Event{Time: clock.t.Add(time.Duration(i)), Name: "quiet", Type: bus.EventCrashed, Reason: fmt.Sprint("quiet-", i)})
	}
	for i := range 5 * maxEvents {
		s.event(bus.Event{Time: clock.t.Add(time.Duration(10 + i)), Name: "noisy", Type: bus.EventCrashed, PID: i + 1})
	}
	// And the same through the history, as a dashboard starting reads it.
	var evs []bus.Event
	for i := range 5 * maxEvents {
		evs = append(evs, bus.Event{Time: clock.t.Add(time.Duration(10_000 + i)), Name: "noisy", Type: bus.EventExited, PID: i + 1})
	}
	s.history(evs)
	var quiet []string
	recent := s.recentEvents()
	for _, e := range recent {
		if e.Name == "quiet" {
			quiet = append(quiet, e.Reason)
		}
	}
	if len(recent) != maxEvents || !slices.Equal(quiet, []string{"quiet-2", "quiet-1", "quiet-0"}) {
		t.Fatalf("%d events kept, the quiet bot's %q", len(recent), quiet)
	}
	if recent[0].Type != bus.EventExited || recent[0].PID != 5*maxEvents {
		t.Fatalf("newest kept event %+v, want the noisy bot's last", recent[0])
	}
}

// botNames is GET /api/bots's names.
func botNames(t *testing.T, td *testDashboard) []string {
	t.Helper()
	var list botList
	call(t, http.MethodGet, td.base+"/api/bots", bearer(td.AccessToken()), nil).json(t, &list)
	var names []string
	for _, st := range list.Bots {
		names = append(names, st.Name)
	}
	return names
}

func botStatus(t *testing.T, td *testDashboard, name string) (bus.Status, bool) {
	t.Helper()
	var list botList
	call(t, http.MethodGet, td.base+"/api/bots", bearer(td.AccessToken()), nil).json(t, &list)
	for _, st := range list.Bots {
		if st.Name == name {
			return st, true
		}
	}
	return bus.Status{}, false
}

// heartbeatEvery publishes name's heartbeats until the test ends.
func heartbeatEvery(t *testing.T, nc *nats.Conn, name string, pid int, every time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for seq := uint64(1); ; seq++ {
			hb := bus.Heartbeat{Name: name, PID: pid, Host: "h", Seq: seq, Time: time.Now().UTC()}
			nc.Publish(bus.HeartbeatSubject(name), bus.Encode(hb))
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
}

// TestFloodOfMadeUpNamesLeaves: 1,100 heartbeats under made-up names, more
// than the old fixed table, then a real bot: it is listed with its state at
// once, and once the expiry passes the made-up names are gone, while the real
// bot and a bot whose agent answers (but which never heartbeats) stay.
func TestFloodOfMadeUpNamesLeaves(t *testing.T) {
	td := startDashboard(t)
	const expiry = 5 * time.Second
	td.state.setExpiry(expiry)
	nc := connect(t, td)
	startFakeAgent(t, nc, "supervised")
	const fakes = 1100
	for i := range fakes {
		hb := bus.Heartbeat{Name: fmt.Sprintf("fake-%d", i), PID: 1, Time: time.Now().UTC()}
		if err := nc.Publish(bus.HeartbeatSubject(hb.Name), bus.Encode(hb)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	// Each new name is asked about once (no agent answers): the time that
	// takes grows with the names, and with the machine's load.
	waitWithin(t, "every made-up name listed", 10*time.Second+fakes*20*time.Millisecond, func() bool { return len(botNames(t, td)) >= fakes })
	heartbeatEvery(t, nc, "real", 4242, 200*time.Millisecond)
	waitFor(t, "the real bot listed as running", func() bool {
		st, ok := botStatus(t, td, "real")
		return ok && st.State == bus.StateRunning && st.PID == 4242
	})
	waitLong(t, "the made-up names forgotten", func() bool { return len(botNames(t, td)) == 3 })
	if got := botNames(t, td); !slices.Equal(got, []string{"bot", "real", "supervised"}) {
		t.Fatalf("after the expiry /api/bots lists %q", got)
	}
	waitFor(t, "the supervised bot listed with its agent", func() bool {
		st, ok := botStatus(t, td, "supervised")
		return ok && st.Agent.Connected
	})
	if r := call(t, http.MethodGet, td.base+"/api/bots/fake-7", bearer(td.AccessToken()), nil); r.code != http.StatusNotFound {
		t.Fatalf("a forgotten made-up name: HTTP %d %s", r.code, r.body)
	}
}

// TestForgedDiscoveryNotListed: a login answers the dashboard's discovery
// request with made-up agents; none is listed, since no agent answers on
// their status subjects, while a real agent found the same way is.
func TestForgedDiscoveryNotListed(t *testing.T) {
	td := startDashboard(t)
	forged := []string{"forged-1", "forged-2", "bot-that-is-not"}
	var rounds atomic.Int32
	// One login per name: a login may answer each request once.
	for i, name := range forged {
		forger := connect(t, td)
		_, err := forger.Subscribe("$SRV.INFO."+bus.AgentService, func(m *nats.Msg) {
			rounds.Add(1)
			info := micro.Info{
				ServiceIdentity: micro.ServiceIdentity{Name: bus.AgentService, ID: fmt.Sprint("forged", i), Version: "1.0.0", Metadata: map[string]string{"name": name}},
				Type:            micro.InfoResponseType,
			}
			data, _ := json.Marshal(info)
			m.Respond(data)
		})
		if err != nil {
			t.Fatal(err)
		}
		forger.Flush()
	}
	startFakeAgent(t, connect(t, td), "genuine")
	waitFor(t, "the genuine agent discovered", func() bool { return slices.Contains(botNames(t, td), "genuine") })
	start := rounds.Load()
	waitFor(t, "two more discovery rounds", func() bool { return rounds.Load() >= start+2*int32(len(forged)) })
	for _, name := range forged {
		if slices.Contains(botNames(t, td), name) {
			t.Errorf("forged discovery listed %q", name)
		}
	}
	if strings.Contains(td.logs.String(), `msg="found agent" bot=forged`) {
		t.Error("a forged agent was logged as found")
	}
}

// TestHistoryKeepsEachBotsOwn: bot A floods events through the real path
// (agent publish, dashboard records); the stream keeps at most history.PerBot
// of A's, and bot B's events are all still there.
func TestHistoryKeepsEachBotsOwn(t *testing.T) {
	td, agent, js := startReadingHistory(t)
	base := time.Now().UTC()
	for i := range 3 {
		publishEvent(t, agent, bus.Event{Time: base.Add(time.Duration(i)), Name: "b", Type: bus.EventCrashed, PID: 1, Reason: fmt.Sprint("b-", i)})
	}
	// Near the size limit each, so the flood weighs what it can.
	pad := strings.Repeat("p", bus.MaxMessageBytes-400)
	const flood = history.PerBot + 100
	sent := 0
	for sent < flood {
		// In batches the recorder's queue holds.
		for range min(200, flood-sent) {
			sent++
			data := fmt.Appendf(nil, `{"time":%q,"name":"a","type":"crashed","pid":%d,"pad":%q}`,
				base.Add(time.Duration(sent)*time.Microsecond).Format(time.RFC3339Nano), sent, pad)
			if err := agent.Publish(bus.EventsSubject("a"), data); err != nil {
				t.Fatal(err)
			}
		}
		agent.Flush()
		waitLong(t, "the batch stored", func() bool {
			s, err := js.Stream(context.Background(), history.StreamName)
			return err == nil && s.CachedInfo().State.LastSeq >= uint64(3+sent)
		})
	}
	s, err := js.Stream(context.Background(), history.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(bus.HistoryWildcard))
	if err != nil {
		t.Fatal(err)
	}
	subjects := info.State.Subjects
	if subjects[bus.HistorySubject("a")] != history.PerBot || subjects[bus.HistorySubject("b")] != 3 {
		t.Fatalf("stream holds %v, want %d of a's and b's 3", subjects, history.PerBot)
	}
	var got []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // one of a's, dropped by the per-bot limit
		}
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if m.Subject == bus.HistorySubject("b") {
			e, err := bus.DecodeEvent(m.Data)
			if err != nil {
				t.Fatalf("message %d: %v", seq, err)
			}
			got = append(got, e.Reason)
		}
	}
	if !slices.Equal(got, []string{"b-0", "b-1", "b-2"}) {
		t.Fatalf("b's stored events %q", got)
	}
	if r := botEvents(t, td, "b"); !slices.Equal(r, []string{"b-0", "b-1", "b-2"}) {
		t.Fatalf("the dashboard shows b's events %q", r)
	}
}

// startReadingHistory runs a dashboard and returns it with a connection
// publishing as an agent does, and JetStream on an operator's connection
// (which may read the history), once the events stream exists.
func startReadingHistory(t *testing.T) (*testDashboard, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	td := startDashboard(t)
	return td, connect(t, td), waitForStream(t, connectAs(t, td, bus.LoginOperator))
}

// TestBigEventNeverStored: an event of about 1 MB (the bus's largest
// message) is refused by the dashboard: counted as bad, not stored in the
// history, not returned by /api/events; a normal event after it is.
func TestBigEventNeverStored(t *testing.T) {
	td, agent, js := startReadingHistory(t)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	head := fmt.Sprintf(`{"time":%q,"name":"bot","type":"crashed","pid":7,"reason":"too-big","pad":"`, now)
	big := []byte(head + strings.Repeat("p", int(agent.MaxPayload())-len(head)-2) + `"}`)
	if len(big) != int(agent.MaxPayload()) {
		t.Fatalf("event of %d bytes, want %d", len(big), agent.MaxPayload())
	}
	bad := look(t, td).bad
	if err := agent.Publish(bus.EventsSubject("bot"), big); err != nil {
		t.Fatal(err)
	}
	publishEvent(t, agent, testEvent(time.Now().UTC(), 1, "normal"))
	waitStored(t, js, []string{"normal"})
	waitFor(t, "the normal event shown", func() bool { return hasEvent(t, td, "normal") })
	if hasEvent(t, td, "too-big") {
		t.Fatal("/api/events returns the 1 MB event")
	}
	if got := look(t, td).bad; got != bad+1 {
		t.Fatalf("bad messages %d, want %d", got, bad+1)
	}
}

// TestHistoryStreamGetsLimitsInPlace: a stream made before the limits, and
// holding an oversized event, is updated in place: its events stay, the
// oversized one is not shown, and the limits apply from then on.
func TestHistoryStreamGetsLimitsInPlace(t *testing.T) {
	cfg := history.StreamConfig(1)
	cfg.MaxMsgsPerSubject, cfg.MaxMsgSize = 0, 0
	base := time.Now().UTC()
	big := bus.Encode(testEvent(base, 0, "oversized"))
	big = append(big[:len(big)-1:len(big)-1], []byte(`,"pad":"`+strings.Repeat("p", 100<<10)+`"}`)...)
	dir := oldStream(t, cfg, bus.HistorySubject("bot"), big, bus.Encode(testEvent(base, 1, "kept")))

	td := newTestDashboard(t)
	td.DataDir = dir
	mustRun(t, td)
	waitFor(t, "the old event", func() bool { return hasEvent(t, td, "kept") })
	if hasEvent(t, td, "oversized") {
		t.Fatal("the oversized event from the old stream is shown")
	}
	js := waitForStream(t, connectAs(t, td, bus.LoginOperator))
	s, err := js.Stream(context.Background(), history.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.MaxMsgsPerSubject != history.PerBot || got.MaxMsgSize != history.MaxMsgBytes {
		t.Fatalf("stream limits: %d per subject, %d per message", got.MaxMsgsPerSubject, got.MaxMsgSize)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("the update in place left %d messages, want both", n)
	}
}
