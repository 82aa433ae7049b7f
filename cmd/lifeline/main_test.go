package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/nats-io/nats.go"
)

// result is what one run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in-process, as main would.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// clearEnv keeps the developer's own LIFELINE_* and NATS_URL settings out of
// the tests (t.Setenv restores them afterwards).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LIFELINE_") || k == "NATS_URL" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestBadNamesAreUsageErrors(t *testing.T) {
	clearEnv(t)
	long := strings.Repeat("x", 65)
	for _, args := range [][]string{
		{"agent", "--name", "a b"},
		{"agent", "--name", "bot.1", "--", "sleep", "100"},
		{"bot", "--name", "a*"},
		{"bot", "--name", ""},
		{"status", "no/slash"},
		{"restart", long},
		{"stop", "x>"},
		{"start", "dots.are.subjects"},
		{"dashboard", "--default-bot", "x y"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			r := runCLI(t, args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitUsage, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "lifeline: ") || !strings.Contains(r.stderr, "bot name must be 1-64 characters") {
				t.Errorf("stderr does not explain the name rule: %q", r.stderr)
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("want one line on stderr, got %q", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
		})
	}
}

func TestBadDurationsAreUsageErrors(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"agent", "--heartbeat-timeout", "5x"},
		{"agent", "--heartbeat-timeout", "-1s"},
		{"agent", "--start-timeout", "0"},
		{"agent", "--stop-timeout", "soon"},
		{"agent", "--backoff-min", "0s"},
		{"agent", "--backoff-min", "2s", "--backoff-max", "1s"},
		{"agent", "--backoff-reset", "-5m"},
		{"bot", "--heartbeat", "0"},
		{"bot", "--poll", "fast"},
		{"status", "--timeout", "2"},
		{"status", "--timeout", "0s"},
		{"restart", "--timeout", "-1s"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			r := runCLI(t, args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitUsage, r.stderr)
			}
			// The flag package writes -flag, our own checks --flag.
			if flag := "-" + strings.TrimLeft(args[1], "-"); !strings.HasPrefix(r.stderr, "lifeline: ") || !strings.Contains(r.stderr, flag) {
				t.Errorf("stderr does not name the flag %s: %q", args[1], r.stderr)
			}
			if !strings.HasSuffix(r.stderr, "; see: lifeline "+args[0]+" --help\n") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want one line naming the help to read, got %q", r.stderr)
			}
		})
	}
}

func TestBadDurationFromEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv("LIFELINE_HEARTBEAT_TIMEOUT", "five seconds")
	r := runCLI(t, "agent")
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitUsage, r.stderr)
	}
	if !strings.Contains(r.stderr, "five seconds") || !strings.Contains(r.stderr, "LIFELINE_HEARTBEAT_TIMEOUT") {
		t.Errorf("stderr does not show the variable and its bad value: %q", r.stderr)
	}
	// An explicit flag wins, even over a malformed variable.
	c := &AgentCommand{}
	if err := c.ParseFlags([]string{"--heartbeat-timeout", "2s"}); err != nil || c.HeartbeatTimeout != 2*time.Second {
		t.Errorf("--heartbeat-timeout 2s with a bad LIFELINE_HEARTBEAT_TIMEOUT: %v, %v", c.HeartbeatTimeout, err)
	}
}

func TestOtherUsageErrors(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"status", "--no-such-flag"},
		{"status", "a", "b"},
		{"dashboard", "--http", "8000"},
		{"dashboard", "--nats-listen", "localhost"},
		{"agent", "--", ""},
		{"--nope"},
		{"help", "nope"},
		{"version", "extra"},
		{"dashboard", "extra"},
		{"bot", "--heartbeat"},
		{"restart", "--json=maybe"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			r := runCLI(t, args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitUsage, r.stderr)
			}
			if r.stderr == "" {
				t.Error("nothing on stderr")
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
			if len(args) == 0 {
				return // the usage, as a mistake
			}
			help := "lifeline --help"
			if newCommand(args[0], &env{}) != nil {
				help = "lifeline " + args[0] + " --help"
			}
			if !strings.HasPrefix(r.stderr, "lifeline: ") || !strings.HasSuffix(r.stderr, "; see: "+help+"\n") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want one line naming %q, got %q", help, r.stderr)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} {
		r := runCLI(t, args...)
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
		for _, want := range []string{"Usage: lifeline <command>", "LIFELINE_NATS_URL", "Examples:"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%q lacks %q:\n%s", args, want, r.stdout)
			}
		}
		for _, c := range commands {
			if !strings.Contains(r.stdout, "\n  "+c.name+" ") {
				t.Errorf("%q does not list %s:\n%s", args, c.name, r.stdout)
			}
		}
	}
	// No command at all: the same help, on stderr, as a usage mistake.
	r := runCLI(t)
	if r.code != exitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "Usage: lifeline <command>") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// help NAME is NAME --help.
	for _, c := range commands[:len(commands)-1] {
		h, f := runCLI(t, "help", c.name), runCLI(t, c.name, "-h")
		if h.code != exitOK || f.code != exitOK || h.stdout != f.stdout || !strings.HasPrefix(h.stdout, "Usage: lifeline "+c.name) {
			t.Errorf("help %s: exit %d/%d, stdout\n%s\nvs\n%s", c.name, h.code, f.code, h.stdout, f.stdout)
		}
	}
}

