//go:build linux

package main

// Whatever a PID file says, the agent signals no process but its own bot:
// not the one a garbage file names, not the one that took a dead bot's PID.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
)

// A PID file naming a live unrelated process, PID 1, the agent's own PID,
// garbage, nothing, a negative or a huge number: nothing is signalled and
// the bot is started. When such a file is locked by a process that is not
// the bot, the agent says so in status and starts the bot once it is free.
func TestFaultGarbagePIDFiles(t *testing.T) {
	s := faultStack(t, nil)
	nc := s.connect()
	by, byLog := faultBystander(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(s.data(), 0o755))
	startAgent := func(name string) *e2eProc {
		args := append([]string{"agent", "--nats-url", s.natsURL, "--stop-bot-on-exit", "--name", name,
			"--pid-file", filepath.Join("data", name+".pid"), "--log-file", filepath.Join("data", name+".log")}, faultAgentArgs...)
		return e2eStart(t, "agent "+name, s.dir, s.agentEnv, args...)
	}
	pidFile := func(name string) string { return s.data(name + ".pid") }

	type tc struct {
		name, content string
		locked        bool   // the test process holds the file's lock
		self          bool   // content is the agent's own PID, chosen in advance
		problem       string // what status must say while the lock is held
	}
	cases := []tc{
		{name: "bystander", content: fmt.Sprintf("%d\n", by)},
		{name: "init", content: "1\n"},
		{name: "empty", content: ""},
		{name: "text", content: "hello world\n"},
		{name: "binary", content: "\x00\xff\x7f" + strconv.Itoa(by)},
		{name: "negative", content: fmt.Sprintf("-%d\n", by)},
		{name: "zero", content: "0\n"},
		{name: "huge", content: fmt.Sprintf("%d\n", by+1<<32)}, // by, if truncated to 32 bits
		{name: "overflow", content: "99999999999999999999999\n"},
		{name: "self", self: true},
		{name: "locked-bystander", content: fmt.Sprintf("%d\n", by), locked: true, problem: "does not hold its lock"},
		{name: "locked-text", content: "garbage\n", locked: true, problem: "locked but unreadable"},
		{name: "locked-self", self: true, locked: true, problem: "names this agent"},
	}
	agents := map[string]*e2eProc{}
	releases := map[string]func(){}
	// The agents whose PID must be known in advance start first, one at a
	// time, so that nothing else of this test forks meanwhile.
	for _, c := range cases {
		if !c.self {
			continue
		}
		for try := 1; agents[c.name] == nil; try++ {
			want := faultFreePID(t)
			content := fmt.Sprintf("%d\n", want)
			release := func() {}
			if c.locked {
				release = faultLock(t, pidFile(c.name), content)
			} else {
				must(os.WriteFile(pidFile(c.name), []byte(content), 0o644))
			}
			var p *e2eProc
			if faultStartAsPID(t, want, func() int { p = startAgent(c.name); return p.pid() }, func() { p.signal(syscall.SIGKILL); <-p.done }) {
				agents[c.name], releases[c.name] = p, release
				break
			}
			release() // another process took the number: choose another
			if try == 5 {
				t.Fatalf("%s: could not start an agent as a chosen pid", c.name)
			}
		}
	}
	for _, c := range cases {
		if c.self {
			continue
		}
		if c.locked {
			releases[c.name] = faultLock(t, pidFile(c.name), c.content)
		} else {
			must(os.WriteFile(pidFile(c.name), []byte(c.content), 0o644))
		}
		agents[c.name] = startAgent(c.name)
	}

	for _, c := range cases {
		if !c.locked {
			continue
		}
		st := faultWaitAgent(t, nc, c.name, c.name+": the problem in status", func(st bus.Status) bool {
			return st.State == bus.StateBackoff && strings.Contains(st.Problem, c.problem)
		})
		if st.PID != 0 {
			t.Errorf("%s: agent claims pid %d while the file is locked by another process", c.name, st.PID)
		}
		if !e2eAlive(agents[c.name].pid()) {
			t.Fatalf("%s: agent died", c.name)
		}
		releases[c.name]()
	}
	for _, c := range cases {
		st := faultWaitAgent(t, nc, c.name, c.name+": bot running", func(st bus.Status) bool {
			return st.State == bus.StateRunning && st.PID > 0 && st.Problem == ""
		})
		if st.PID == by || st.PID == 1 || st.PID == agents[c.name].pid() {
			t.Errorf("%s: agent runs pid %d as its bot", c.name, st.PID)
		}
		if got, err := os.ReadFile(pidFile(c.name)); err != nil || strings.TrimSpace(string(got)) != strconv.Itoa(st.PID) {
			t.Errorf("%s: pid file %q (%v), want %d", c.name, got, err, st.PID)
		}
		if !e2eAlive(agents[c.name].pid()) {
			t.Errorf("%s: agent died", c.name)
		}
	}
	faultCheckBystander(t, by, byLog)
	for _, c := range cases {
		if out := agents[c.name].out.String(); strings.Contains(out, "adopted") {
			t.Errorf("%s: agent adopted something:\n%s", c.name, out)
		}
	}
}

// PID reuse: the bot dies while its agent is down and another process
// takes its PID before a new agent looks; that process is never signalled.
func TestFaultPIDReuse(t *testing.T) {
	if err := faultSetNextPID(faultFreePID(t)); err != nil {
		t.Skipf("cannot choose the next PID (needs root on Linux): %v", err)
	}
	s := faultNewStack(t)
	logf := filepath.Join(t.TempDir(), "signals")
	var old int
	for try := 1; ; try++ {
		old = s.running().PID
		faultOrphanAndReap(t, s, old)
		if pid, err := s.pidFromFile(); err != nil || pid != old {
			t.Fatalf("stale pid file says %d (%v), want %d", pid, err, old)
		}
		// A bystander takes the dead bot's PID.
		var by *exec.Cmd
		if faultStartAsPID(t, old, func() int {
			by = faultSignalLogger(logf)
			if err := by.Start(); err != nil {
				t.Fatal(err)
			}
			return by.Process.Pid
		}, func() { by.Process.Kill(); by.Wait() }) {
			t.Cleanup(func() { syscall.Kill(-old, syscall.SIGKILL); by.Wait() })
			break
		}
		if try == 3 {
			t.Fatalf("other processes took the dead bot's pid first, %d times", try)
		}
		// Some other process took the number: again, with a new bot.
		s.startAgent()
	}

	s.startAgent()
	st := s.running()
	if st.PID == old {
		t.Fatal("the new agent adopted the process that reused the bot's PID")
	}
	// Put it through a restart as well, the moment signals fly.
	if code, body := s.api("POST", "/api/bot/restart"); code != 200 {
		t.Fatalf("restart: %d %s", code, body)
	}
	e2eWaitGone(t, st.PID)
	s.running()
	faultCheckBystander(t, old, logf)
}
