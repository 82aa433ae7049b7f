package dashboard

import (
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

func TestSlowSubscriberDropped(t *testing.T) {
	s, clock := newTestState()
	slow, snap := s.subscribe()
	defer s.streams.Done() // no writer goroutine in this test
	if len(snap) != 1 {
		t.Fatalf("snapshot has %d statuses, want 1", len(snap))
	}
	for i := range subscriberBuffer + 1 {
		clock.t = clock.t.Add(time.Second)
		s.heartbeat(bus.Heartbeat{Name: "bot", PID: 1, Seq: uint64(i), Time: clock.t})
	}
	select {
	case <-slow.done:
	default:
		t.Fatal("a subscriber that stopped reading was not dropped")
	}
	s.mu.Lock()
	n := len(s.subs)
	s.mu.Unlock()
	if n != 0 {
		t.Errorf("%d subscribers left", n)
	}
}

func TestOnlyChangesArePublished(t *testing.T) {
	s, clock := newTestState()
	sub, _ := s.subscribe()
	defer s.streams.Done()
	s.heartbeat(bus.Heartbeat{Name: "bot", PID: 1, Time: clock.t})
	<-sub.ch
	clock.t = clock.t.Add(time.Second)
	s.tick() // only the age grew
	select {
	case m := <-sub.ch:
		t.Errorf("unchanged status sent: %s", m.data)
	default:
	}
	clock.t = clock.t.Add(heartbeatFresh)
	s.tick() // now stale: running -> unknown
	select {
	case m := <-sub.ch:
		st, _ := bus.DecodeStatus(m.data)
		if st.State != bus.StateUnknown {
			t.Errorf("sent %+v", st)
		}
	default:
		t.Errorf("stale heartbeat not published")
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