// flagSetOf returns the FlagSet sub-command name parses.
func flagSetOf(t *testing.T, name string) *flag.FlagSet {
	t.Helper()
	switch name {
	case "dashboard":
		return new(DashboardCommand).flagSet()
	case "agent":
		return new(AgentCommand).flagSet()
	case "bot":
		return new(BotCommand).flagSet()
	case "status":
		return new(StatusCommand).flagSet()
	case "ls":
		return new(LsCommand).flagSet()
	case "logs":
		return new(LogsCommand).flagSet()
	case "restart", "stop", "start":
		return new(controlCommand).flagSet(name)
	case "service":
		return new(ServiceCommand).flagSet()
	case "version":
		return newFlagSet(name)
	}
	t.Fatalf("no command %q", name)
	return nil
}

func TestHelpShowsEveryFlag(t *testing.T) {
	clearEnv(t)
	for _, c := range commands[:len(commands)-1] {
		r := runCLI(t, c.name, "--help")
		flagSetOf(t, c.name).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(r.stdout, "\n  --"+f.Name) || !strings.Contains(r.stdout, "($"+envName(f.Name)+")") {
				t.Errorf("%s --help lacks --%s or $%s:\n%s", c.name, f.Name, envName(f.Name), r.stdout)
			}
		})
	}
}

func TestEveryFlagFromEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv("LIFELINE_HEARTBEAT_TIMEOUT", "0")
	t.Setenv("LIFELINE_BACKOFF_RESET", "2m")
	t.Setenv("LIFELINE_STOP_BOT_ON_EXIT", "yes")
	t.Setenv("LIFELINE_PID_FILE", "/run/x.pid")
	t.Setenv("LIFELINE_NATS_URL", "nats://a:1,nats://b:2")
	t.Setenv("LIFELINE_LOG_FILE", "") // empty: unset
	a := &AgentCommand{}
	if err := a.ParseFlags([]string{"--backoff-reset", "90s"}); err != nil {
		t.Fatal(err)
	}
	if a.HeartbeatTimeout != 0 || a.BackoffReset != 90*time.Second || !a.StopBotOnExit ||
		a.PIDFile != "/run/x.pid" || a.NATSURL != "nats://a:1,nats://b:2" || a.LogFile != "" || a.StopTimeout != 10*time.Second {
		t.Errorf("agent from environment: %+v", a)
	}

	t.Setenv("LIFELINE_TOKEN", "s3cret-0123456789")
	t.Setenv("LIFELINE_VERBOSE", "1")
	t.Setenv("LIFELINE_HTTP", "127.0.0.1:9000")
	d := &DashboardCommand{}
	if err := d.ParseFlags([]string{"-http=127.0.0.1:9001"}); err != nil {
		t.Fatal(err)
	}
	if d.Token != "s3cret-0123456789" || !d.Verbose || d.HTTP != "127.0.0.1:9001" || d.NATSListen != "127.0.0.1:4222" {
		t.Errorf("dashboard from environment: %+v", d)
	}

	t.Setenv("LIFELINE_JSON", "true")
	t.Setenv("LIFELINE_TIMEOUT", "5s")
	t.Setenv("LIFELINE_NAME", "envbot")
	s := &StatusCommand{}
	if err := s.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if !s.JSON || s.Timeout != 5*time.Second || s.Name != "envbot" {
		t.Errorf("status from environment: %+v", s)
	}
	s = &StatusCommand{}
	if err := s.ParseFlags([]string{"-json=false", "--timeout=1s", "mybot"}); err != nil {
		t.Fatal(err)
	}
	if s.JSON || s.Timeout != time.Second || s.Name != "mybot" {
		t.Errorf("status flags over environment: %+v", s)
	}
}

