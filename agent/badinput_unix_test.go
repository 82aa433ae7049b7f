//go:build unix

package agent

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
)

// TestBadHeartbeatsDoNotHideAHang stops the bot with SIGSTOP while a flood
// of bad heartbeats names it, its PID, its subject: the agent still sees it
// as hung, kills it and starts a new one.
func TestBadHeartbeatsDoNotHideAHang(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	a := newAgent(t, srv.ClientURL(), t.TempDir(), "ok")
	a.StopBotOnExit = true
	a.HeartbeatTimeout = steadyTimeout
	h := mustStart(t, nc, a)
	first := h.running()
	bystander := startBystander(t)
	msgs := badHeartbeats(first.PID, bystander)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, m := range msgs {
				nc.Publish(m.subject, m.data)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	stopFlood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopFlood()

	syscall.Kill(first.PID, syscall.SIGSTOP)
	defer syscall.Kill(first.PID, syscall.SIGKILL)
	if ev := h.waitEvent(bus.EventHung); ev.PID != first.PID {
		t.Fatalf("hung event %+v", ev)
	}
	// The flood has made its point; the new bot's heartbeats need not
	// queue behind it on a loaded machine.
	stopFlood()
	waitGone(t, first.PID)
	st := h.waitStatus("respawned", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.Restarts != 1 || st.LastExit == nil || st.LastExit.Reason != "hung" {
		t.Fatalf("after the hang: %+v, last exit %+v", st, st.LastExit)
	}
	if !alive(bystander) {
		t.Fatal("bystander was signalled")
	}
}
