package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// e2eOpenUp makes dir and every directory above it traversable by others,
// as a project directory in a home directory usually is, so that only
// lifeline's own file modes keep another user out.
func e2eOpenUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, st.Mode().Perm()|0o005); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestE2EBotGetsABotLogin: the agent hands its bot the bot login, in the
// environment, never the agent's own, and never in argv.
func TestE2EBotGetsABotLogin(t *testing.T) {
	s := e2eNewStack(t)
	pid := s.running().PID
	env, err := e2eProcEnviron(pid)
	if err != nil {
		t.Fatal(err)
	}
	var seed string
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, bus.EnvSeed+"="); ok {
			seed = v
		}
	}
	if seed == "" {
		t.Fatalf("the bot has no %s in its environment", bus.EnvSeed)
	}
	got, err := bus.LoginFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != bus.LoginBot {
		t.Fatalf("the bot logs in as %q, want %q", got.Name, bus.LoginBot)
	}
	want, err := bus.ResolveLogin("", s.data("bus", "bot.nk"), "")
	if err != nil || want.Seed() != got.Seed() {
		t.Fatalf("the bot's seed is not bot.nk's (err %v)", err)
	}
	cmdline, _ := e2eProcCmdline(pid)
	seedLine := strings.TrimSpace(seed[strings.LastIndex(strings.TrimSpace(seed), "\n")+1:])
	if strings.Contains(string(cmdline), seedLine) || strings.Contains(string(cmdline), "nats://") {
		t.Fatalf("the bot's argv carries bus settings: %q", cmdline)
	}
}

// TestE2ERequestedByNamesTheLogin: who asked is the login the bus vouches
// for; what the caller says of itself is kept beside it, and cannot replace
// it.
func TestE2ERequestedByNamesTheLogin(t *testing.T) {
	s := e2eNewStack(t)
	pid := s.running().PID
	nc := s.connect() // the operator's login
	msg, err := nc.Request(bus.AgentSubject("bot", bus.OpRestart), bus.Encode(bus.Request{RequestedBy: "dashboard"}), 20*time.Second)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if r, err := bus.DecodeReply(msg.Data); err != nil || !r.OK {
		t.Fatalf("restart: %s", msg.Data)
	}
	ev := s.waitEvent(bus.EventRestarted, 0)
	if ev.RequestedBy != "operator (dashboard)" {
		t.Fatalf("requested_by %q, want the operator login with the caller's words beside it", ev.RequestedBy)
	}
	e2eWaitGone(t, pid)
}
