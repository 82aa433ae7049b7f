package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// TestE2EQuickStart is the README's quick start: a dashboard, an agent and the
// demo bot, seen through HTTP and the CLI, doing its work.
func TestE2EQuickStart(t *testing.T) {
	s := e2eNewStack(t)
	st := s.running()
	if st.Restarts != 0 || st.Agent.PID != s.agent.pid() {
		t.Fatalf("status %+v", st)
	}
	if pid, err := s.pidFromFile(); err != nil || pid != st.PID {
		t.Fatalf("pid file %d (%v), status %d", pid, err, st.PID)
	}
	out, errOut, code := s.cli("status")
	if code != 0 || !strings.Contains(out, "running") || !strings.Contains(out, strconv.Itoa(st.PID)) {
		t.Fatalf("lifeline status: code %d\n%s%s", code, out, errOut)
	}
	out, _, code = s.cli("status", "--json")
	var js bus.Status
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || js.PID != st.PID {
		t.Fatalf("lifeline status --json: code %d: %s", code, out)
	}
	// The demo bot does its job: an inbox item is posted to the outbox.
	os.WriteFile(s.data("inbox", "hello.txt"), []byte("one two three\n"), 0o644)
	e2eWait(t, 10*time.Second, "hello.txt posted", func() (bool, string) {
		data, err := os.ReadFile(s.data("outbox", "hello.txt.json"))
		return err == nil && strings.Contains(string(data), `"words":3`), string(data)
	})
	// The result is posted first, then the item removed: wait for both.
	e2eWait(t, 10*time.Second, "hello.txt removed from the inbox", func() (bool, string) {
		_, err := os.Stat(s.data("inbox", "hello.txt"))
		return os.IsNotExist(err), fmt.Sprint(err)
	})
	if code, body := s.api("GET", "/healthz"); code != 200 || string(body) != "ok" {
		t.Fatalf("healthz: %d %s", code, body)
	}
	// Ctrl+C: the agent (started with --stop-bot-on-exit) stops the bot;
	// the bot removes its PID file.
	s.agent.signal(syscall.SIGINT)
	if code := s.agent.wait(15 * time.Second); code != 0 {
		t.Fatalf("agent exit %d", code)
	}
	e2eWaitGone(t, st.PID)
	if _, err := os.Stat(s.data("bot.pid")); !os.IsNotExist(err) {
		t.Fatalf("pid file left after clean stop: %v", err)
	}
	s.dash.signal(syscall.SIGTERM)
	if code := s.dash.wait(15 * time.Second); code != 0 {
		t.Fatalf("dashboard exit %d", code)
	}
}

