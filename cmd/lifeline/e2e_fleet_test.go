package main

// End-to-end tests of `lifeline agent --config FILE`: one agent process
// supervising many bots. Each keeps the promises a lone agent makes for its
// bot, and one bot's trouble reaches no other.

import (
	"context"
	"fmt"
	"maps"
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

// e2eFleet is a dashboard and one fleet agent supervising the bots of
// fleet.toml in the stack's directory.
type e2eFleet struct {
	*e2eStack
	nc    *nats.Conn
	fleet *e2eProc
	env   []string
}

// fleetSleep is a bot with no heartbeats: a plain process to keep alive.
const fleetSleep = `command = ["sleep", "100000"]
heartbeat_timeout = "0s"
`

// fleetDemo is the demo bot with hang detection after 1 s.
const fleetDemo = `heartbeat_timeout = "1s"
`

// fleetConfig writes a config whose defaults suit the tests (quick
// backoff and stop, bots stopped with the agent) and whose bots are given as
// name → the lines of their table.
func fleetConfig(bots map[string]string) string {
	var b strings.Builder
	b.WriteString("[defaults]\nstop_timeout = \"3s\"\nbackoff_max = \"200ms\"\nstop_bot_on_exit = true\n")
	for _, name := range slices.Sorted(maps.Keys(bots)) {
		fmt.Fprintf(&b, "\n[bot.%s]\n%s", name, bots[name])
	}
	return b.String()
}

func e2eNewFleet(t *testing.T, bots map[string]string) *e2eFleet {
	t.Helper()
	s := &e2eStack{t: t, dir: t.TempDir(), httpListen: "127.0.0.1:0", natsListen: "127.0.0.1:0"}
	s.startDashboard()
	f := &e2eFleet{e2eStack: s, env: e2eEnv("LIFELINE_HEARTBEAT=100ms", "LIFELINE_POLL=20ms")}
	f.nc = s.connect()
	f.writeConfig(fleetConfig(bots))
	t.Cleanup(func() {
		// Bots outlive a killed agent by design; not the test. Those a
		// reload added count too.
		files, _ := filepath.Glob(f.data("*.pid"))
		for _, file := range files {
			if strings.HasSuffix(file, ".agent.pid") {
				continue
			}
			if pid, err := f.pidOf(strings.TrimSuffix(filepath.Base(file), ".pid")); err == nil {
				e2eKill(pid)
			}
		}
	})
	f.fleet = f.startFleet()
	for name := range bots {
		f.running(name)
	}
	return f
}

func (f *e2eFleet) writeConfig(data string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "fleet.toml"), []byte(data), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *e2eFleet) startFleet() *e2eProc {
	f.t.Helper()
	return e2eStart(f.t, "fleet agent", f.dir, f.env, "agent", "--config", "fleet.toml", "--nats-url", f.natsURL)
}

