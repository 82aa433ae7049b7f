package main

// The end-to-end harness: tests that run the built lifeline binary as real
// processes (dashboard, agent, demo bot) in a temporary directory, and talk
// to them the way users do, over HTTP, the bus and the CLI.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// e2eBinDir is where the lifeline binary is built: made before the tests
// run and removed after them, whether or not any test needed the binary.
var e2eBinDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lifeline-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	e2eBinDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// e2eBinFile is the path the lifeline binary is built to. Only e2eBin
// builds it; code that merely looks for processes started from it (such as
// botProcesses) compares against this path.
func e2eBinFile() string { return filepath.Join(e2eBinDir, "lifeline") }

// e2eBuild builds the lifeline binary the first time a test asks for it,
// once for the whole run, so that unit tests run without a build.
var e2eBuild = sync.OnceValues(func() (string, error) {
	path := e2eBinFile()
	build := exec.Command("go", "build", "-o", path, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build` does
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build lifeline: %w\n%s", err, out)
	}
	return path, nil
})

// e2eBin returns the path of the built lifeline binary, building it on
// first use; the test fails when it cannot be built.
func e2eBin(t testing.TB) string {
	t.Helper()
	path, err := e2eBuild()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eWait polls cond every few milliseconds until it holds or the deadline
// passes; it is how these tests wait for real processes, never a bare sleep.
func e2eWait(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// e2eEnv is the environment for child processes: the test's own, without
// any lifeline or NATS settings that would leak in from the developer's shell.
func e2eEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LIFELINE_") || strings.HasPrefix(kv, "NATS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// e2eOutput collects a process's output and lets tests wait for a line.
type e2eOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *e2eOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *e2eOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// e2eProc is one running lifeline process.
type e2eProc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *e2eOutput
	done chan struct{}
	code int
}

// e2eStart starts the binary with args in dir. The process is killed when
// the test ends if it is still running.
func e2eStart(t testing.TB, name, dir string, env []string, args ...string) *e2eProc {
	t.Helper()
	p := &e2eProc{t: t, name: name, out: &e2eOutput{}, done: make(chan struct{})}
	p.cmd = exec.Command(e2eBin(t), args...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, p.out)
		}
	})
	return p
}

func (p *e2eProc) pid() int { return p.cmd.Process.Pid }

func (p *e2eProc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *e2eProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s; output:\n%s", p.name, timeout, p.out)
		return -1
	}
}

// waitOutput waits until the process has printed a line containing s and
// returns that line.
func (p *e2eProc) waitOutput(s string, timeout time.Duration) string {
	p.t.Helper()
	var line string
	e2eWait(p.t, timeout, fmt.Sprintf("%s to print %q", p.name, s), func() (bool, string) {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			if strings.Contains(sc.Text(), s) {
				line = sc.Text()
				return true, ""
			}
		}
		return false, p.out.String()
	})
	return line
}

// e2eStack is a dashboard, an agent and its demo bot in one data directory.
type e2eStack struct {
	t     testing.TB
	dir   string
	dash  *e2eProc
	agent *e2eProc

	httpListen, natsListen string // fixed after the first start, so restarts reuse them
	httpURL, natsURL       string
	token                  string
	agentArgs              []string
	agentEnv               []string
}

// e2eNewStack starts a dashboard and an agent. The demo bot heartbeats every
// 100 ms and the agent declares it hung after 1 s, so failures show fast.
func e2eNewStack(t testing.TB, agentArgs ...string) *e2eStack {
	t.Helper()
	s := &e2eStack{t: t, dir: t.TempDir(), httpListen: "127.0.0.1:0", natsListen: "127.0.0.1:0"}
	s.agentArgs = append([]string{"--heartbeat-timeout", "1s", "--stop-timeout", "3s", "--backoff-max", "200ms"}, agentArgs...)
	s.agentEnv = e2eEnv("LIFELINE_HEARTBEAT=100ms", "LIFELINE_POLL=20ms")
	s.startDashboard()
	s.startAgent()
	return s
}

func (s *e2eStack) data(elem ...string) string {
	return filepath.Join(append([]string{s.dir, "data"}, elem...)...)
}

func (s *e2eStack) startDashboard() {
	s.t.Helper()
	s.dash = e2eStart(s.t, "dashboard", s.dir, e2eEnv(), "dashboard", "--http", s.httpListen, "--nats-listen", s.natsListen, "--data", "data")
	page := s.dash.waitOutput("page:", 15*time.Second)
	bus := s.dash.waitOutput("bus:", 5*time.Second)
	s.httpURL = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(page), "page:")), "/")
	s.natsURL = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(bus), "bus:"))
	s.httpListen = strings.TrimPrefix(s.httpURL, "http://")
	s.natsListen = strings.TrimPrefix(s.natsURL, "nats://")
	tok, err := os.ReadFile(s.data("dashboard.token"))
	if err != nil {
		s.t.Fatalf("token file: %v", err)
	}
	s.token = strings.TrimSpace(string(tok))
}

func (s *e2eStack) startAgent() *e2eProc {
	s.t.Helper()
	args := append([]string{"agent", "--nats-url", s.natsURL, "--stop-bot-on-exit"}, s.agentArgs...)
	s.agent = e2eStart(s.t, "agent", s.dir, s.agentEnv, args...)
	agent := s.agent
	s.t.Cleanup(func() {
		// The bot outlives a killed agent by design; make sure it does not
		// outlive the test. The agent goes first: a bot killed under a live
		// agent is respawned, and the new one would outlive the test.
		agent.signal(syscall.SIGKILL)
		<-agent.done
		if pid, err := s.pidFromFile(); err == nil {
			e2eKill(pid)
		}
	})
	return s.agent
}

func (s *e2eStack) pidFromFile() (int, error) {
	data, err := os.ReadFile(s.data("bot.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// api calls the HTTP API with the Bearer token.
func (s *e2eStack) api(method, path string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.httpURL+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// status reads the default bot's status from the dashboard.
func (s *e2eStack) status() (bus.Status, string) {
	code, body := s.api("GET", "/api/bot/status")
	var st bus.Status
	if code != 200 || json.Unmarshal(body, &st) != nil {
		return st, fmt.Sprintf("HTTP %d: %s", code, body)
	}
	return st, string(body)
}

// waitStatus waits until the dashboard reports a status satisfying cond.
func (s *e2eStack) waitStatus(what string, cond func(bus.Status) bool) bus.Status {
	s.t.Helper()
	var st bus.Status
	e2eWait(s.t, 20*time.Second, what, func() (bool, string) {
		var raw string
		st, raw = s.status()
		return st.Name != "" && cond(st), raw
	})
	return st
}

func (s *e2eStack) running() bus.Status {
	s.t.Helper()
	return s.waitStatus("bot running", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID > 0 && st.Agent.Connected
	})
}

// events returns the dashboard's recent events, newest first.
func (s *e2eStack) events() []bus.Event {
	s.t.Helper()
	code, body := s.api("GET", "/api/events")
	var out struct{ Events []bus.Event }
	if code != 200 || json.Unmarshal(body, &out) != nil {
		s.t.Fatalf("events: HTTP %d: %s", code, body)
	}
	return out.Events
}

func (s *e2eStack) waitEvent(typ bus.EventType, pid int) bus.Event {
	s.t.Helper()
	var found bus.Event
	e2eWait(s.t, 20*time.Second, fmt.Sprintf("%s event for pid %d", typ, pid), func() (bool, string) {
		evs := s.events()
		for _, ev := range evs {
			if ev.Type == typ && (pid == 0 || ev.PID == pid) {
				found = ev
				return true, ""
			}
		}
		return false, fmt.Sprint(evs)
	})
	return found
}

// cli runs a client command against the stack's bus.
func (s *e2eStack) cli(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2eBin(s.t), args...)
	cmd.Dir = s.dir
	cmd.Env = e2eEnv("NATS_URL=" + s.natsURL)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// connect opens a bus client to the stack as its operator login, closed
// when the test ends.
func (s *e2eStack) connect() *nats.Conn {
	s.t.Helper()
	return s.connectAs(bus.LoginOperator)
}

// connectAs opens a bus client to the stack with one of the logins of the
// dashboard's bus directory (bus.LoginOperator, bus.LoginAgent, ...).
func (s *e2eStack) connectAs(login string) *nats.Conn {
	s.t.Helper()
	return e2eConnect(s.t, s.natsURL, s.data("bus", login+".nk"))
}

// e2eConnect opens a bus client to urls logged in with seed file seed, as
// lifeline's own clients log in, closed when the test ends.
func e2eConnect(t testing.TB, urls, seed string) *nats.Conn {
	t.Helper()
	l, err := bus.ResolveLogin(urls, seed, "")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := l.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(urls, append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatalf("connect to bus: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// e2eWaitGone waits until pid is gone or a zombie.
func e2eWaitGone(t testing.TB, pid int) {
	t.Helper()
	e2eWait(t, 15*time.Second, fmt.Sprintf("process %d to be gone", pid), func() (bool, string) {
		return !e2eAlive(pid), "alive"
	})
}
