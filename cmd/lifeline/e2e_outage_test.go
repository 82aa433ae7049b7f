//go:build linux

package main

// The bot outlives what is around it: a killed dashboard, a killed agent,
// a bus gone for half a minute. None of them costs it its PID or its work,
// and each comes back to the bot as it is.

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// kill -9 the dashboard while the bot works: the bot keeps its PID and
// keeps draining its inbox; the restarted dashboard shows the current
// status, restart count included, within two heartbeats.
func TestFaultKill9Dashboard(t *testing.T) {
	const beat = time.Second // SPEC's default heartbeat, so "two heartbeats" is 2 s
	s := faultStack(t, []string{"--heartbeat-timeout", "3s", "--stop-timeout", "3s", "--backoff-max", "200ms"},
		"LIFELINE_HEARTBEAT="+beat.String())
	s.startAgent()
	// Two crashes first, so the restart count has something to keep.
	for i := 1; i <= 2; i++ {
		old := s.running().PID
		syscall.Kill(old, syscall.SIGKILL)
		s.waitStatus("respawn", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != old && st.Restarts == i })
	}
	pid := s.running().PID

	s.dash.signal(syscall.SIGKILL)
	s.dash.wait(10 * time.Second)
	for i := range 50 {
		faultWriteAtomic(t, s.data("inbox", fmt.Sprintf("down-%02d.txt", i)), fmt.Appendf(nil, "item %d\n", i))
	}
	e2eWait(t, 15*time.Second, "the inbox drained while the dashboard is down", func() (bool, string) {
		n := faultCountDir(s.data("outbox"), func(n string) bool { return strings.HasPrefix(n, "down-") && faultIsResult(n) })
		return n == 50, fmt.Sprintf("%d of 50 posted", n)
	})
	if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != pid {
		t.Fatalf("bot %d did not survive the dashboard; bots now %v", pid, bots)
	}

	s.startDashboard()
	ready := time.Now()
	s.waitStatus("the restarted dashboard to show the bot", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.Agent.Connected && st.PID == pid && st.Restarts == 2 &&
			st.Stats["processed"] >= 50 // the work done while it was gone
	})
	if took := time.Since(ready); took > 2*beat {
		t.Errorf("the restarted dashboard showed the current status after %s, more than two heartbeats (%s)", took, 2*beat)
	} else {
		t.Logf("current status shown %s after the dashboard came back", took.Round(time.Millisecond))
	}
}

// kill -9 the agent: the bot is untouched; a new agent adopts the same
// PID (three times over), and then supervises it fully.
func TestFaultKill9Agent(t *testing.T) {
	s, evs, st := faultNewRecorded(t)
	pid := st.PID
	for round := 1; round <= 3; round++ {
		s.agent.signal(syscall.SIGKILL)
		s.agent.wait(10 * time.Second)
		// Without an agent the bot keeps working.
		item := s.data("inbox", fmt.Sprintf("orphan-%d.txt", round))
		faultWriteAtomic(t, item, []byte("still here\n"))
		e2eWait(t, 10*time.Second, "the bot to work without its agent", func() (bool, string) {
			_, err := os.Stat(s.data("outbox", fmt.Sprintf("orphan-%d.txt.json", round)))
			return err == nil, fmt.Sprint(err)
		})
		s.startAgent()
		s.waitStatus(fmt.Sprintf("agent %d adopts the bot", round), func(st bus.Status) bool {
			return st.State == bus.StateRunning && st.Agent.PID == s.agent.pid()
		})
		if ev := evs.wait(t, bus.EventAdopted, pid); ev.PID != pid {
			t.Fatalf("adopted %d", ev.PID)
		}
		if st := s.running(); st.PID != pid || !e2eAlive(pid) {
			t.Fatalf("round %d: agent runs %d, want adopted %d", round, st.PID, pid)
		}
		if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != pid {
			t.Fatalf("round %d: bots %v", round, bots)
		}
	}
	if n := len(evs.of(bus.EventAdopted)); n != 3 {
		t.Errorf("%d adopted events, want 3", n)
	}
	if started := faultRespawns(evs.of(bus.EventStarted)); len(started) != 0 {
		t.Errorf("a new agent started a bot instead of adopting: %v", started)
	}
	// Adopted means fully supervised: a restart request replaces it.
	code, body := s.api("POST", "/api/bot/restart")
	var r bus.Reply
	if code != 200 || json.Unmarshal(body, &r) != nil || !r.OK || r.OldPID != pid || r.NewPID == pid {
		t.Fatalf("restart of the adopted bot: %d %s", code, body)
	}
	e2eWaitGone(t, pid)
}

// The bus gone for 30 s: the agent never kills a healthy bot because
// heartbeats could not travel, and when the bus is back everything
// reconnects on its own (and hang detection works again).
func TestFaultBusGone30s(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 30 s on purpose")
	}
	s := faultNewStack(t)
	st := s.running()
	pid := st.PID

	s.dash.signal(syscall.SIGTERM)
	if code := s.dash.wait(15 * time.Second); code != 0 {
		t.Fatalf("dashboard exit %d", code)
	}
	// Thirty seconds of no bus is the fault itself, so this waits on a timer.
	end := time.Now().Add(30 * time.Second)
	nextItem := time.Now()
	items := 0
	for time.Now().Before(end) {
		if !e2eAlive(pid) || !e2eAlive(s.agent.pid()) {
			t.Fatalf("after %s without the bus: bot alive %v, agent alive %v",
				30*time.Second-time.Until(end), e2eAlive(pid), e2eAlive(s.agent.pid()))
		}
		if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != pid {
			t.Fatalf("bots %v, want only %d", bots, pid)
		}
		if time.Now().After(nextItem) {
			// The bot is healthy, not merely alive: it keeps working.
			faultWriteAtomic(t, s.data("inbox", fmt.Sprintf("nobus-%d.txt", items)), []byte("x\n"))
			items++
			nextItem = time.Now().Add(5 * time.Second)
		}
		time.Sleep(100 * time.Millisecond) // sampling the thirty seconds, not waiting
	}
	if n := faultCountDir(s.data("outbox"), func(n string) bool { return strings.HasPrefix(n, "nobus-") }); n < items-1 {
		t.Errorf("only %d of %d items posted without the bus", n, items)
	}
	if out := s.agent.out.String(); faultLogLines(out, "bot hung") > 0 || faultLogLines(out, "bot killed") > 0 || faultLogLines(out, "bot started") != 1 {
		t.Fatalf("the agent acted on the bot while the bus was gone:\n%s", out)
	}

	s.startDashboard() // same ports: the clients reconnect on their own
	st = s.running()
	if st.PID != pid || st.Restarts != 0 || st.Agent.PID != s.agent.pid() {
		t.Fatalf("after the bus came back: %+v", st)
	}
	// Hang detection is back too.
	evs := faultRecordEvents(t, s, "bot")
	syscall.Kill(pid, syscall.SIGSTOP)
	evs.wait(t, bus.EventHung, pid)
	s.waitStatus("hung bot replaced", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != pid })
}