func TestE2EKilledBotIsRespawnedOnce(t *testing.T) {
	s := e2eNewStack(t)
	first := s.running()
	e2eKill(first.PID)
	ev := s.waitEvent(bus.EventCrashed, first.PID)
	if !strings.Contains(ev.Reason, "killed") {
		t.Fatalf("crash reason %q", ev.Reason)
	}
	st := s.waitStatus("respawned bot", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.Restarts != 1 {
		t.Fatalf("restarts %d, want 1", st.Restarts)
	}
	e2eWaitGone(t, first.PID)
	if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != st.PID {
		t.Fatalf("bot processes %v, want only %d", bots, st.PID)
	}
}

func TestE2EStoppedBotIsHungKilledAndRespawned(t *testing.T) {
	s := e2eNewStack(t)
	first := s.running()
	e2eFreeze(t, first.PID)
	s.waitEvent(bus.EventHung, first.PID)
	s.waitEvent(bus.EventKilled, first.PID)
	st := s.waitStatus("respawned bot", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.LastExit == nil || st.LastExit.Reason != "hung" || st.Restarts != 1 {
		t.Fatalf("status after hang %+v, last exit %+v", st, st.LastExit)
	}
	e2eWaitGone(t, first.PID) // the stopped process really is gone
}

func TestE2ERestartThroughHTTPBusAndCLI(t *testing.T) {
	s := e2eNewStack(t)
	pid := s.running().PID

	// HTTP.
	code, body := s.api("POST", "/api/bot/restart")
	var r bus.Reply
	if code != 200 || json.Unmarshal(body, &r) != nil || !r.OK || r.OldPID != pid || r.NewPID == pid {
		t.Fatalf("HTTP restart: %d %s", code, body)
	}
	e2eWaitGone(t, pid)
	pid = r.NewPID
	if st := s.running(); st.PID != pid || st.Restarts != 1 {
		t.Fatalf("after HTTP restart: %+v", st)
	}

	// The bus, as any NATS client would.
	msg, err := s.connect().Request(bus.AgentSubject("bot", bus.OpRestart), nil, 20*time.Second)
	if err != nil || json.Unmarshal(msg.Data, &r) != nil || !r.OK || r.OldPID != pid {
		t.Fatalf("bus restart: %v %s", err, msg.Data)
	}
	e2eWaitGone(t, pid)
	pid = r.NewPID

	// The CLI prints old and new PID.
	out, errOut, code := s.cli("restart")
	if code != 0 || !strings.Contains(out, strconv.Itoa(pid)) {
		t.Fatalf("lifeline restart: %d\n%s%s", code, out, errOut)
	}
	e2eWaitGone(t, pid)
	st := s.running()
	if st.Restarts != 3 || !strings.Contains(out, strconv.Itoa(st.PID)) {
		t.Fatalf("after CLI restart: %+v, output %q", st, out)
	}
	// Who asked is on record.
	var sawCLI bool
	for _, ev := range s.events() {
		// The login the bus vouches for, then what the CLI says of itself.
		if ev.Type == bus.EventRestarted && strings.HasPrefix(ev.RequestedBy, "operator (cli ") {
			sawCLI = true
		}
	}
	if !sawCLI {
		t.Fatalf("no restarted event requested by the CLI: %+v", s.events())
	}
}

func TestE2EStockNATSCLI(t *testing.T) {
	nats, err := exec.LookPath("nats")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the stock NATS CLI is missing; .ci/run installs it (go install github.com/nats-io/natscli/nats@v0.5.0)")
		}
		t.Skip("stock NATS CLI not installed: go install github.com/nats-io/natscli/nats@v0.5.0")
	}
	s := e2eNewStack(t)
	pid := s.running().PID
	// As the README says: the operator's seed file, and its own inbox.
	natsCmd := func(args ...string) *exec.Cmd {
		cmd := exec.Command(nats, append([]string{"--server", s.natsURL, "--nkey", "data/bus/operator.nk",
			"--inbox-prefix", bus.InboxPrefix(bus.LoginOperator)}, args...)...)
		cmd.Dir = s.dir
		cmd.Env = e2eEnv("HOME=" + t.TempDir()) // no saved contexts
		return cmd
	}
	// Without a login the bus takes nothing, loopback included.
	anon := exec.Command(nats, "--server", s.natsURL, "req", "lifeline.agent.bot.stop", "")
	anon.Env = e2eEnv("HOME=" + t.TempDir())
	if out, err := anon.CombinedOutput(); err == nil || !strings.Contains(string(out), "Authorization Violation") {
		t.Fatalf("anonymous nats req stop: err %v\n%s", err, out)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := natsCmd(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("micro", "ls"); !strings.Contains(out, "lifeline-agent") || !strings.Contains(out, "lifeline-bot") {
		t.Fatalf("nats micro ls:\n%s", out)
	}
	if out := run("micro", "info", "lifeline-agent"); !strings.Contains(out, "lifeline.agent.bot.restart") {
		t.Fatalf("nats micro info:\n%s", out)
	}
	out := run("req", "lifeline.agent.bot.status", "")
	if !strings.Contains(out, `"state":"running"`) {
		t.Fatalf("nats req status:\n%s", out)
	}
	out = run("req", "--timeout", "20s", "lifeline.agent.bot.restart", "")
	if !strings.Contains(out, `"ok":true`) || !strings.Contains(out, `"old_pid":`+strconv.Itoa(pid)) {
		t.Fatalf("nats req restart:\n%s", out)
	}
	e2eWaitGone(t, pid)
	s.running()
	// A body the agent does not understand is refused, and changes nothing.
	bad, _ := natsCmd("req", "lifeline.agent.bot.restart", "garbage").CombinedOutput()
	if !strings.Contains(string(bad), "bad request") {
		t.Fatalf("garbage request:\n%s", bad)
	}
	if st := s.running(); st.Restarts != 1 {
		t.Fatalf("garbage request changed state: %+v", st)
	}
	// The shared event history is a stream the stock CLI lists, holding the
	// restart above.
	e2eWait(t, 20*time.Second, "nats stream ls to list the event history", func() (bool, string) {
		out, _ := natsCmd("stream", "ls").CombinedOutput()
		return strings.Contains(string(out), "LIFELINE_EVENTS"), string(out)
	})
	e2eWait(t, 20*time.Second, "the restart in the stream", func() (bool, string) {
		out, _ := natsCmd("stream", "get", "LIFELINE_EVENTS", "--last-for", bus.HistorySubject("bot")).CombinedOutput()
		return strings.Contains(string(out), `"type":"restarted"`), string(out)
	})
}

func TestE2EStalePIDFileNamingALiveProcessIsNeverSignalled(t *testing.T) {
	bystander := exec.Command("sleep", "1000")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bystander.Process.Kill(); bystander.Wait() })
	s := &e2eStack{t: t, dir: t.TempDir(), httpListen: "127.0.0.1:0", natsListen: "127.0.0.1:0",
		agentArgs: []string{"--heartbeat-timeout", "1s"}, agentEnv: e2eEnv("LIFELINE_HEARTBEAT=100ms")}
	os.MkdirAll(s.data(), 0o755)
	os.WriteFile(s.data("bot.pid"), []byte(strconv.Itoa(bystander.Process.Pid)+"\n"), 0o644)
	s.startDashboard()
	s.startAgent()
	st := s.running()
	if st.PID == bystander.Process.Pid {
		t.Fatal("agent adopted an unrelated process")
	}
	if code, body := s.api("POST", "/api/bot/restart"); code != 200 {
		t.Fatalf("restart: %d %s", code, body)
	}
	s.waitStatus("restarted", func(n bus.Status) bool { return n.State == bus.StateRunning && n.PID != st.PID })
	if !e2eAlive(bystander.Process.Pid) {
		t.Fatal("the process named by the stale PID file was killed")
	}
}

