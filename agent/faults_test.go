package agent

// Regression tests for what the end-to-end fault suite
// (cmd/lifeline/e2e_faults_test.go) found.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go/micro"
)

// Two agents for one bot started at the same moment both find nobody on the
// bus before either answers there. Here the rival is a lifeline-agent
// service for the same bot that registered first but does not answer status
// yet: the agent must give way to it, naming it.
func TestAgentGivesWayToRivalRegisteredFirst(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	rival, err := micro.AddService(nc, micro.Config{Name: bus.AgentService, Version: "0.0.0",
		Metadata: map[string]string{"name": "bot", "pid": "4242", "host": "rival-host"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rival.Stop()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	a := newAgent(t, srv.ClientURL(), dir, "ok")
	a.StopBotOnExit = true
	err = a.Run(ctx)
	if !errors.Is(err, ErrAnotherAgent) || !strings.Contains(err.Error(), "4242") || !strings.Contains(err.Error(), "rival-host") {
		t.Fatalf("agent with a rival registered first: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bot.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the agent that gave way started a bot: %v", err)
	}
	// A rival for another bot is no rival.
	a = newAgent(t, srv.ClientURL(), dir, "ok")
	a.Name = "other"
	a.StopBotOnExit = true
	mustStart(t, nc, a).running()
}

// A bot's children inherit the locked PID file; when the bot is restarted
// they are killed with it, and the new bot must not find the lock still
// held by them.
// (Here the children ignore SIGTERM, so they are still alive when the bot
// has exited, and die only by the SIGKILL to its group.)
func TestRestartWhileChildrenHoldTheLock(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	dir := t.TempDir()
	a := newAgent(t, srv.ClientURL(), dir, "")
	kidsFile := filepath.Join(dir, "kids")
	a.Command = []string{"sh", "-c", `for i in 1 2 3 4; do sh -c 'trap "" TERM; exec sleep 1000' & echo $! >> "$0"; done
while :; do sleep 0.05; done`, kidsFile}
	a.HeartbeatTimeout = 0
	a.StopBotOnExit = true
	h := mustStart(t, nc, a)
	for round := range 3 {
		first := h.running()
		var kids []string
		deadline := time.Now().Add(5 * time.Second)
		for len(kids) < 4*(round+1) && time.Now().Before(deadline) {
			data, _ := os.ReadFile(kidsFile)
			kids = strings.Fields(string(data))
			time.Sleep(5 * time.Millisecond)
		}
		if len(kids) < 4*(round+1) {
			t.Fatalf("the bot's children did not start: %v", kids)
		}
		r, err := h.ask(bus.OpRestart, "test")
		if err != nil || !r.OK || r.OldPID != first.PID {
			t.Fatalf("round %d: restart: %+v %v", round, r, err)
		}
		for _, k := range kids {
			pid, _ := strconv.Atoi(k)
			waitGone(t, pid)
		}
	}
}

// A PID file that vanishes under a running bot is reported in status; a
// restart writes it again.
func TestVanishedPIDFileIsReported(t *testing.T) {
	h, dir := setup(t, "ok", true)
	first := h.running()
	if err := os.Remove(filepath.Join(dir, "bot.pid")); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus("problem", func(st bus.Status) bool { return st.Problem != "" })
	if !strings.Contains(st.Problem, "bot.pid") || st.PID != first.PID || st.State != bus.StateRunning {
		t.Fatalf("status %+v", st)
	}
	if r, err := h.ask(bus.OpRestart, "test"); err != nil || !r.OK {
		t.Fatalf("restart: %+v %v", r, err)
	}
	h.waitStatus("problem gone", func(st bus.Status) bool { return st.State == bus.StateRunning && st.Problem == "" })
}

// A log file that cannot be opened does not stop the bot, but status says
// that its output is lost.
func TestUnopenableLogFileIsReported(t *testing.T) {
	nc, a, dir := newTestAgent(t, "ok")
	a.LogFile = filepath.Join(dir, "missing", "bot.log")
	a.StopBotOnExit = true
	st := mustStart(t, nc, a).running()
	if !strings.Contains(st.Problem, "bot log") {
		t.Fatalf("status %+v", st)
	}
}