func (f *e2eFleet) pidOf(name string) (int, error) {
	data, err := os.ReadFile(f.data(name + ".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// status asks the bot's agent over the bus.
func (f *e2eFleet) status(name string) (bus.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return bus.AskStatus(ctx, f.nc, name)
}

// running waits until the agent reports the bot running and returns its PID.
func (f *e2eFleet) running(name string) int {
	f.t.Helper()
	var st bus.Status
	e2eWait(f.t, 20*time.Second, name+" running", func() (bool, string) {
		var err error
		st, err = f.status(name)
		return err == nil && st.State == bus.StateRunning && st.PID > 0, fmt.Sprintf("%+v %v", st, err)
	})
	return st.PID
}

// pids returns the running PID of every named bot.
func (f *e2eFleet) pids(names ...string) map[string]int {
	f.t.Helper()
	out := make(map[string]int, len(names))
	for _, n := range names {
		out[n] = f.running(n)
	}
	return out
}

// samePIDs fails unless every bot of want still runs as the same process.
func (f *e2eFleet) samePIDs(want map[string]int) {
	f.t.Helper()
	for name, pid := range want {
		if got := f.running(name); got != pid {
			f.t.Errorf("bot %s: pid %d, want %d untouched", name, got, pid)
		}
		if err := e2eProbe(pid); err != nil {
			f.t.Errorf("bot %s: pid %d is gone: %v", name, pid, err)
		}
	}
}

// respawned waits until the bot runs as a process other than old and
// returns how long that took from since.
func (f *e2eFleet) respawned(name string, old int, since time.Time, within time.Duration) (int, time.Duration) {
	f.t.Helper()
	var pid int
	e2eWait(f.t, within, name+" respawned", func() (bool, string) {
		st, err := f.status(name)
		pid = st.PID
		return err == nil && st.State == bus.StateRunning && st.PID > 0 && st.PID != old, fmt.Sprintf("%+v %v", st, err)
	})
	return pid, time.Since(since)
}

// Killing one bot of a multi-bot agent respawns it and touches no other.
func TestE2EFleetKillOneBot(t *testing.T) {
	f := e2eNewFleet(t, map[string]string{"a": fleetSleep, "b": fleetSleep, "c": fleetSleep})
	before := f.pids("a", "b", "c")
	if err := e2eKill(before["a"]); err != nil {
		t.Fatal(err)
	}
	f.respawned("a", before["a"], time.Now(), 10*time.Second)
	delete(before, "a")
	f.samePIDs(before)
}

// A hung bot (SIGSTOP) of a multi-bot agent is detected and replaced; the
// other bots, hung-detection on or off, are untouched.
func TestE2EFleetHangOneBot(t *testing.T) {
	f := e2eNewFleet(t, map[string]string{"h1": fleetDemo, "h2": fleetDemo, "s": fleetSleep})
	before := f.pids("h1", "h2", "s")
	if err := e2eFreeze(t, before["h1"]); err != nil {
		t.Fatal(err)
	}
	f.respawned("h1", before["h1"], time.Now(), 15*time.Second)
	delete(before, "h1")
	f.samePIDs(before)
}

// A crash-looping bot delays no other: the healthy bots keep their PIDs,
// and one of them killed meanwhile is respawned promptly.
func TestE2EFleetCrashLoopBesideHealthy(t *testing.T) {
	f := e2eNewFleet(t, map[string]string{
		"a": fleetSleep, "b": fleetSleep, "h": fleetDemo,
		"loop": "command = [\"sh\", \"-c\", \"exit 3\"]\nheartbeat_timeout = \"0s\"\nbackoff_max = \"2s\"\n",
	})
	before := f.pids("a", "b", "h")
	e2eWait(t, 20*time.Second, "the loop bot to crash again and again", func() (bool, string) {
		st, err := f.status("loop")
		return err == nil && st.Restarts >= 3, fmt.Sprintf("%+v %v", st, err)
	})
	f.samePIDs(before)
	for _, name := range []string{"a", "h"} {
		start := time.Now()
		if err := e2eKill(before[name]); err != nil {
			t.Fatal(err)
		}
		_, took := f.respawned(name, before[name], start, 10*time.Second)
		if took > 2*time.Second {
			t.Errorf("bot %s respawned after %s beside a crash loop; want well under 2s", name, took)
		}
		delete(before, name)
	}
	f.samePIDs(before)
}

// After kill -9 of the agent, a new agent on the same config adopts every
// running bot: the same processes, none started again.
func TestE2EFleetAgentKilledNewAgentAdoptsAll(t *testing.T) {
	f := e2eNewFleet(t, map[string]string{"a": fleetSleep, "b": fleetSleep, "h": fleetDemo})
	before := f.pids("a", "b", "h")
	f.fleet.signal(syscall.SIGKILL)
	f.fleet.wait(10 * time.Second)
	f.fleet = f.startFleet()
	e2eWait(t, 20*time.Second, "every bot adopted", func() (bool, string) {
		return strings.Count(f.fleet.out.String(), "bot adopted") >= len(before), f.fleet.out.String()
	})
	f.samePIDs(before)
	if n := strings.Count(f.fleet.out.String(), "bot adopted"); n != len(before) {
		t.Errorf("%d bots adopted, want %d:\n%s", n, len(before), f.fleet.out)
	}
	if strings.Contains(f.fleet.out.String(), "bot started") {
		t.Errorf("the new agent started a bot instead of adopting it:\n%s", f.fleet.out)
	}
}

// A second agent on the same config is refused, naming the bots, and
// changes nothing.
func TestE2EFleetTwoAgentsOneConfig(t *testing.T) {
	f := e2eNewFleet(t, map[string]string{"a": fleetSleep, "b": fleetSleep})
	before := f.pids("a", "b")
	second := f.startFleet()
	if code := second.wait(20 * time.Second); code == 0 {
		t.Fatalf("second agent exited 0; output:\n%s", second.out)
	}
	out := second.out.String()
	for _, want := range []string{"another agent already supervises", `"a"`, `"b"`} {
		if !strings.Contains(out, want) {
			t.Errorf("second agent's refusal does not say %q:\n%s", want, out)
		}
	}
	// Also a lone agent for one of the bots.
	lone := e2eStart(t, "lone agent", f.dir, f.env, "agent", "--name", "b", "--nats-url", f.natsURL, "--", "sleep", "100000")
	if code := lone.wait(20 * time.Second); code == 0 {
		t.Fatalf("lone agent for a fleet's bot exited 0; output:\n%s", lone.out)
	}
	f.samePIDs(before)
	if strings.Contains(f.fleet.out.String(), "bot stopped") {
		t.Errorf("the first agent stopped a bot:\n%s", f.fleet.out)
	}
}

// SIGHUP applies the file with the least disruption: an unchanged bot keeps
// its process, a removed one is stopped, a changed one restarted, an added
// one started.
func TestE2EFleetReload(t *testing.T) {
	f := e2eNewFleet(t, map[string]string{"same": fleetSleep, "gone": fleetSleep, "changed": fleetSleep})
	before := f.pids("same", "gone", "changed")
	f.writeConfig(fleetConfig(map[string]string{
		"same":    fleetSleep,
		"changed": fleetSleep + "env = { MODE = \"live\" }\n",
		"added":   fleetSleep,
	}))
	f.fleet.signal(syscall.SIGHUP)
	f.fleet.waitOutput("msg=reloaded", 20*time.Second)
	f.samePIDs(map[string]int{"same": before["same"]})
	f.respawned("changed", before["changed"], time.Now(), 10*time.Second)
	f.running("added")
	e2eWait(t, 10*time.Second, "the removed bot's process to be gone", func() (bool, string) {
		return e2eProbe(before["gone"]) != nil, ""
	})
	if _, err := f.status("gone"); err == nil {
		t.Error("the removed bot still has an agent on the bus")
	}
	env, err := e2eProcEnviron(f.running("changed"))
	if err != nil || !strings.Contains(string(env), "MODE=live") {
		t.Errorf("the changed bot does not run with its new env (%v)", err)
	}
	if f.fleet.pid() == 0 || e2eProbe(f.fleet.pid()) != nil {
		t.Error("the agent did not survive SIGHUP")
	}
}

// A bad file on SIGHUP is refused with its line and reason, and nothing
// changes; the agent keeps going and takes the next good file.
func TestE2EFleetReloadBadFileChangesNothing(t *testing.T) {
	f := e2eNewFleet(t, map[string]string{"a": fleetSleep, "b": fleetSleep})
	before := f.pids("a", "b")
	good, err := os.ReadFile(filepath.Join(f.dir, "fleet.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// Drop b, add c, and misspell a key at line 3: none of it may happen.
	f.writeConfig("[defaults]\nstop_timeout = \"3s\"\nheartbeat_timout = \"1s\"\n[bot.a]\n" + fleetSleep + "[bot.c]\n" + fleetSleep)
	f.fleet.signal(syscall.SIGHUP)
	line := f.fleet.waitOutput("reload refused", 20*time.Second)
	if !strings.Contains(line, "fleet.toml:3:") || !strings.Contains(line, "heartbeat_timout") {
		t.Errorf("refusal does not give the line and reason: %s", line)
	}
	f.samePIDs(before)
	if _, err := f.status("c"); err == nil {
		t.Error("bot c of the refused file was started")
	}
	// The next good file is taken.
	f.writeConfig(string(good) + "\n[bot.c]\n" + fleetSleep)
	f.fleet.signal(syscall.SIGHUP)
	f.fleet.waitOutput("msg=reloaded", 20*time.Second)
	f.running("c")
	f.samePIDs(before)
}

// --check exits 0 for a good file and 2 for a bad one, saying file:line and
// why; a bad file at start starts nothing.
func TestE2EFleetCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(data string) {
		if err := os.WriteFile(filepath.Join(dir, "fleet.toml"), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, int) {
		p := e2eStart(t, "check", dir, e2eEnv(), append([]string{"agent", "--config", "fleet.toml"}, args...)...)
		code := p.wait(20 * time.Second)
		return p.out.String(), code
	}
	write("[bot.a]\n" + fleetSleep + "[bot.b]\n")
	if out, code := run("--check"); code != 0 || !strings.Contains(out, "ok, 2 bots: a, b") {
		t.Errorf("good file: exit %d, output %q", code, out)
	}
	for _, c := range []struct{ data, want string }{
		{"[bot.a]\ncommand = [\"sleep\"\n", "fleet.toml:2:"},
		{"[bot.a]\n\nstop_timeout = \"soon\"\n", `fleet.toml:3: bot.a.stop_timeout: "soon" is not a duration`},
		{"[bot.a]\nbackoff_min = \"2s\"\nbackoff_max = \"1s\"\n", "fleet.toml:3: bot \"a\": backoff_max 1s is shorter"},
		{"[bot.a]\npid_file = \"x.pid\"\n[bot.b]\npid_file = \"x.pid\"\n", "fleet.toml:4:"},
		{"[bot.a]\nnope = 1\n", `fleet.toml:2: unknown key "bot.a.nope"`},
	} {
		write(c.data)
		if out, code := run("--check"); code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("file %q: exit %d, output %q; want 2 and %q", c.data, code, out, c.want)
		}
	}
	// Started on a bad file, the agent starts nothing.
	write("[bot.a]\n" + fleetSleep + "[bot.b]\nstop_timeout = \"0s\"\n")
	if out, code := run(); code != 2 || !strings.Contains(out, "fleet.toml:5:") {
		t.Errorf("agent on a bad file: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "a.pid")); err == nil {
		t.Error("an agent refused its file yet started bot a")
	}
}
