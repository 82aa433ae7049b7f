package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// fakeClock lets state tests move time by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestState() (*state, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	s := newState("bot")
	s.now = clock.now
	return s, clock
}

func TestStatusFromHeartbeatOnly(t *testing.T) {
	s, clock := newTestState()
	s.heartbeat(bus.Heartbeat{Name: "bot", PID: 42, Host: "h", Time: clock.t, StartedAt: clock.t.Add(-time.Minute)})

	st, _ := s.status("bot")
	if st.State != bus.StateRunning || st.PID != 42 || st.Agent.Connected {
		t.Errorf("fresh heartbeat, no agent: %+v", st)
	}
	clock.t = clock.t.Add(heartbeatFresh - time.Millisecond)
	if st, _ := s.status("bot"); st.State != bus.StateRunning || *st.HeartbeatAgeMS != (heartbeatFresh-time.Millisecond).Milliseconds() {
		t.Errorf("heartbeat just under the limit: %+v", st)
	}
	clock.t = clock.t.Add(time.Millisecond)
	if st, _ := s.status("bot"); st.State != bus.StateUnknown || st.PID != 42 {
		t.Errorf("stale heartbeat: %+v", st)
	}
}

func TestStatusWithoutAnything(t *testing.T) {
	s, _ := newTestState()
	st, ok := s.status("bot")
	if !ok || st.State != bus.StateUnknown || st.Agent.Connected {
		t.Errorf("default bot with nothing known: %+v %v", st, ok)
	}
	if _, ok := s.status("other"); ok {
		t.Errorf("a bot never mentioned is known")
	}
}

func TestAgentStatusRememberedWhenAgentGoes(t *testing.T) {
	s, clock := newTestState()
	exit := &bus.Exit{At: clock.t, Code: -1, Signal: "killed", Reason: "hung"}
	s.agentAnswer("bot", &bus.Status{Name: "bot", State: bus.StateStopped, PID: 7, Restarts: 3, LastExit: exit,
		Agent: bus.AgentInfo{PID: 9, Connected: true}})
	if st, _ := s.status("bot"); st.State != bus.StateStopped || !st.Agent.Connected {
		t.Errorf("agent's answer: %+v", st)
	}
	s.agentAnswer("bot", nil)
	st, _ := s.status("bot")
	if st.State != bus.StateUnknown || st.Agent.Connected || st.Restarts != 3 || st.LastExit == nil {
		t.Errorf("after the agent went silent: %+v", st)
	}
}

func TestHeartbeatRefreshesAgentStatus(t *testing.T) {
	s, clock := newTestState()
	s.agentAnswer("bot", &bus.Status{Name: "bot", State: bus.StateRunning, PID: 7, Agent: bus.AgentInfo{Connected: true}})
	clock.t = clock.t.Add(time.Second)
	s.heartbeat(bus.Heartbeat{Name: "bot", PID: 7, Time: clock.t, Stats: map[string]int64{"done": 5}})
	clock.t = clock.t.Add(300 * time.Millisecond)
	st, _ := s.status("bot")
	if st.LastHeartbeatAt == nil || !st.LastHeartbeatAt.Equal(clock.t.Add(-300*time.Millisecond)) ||
		*st.HeartbeatAgeMS != 300 || st.Stats["done"] != 5 {
		t.Errorf("merged status: %+v", st)
	}
}

func TestEventRing(t *testing.T) {
	s, clock := newTestState()
	for i := range maxEvents + 10 {
		s.event(bus.Event{Time: clock.t, Name: "bot", Type: bus.EventStarted, PID: i + 1})
	}
	ev := s.recentEvents()
	if len(ev) != maxEvents {
		t.Fatalf("%d events kept, want %d", len(ev), maxEvents)
	}
	if ev[0].PID != maxEvents+10 || ev[len(ev)-1].PID != 11 {
		t.Errorf("order: newest %d, oldest %d", ev[0].PID, ev[len(ev)-1].PID)
	}
}

// statusesIn decodes a "statuses" message.
func statusesIn(t *testing.T, m *sseMsg) []bus.Status {
	t.Helper()
	if m.event != "statuses" {
		t.Fatalf("message %q, want statuses", m.event)
	}
	var list []bus.Status
	if err := json.Unmarshal(m.data, &list); err != nil {
		t.Fatalf("statuses %s: %v", m.data, err)
	}
	return list
}

// nothingSent fails if sub has a message waiting.
func nothingSent(t *testing.T, sub *subscriber, what string) {
	t.Helper()
	select {
	case m := <-sub.ch:
		t.Errorf("%s: sent %s %s", what, m.event, m.data)
	default:
	}
}

