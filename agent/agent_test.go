package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("LIFELINE_TEST_BOT"); mode != "" {
		// This process is a fake bot, not a test run: it exits without
		// cleaning up, so it is no place for a leak check.
		os.Exit(fakeBot(mode))
	}
	// lumberjack's mill goroutine (one per bot log, see internal/logcap)
	// never ends.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

// harness is one agent under test, on a real bus, supervising real processes.
type harness struct {
	t      *testing.T
	agent  *Agent
	nc     *nats.Conn
	events chan bus.Event
	cancel context.CancelFunc
	errc   chan error
}

// botCommand runs this test binary as a fake bot in the given mode.
func botCommand(mode string) []string {
	return []string{"/usr/bin/env", "LIFELINE_TEST_BOT=" + mode, os.Args[0], "-test.run=^$"}
}

func newAgent(t *testing.T, url, dir, mode string) *Agent {
	return &Agent{
		Name:             "bot",
		NATSURL:          url,
		PIDFile:          filepath.Join(dir, "bot.pid"),
		LogFile:          filepath.Join(dir, "bot.log"),
		Command:          botCommand(mode),
		RequireHeartbeat: true, // the fake bot is an SDK bot: hold it to heartbeats
		HeartbeatTimeout: 400 * time.Millisecond,
		StartTimeout:     5 * time.Second,
		StopTimeout:      2 * time.Second,
		BackoffMin:       50 * time.Millisecond,
		BackoffMax:       200 * time.Millisecond,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

// mustStart runs a in the background, watching events on the same bus.
func mustStart(t *testing.T, nc *nats.Conn, a *Agent) *harness {
	t.Helper()
	h := &harness{t: t, agent: a, nc: nc, events: make(chan bus.Event, 256), errc: make(chan error, 1)}
	sub, err := nc.Subscribe(bus.EventsSubject(a.Name), func(m *nats.Msg) {
		if ev, err := bus.DecodeEvent(m.Data); err == nil {
			h.events <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.errc <- a.Run(ctx) }()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop ends the agent and waits for Run to return.
func (h *harness) stop() error {
	h.cancel()
	select {
	case err := <-h.errc:
		h.errc <- err // later calls see the same result
		return err
	case <-time.After(20 * time.Second):
		h.t.Fatal("agent did not stop")
		return nil
	}
}

// waitStatus asks the agent for its status until cond holds.
func (h *harness) waitStatus(what string, cond func(bus.Status) bool) bus.Status {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last bus.Status
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := bus.AskStatus(ctx, h.nc, h.agent.Name)
		cancel()
		if err == nil && cond(st) {
			return st
		}
		last, lastErr = st, err
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("waiting for %s: last status %+v, err %v", what, last, lastErr)
	return last
}

func (h *harness) running() bus.Status {
	h.t.Helper()
	return h.waitStatus("running", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID > 0 })
}

// waitEvent waits for an event of type typ, returning it.
func (h *harness) waitEvent(typ bus.EventType) bus.Event {
	h.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-h.events:
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			h.t.Fatalf("no %s event", typ)
		}
	}
}

func (h *harness) ask(op string, by string) (bus.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return bus.Ask(ctx, h.nc, h.agent.Name, op, bus.Request{RequestedBy: by})
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readPIDFile(t *testing.T, path string) int {
	t.Helper()
	pid, err := pidfile.Read(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}

// setup starts an agent for a fake bot in mode; stopBot says whether the bot
// goes when the agent does (the default is that it outlives it).
func setup(t *testing.T, mode string, stopBot bool) (*harness, string) {
	nc, a, dir := newTestAgent(t, mode)
	a.StopBotOnExit = stopBot
	return mustStart(t, nc, a), dir
}

// newTestAgent is newAgent in a fresh directory on a fresh bus, with a
// connection to that bus; not started, so that the test can adjust it first.
func newTestAgent(t *testing.T, mode string) (nc *nats.Conn, a *Agent, dir string) {
	t.Helper()
	srv := bustest.NewServer(t)
	nc = bustest.MustConnect(t, srv)
	dir = t.TempDir()
	return nc, newAgent(t, srv.ClientURL(), dir, mode), dir
}

// newChildrenAgent is newTestAgent for the "children" bot, which starts a
// child in its process group and writes the child's PID to childFile.
func newChildrenAgent(t *testing.T) (nc *nats.Conn, a *Agent, childFile string) {
	t.Helper()
	nc, a, dir := newTestAgent(t, "children")
	childFile = filepath.Join(dir, "child.pid")
	a.Command = append([]string{"/usr/bin/env", "LIFELINE_TEST_CHILD_FILE=" + childFile}, a.Command[1:]...)
	return nc, a, childFile
}

func TestKilledBotIsRespawnedOnce(t *testing.T) {
	h, _ := setup(t, "ok", true)
	first := h.running()
	sigkill(first.PID)
	ev := h.waitEvent(bus.EventCrashed)
	if ev.PID != first.PID || !strings.Contains(ev.Reason, "killed") {
		t.Fatalf("crash event %+v", ev)
	}
	st := h.waitStatus("respawned", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.Restarts != 1 || st.LastExit == nil || st.LastExit.Signal != "killed" || st.LastExit.Reason != "crashed" {
		t.Fatalf("after kill: %+v last exit %+v", st, st.LastExit)
	}
	waitGone(t, first.PID)
}

func TestSilentBotIsHungAfterStartTimeout(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	a := newAgent(t, srv.ClientURL(), t.TempDir(), "silent")
	a.StartTimeout = 300 * time.Millisecond
	a.StopBotOnExit = true // the respawned silent bot must not outlive the test
	h := mustStart(t, nc, a)
	ev := h.waitEvent(bus.EventHung)
	if !strings.Contains(ev.Reason, "first heartbeat") {
		t.Fatalf("hung reason %q", ev.Reason)
	}
	h.waitEvent(bus.EventKilled)
	waitGone(t, ev.PID)
}

func TestNoHangDetectionWhenTimeoutIsZero(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	a := newAgent(t, srv.ClientURL(), t.TempDir(), "silent")
	a.HeartbeatTimeout = 0
	a.StartTimeout = 100 * time.Millisecond
	a.StopBotOnExit = true
	h := mustStart(t, nc, a)
	st := h.running() // running at once: no heartbeat is expected
	// Crashes are still caught.
	sigkill(st.PID)
	h.waitEvent(bus.EventCrashed)
	h.waitStatus("respawned", func(s bus.Status) bool { return s.State == bus.StateRunning && s.PID != st.PID })
}

func TestRestartRequestReplacesBot(t *testing.T) {
	h, _ := setup(t, "ok", true)
	first := h.running()
	r, err := h.ask(bus.OpRestart, "test")
	if err != nil || !r.OK || r.OldPID != first.PID || r.NewPID == 0 || r.NewPID == first.PID {
		t.Fatalf("restart: %+v %v", r, err)
	}
	if ev := h.waitEvent(bus.EventRestarted); ev.RequestedBy != "unknown login (test)" || ev.PID != r.NewPID {
		t.Fatalf("restarted event %+v", ev)
	}
	waitGone(t, first.PID)
	st := h.running()
	if st.PID != r.NewPID || st.Restarts != 1 || st.LastExit.Reason != "requested" {
		t.Fatalf("status after restart %+v", st)
	}
}

func TestConcurrentRestartsNeverMakeTwoBots(t *testing.T) {
	h, dir := setup(t, "ok", true)
	first := h.running()
	var wg sync.WaitGroup
	replies := make([]bus.Reply, 10)
	errs := make([]error, 10)
	for i := range replies {
		wg.Go(func() { replies[i], errs[i] = h.ask(bus.OpRestart, fmt.Sprintf("r%d", i)) })
	}
	wg.Wait()
	pids := map[int]bool{}
	for i, r := range replies {
		if errs[i] != nil || !r.OK {
			t.Fatalf("request %d: %+v %v", i, r, errs[i])
		}
		pids[r.NewPID] = true
	}
	st := h.running()
	if !pids[st.PID] {
		t.Fatalf("current pid %d not among replies %v", st.PID, pids)
	}
	// Every pid any reply named, but the current one, is gone: never two bots.
	for pid := range pids {
		if pid != st.PID {
			waitGone(t, pid)
		}
	}
	waitGone(t, first.PID)
	if got := readPIDFile(t, filepath.Join(dir, "bot.pid")); got != st.PID {
		t.Fatalf("pid file %d, status %d", got, st.PID)
	}
}

func TestStopAndStart(t *testing.T) {
	h, dir := setup(t, "ok", true)
	first := h.running()
	r, err := h.ask(bus.OpStop, "test")
	if err != nil || !r.OK || r.PID != first.PID {
		t.Fatalf("stop: %+v %v", r, err)
	}
	waitGone(t, first.PID)
	st := h.waitStatus("stopped", func(st bus.Status) bool { return st.State == bus.StateStopped })
	if st.PID != 0 {
		t.Fatalf("stopped status has pid %d", st.PID)
	}
	if _, err := pidfile.Read(filepath.Join(dir, "bot.pid")); err == nil {
		t.Fatal("pid file still locked after stop")
	}
	r, err = h.ask(bus.OpStart, "test")
	if err != nil || !r.OK || r.PID == 0 {
		t.Fatalf("start: %+v %v", r, err)
	}
	st = h.running()
	if st.PID != r.PID {
		t.Fatalf("started pid %d, running %d", r.PID, st.PID)
	}
}

func TestShutdownIgnoredEscalatesToSIGKILL(t *testing.T) {
	h, _ := setup(t, "ignoreterm", false)
	first := h.running()
	r, err := h.ask(bus.OpStop, "test")
	if err != nil || !r.OK {
		t.Fatalf("stop: %+v %v", r, err)
	}
	waitGone(t, first.PID)
	st := h.waitStatus("stopped", func(st bus.Status) bool { return st.State == bus.StateStopped })
	if st.LastExit == nil || st.LastExit.Signal != "killed" {
		t.Fatalf("last exit %+v", st.LastExit)
	}
}

func TestStopLeavesNoChildren(t *testing.T) {
	nc, a, childFile := newChildrenAgent(t)
	h := mustStart(t, nc, a)
	h.running()
	child := waitChildFile(t, childFile)
	if r, err := h.ask(bus.OpStop, "test"); err != nil || !r.OK {
		t.Fatalf("stop: %+v %v", r, err)
	}
	waitGone(t, child)
}

func TestCrashLoopBacksOff(t *testing.T) {
	h, _ := setup(t, "crash", false)
	h.waitEvent(bus.EventBackoff)
	st := h.waitStatus("backoff", func(st bus.Status) bool { return st.State == bus.StateBackoff })
	if st.NextStartAt == nil || st.LastExit == nil || st.LastExit.Code != 1 {
		t.Fatalf("backoff status %+v", st)
	}
	// It keeps trying, and the agent keeps answering.
	h.waitStatus("more restarts", func(st bus.Status) bool { return st.Restarts >= 4 })
	if r, err := h.ask(bus.OpStop, "test"); err != nil || !r.OK {
		t.Fatalf("stop during crash loop: %+v %v", r, err)
	}
	h.waitStatus("stopped", func(st bus.Status) bool { return st.State == bus.StateStopped })
}

func TestUnlockedPIDFilesAreNeverTrusted(t *testing.T) {
	// A live process that is not the bot: its PID must never be signalled.
	bystander := exec.Command("sleep", "1000")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bystander.Process.Kill(); bystander.Wait() })
	for name, content := range map[string]string{
		"unrelated": strconv.Itoa(bystander.Process.Pid),
		"empty":     "",
		"text":      "hello\n",
		"negative":  "-42\n",
		"zero":      "0\n",
		"init":      "1\n",
		"self":      strconv.Itoa(os.Getpid()),
		"huge":      "99999999999999999999\n",
	} {
		t.Run(name, func(t *testing.T) {
			srv := bustest.NewServer(t)
			nc := bustest.MustConnect(t, srv)
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "bot.pid"), []byte(content), 0o644)
			a := newAgent(t, srv.ClientURL(), dir, "ok")
			a.StopBotOnExit = true
			h := mustStart(t, nc, a)
			st := h.running()
			if st.PID == bystander.Process.Pid || st.PID == os.Getpid() {
				t.Fatalf("adopted %d", st.PID)
			}
			h.ask(bus.OpRestart, "test")
			h.running()
			if !alive(bystander.Process.Pid) {
				t.Fatal("bystander was killed")
			}
		})
	}
}

func TestNewAgentAdoptsRunningBot(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	dir := t.TempDir()
	h1 := mustStart(t, nc, newAgent(t, srv.ClientURL(), dir, "ok"))
	first := h1.running()
	if err := h1.stop(); err != nil {
		t.Fatal(err)
	}
	a2 := newAgent(t, srv.ClientURL(), dir, "ok")
	a2.StopBotOnExit = true
	h2 := mustStart(t, nc, a2)
	if ev := h2.waitEvent(bus.EventAdopted); ev.PID != first.PID {
		t.Fatalf("adopted %+v, want pid %d", ev, first.PID)
	}
	st := h2.running()
	if st.PID != first.PID || st.Restarts != 0 {
		t.Fatalf("after adoption %+v", st)
	}
	// The adopted bot is supervised like a child: its death is seen.
	sigkill(first.PID)
	h2.waitStatus("respawned", func(s bus.Status) bool { return s.State == bus.StateRunning && s.PID != first.PID })
}

func TestSecondAgentIsRefused(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	dir := t.TempDir()
	a := newAgent(t, srv.ClientURL(), dir, "ok")
	a.StopBotOnExit = true
	h := mustStart(t, nc, a)
	h.running()
	// Same data dir: the agent lock refuses it.
	err := newAgent(t, srv.ClientURL(), dir, "ok").Run(t.Context())
	if !errors.Is(err, ErrAnotherAgent) {
		t.Fatalf("same dir: %v", err)
	}
	// Another data dir, same bus and name: the bus refuses it.
	err = newAgent(t, srv.ClientURL(), t.TempDir(), "ok").Run(t.Context())
	if !errors.Is(err, ErrAnotherAgent) {
		t.Fatalf("other dir: %v", err)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	h, _ := setup(t, "ok", true)
	first := h.running()
	for _, body := range []string{"garbage", `{"requested_by":5}`, `{"unknown":1}`, `[]`, strings.Repeat("x", bus.MaxRequestBytes+1)} {
		msg, err := h.nc.Request(bus.AgentSubject("bot", bus.OpRestart), []byte(body), 2*time.Second)
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		r, err := bus.DecodeReply(msg.Data)
		if err != nil || r.OK || r.Error == "" || msg.Header.Get("Nats-Service-Error-Code") != "400" {
			t.Fatalf("%q: reply %s (%v)", body, msg.Data, err)
		}
	}
	if st := h.running(); st.PID != first.PID || st.Restarts != 0 {
		t.Fatalf("state changed: %+v", st)
	}
}

func TestBadConfigIsRefusedBeforeAnythingStarts(t *testing.T) {
	dir := t.TempDir()
	for name, a := range map[string]*Agent{
		"name":     {Name: "bad name", PIDFile: filepath.Join(dir, "x.pid"), Self: "/bin/true"},
		"command":  {Name: "bot", PIDFile: filepath.Join(dir, "x.pid"), Command: []string{"/nonexistent/bot"}},
		"duration": {Name: "bot", PIDFile: filepath.Join(dir, "x.pid"), Self: "/bin/true", StopTimeout: -time.Second},
	} {
		if err := a.Run(t.Context()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files left behind: %v", entries)
	}
}

func waitChildFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(path)
		if child, _ := strconv.Atoi(string(data)); child > 0 && alive(child) {
			return child
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("bot's child did not start")
	return 0
}