func TestE2ESecondBotIsRefusedWithCode3(t *testing.T) {
	s := e2eNewStack(t)
	pid := s.running().PID
	second := e2eStart(t, "second bot", s.dir, e2eEnv(), "bot", "--nats-url", s.natsURL)
	if code := second.wait(15 * time.Second); code != 3 {
		t.Fatalf("second bot exit %d, want 3", code)
	}
	if out := second.out.String(); !strings.Contains(out, strconv.Itoa(pid)) {
		t.Fatalf("refusal does not name pid %d:\n%s", pid, out)
	}
	if st := s.running(); st.PID != pid || st.Restarts != 0 {
		t.Fatalf("first bot disturbed: %+v", st)
	}
}

func TestE2EDashboardKilledBotKeepsWorking(t *testing.T) {
	s := e2eNewStack(t)
	pid := s.running().PID
	s.dash.signal(syscall.SIGKILL)
	s.dash.wait(10 * time.Second)
	// Without the bus, the bot keeps its PID and keeps draining its inbox.
	os.WriteFile(s.data("inbox", "while-down.txt"), []byte("a b\n"), 0o644)
	e2eWait(t, 10*time.Second, "item posted while the dashboard is down", func() (bool, string) {
		_, err := os.Stat(s.data("outbox", "while-down.txt.json"))
		return err == nil, ""
	})
	if !e2eAlive(pid) {
		t.Fatal("bot died with the dashboard")
	}
	s.startDashboard()
	st := s.running()
	if st.PID != pid || st.Restarts != 0 {
		t.Fatalf("after dashboard restart: %+v", st)
	}
}

func TestE2EAgentKilledNewAgentAdoptsBot(t *testing.T) {
	s := e2eNewStack(t)
	pid := s.running().PID
	s.agent.signal(syscall.SIGKILL)
	s.agent.wait(10 * time.Second)
	// The bot is untouched, and the dashboard says no agent supervises it.
	st := s.waitStatus("agent gone", func(st bus.Status) bool { return !st.Agent.Connected })
	if st.PID != pid || !e2eAlive(pid) {
		t.Fatalf("bot changed without its agent: %+v", st)
	}
	if code, body := s.api("POST", "/api/bot/restart"); code != 503 || !strings.Contains(string(body), "no agent") {
		t.Fatalf("restart without agent: %d %s", code, body)
	}
	s.startAgent()
	s.waitEvent(bus.EventAdopted, pid)
	if st := s.running(); st.PID != pid {
		t.Fatalf("new agent runs pid %d, want adopted %d", st.PID, pid)
	}
	// Adopted means supervised: its death is seen and repaired.
	e2eKill(pid)
	s.waitStatus("respawn of adopted bot", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != pid })
}

func TestE2EBadInputIsRefusedClearly(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (string, int) {
		cmd := exec.Command(e2eBin(t), args...)
		cmd.Dir = dir
		cmd.Env = e2eEnv()
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	// A port in use: one clear line, exit 1, nothing half-started.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, code := run("dashboard", "--http", ln.Addr().String(), "--nats-listen", "127.0.0.1:0", "--data", "d1")
	if code != 1 || !strings.Contains(out, ln.Addr().String()) {
		t.Fatalf("http port in use: %d\n%s", code, out)
	}
	out, code = run("dashboard", "--http", "127.0.0.1:0", "--nats-listen", ln.Addr().String(), "--data", "d2")
	if code != 1 || !strings.Contains(out, ln.Addr().String()) {
		t.Fatalf("bus port in use: %d\n%s", code, out)
	}
	// A data dir that cannot be written.
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	out, code = run("dashboard", "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--data", "file/sub")
	if code != 1 || !strings.Contains(out, "file/sub") {
		t.Fatalf("bad data dir: %d\n%s", code, out)
	}
	for _, args := range [][]string{
		{"agent", "--name", "bad.name"},
		{"bot", "--name", "*"},
		{"status", "no spaces"},
		{"agent", "--heartbeat-timeout", "soon"},
		{"frobnicate"},
	} {
		if out, code := run(args...); code != 2 || strings.Count(strings.TrimSpace(out), "\n") > 1 {
			t.Errorf("%v: exit %d, want 2 and one line:\n%s", args, code, out)
		}
	}
	// An unreachable bus: exit 1 saying what to do.
	out, code = run("status", "--nats-url", "nats://127.0.0.1:1")
	if code != 1 || !strings.Contains(out, "cannot reach the bus") {
		t.Fatalf("unreachable bus: %d\n%s", code, out)
	}
}
