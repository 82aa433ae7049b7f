package main

// A refusal says so, at once: the client commands log in (--nats-nkey, the
// URL's user, or the seed of a dashboard started in the same directory), and
// a login the bus refuses, or a request it may not make, fails within a
// second with exit 1 and the cause in our words, and changes nothing.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// refusalTimeout is the --timeout of the refused commands: a refusal must
// come long before it.
const (
	refusalTimeout = "40s"
	refusalWithin  = 3 * time.Second
)

// cliRun runs the built binary in dir with env, and says how long it took.
func cliRun(t *testing.T, dir string, env []string, args ...string) (res result, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2eBin(t), args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	res = result{code: 0, stdout: out.String(), stderr: errb.String()}
	if err != nil {
		res.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			res.code = ee.ExitCode()
		}
	}
	return res, took
}

// assertRefused checks a refused command: exit 1 well within its timeout,
// one line on stderr naming the cause, and no line of nats.go's own.
func assertRefused(t *testing.T, what string, r result, took time.Duration, cause string) {
	t.Helper()
	if r.code != exitFailure {
		t.Errorf("%s: exit %d, want %d; stderr %q", what, r.code, exitFailure, r.stderr)
	}
	if took > refusalWithin {
		t.Errorf("%s: took %v with --timeout %s: it waited instead of failing at once", what, took, refusalTimeout)
	}
	if !strings.HasPrefix(r.stderr, "lifeline: ") || !strings.Contains(r.stderr, cause) {
		t.Errorf("%s: stderr does not name the cause %q: %q", what, cause, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("%s: want one line on stderr, got %q", what, r.stderr)
	}
	if low := strings.ToLower(r.stderr); strings.Contains(low, "nats: ") || strings.Contains(low, "violation") {
		t.Errorf("%s: a raw nats.go line reached the terminal: %q", what, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("%s: stdout not empty: %q", what, r.stdout)
	}
}

// assertUnchanged checks that the bot is the same process and that no
// lifecycle event beyond its first start happened.
func assertUnchanged(t *testing.T, s *e2eStack, pid int) {
	t.Helper()
	if st := s.running(); st.PID != pid {
		t.Errorf("bot pid %d, was %d: a refused command changed it", st.PID, pid)
	}
	if got, err := s.pidFromFile(); err != nil || got != pid {
		t.Errorf("pid file: %d, %v; want %d", got, err, pid)
	}
	if !e2eAlive(pid) {
		t.Errorf("bot %d is gone", pid)
	}
	for _, ev := range s.events() {
		if ev.Type != bus.EventStarted {
			t.Errorf("event %s (pid %d, by %q) after refused commands", ev.Type, ev.PID, ev.RequestedBy)
		}
	}
}

// strangerSeed is the operator seed of another dashboard's bus directory:
// a well-formed nkey the bus under test does not know.
func strangerSeed(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bus")
	if _, err := bus.EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	return bus.SeedFile(dir, bus.LoginOperator)
}

// The README's users-file setup: a viewer's restart is refused by the bus
// at once, a wrong password or nkey at login; the bot is untouched.
func TestCLIRefusalsWithUsersFile(t *testing.T) {
	s := &e2eStack{t: t, dir: t.TempDir(), httpListen: "127.0.0.1:0", natsListen: "127.0.0.1:0"}
	s.agentArgs = []string{"--heartbeat-timeout", "1s", "--stop-timeout", "3s", "--backoff-max", "200ms"}
	s.agentEnv = e2eEnv("LIFELINE_HEARTBEAT=100ms", "LIFELINE_POLL=20ms")
	users := "operator op   operator-secret\nviewer   v1   viewer-secret-1\nagent    ag   agent-secret-12  *\n"
	if err := os.WriteFile(filepath.Join(s.dir, "users.txt"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	s.dash = e2eStart(t, "dashboard", s.dir, e2eEnv(), "dashboard", "--http", s.httpListen, "--nats-listen", s.natsListen,
		"--data", "data", "--nats-users", "users.txt")
	page := s.dash.waitOutput("page:", 15*time.Second)
	s.httpURL = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(page), "page:")), "/")
	s.natsListen = strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s.dash.waitOutput("bus:", 5*time.Second)), "bus:")), "nats://")
	tok, err := os.ReadFile(s.data("dashboard.token"))
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	s.token = strings.TrimSpace(string(tok))
	as := func(user, pass string) string { return "NATS_URL=nats://" + user + ":" + pass + "@" + s.natsListen }
	s.natsURL = strings.TrimPrefix(as("ag", "agent-secret-12"), "NATS_URL=")
	s.startAgent()
	pid := s.running().PID

	// The operator may: the logins work.
	if r, _ := cliRun(t, s.dir, e2eEnv(as("op", "operator-secret")), "status"); r.code != exitOK || !strings.HasPrefix(r.stdout, "bot  running") {
		t.Fatalf("operator status: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, op := range []string{"restart", "stop", "start"} {
		r, took := cliRun(t, s.dir, e2eEnv(as("v1", "viewer-secret-1")), op, "--timeout", refusalTimeout)
		assertRefused(t, "viewer "+op, r, took, "the bus refused: login v1 may not "+op+" bots")
	}
	for _, tc := range []struct {
		what  string
		env   []string
		args  []string
		cause string
	}{
		{"wrong password", e2eEnv(as("v1", "not-the-password")), nil, "the bus refused the login: wrong user, password or nkey"},
		{"unknown user", e2eEnv(as("mallory", "viewer-secret-1")), nil, "the bus refused the login: wrong user, password or nkey"},
		{"nkey", e2eEnv("NATS_URL=nats://" + s.natsListen), []string{"--nats-nkey", strangerSeed(t)}, "the bus refused the login"},
		{"no login", e2eEnv("NATS_URL=nats://" + s.natsListen), nil, "the bus refused the login: the bus at nats://" + s.natsListen + " takes no anonymous client"},
	} {
		for _, op := range []string{"status", "restart"} {
			r, took := cliRun(t, s.dir, tc.env, append([]string{op, "--timeout", refusalTimeout}, tc.args...)...)
			assertRefused(t, tc.what+" "+op, r, took, tc.cause)
			if strings.Contains(r.stderr, "not-the-password") || strings.Contains(r.stderr, "viewer-secret-1") {
				t.Errorf("%s: stderr shows the password: %q", tc.what, r.stderr)
			}
		}
	}
	assertUnchanged(t, s, pid)
}

