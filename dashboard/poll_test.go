package dashboard

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
)

// fleetAgentState makes n bots answered by one agent (host h, PID 500) known to
// s, and the single-bot agent of "solo".
func fleetAgentState(t *testing.T, n int) (*state, *fakeClock, []string) {
	t.Helper()
	s, clock := newTestState()
	var names []string
	for i := range n {
		name := fmt.Sprintf("f%03d", i)
		names = append(names, name)
		s.heartbeat(bus.Heartbeat{Name: name, PID: 1000 + i, Time: clock.t})
		s.agentAnswer(name, &bus.Status{Name: name, State: bus.StateRunning, PID: 1000 + i,
			Agent: bus.AgentInfo{PID: 500, Host: "h", Connected: true}})
	}
	s.heartbeat(bus.Heartbeat{Name: "solo", PID: 7, Time: clock.t})
	s.agentAnswer("solo", &bus.Status{Name: "solo", State: bus.StateRunning, PID: 7,
		Agent: bus.AgentInfo{PID: 600, Host: "h", Connected: true}})
	return s, clock, names
}

func pollRound(s *state, clock *fakeClock) []string {
	clock.t = clock.t.Add(pollInterval)
	return s.due(pollInterval, refreshInterval, agentlessRetry, 1000)
}

// TestDueAsksAMultiBotAgentOncePerRound: an agent with 100 bots is asked
// about one of them each round (it answers one question a round, not 100),
// while every bot is still asked within refreshInterval, and a single-bot
// agent every round as before.
func TestDueAsksAMultiBotAgentOncePerRound(t *testing.T) {
	s, clock, names := fleetAgentState(t, 100)
	asked := map[string]int{}
	rounds := int(refreshInterval / pollInterval)
	for r := range rounds {
		got := pollRound(s, clock)
		var fleet int
		for _, n := range got {
			asked[n]++
			if n != "solo" && n != "bot" { // the default bot is asked every round
				fleet++
			}
		}
		if !slices.Contains(got, "solo") {
			t.Errorf("round %d: the single-bot agent was not asked: %q", r, got)
		}
		// Each round: the bots whose refresh is due (all 100 in the last
		// round, as they were all asked at once at the start), else one.
		if r < rounds-1 && fleet != 1 {
			t.Errorf("round %d: %d bots of the fleet agent asked, want 1: %q", r, fleet, got)
		}
	}
	for _, n := range names {
		if asked[n] == 0 {
			t.Errorf("%s not asked within %v", n, refreshInterval)
		}
	}
}

// TestDueAsksEveryBotOfAnAgentThatWentSilent: once one bot of a multi-bot
// agent goes unanswered, every bot of that agent is asked each round, so the
// loss of the agent shows on all of them about as soon as on one.
func TestDueAsksEveryBotOfAnAgentThatWentSilent(t *testing.T) {
	s, clock, names := fleetAgentState(t, 20)
	pollRound(s, clock)
	got := pollRound(s, clock)
	var probe string
	for _, n := range got {
		if n != "solo" && n != "bot" {
			probe = n
		}
	}
	if probe == "" {
		t.Fatalf("no bot of the fleet agent asked: %q", got)
	}
	s.agentLate(probe) // its question timed out
	got = pollRound(s, clock)
	for _, n := range names {
		if !slices.Contains(got, n) {
			t.Fatalf("after a late answer, %s was not asked in the next round: %q", n, got)
		}
	}
	// The bus says nobody listens: each is agentless, and still asked every
	// round (an agent may come back for it).
	for _, n := range names {
		s.agentAnswer(n, nil)
	}
	got = pollRound(s, clock)
	for _, n := range names {
		if st, _ := s.status(n); st.Agent.Connected || !slices.Contains(got, n) {
			t.Fatalf("%s: connected %v, asked %v", n, st.Agent.Connected, slices.Contains(got, n))
		}
	}
}