// TestSlowSubscriberDropped: a stream that stops reading is dropped once its
// buffer is full, while one that reads gets every flush, and neither waits
// for the other.
func TestSlowSubscriberDropped(t *testing.T) {
	s, clock := newTestState()
	slow, snap := s.subscribe()
	defer s.streams.Done() // no writer goroutine in this test
	if len(snap) != 1 {
		t.Fatalf("snapshot of %d statuses, want the default bot", len(snap))
	}
	fast, _ := s.subscribe()
	defer s.streams.Done()
	for i := range subscriberBuffer + 1 {
		clock.t = clock.t.Add(time.Second)
		s.heartbeat(bus.Heartbeat{Name: "bot", PID: 1 + i, Time: clock.t})
		s.flush()
		if list := statusesIn(t, <-fast.ch); len(list) != 1 || list[0].PID != 1+i {
			t.Fatalf("flush %d: the reading stream got %+v", i, list)
		}
	}
	select {
	case <-slow.done:
	default:
		t.Fatal("a subscriber that stopped reading was not dropped")
	}
	s.mu.Lock()
	_, slowIn := s.subs[slow]
	_, fastIn := s.subs[fast]
	s.mu.Unlock()
	if slowIn || !fastIn {
		t.Errorf("subscribers left: slow %v, fast %v", slowIn, fastIn)
	}
}

func TestOnlyChangesArePublished(t *testing.T) {
	s, clock := newTestState()
	sub, _ := s.subscribe()
	defer s.streams.Done()
	s.heartbeat(bus.Heartbeat{Name: "bot", PID: 1, Time: clock.t})
	s.flush()
	<-sub.ch
	clock.t = clock.t.Add(time.Second)
	s.tick() // only the age grew
	s.flush()
	nothingSent(t, sub, "the age grew")
	clock.t = clock.t.Add(heartbeatFresh)
	s.tick() // now stale: running -> unknown
	s.flush()
	select {
	case m := <-sub.ch:
		if list := statusesIn(t, m); len(list) != 1 || list[0].State != bus.StateUnknown {
			t.Errorf("sent %+v", list)
		}
	default:
		t.Errorf("stale heartbeat not published")
	}
}

// TestBurstOfHeartbeatsIsOneUpdate: however many heartbeats of one bot come
// between two flushes, the stream gets one status, the last.
func TestBurstOfHeartbeatsIsOneUpdate(t *testing.T) {
	s, clock := newTestState()
	sub, _ := s.subscribe()
	defer s.streams.Done()
	const n = 500
	for i := range n {
		clock.t = clock.t.Add(time.Millisecond)
		s.heartbeat(bus.Heartbeat{Name: "bot", PID: 7, Time: clock.t, Stats: map[string]int64{"seq": int64(i)}})
	}
	s.flush()
	list := statusesIn(t, <-sub.ch)
	if len(list) != 1 || list[0].Stats["seq"] != n-1 {
		t.Fatalf("after a burst of %d heartbeats the stream got %+v", n, list)
	}
	s.flush()
	nothingSent(t, sub, "a second flush with nothing new")
}

// TestManyBotsOneEvent: changes of many bots between two flushes go out as
// one event, marshalled once and shared by every stream.
func TestManyBotsOneEvent(t *testing.T) {
	s, clock := newTestState()
	a, _ := s.subscribe()
	defer s.streams.Done()
	b, _ := s.subscribe()
	defer s.streams.Done()
	for i := range 100 {
		s.heartbeat(bus.Heartbeat{Name: fmt.Sprintf("b%03d", i), PID: i + 1, Time: clock.t})
	}
	s.flush()
	ma, mb := <-a.ch, <-b.ch
	if len(statusesIn(t, ma)) != 100 {
		t.Fatalf("one flush of 100 new bots sent %d statuses", len(statusesIn(t, ma)))
	}
	if &ma.data[0] != &mb.data[0] {
		t.Error("each stream got its own copy of the event")
	}
	nothingSent(t, a, "after the one event")
}