func TestNameAmongFlags(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"mybot", "--json", "--timeout", "3s"},
		{"--json", "mybot", "--timeout", "3s"},
		{"--json", "--timeout=3s", "mybot"},
		{"-json", "-timeout", "3s", "--", "mybot"},
	} {
		c := &controlCommand{}
		if err := c.parseFlags("restart", args); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if c.Name != "mybot" || !c.JSON || c.Timeout != 3*time.Second {
			t.Errorf("%q: %+v", args, c)
		}
	}
	c := &StatusCommand{}
	if err := c.ParseFlags(nil); err != nil || c.Name != "bot" || c.Timeout != 2*time.Second || c.NATSURL != bus.DefaultURL {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}

func TestHelpTeaches(t *testing.T) {
	clearEnv(t)
	for _, cmd := range []string{"dashboard", "agent", "bot", "status", "restart", "stop", "start"} {
		r := runCLI(t, cmd, "--help")
		if r.code != exitOK {
			t.Fatalf("%s --help: exit %d; stderr: %s", cmd, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "lifeline "+cmd) {
			t.Errorf("%s --help has no examples:\n%s", cmd, r.stdout)
		}
	}
	r := runCLI(t, "agent", "--help")
	for _, want := range []string{"--heartbeat-timeout=5s", "--backoff-max=15s", "LIFELINE_NATS_URL", "--stop-bot-on-exit"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("agent --help lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestVersion(t *testing.T) {
	clearEnv(t)
	r := runCLI(t, "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "lifeline "+version+" (go") {
		t.Fatalf("version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestNameFromEnvironment(t *testing.T) {
	clearEnv(t)
	t.Run("validated", func(t *testing.T) {
		t.Setenv("LIFELINE_NAME", "bad name")
		for _, cmd := range []string{"agent", "bot", "status"} {
			r := runCLI(t, cmd)
			if r.code != exitUsage || !strings.Contains(r.stderr, `"bad name"`) {
				t.Errorf("%s with LIFELINE_NAME=\"bad name\": exit %d, stderr %q", cmd, r.code, r.stderr)
			}
		}
	})
	t.Run("used", func(t *testing.T) {
		srv := bustest.NewServer(t)
		fakeAgent(t, srv, "mybot", bus.OpStatus, bus.Status{Name: "mybot", State: bus.StateStopped, Agent: bus.AgentInfo{Connected: true}})
		t.Setenv("LIFELINE_NAME", "mybot")
		t.Setenv("LIFELINE_NATS_URL", srv.ClientURL())
		r := runCLI(t, "status")
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "mybot  stopped\n") {
			t.Fatalf("status: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("argument wins", func(t *testing.T) {
		srv := bustest.NewServer(t)
		fakeAgent(t, srv, "other", bus.OpStatus, bus.Status{Name: "other", State: bus.StateStopped})
		t.Setenv("LIFELINE_NAME", "mybot")
		r := runCLI(t, "status", "other", "--nats-url", srv.ClientURL())
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "other  stopped\n") {
			t.Fatalf("status other: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

func TestNATSURLFromEnvironment(t *testing.T) {
	clearEnv(t)
	srv := bustest.NewServer(t)
	fakeAgent(t, srv, "bot", bus.OpStatus, bus.Status{Name: "bot", State: bus.StateStopped})
	for _, env := range []string{"NATS_URL", "LIFELINE_NATS_URL"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, srv.ClientURL())
			r := runCLI(t, "status")
			if r.code != exitOK {
				t.Fatalf("status with %s: exit %d, stderr %q", env, r.code, r.stderr)
			}
		})
	}
}

// fakeAgent answers op for bot name on srv with reply, the way an agent would.
func fakeAgent(t *testing.T, srv *bus.Server, name, op string, reply any) {
	t.Helper()
	nc := bustest.MustConnect(t, srv)
	_, err := nc.Subscribe(bus.AgentSubject(name, op), func(m *nats.Msg) {
		if _, err := bus.DecodeRequest(m.Data); err != nil {
			m.Respond(bus.Encode(bus.Reply{Error: err.Error()}))
			return
		}
		m.Respond(bus.Encode(reply))
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func TestStatusOutput(t *testing.T) {
	clearEnv(t)
	srv := bustest.NewServer(t)
	started := time.Now().Add(-5*time.Minute - 3*time.Second)
	age := int64(310)
	st := bus.Status{
		Name: "bot", State: bus.StateRunning, PID: 4242, Host: "web-1",
		StartedAt: &started, HeartbeatAgeMS: &age, Restarts: 2,
		CPUPercent: 0.3, RSSBytes: 9_800_000,
		LastExit: &bus.Exit{At: time.Now(), Code: -1, Signal: "killed", Reason: "hung"},
		Agent:    bus.AgentInfo{PID: 4100, Host: "web-1", Connected: true},
	}
	fakeAgent(t, srv, "bot", bus.OpStatus, st)

	r := runCLI(t, "status", "--nats-url", srv.ClientURL())
	if r.code != exitOK {
		t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	want := []string{
		"bot  running  pid 4242 on web-1",
		"  up 5m3s · last heartbeat 310ms ago · restarts 2 · cpu 0.3% · rss 9.8 MB",
		"  last exit: killed by signal (hung) at ",
		"  agent: pid 4100 on web-1, connected",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), r.stdout)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], want[i])
		}
	}

	r = runCLI(t, "status", "--json", "--nats-url", srv.ClientURL())
	var got bus.Status
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != exitOK {
		t.Fatalf("--json: exit %d, stdout %q: %v", r.code, r.stdout, err)
	}
	if got.PID != 4242 || got.State != bus.StateRunning || *got.HeartbeatAgeMS != 310 {
		t.Errorf("--json round trip lost data: %+v", got)
	}
}

func TestWriteStatusStopped(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 5, 0, 0, time.Local)
	next := now.Add(3 * time.Second)
	var b bytes.Buffer
	writeStatus(&b, bus.Status{
		Name: "bot", State: bus.StateBackoff, Restarts: 7, NextStartAt: &next,
		LastExit: &bus.Exit{At: now.Add(-time.Second), Code: 1, Reason: "crashed"},
		Problem:  "data/bot.log: permission denied",
		Stats:    map[string]int64{"processed": 3, "failed": 1},
		Agent:    bus.AgentInfo{PID: 4100, Host: "web-1", Connected: true},
	}, now)
	want := "bot  backoff\n" +
		"  restarts 7\n" +
		"  next start in 3s\n" +
		"  last exit: exited with code 1 (crashed) at 10:04:59\n" +
		"  stats: failed 1 · processed 3\n" +
		"  problem: data/bot.log: permission denied\n" +
		"  agent: pid 4100 on web-1, connected\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestControlCommands(t *testing.T) {
	clearEnv(t)
	srv := bustest.NewServer(t)
	url := srv.ClientURL()
	fakeAgent(t, srv, "bot", bus.OpRestart, bus.Reply{OK: true, OldPID: 4242, NewPID: 4250, TookMS: 35})
	fakeAgent(t, srv, "bot", bus.OpStop, bus.Reply{OK: true, PID: 4242})
	fakeAgent(t, srv, "bot", bus.OpStart, bus.Reply{OK: true, PID: 4250})
	fakeAgent(t, srv, "sick", bus.OpRestart, bus.Reply{OK: false, Error: "bot did not start: exec: python3: not found"})

	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"restart"}, exitOK, "bot restarted: pid 4242 → 4250 in 35 ms\n"},
		{[]string{"stop"}, exitOK, "bot stopped (was pid 4242)\n"},
		{[]string{"start"}, exitOK, "bot started: pid 4250\n"},
		{[]string{"restart", "--json"}, exitOK, `{"ok":true,"old_pid":4242,"new_pid":4250,"took_ms":35}` + "\n"},
		{[]string{"restart", "sick"}, exitFailure, ""},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			r := runCLI(t, append(tc.args, "--nats-url", url)...)
			if r.code != tc.code || r.stdout != tc.out {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q", r.code, r.stdout, r.stderr, tc.code, tc.out)
			}
			if tc.code == exitFailure && !strings.Contains(r.stderr, "exec: python3: not found") {
				t.Errorf("stderr lacks the agent's error: %q", r.stderr)
			}
		})
	}
}

func TestRequestedBy(t *testing.T) {
	clearEnv(t)
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	got := make(chan bus.Request, 1)
	nc.Subscribe(bus.AgentSubject("bot", bus.OpRestart), func(m *nats.Msg) {
		req, _ := bus.DecodeRequest(m.Data)
		got <- req
		m.Respond(bus.Encode(bus.Reply{OK: true, OldPID: 2, NewPID: 3}))
	})
	nc.Flush()
	if r := runCLI(t, "restart", "--nats-url", srv.ClientURL()); r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	req := <-got
	if host, _ := os.Hostname(); !strings.HasPrefix(req.RequestedBy, "cli ") || !strings.HasSuffix(req.RequestedBy, "@"+host) {
		t.Errorf("requested_by %q, want cli <user>@%s", req.RequestedBy, host)
	}
}

func TestNoAgent(t *testing.T) {
	clearEnv(t)
	srv := bustest.NewServer(t)
	for _, cmd := range []string{"status", "restart", "stop", "start"} {
		r := runCLI(t, cmd, "--nats-url", srv.ClientURL())
		want := fmt.Sprintf(`lifeline: no agent is supervising bot "bot" (on %s); start one with: lifeline agent --name bot`+"\n", srv.ClientURL())
		if r.code != exitFailure || r.stderr != want {
			t.Errorf("%s: exit %d, stderr\n %q\nwant\n %q", cmd, r.code, r.stderr, want)
		}
	}
}

func TestSilentAgentTimesOut(t *testing.T) {
	clearEnv(t)
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	// Subscribed but never answering: a stuck agent, not a missing one.
	nc.Subscribe(bus.AgentSubject("bot", bus.OpStatus), func(*nats.Msg) {})
	nc.Flush()
	r := runCLI(t, "status", "--timeout", "50ms", "--nats-url", srv.ClientURL())
	if r.code != exitFailure || !strings.Contains(r.stderr, "no answer to status") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUnreachableBus(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	ln.Close() // nobody listens there any more
	for _, cmd := range []string{"status", "restart"} {
		r := runCLI(t, cmd, "--nats-url", url)
		if r.code != exitFailure ||
			!strings.HasPrefix(r.stderr, "lifeline: cannot reach the bus at "+url+": ") ||
			!strings.HasSuffix(r.stderr, "; is the dashboard running? set --nats-url or NATS_URL\n") {
			t.Errorf("%s: exit %d, stderr %q", cmd, r.code, r.stderr)
		}
	}
}

func TestBotRefusesHeldPIDFile(t *testing.T) {
	clearEnv(t)
	srv := bustest.NewServer(t)
	path := filepath.Join(t.TempDir(), "bot.pid")
	held, err := pidfile.Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Remove() })
	if err := held.WritePID(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"bot", "--pid-file", path, "--nats-url", srv.ClientURL(),
		"--inbox", filepath.Join(t.TempDir(), "in"), "--outbox", filepath.Join(t.TempDir(), "out")}, &stdout, &stderr)
	if code != exitLocked {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitLocked, stderr.String())
	}
	if !strings.Contains(stderr.String(), strconv.Itoa(os.Getpid())) {
		t.Errorf("stderr does not name the holder's pid %d: %q", os.Getpid(), stderr.String())
	}
}

