//go:build unix

package agent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
)

func TestStartsBotAndWritesLockedPIDFile(t *testing.T) {
	h, dir := setup(t, "ok", false)
	st := h.running()
	if got := readPIDFile(t, filepath.Join(dir, "bot.pid")); got != st.PID {
		t.Fatalf("pid file says %d, status says %d", got, st.PID)
	}
	if st.Restarts != 0 || !st.Agent.Connected || st.Agent.PID != os.Getpid() {
		t.Fatalf("status %+v", st)
	}
	if st.LastHeartbeatAt == nil || st.HeartbeatAgeMS == nil {
		t.Fatalf("no heartbeat in status %+v", st)
	}
	if pg, _ := syscall.Getpgid(st.PID); pg != st.PID {
		t.Fatalf("bot is not leader of its own process group: pgid %d", pg)
	}
	if err := h.stop(); err != nil {
		t.Fatalf("agent stop: %v", err)
	}
	// The bot outlives its agent unless told otherwise.
	if !alive(st.PID) {
		t.Fatal("bot died with its agent")
	}
	syscall.Kill(st.PID, syscall.SIGKILL)
	waitGone(t, st.PID)
}

func TestStoppedBotIsHungThenKilledAndRespawned(t *testing.T) {
	h, _ := setup(t, "ok", true)
	first := h.running()
	syscall.Kill(first.PID, syscall.SIGSTOP)
	defer syscall.Kill(first.PID, syscall.SIGKILL)
	if ev := h.waitEvent(bus.EventHung); ev.PID != first.PID {
		t.Fatalf("hung event %+v", ev)
	}
	if ev := h.waitEvent(bus.EventKilled); ev.PID != first.PID {
		t.Fatalf("killed event %+v", ev)
	}
	st := h.waitStatus("respawned", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.LastExit == nil || st.LastExit.Reason != "hung" || st.Restarts != 1 {
		t.Fatalf("last exit %+v restarts %d", st.LastExit, st.Restarts)
	}
	waitGone(t, first.PID)
}