// TestTimeOnlyChangesWithinBudget: a heartbeat that changes nothing but its
// time is sent within the budget, oldest first; a real change at once.
func TestTimeOnlyChangesWithinBudget(t *testing.T) {
	s, clock := newTestState()
	s.ageMin, s.ageMax = 10, 10 // a second
	sub, _ := s.subscribe()
	defer s.streams.Done()
	const bots = 50
	for i := range bots {
		s.heartbeat(bus.Heartbeat{Name: fmt.Sprintf("b%02d", i), PID: 1, Time: clock.t})
	}
	s.flush()
	if got := len(statusesIn(t, <-sub.ch)); got != bots {
		t.Fatalf("first heartbeats: %d statuses, want %d", got, bots)
	}
	// Every bot beats again: time-only. Unused budget keeps for a second at
	// most: 10 of them may go.
	clock.t = clock.t.Add(500 * time.Millisecond)
	for i := range bots {
		s.heartbeat(bus.Heartbeat{Name: fmt.Sprintf("b%02d", i), PID: 1, Time: clock.t})
	}
	// And one changes for real.
	s.heartbeat(bus.Heartbeat{Name: "b49", PID: 2, Time: clock.t})
	s.flush()
	list := statusesIn(t, <-sub.ch)
	if len(list) != 1+10 || list[0].Name != "b49" || list[0].PID != 2 || list[1].Name != "b00" || list[10].Name != "b09" {
		names := []string{}
		for _, st := range list {
			names = append(names, st.Name)
		}
		t.Fatalf("sent %q, want b49 (changed), then b00..b09 (time-only, oldest first)", names)
	}
	// The rest follow as the budget allows, each once.
	seen := map[string]int{}
	for range 20 {
		clock.t = clock.t.Add(time.Second)
		s.flush()
		select {
		case m := <-sub.ch:
			for _, st := range statusesIn(t, m) {
				seen[st.Name]++
			}
		default:
		}
	}
	if len(seen) != bots-11 {
		t.Errorf("%d of the other %d time-only changes sent: %v", len(seen), bots-11, seen)
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s sent %d times", name, n)
		}
	}
}

// TestFlushReachesStreamInTime: with the flusher running, a change reaches
// a stream within the flush interval (plus scheduling slack).
func TestFlushReachesStreamInTime(t *testing.T) {
	s := newState("bot")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.runFlusher(ctx) }()
	defer func() { cancel(); <-done }()
	sub, _ := s.subscribe()
	defer s.streams.Done()
	var last time.Time // when the previous change reached the stream
	for i := range 5 {
		start := time.Now()
		s.heartbeat(bus.Heartbeat{Name: "bot", PID: 100 + i, Time: start})
		select {
		case m := <-sub.ch:
			took := time.Since(start)
			if list := statusesIn(t, m); len(list) != 1 || list[0].PID != 100+i {
				t.Fatalf("got %+v", list)
			}
			if took < flushCoalesce {
				t.Errorf("sent after %v: not coalesced", took)
			}
			// Each change came right after the previous one was sent: it
			// waits out flushInterval from that flush, so that streams are
			// written to at most that often (timers never fire early; the
			// slack is for the test's own delay in reading the stream).
			if gap := time.Since(last); i > 0 && gap < flushInterval/2 {
				t.Errorf("change %d sent %v after the previous one: flushes not spaced", i, gap)
			}
			last = time.Now()
			t.Logf("change %d reached the stream after %v", i, took)
		case <-time.After(10 * time.Second):
			t.Fatal("a change never reached the stream")
		}
	}
}

// TestDueAsksEachBotInTurn: the poll asks supervised bots every round, bots
// without an agent rarely, never more than the limit, and most overdue
// first.
func TestDueAsksEachBotInTurn(t *testing.T) {
	s, clock := newTestState()
	for i := range 10 {
		name := fmt.Sprintf("sup%d", i)
		s.heartbeat(bus.Heartbeat{Name: name, PID: 1, Time: clock.t})
		s.agentAnswer(name, &bus.Status{Name: name, State: bus.StateRunning, PID: 1})
	}
	s.heartbeat(bus.Heartbeat{Name: "lonely", PID: 1, Time: clock.t})
	s.agentAnswer("lonely", nil)
	s.agentAnswer("bot", nil)
	clock.t = clock.t.Add(2 * time.Second)
	first := s.due(2*time.Second, 10*time.Second, 30*time.Second, 6)
	second := s.due(2*time.Second, 10*time.Second, 30*time.Second, 6)
	if len(first) != 6 || len(second) != 5 || slices.Contains(append(first, second...), "lonely") {
		t.Fatalf("rounds %q then %q: want 6 then the other 5 of bot and sup0..9, lonely not yet", first, second)
	}
	clock.t = clock.t.Add(30 * time.Second)
	if got := s.due(2*time.Second, 10*time.Second, 30*time.Second, 100); len(got) != 12 || !slices.Contains(got, "lonely") {
		t.Errorf("after 30 s: %q", got)
	}
}

func TestCloseStreamsRefusesNew(t *testing.T) {
	s, _ := newTestState()
	sub, _ := s.subscribe()
	s.closeStreams()
	<-sub.done
	s.streams.Done()
	if sub, _ := s.subscribe(); sub != nil {
		t.Errorf("subscribed after close")
	}
	s.waitStreams()
}