func TestAgentCommandDropsSeparator(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		args []string
		name string
		want string
	}{
		{[]string{"--name", "x", "--", "python3", "bot.py", "--", "-v"}, "x", "python3 bot.py -- -v"},
		{[]string{"--", "python3", "bot.py", "--name", "y"}, "bot", "python3 bot.py --name y"},
		{[]string{"-name=x", "./worker", "--name", "y"}, "x", "./worker --name y"},
		{[]string{"--name", "x"}, "x", ""},
	} {
		c := &AgentCommand{}
		if err := c.ParseFlags(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := strings.Join(c.Command, " "); got != tc.want || c.Name != tc.name {
			t.Errorf("%q: name %q, command %q; want %q, %q", tc.args, c.Name, got, tc.name, tc.want)
		}
	}
}

// BenchmarkStatus measures `lifeline status` in-process, from parsing the
// command line to the printed answer (a fresh bus connection each time, as
// the real command makes), against an agent that answers at once. Process
// start-up and package initialisation come on top of this.
func BenchmarkStatus(b *testing.B) {
	srv := bustest.NewServer(b)
	nc := bustest.MustConnect(b, srv)
	age := int64(310)
	reply := bus.Encode(bus.Status{Name: "bot", State: bus.StateRunning, PID: 4242, HeartbeatAgeMS: &age})
	if _, err := nc.Subscribe(bus.AgentSubject("bot", bus.OpStatus), func(m *nats.Msg) { m.Respond(reply) }); err != nil {
		b.Fatal(err)
	}
	nc.Flush()
	args := []string{"status", "--nats-url", srv.ClientURL()}
	for b.Loop() {
		var stdout, stderr bytes.Buffer
		if code := run(b.Context(), args, &stdout, &stderr); code != exitOK {
			b.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
}

// BenchmarkParse measures building the status FlagSet and parsing a
// command line with it.
func BenchmarkParse(b *testing.B) {
	args := []string{"mybot", "--nats-url", "nats://127.0.0.1:1"}
	e := &env{stdout: io.Discard, stderr: io.Discard, version: version}
	for b.Loop() {
		c := &StatusCommand{clientFlags: clientFlags{env: e}}
		if err := c.ParseFlags(args); err != nil {
			b.Fatal(err)
		}
	}
}
