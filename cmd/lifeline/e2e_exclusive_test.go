//go:build linux

package main

// One bot, one agent: when two are started at once for the same bot,
// exactly one wins and the other says why it gave up.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// Two `lifeline bot` started at once on one PID file: exactly one wins;
// the other exits with status 3 naming the winner's PID.
func TestFaultTwoBotsOnePIDFile(t *testing.T) {
	s := faultStack(t, nil)
	for round := range 5 {
		a := e2eStart(t, "bot A", s.dir, s.agentEnv, "bot", "--nats-url", s.natsURL)
		b := e2eStart(t, "bot B", s.dir, s.agentEnv, "bot", "--nats-url", s.natsURL)
		winner, loser := faultFirstExit(t, "one of the two bots to give up", a, b)
		if loser.code != 3 || !strings.Contains(loser.out.String(), strconv.Itoa(winner.pid())) {
			t.Fatalf("round %d: loser exit %d, want 3 naming %d:\n%s", round, loser.code, winner.pid(), loser.out)
		}
		if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != winner.pid() {
			t.Fatalf("round %d: bots %v, want only %d", round, bots, winner.pid())
		}
		if pid, err := s.pidFromFile(); err != nil || pid != winner.pid() {
			t.Fatalf("round %d: pid file %d (%v), want %d", round, pid, err, winner.pid())
		}
		winner.signal(syscall.SIGTERM)
		if code := winner.wait(15 * time.Second); code != 0 {
			t.Fatalf("round %d: winner exit %d", round, code)
		}
	}
}

// Two agents for one bot in one data dir, started at once: exactly one
// supervises it; the other exits 1 saying another agent has it.
func TestFaultTwoAgentsOneDataDir(t *testing.T) {
	s := faultStack(t, faultAgentArgs)
	nc := s.connect()
	for round := range 3 {
		args := append([]string{"agent", "--nats-url", s.natsURL, "--stop-bot-on-exit"}, faultAgentArgs...)
		a := e2eStart(t, "agent A", s.dir, s.agentEnv, args...)
		b := e2eStart(t, "agent B", s.dir, s.agentEnv, args...)
		winner, _, st := faultOneSupervises(t, round, nc, a, b)
		if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != st.PID {
			t.Fatalf("round %d: bots %v", round, bots)
		}
		winner.signal(syscall.SIGTERM)
		winner.wait(15 * time.Second)
		e2eWaitGone(t, st.PID)
	}
}

// Two agents for one bot name in two data dirs on the same bus, started
// at once: exactly one supervises a bot; the other exits 1 saying why.
func TestFaultTwoAgentsTwoDataDirs(t *testing.T) {
	s := faultStack(t, faultAgentArgs)
	nc := s.connect()
	for round := range 5 {
		dirA, dirB := filepath.Join(s.dir, fmt.Sprintf("a%d", round)), filepath.Join(s.dir, fmt.Sprintf("b%d", round))
		os.MkdirAll(dirA, 0o755)
		os.MkdirAll(dirB, 0o755)
		args := append([]string{"agent", "--nats-url", s.natsURL, "--stop-bot-on-exit"}, faultAgentArgs...)
		// Each in a directory of its own, given the dashboard's agent login.
		env := append(slices.Clone(s.agentEnv), "LIFELINE_NATS_NKEY="+s.data("bus", "agent.nk"))
		a := e2eStart(t, "agent A", dirA, env, args...)
		b := e2eStart(t, "agent B", dirB, env, args...)
		winner, loser, st := faultOneSupervises(t, round, nc, a, b)
		if bots := append(botProcesses(dirA), botProcesses(dirB)...); len(bots) != 1 || bots[0] != st.PID {
			t.Fatalf("round %d: bots %v, want only %d", round, bots, st.PID)
		}
		// The loser must not have left a bot (or a PID file) behind either.
		loserDir := dirA
		if loser == b {
			loserDir = dirB
		}
		if _, err := os.Stat(filepath.Join(loserDir, "data", "bot.pid")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("round %d: the losing agent left a pid file: %v", round, err)
		}
		winner.signal(syscall.SIGTERM)
		winner.wait(15 * time.Second)
		e2eWaitGone(t, st.PID)
	}
}

// faultOneSupervises waits until one of two agents started at once for the
// bot has given up, and checks that the other runs the bot and that the
// loser said why. It returns them as winner and loser, with the winner's
// status.
func faultOneSupervises(t *testing.T, round int, nc *nats.Conn, a, b *e2eProc) (winner, loser *e2eProc, st bus.Status) {
	t.Helper()
	winner, loser = faultOneWins(t, a, b)
	st = faultWaitAgent(t, nc, "bot", "the winner to run the bot", func(st bus.Status) bool { return st.State == bus.StateRunning })
	if st.Agent.PID != winner.pid() {
		t.Fatalf("round %d: status from agent %d, want %d", round, st.Agent.PID, winner.pid())
	}
	if !strings.Contains(loser.out.String(), "another agent") || !strings.Contains(loser.out.String(), strconv.Itoa(winner.pid())) {
		t.Fatalf("round %d: loser's message does not say why:\n%s", round, loser.out)
	}
	return winner, loser, st
}