// Beside a dashboard started in the same directory, the client commands log
// in with its data/bus/operator.nk and need no flag; a viewer's or a
// stranger's seed is refused at once; elsewhere nothing logs in.
func TestCLIZeroConfigLogin(t *testing.T) {
	s := e2eNewStack(t)
	pid := s.running().PID
	env := e2eEnv("NATS_URL=" + s.natsURL)

	r, _ := cliRun(t, s.dir, env, "status")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "bot  running  pid ") {
		t.Fatalf("status with no flags beside the dashboard: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r, took := cliRun(t, s.dir, env, "restart", "--timeout", refusalTimeout, "--nats-nkey", s.data("bus", "viewer.nk"))
	assertRefused(t, "viewer seed restart", r, took, "the bus refused: login viewer may not restart bots")
	r, took = cliRun(t, s.dir, e2eEnv("NATS_URL="+s.natsURL, "LIFELINE_NATS_NKEY="+strangerSeed(t)), "restart", "--timeout", refusalTimeout)
	assertRefused(t, "stranger seed restart", r, took, "the bus refused the login: wrong user, password or nkey")
	r, took = cliRun(t, t.TempDir(), env, "status", "--timeout", refusalTimeout)
	assertRefused(t, "status elsewhere", r, took, "takes no anonymous client")
	assertUnchanged(t, s, pid)

	// The operator seed beside the dashboard may restart.
	r, _ = cliRun(t, s.dir, env, "restart")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "bot restarted: pid ") {
		t.Fatalf("restart with no flags beside the dashboard: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// In-process: --nats-nkey and LIFELINE_NATS_NKEY log in with a seed of a bus
// directory; a viewer's restart never reaches the agent.
func TestClientNkeyLogin(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	busDir := filepath.Join(dir, bus.DefaultDir)
	users, err := bus.EnsureDir(busDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: t.Name(), Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	url := srv.ClientURL()

	login, err := bus.ResolveLogin(url, bus.SeedFile(busDir, bus.LoginAgent), "")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := login.Options()
	if err != nil {
		t.Fatal(err)
	}
	agent, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("agent login: %v", err)
	}
	t.Cleanup(agent.Close)
	var restarts atomic.Int32
	agent.Subscribe(bus.AgentSubject("bot", bus.OpStatus), func(m *nats.Msg) {
		m.Respond(bus.Encode(bus.Status{Name: "bot", State: bus.StateStopped}))
	})
	agent.Subscribe(bus.AgentSubject("bot", bus.OpRestart), func(m *nats.Msg) {
		restarts.Add(1)
		m.Respond(bus.Encode(bus.Reply{OK: true, OldPID: 2, NewPID: 3}))
	})
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}

	if r := runCLI(t, "status", "--nats-url", url, "--nats-nkey", bus.SeedFile(busDir, bus.LoginViewer)); r.code != exitOK {
		t.Fatalf("viewer status: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Setenv("LIFELINE_NATS_NKEY", bus.SeedFile(busDir, bus.LoginViewer))
	start := time.Now()
	r := runCLI(t, "restart", "--nats-url", url, "--timeout", refusalTimeout)
	if took := time.Since(start); r.code != exitFailure || took > refusalWithin ||
		!strings.HasPrefix(r.stderr, "lifeline: the bus refused: login viewer may not restart bots; ") {
		t.Errorf("viewer restart: exit %d in %v, stderr %q", r.code, took, r.stderr)
	}
	if n := restarts.Load(); n != 0 {
		t.Errorf("%d refused restarts reached the agent", n)
	}

	// Zero-config: in the directory that holds data/bus, on loopback.
	os.Unsetenv("LIFELINE_NATS_NKEY")
	t.Chdir(dir)
	if r := runCLI(t, "restart", "--nats-url", url); r.code != exitOK || r.stdout != "bot restarted: pid 2 → 3 in 0 ms\n" {
		t.Fatalf("restart with the operator seed found beside: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// A seed readable by others is refused before anything connects.
	loose := filepath.Join(t.TempDir(), "loose.nk")
	seed, _ := os.ReadFile(bus.SeedFile(busDir, bus.LoginOperator))
	os.WriteFile(loose, seed, 0o644)
	os.Chmod(loose, 0o644)
	if r := runCLI(t, "status", "--nats-url", url, "--nats-nkey", loose); r.code != exitFailure || !strings.Contains(r.stderr, "not private") {
		t.Errorf("world-readable seed: exit %d, stderr %q", r.code, r.stderr)
	}
}
