package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// lsJSON runs `lifeline ls --json` with extra args and decodes its array.
func lsJSON(t *testing.T, s *e2eStack, args ...string) ([]bus.Status, string) {
	t.Helper()
	out, errOut, code := s.cli(append([]string{"ls", "--json"}, args...)...)
	if code != 0 {
		return nil, fmt.Sprintf("exit %d: %s%s", code, out, errOut)
	}
	var list []bus.Status
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("ls --json printed no JSON array (%v): %q", err, out)
	}
	return list, out
}

func pidFileOf(t *testing.T, s *e2eStack, name string) int {
	t.Helper()
	b, err := os.ReadFile(s.data(name + ".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// TestLsListsBots: two real agents with their bots are listed with the PIDs
// in their PID files, as text and as JSON, for an operator and a viewer; a
// stopped bot comes before a running one; a login that may not read status
// is refused; and with no agent left, ls says so and exits 0.
func TestLsListsBots(t *testing.T) {
	s := e2eNewStack(t)
	other := e2eStart(t, "agent other", s.dir, s.agentEnv, append([]string{"agent", "--nats-url", s.natsURL, "--stop-bot-on-exit",
		"--name", "other", "--pid-file", filepath.Join("data", "other.pid"), "--log-file", filepath.Join("data", "other.log")},
		s.agentArgs...)...)
	t.Cleanup(func() {
		if pid := pidFileOf(t, s, "other"); pid > 0 {
			e2eKill(pid)
		}
	})

	// Both listed, running, with the PIDs their agents wrote.
	var list []bus.Status
	e2eWait(t, 20*time.Second, "ls to list bot and other running with their PID files' PIDs", func() (bool, string) {
		var raw string
		list, raw = lsJSON(t, s)
		if len(list) != 2 {
			return false, raw
		}
		for _, st := range list {
			if st.State != bus.StateRunning || st.PID == 0 || st.PID != pidFileOf(t, s, st.Name) || !st.Agent.Connected {
				return false, raw
			}
		}
		return list[0].Name == "bot" && list[1].Name == "other", raw
	})
	host, _ := os.Hostname()
	if list[0].Host != host || list[0].Agent.PID != s.agent.pid() || list[1].Agent.PID != other.pid() {
		t.Errorf("ls --json: host %q (want %q), agent PIDs %d %d (want %d %d)",
			list[0].Host, host, list[0].Agent.PID, list[1].Agent.PID, s.agent.pid(), other.pid())
	}

	// The table, for an operator (the default login beside the dashboard)
	// and for a viewer.
	for _, login := range []string{bus.LoginOperator, bus.LoginViewer} {
		out, errOut, code := s.cli("ls", "--nats-nkey", s.data("bus", login+".nk"))
		if code != 0 || errOut != "" {
			t.Fatalf("ls as %s: exit %d, stderr %q", login, code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "HEARTBEAT") {
			t.Fatalf("ls as %s: want a header and two lines:\n%s", login, out)
		}
		for i, name := range []string{"bot", "other"} {
			f := strings.Fields(lines[i+1])
			pid := pidFileOf(t, s, name)
			if len(f) < 6 || f[0] != name || f[1] != "running" || f[2] != strconv.Itoa(pid) || f[3] != host {
				t.Errorf("ls as %s, line %q: want %s running %d %s", login, lines[i+1], name, pid, host)
			}
		}
	}

	// A login that may not ask for status (a bot's) is refused, clearly.
	out, errOut, code := s.cli("ls", "--nats-nkey", s.data("bus", bus.LoginBot+".nk"))
	if code != exitFailure || !strings.Contains(errOut, "refused") || !strings.Contains(errOut, "operator or a viewer") {
		t.Errorf("ls as a bot: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Problems first: a stopped bot sorts before a running one.
	if out, errOut, code := s.cli("stop", "other"); code != 0 {
		t.Fatalf("stop other: exit %d: %s%s", code, out, errOut)
	}
	e2eWait(t, 20*time.Second, "ls to list other stopped, first", func() (bool, string) {
		list, raw := lsJSON(t, s)
		return len(list) == 2 && list[0].Name == "other" && list[0].State == bus.StateStopped && list[0].PID == 0 &&
			list[1].Name == "bot" && list[1].State == bus.StateRunning, raw
	})

	// No agent left: the header, "no bots found", exit 0, at once.
	s.agent.signal(syscall.SIGTERM)
	other.signal(syscall.SIGTERM)
	s.agent.wait(20 * time.Second)
	other.wait(20 * time.Second)
	start := time.Now()
	out, errOut, code = s.cli("ls")
	took := time.Since(start)
	if code != 0 || strings.TrimSpace(out) != "NAME  STATE  PID  HOST  RESTARTS  HEARTBEAT" || !strings.Contains(errOut, "no bots found") {
		t.Errorf("ls with no bots: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if took > 2*time.Second {
		t.Errorf("ls with no bots took %s: it should not wait out its timeout", took)
	}
	if out, _, code := s.cli("ls", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("ls --json with no bots: exit %d, %q, want []", code, out)
	}
}

// TestLsBadCommandLine: a bad flag or argument exits 2 with a pointer to
// the help, before anything connects; --help teaches.
func TestLsBadCommandLine(t *testing.T) {
	for _, args := range [][]string{
		{"ls", "--no-such-flag"},
		{"ls", "mybot"},
		{"ls", "--timeout", "0s"},
		{"ls", "--timeout", "soon"},
		{"ls", "--json=maybe"},
	} {
		r := runBinary(t, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "lifeline ls --help") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a pointer to the help", args, r.code, r.stderr)
		}
	}
	r := runBinary(t, "ls", "--help")
	for _, want := range []string{"Usage: lifeline ls", "Examples:", "--json", "--nats-nkey", "viewer", "no bots found"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("ls --help (exit %d) lacks %q:\n%s", r.code, want, r.stdout)
		}
	}
}

type binResult struct {
	stdout, stderr string
	code           int
}

// runBinary runs the built binary with args, with no bus to reach.
func runBinary(t *testing.T, args ...string) binResult {
	t.Helper()
	s := &e2eStack{t: t, dir: t.TempDir(), natsURL: "nats://127.0.0.1:1"}
	out, errOut, code := s.cli(args...)
	return binResult{out, errOut, code}
}

// TestLsFleet: with 1,000 simulated bots (startFleetSim) beside a real one,
// ls lists all 1,001, the ten hung ones first, then the one in backoff.
func TestLsFleet(t *testing.T) {
	s := e2eNewStack(t)
	s.running()
	startFleetSim(t, s, fleetSize, 5*time.Second)
	var list []bus.Status
	e2eWait(t, 30*time.Second, "ls to list 1,001 bots", func() (bool, string) {
		var raw string
		start := time.Now()
		list, raw = lsJSON(t, s)
		t.Logf("ls --json: %d bots in %s", len(list), time.Since(start).Round(time.Millisecond))
		return len(list) == fleetSize+1, fmt.Sprintf("%d bots: %.300s", len(list), raw)
	})
	for i, st := range list[:12] {
		want := bus.StateHung
		switch {
		case i == 10:
			want = bus.StateBackoff
		case i == 11:
			want = bus.StateRunning
		}
		if st.State != want {
			t.Errorf("entry %d: %s is %s, want %s", i, st.Name, st.State, want)
		}
	}
	if list[10].Name != "bot-0500" || list[11].Name != "bot" || list[12].Name != "bot-0000" {
		t.Errorf("order: %s, %s, %s; want bot-0500, bot, bot-0000", list[10].Name, list[11].Name, list[12].Name)
	}
	out, _, code := s.cli("ls")
	if lines := strings.Count(out, "\n"); code != 0 || lines != fleetSize+2 {
		t.Errorf("ls: exit %d, %d lines, want a header and %d bots", code, lines, fleetSize+1)
	}
	s.agent.signal(syscall.SIGTERM)
	s.agent.wait(20 * time.Second)
}

// TestLsOrderAndTable: problems first in the page's order, then by name;
// text from the bus cannot move the terminal's cursor or break the columns.
func TestLsOrderAndTable(t *testing.T) {
	on := bus.AgentInfo{Connected: true}
	list := []bus.Status{
		{Name: "a-run", State: bus.StateRunning, Agent: on},
		{Name: "b-stopped", State: bus.StateStopped, Agent: on},
		{Name: "c-noagent", State: bus.StateRunning},
		{Name: "d-future", State: "sleeping", Agent: on},
		{Name: "e-hung", State: bus.StateHung, Agent: on},
		{Name: "f-backoff", State: bus.StateBackoff, Agent: on},
		{Name: "g-starting", State: bus.StateStarting, Agent: on},
		{Name: "h-problem", State: bus.StateRunning, Agent: on, Problem: "disk full"},
		{Name: "a-hung", State: bus.StateHung, Agent: on, Host: "evil\x1b[2J\thost"},
	}
	sortProblemsFirst(list)
	var names []string
	for _, st := range list {
		names = append(names, st.Name)
	}
	want := "a-hung e-hung f-backoff d-future c-noagent h-problem g-starting b-stopped a-run"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("order:\n got %s\nwant %s", got, want)
	}
	var out strings.Builder
	writeTable(&out, list)
	if strings.ContainsAny(out.String(), "\x1b\t") {
		t.Errorf("table carries control characters: %q", out.String())
	}
	if !strings.Contains(out.String(), "evil?[2J?host") || !strings.Contains(out.String(), "running (no agent)") {
		t.Errorf("table:\n%s", out.String())
	}
}
