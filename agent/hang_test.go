package agent

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// runTimers fires the supervisor's hang timer until none is armed, in fake
// time: the state machine's timing, without processes or a bus.
func runHangTimer(s *supervisor) {
	for s.hangT != nil {
		<-s.hangT.C
		s.hangT = nil
		s.onHangTimer()
	}
}

func newTestSupervisor() (*supervisor, *proc) {
	cfg := &Agent{Name: "bot", HeartbeatTimeout: 5 * time.Second, StartTimeout: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	s := newSupervisor(cfg)
	// A process with no recorded identity: the state machine may decide to
	// kill it, but the identity check refuses to signal it.
	p := &proc{pid: 1 << 22, spawnedAt: time.Now(), startedAt: time.Now()}
	s.p, s.state, s.connectedSince = p, bus.StateStarting, time.Now()
	return s, p
}

func TestHungWhenNoFirstHeartbeatWithinStartTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestSupervisor()
		start := time.Now()
		s.armHang()
		runHangTimer(s)
		if s.state != bus.StateHung || time.Since(start) != 30*time.Second {
			t.Fatalf("state %s after %s, want hung after 30s", s.state, time.Since(start))
		}
	})
}

func TestHungFiveSecondsAfterLastHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, p := newTestSupervisor()
		start := time.Now()
		s.armHang()
		time.Sleep(time.Second)
		s.onHeartbeat(bus.Heartbeat{Name: "bot", PID: p.pid})
		if s.state != bus.StateRunning {
			t.Fatalf("state %s after first heartbeat", s.state)
		}
		runHangTimer(s)
		if s.state != bus.StateHung || time.Since(start) != 6*time.Second {
			t.Fatalf("state %s after %s, want hung after 6s", s.state, time.Since(start))
		}
	})
}

func TestHangIsNotJudgedWhileTheBusIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, p := newTestSupervisor()
		start := time.Now()
		s.onHeartbeat(bus.Heartbeat{Name: "bot", PID: p.pid})
		time.Sleep(2 * time.Second)
		// The bus goes away: heartbeats cannot travel, so nothing is judged.
		s.connectedSince = time.Time{}
		s.armHang()
		if s.hangT != nil {
			t.Fatal("hang timer armed while disconnected")
		}
		time.Sleep(time.Minute)
		// Back: the bot gets a full timeout from the reconnection.
		s.connectedSince = time.Now()
		s.armHang()
		runHangTimer(s)
		if want := 2*time.Second + time.Minute + 5*time.Second; time.Since(start) != want || s.state != bus.StateHung {
			t.Fatalf("state %s after %s, want hung after %s", s.state, time.Since(start), want)
		}
	})
}

func TestHeartbeatFromAnotherProcessIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestSupervisor()
		s.armHang()
		s.onHeartbeat(bus.Heartbeat{Name: "bot", PID: 1<<22 - 1}) // not ours, not in its group
		if s.state != bus.StateStarting {
			t.Fatalf("state %s after a stranger's heartbeat", s.state)
		}
		stopTimer(&s.hangT)
	})
}
