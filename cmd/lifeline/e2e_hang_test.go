//go:build linux

package main

// A bot that makes no progress is hung, however alive its process looks:
// the agent kills it and starts another.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// SIGSTOP the bot: hung, killed, respawned; the stopped process really gone.
func TestFaultSIGSTOP(t *testing.T) {
	s, evs, first := faultNewRecorded(t)
	syscall.Kill(first.PID, syscall.SIGSTOP)
	e2eWait(t, 5*time.Second, "bot stopped", func() (bool, string) {
		st := faultProcState(first.PID)
		return st == "T", st
	})
	evs.wait(t, bus.EventHung, first.PID)
	evs.wait(t, bus.EventKilled, first.PID)
	st := s.waitStatus("respawned bot", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.LastExit == nil || st.LastExit.Reason != "hung" || st.LastExit.Signal != "killed" || st.Restarts != 1 {
		t.Fatalf("status after hang %+v, last exit %+v", st, st.LastExit)
	}
	// Really gone: not stopped, not a zombie, no /proc entry at all.
	e2eWait(t, 10*time.Second, "stopped bot reaped", func() (bool, string) {
		st := faultProcState(first.PID)
		return st == "", st
	})
	if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != st.PID {
		t.Fatalf("bot processes %v, want only %d", bots, st.PID)
	}
	if started := faultRespawns(evs.of(bus.EventStarted)); len(started) != 1 || started[0].PID != st.PID {
		t.Fatalf("started events %v, want one for %d", started, st.PID)
	}
}

// A bot whose work loop deadlocks while its other goroutines live is
// hung: heartbeats prove progress, not a live process.
func TestFaultDeadlockedWorkLoop(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "deadbot")
	build := exec.Command("go", "build", "-o", bin, "./testdata/deadbot")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build deadbot: %v\n%s", err, out)
	}
	marks := t.TempDir()
	s := faultStack(t, append(slices.Clone(faultAgentArgs), "--", bin, "-steps", "10", "-dir", marks))
	s.startAgent()
	evs := faultRecordEvents(t, s, "bot")
	first := s.running()
	alive := func(pid int) int {
		data, _ := os.ReadFile(filepath.Join(marks, fmt.Sprintf("alive-%d", pid)))
		n, _ := strconv.Atoi(string(data))
		return n
	}
	e2eWait(t, 10*time.Second, "the work loop to block", func() (bool, string) {
		_, err := os.Stat(filepath.Join(marks, fmt.Sprintf("blocked-%d", first.PID)))
		return err == nil, fmt.Sprint(err)
	})
	before := alive(first.PID)
	hung := evs.wait(t, bus.EventHung, first.PID)
	// Its other goroutines were still at work when it was declared hung.
	if after := alive(first.PID); after <= before {
		t.Errorf("side goroutine counter %d -> %d: the process was not alive while its loop was stuck", before, after)
	}
	if !strings.Contains(hung.Reason, "no heartbeat") {
		t.Errorf("hung reason %q", hung.Reason)
	}
	evs.wait(t, bus.EventKilled, first.PID)
	st := s.waitStatus("deadlocked bot replaced", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.LastExit == nil || st.LastExit.Reason != "hung" {
		t.Fatalf("last exit %+v", st.LastExit)
	}
	e2eWaitGone(t, first.PID)
}
