//go:build linux

package main

// The fault-injection suite of issue 4: each test attacks the real binary's
// processes (dashboard, agent, bot) the way production does, and checks one
// promise the product makes. Bots that misbehave in ways the demo bot cannot
// (ignore SIGTERM, leave children, deadlock, crash at start) are small shell
// scripts run with `agent -- COMMAND`, or testdata/deadbot built on the SDK.
//
// Some faults need root on Linux (choosing the next PID through
// /proc/sys/kernel/ns_last_pid, mounting a read-only bind or a tiny tmpfs);
// those tests say so and skip when they cannot do it. CI runs as root.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bot"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"
)

// faultAgentArgs are the agent flags of e2eNewStack: hung after 1 s without
// a heartbeat (the demo bot beats every 100 ms), short backoff.
var faultAgentArgs = []string{"--heartbeat-timeout", "1s", "--stop-timeout", "3s", "--backoff-max", "200ms"}

// faultStack starts a dashboard in a fresh directory and prepares, without
// starting it, an agent with exactly agentArgs (after `agent --nats-url URL
// --stop-bot-on-exit`). env is added to the environment of the agent and of
// the bots it starts. When the test ends, every process still running in
// the directory (bots, their children) is killed, after the agent.
func faultStack(t *testing.T, agentArgs []string, env ...string) *e2eStack {
	t.Helper()
	s := &e2eStack{t: t, dir: t.TempDir(), httpListen: "127.0.0.1:0", natsListen: "127.0.0.1:0",
		agentArgs: agentArgs,
		agentEnv:  e2eEnv(append([]string{"LIFELINE_HEARTBEAT=100ms", "LIFELINE_POLL=20ms"}, env...)...)}
	faultKillLeftovers(t, s.dir)
	s.startDashboard()
	return s
}

// faultNewStack is e2eNewStack with the leftover killing of faultStack.
func faultNewStack(t *testing.T) *e2eStack {
	t.Helper()
	s := faultStack(t, faultAgentArgs)
	s.startAgent()
	return s
}

// faultKillLeftovers registers the cleanup that kills every live process
// working in dir. Registered before the stack, it runs after the stack's own
// cleanup has killed the agent, so nothing respawns what it kills.
func faultKillLeftovers(t *testing.T, dir string) {
	t.Cleanup(func() {
		for _, pid := range faultProcsIn(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range faultProcsIn(dir) {
			e2eWaitGone(t, pid)
		}
	})
}

// faultProcsIn lists the live processes whose working directory is dir or
// below it: everything a stack started, and everything those started.
func faultProcsIn(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !e2eAlive(pid) {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// faultProcState returns the state letter of pid (R, S, T, Z, ...), or ""
// when there is no such process at all (not even a zombie).
func faultProcState(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// faultSession returns the session id of pid, or 0 when it is gone.
func faultSession(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 4 {
		return 0
	}
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// faultEvents records every lifecycle event of one bot straight from the
// bus, in order.
type faultEvents struct {
	mu   sync.Mutex
	list []bus.Event
}

func faultRecordEvents(t *testing.T, s *e2eStack, name string) *faultEvents {
	t.Helper()
	r := &faultEvents{}
	nc := s.connect()
	_, err := nc.Subscribe(bus.EventsSubject(name), func(m *nats.Msg) {
		if ev, err := bus.DecodeEvent(m.Data); err == nil {
			r.mu.Lock()
			r.list = append(r.list, ev)
			r.mu.Unlock()
		}
	})
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		t.Fatalf("subscribe to events: %v", err)
	}
	return r
}

// of returns the recorded events of the given types (all when none given).
func (r *faultEvents) of(types ...bus.EventType) []bus.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []bus.Event
	for _, ev := range r.list {
		if len(types) == 0 || slices.Contains(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out
}

// wait waits for an event of type typ about pid (any pid when 0).
func (r *faultEvents) wait(t *testing.T, typ bus.EventType, pid int) bus.Event {
	t.Helper()
	var found bus.Event
	e2eWait(t, 20*time.Second, fmt.Sprintf("%s event for pid %d", typ, pid), func() (bool, string) {
		for _, ev := range r.of(typ) {
			if pid == 0 || ev.PID == pid {
				found = ev
				return true, ""
			}
		}
		return false, fmt.Sprint(r.of())
	})
	return found
}

func faultPIDs(evs []bus.Event) []int {
	var pids []int
	for _, ev := range evs {
		pids = append(pids, ev.PID)
	}
	return pids
}

// faultRespawns drops the agent's initial start, which the recorder may or
// may not have seen depending on when it subscribed.
func faultRespawns(started []bus.Event) []bus.Event {
	return slices.DeleteFunc(started, func(ev bus.Event) bool { return ev.Reason == "initial start" })
}

// faultAsk asks the agent of name for its status over the bus.
func faultAsk(nc *nats.Conn, name string) (bus.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return bus.AskStatus(ctx, nc, name)
}

// faultWaitAgent waits until the agent of name reports a status satisfying cond.
func faultWaitAgent(t *testing.T, nc *nats.Conn, name, what string, cond func(bus.Status) bool) bus.Status {
	t.Helper()
	var st bus.Status
	e2eWait(t, 20*time.Second, what, func() (bool, string) {
		var err error
		st, err = faultAsk(nc, name)
		if err != nil {
			return false, err.Error()
		}
		return cond(st), string(bus.Encode(st))
	})
	return st
}

// faultScriptAgent is a stack whose agent runs script with sh as the bot,
// with hang detection off (a shell script sends no heartbeats).
func faultScriptAgent(t *testing.T, script string, flags ...string) *e2eStack {
	t.Helper()
	args := append([]string{"--heartbeat-timeout", "0", "--stop-timeout", "3s", "--backoff-max", "200ms"}, flags...)
	s := faultStack(t, append(args, "--", "sh", "-c", script))
	s.startAgent()
	return s
}

// faultWriteAtomic drops a file the way SPEC asks writers to: a .tmp name,
// then a rename.
func faultWriteAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// faultCountDir counts the entries of dir whose names pass keep.
func faultCountDir(dir string, keep func(string) bool) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if keep(e.Name()) {
			n++
		}
	}
	return n
}

func faultIsResult(name string) bool {
	return strings.HasSuffix(name, ".json") && !strings.HasPrefix(name, ".")
}
func faultAny(string) bool { return true }

// faultLogLines counts the lines of out logging message msg.
func faultLogLines(out, msg string) int {
	return strings.Count(out, `msg="`+msg+`"`)
}

// 1. kill -9 the bot twenty times in a row: each time exactly one new bot,
// the restart counter exact, an event for each.
func TestFaultKill9BotTwentyTimes(t *testing.T) {
	s := faultNewStack(t)
	evs := faultRecordEvents(t, s, "bot")
	st := s.running()
	pids := []int{st.PID}
	for i := 1; i <= 20; i++ {
		old := pids[i-1]
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", old, err)
		}
		st = s.waitStatus(fmt.Sprintf("a new bot after kill %d", i), func(st bus.Status) bool {
			return st.State == bus.StateRunning && st.PID != old && st.PID > 0
		})
		if st.Restarts != i {
			t.Fatalf("after kill %d: restarts %d", i, st.Restarts)
		}
		e2eWaitGone(t, old)
		if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != st.PID {
			t.Fatalf("after kill %d: bot processes %v, want only %d", i, bots, st.PID)
		}
		pids = append(pids, st.PID)
	}
	e2eWait(t, 10*time.Second, "20 crashed and 20 started events", func() (bool, string) {
		return len(evs.of(bus.EventCrashed)) >= 20 && len(faultRespawns(evs.of(bus.EventStarted))) >= 20, fmt.Sprint(evs.of())
	})
	if got := faultPIDs(evs.of(bus.EventCrashed)); !slices.Equal(got, pids[:20]) {
		t.Errorf("crashed events for %v, want %v", got, pids[:20])
	}
	if got := faultPIDs(faultRespawns(evs.of(bus.EventStarted))); !slices.Equal(got, pids[1:]) {
		t.Errorf("started events for %v, want %v", got, pids[1:])
	}
	for _, ev := range evs.of(bus.EventCrashed) {
		if !strings.Contains(ev.Reason, "killed") {
			t.Errorf("crash reason %q does not say killed", ev.Reason)
		}
	}
	if other := evs.of(bus.EventHung, bus.EventKilled, bus.EventAdopted, bus.EventExited); len(other) > 0 {
		t.Errorf("unexpected events %v", other)
	}
	if st := s.running(); st.Restarts != 20 || st.PID != pids[20] {
		t.Fatalf("final status %+v", st)
	}
}

// 2. SIGSTOP the bot: hung, killed, respawned; the stopped process really gone.
func TestFaultSIGSTOP(t *testing.T) {
	s := faultNewStack(t)
	evs := faultRecordEvents(t, s, "bot")
	first := s.running()
	syscall.Kill(first.PID, syscall.SIGSTOP)
	e2eWait(t, 5*time.Second, "bot stopped", func() (bool, string) {
		st := faultProcState(first.PID)
		return st == "T", st
	})
	evs.wait(t, bus.EventHung, first.PID)
	evs.wait(t, bus.EventKilled, first.PID)
	st := s.waitStatus("respawned bot", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.LastExit == nil || st.LastExit.Reason != "hung" || st.LastExit.Signal != "killed" || st.Restarts != 1 {
		t.Fatalf("status after hang %+v, last exit %+v", st, st.LastExit)
	}
	// Really gone: not stopped, not a zombie, no /proc entry at all.
	e2eWait(t, 10*time.Second, "stopped bot reaped", func() (bool, string) {
		st := faultProcState(first.PID)
		return st == "", st
	})
	if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != st.PID {
		t.Fatalf("bot processes %v, want only %d", bots, st.PID)
	}
	if started := faultRespawns(evs.of(bus.EventStarted)); len(started) != 1 || started[0].PID != st.PID {
		t.Fatalf("started events %v, want one for %d", started, st.PID)
	}
}

// 3. A bot whose work loop deadlocks while its other goroutines live is
// hung: heartbeats prove progress, not a live process.
func TestFaultDeadlockedWorkLoop(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "deadbot")
	build := exec.Command("go", "build", "-o", bin, "./testdata/deadbot")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build deadbot: %v\n%s", err, out)
	}
	marks := t.TempDir()
	s := faultStack(t, append(slices.Clone(faultAgentArgs), "--", bin, "-steps", "10", "-dir", marks))
	s.startAgent()
	evs := faultRecordEvents(t, s, "bot")
	first := s.running()
	alive := func(pid int) int {
		data, _ := os.ReadFile(filepath.Join(marks, fmt.Sprintf("alive-%d", pid)))
		n, _ := strconv.Atoi(string(data))
		return n
	}
	e2eWait(t, 10*time.Second, "the work loop to block", func() (bool, string) {
		_, err := os.Stat(filepath.Join(marks, fmt.Sprintf("blocked-%d", first.PID)))
		return err == nil, fmt.Sprint(err)
	})
	before := alive(first.PID)
	hung := evs.wait(t, bus.EventHung, first.PID)
	// Its other goroutines were still at work when it was declared hung.
	if after := alive(first.PID); after <= before {
		t.Errorf("side goroutine counter %d -> %d: the process was not alive while its loop was stuck", before, after)
	}
	if !strings.Contains(hung.Reason, "no heartbeat") {
		t.Errorf("hung reason %q", hung.Reason)
	}
	evs.wait(t, bus.EventKilled, first.PID)
	st := s.waitStatus("deadlocked bot replaced", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.LastExit == nil || st.LastExit.Reason != "hung" {
		t.Fatalf("last exit %+v", st.LastExit)
	}
	e2eWaitGone(t, first.PID)
}

// 4. kill -9 the dashboard while the bot works: the bot keeps its PID and
// keeps draining its inbox; the restarted dashboard shows the current
// status, restart count included, within two heartbeats.
func TestFaultKill9Dashboard(t *testing.T) {
	const beat = time.Second // SPEC's default heartbeat, so "two heartbeats" is 2 s
	s := faultStack(t, []string{"--heartbeat-timeout", "3s", "--stop-timeout", "3s", "--backoff-max", "200ms"},
		"LIFELINE_HEARTBEAT="+beat.String())
	s.startAgent()
	// Two crashes first, so the restart count has something to keep.
	for i := 1; i <= 2; i++ {
		old := s.running().PID
		syscall.Kill(old, syscall.SIGKILL)
		s.waitStatus("respawn", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != old && st.Restarts == i })
	}
	pid := s.running().PID

	s.dash.signal(syscall.SIGKILL)
	s.dash.wait(10 * time.Second)
	for i := range 50 {
		faultWriteAtomic(t, s.data("inbox", fmt.Sprintf("down-%02d.txt", i)), fmt.Appendf(nil, "item %d\n", i))
	}
	e2eWait(t, 15*time.Second, "the inbox drained while the dashboard is down", func() (bool, string) {
		n := faultCountDir(s.data("outbox"), func(n string) bool { return strings.HasPrefix(n, "down-") && faultIsResult(n) })
		return n == 50, fmt.Sprintf("%d of 50 posted", n)
	})
	if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != pid {
		t.Fatalf("bot %d did not survive the dashboard; bots now %v", pid, bots)
	}

	s.startDashboard()
	ready := time.Now()
	s.waitStatus("the restarted dashboard to show the bot", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.Agent.Connected && st.PID == pid && st.Restarts == 2 &&
			st.Stats["processed"] >= 50 // the work done while it was gone
	})
	if took := time.Since(ready); took > 2*beat {
		t.Errorf("the restarted dashboard showed the current status after %s, more than two heartbeats (%s)", took, 2*beat)
	} else {
		t.Logf("current status shown %s after the dashboard came back", took.Round(time.Millisecond))
	}
}

// 5. kill -9 the agent: the bot is untouched; a new agent adopts the same
// PID (three times over), and then supervises it fully.
func TestFaultKill9Agent(t *testing.T) {
	s := faultNewStack(t)
	evs := faultRecordEvents(t, s, "bot")
	pid := s.running().PID
	for round := 1; round <= 3; round++ {
		s.agent.signal(syscall.SIGKILL)
		s.agent.wait(10 * time.Second)
		// Without an agent the bot keeps working.
		item := s.data("inbox", fmt.Sprintf("orphan-%d.txt", round))
		faultWriteAtomic(t, item, []byte("still here\n"))
		e2eWait(t, 10*time.Second, "the bot to work without its agent", func() (bool, string) {
			_, err := os.Stat(s.data("outbox", fmt.Sprintf("orphan-%d.txt.json", round)))
			return err == nil, fmt.Sprint(err)
		})
		s.startAgent()
		s.waitStatus(fmt.Sprintf("agent %d adopts the bot", round), func(st bus.Status) bool {
			return st.State == bus.StateRunning && st.Agent.PID == s.agent.pid()
		})
		if ev := evs.wait(t, bus.EventAdopted, pid); ev.PID != pid {
			t.Fatalf("adopted %d", ev.PID)
		}
		if st := s.running(); st.PID != pid || !e2eAlive(pid) {
			t.Fatalf("round %d: agent runs %d, want adopted %d", round, st.PID, pid)
		}
		if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != pid {
			t.Fatalf("round %d: bots %v", round, bots)
		}
	}
	if n := len(evs.of(bus.EventAdopted)); n != 3 {
		t.Errorf("%d adopted events, want 3", n)
	}
	if started := faultRespawns(evs.of(bus.EventStarted)); len(started) != 0 {
		t.Errorf("a new agent started a bot instead of adopting: %v", started)
	}
	// Adopted means fully supervised: a restart request replaces it.
	code, body := s.api("POST", "/api/bot/restart")
	var r bus.Reply
	if code != 200 || json.Unmarshal(body, &r) != nil || !r.OK || r.OldPID != pid || r.NewPID == pid {
		t.Fatalf("restart of the adopted bot: %d %s", code, body)
	}
	e2eWaitGone(t, pid)
}

// 6. The bus gone for 30 s: the agent never kills a healthy bot because
// heartbeats could not travel, and when the bus is back everything
// reconnects on its own (and hang detection works again).
func TestFaultBusGone30s(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 30 s on purpose")
	}
	s := faultNewStack(t)
	st := s.running()
	pid := st.PID

	s.dash.signal(syscall.SIGTERM)
	if code := s.dash.wait(15 * time.Second); code != 0 {
		t.Fatalf("dashboard exit %d", code)
	}
	// Thirty seconds of no bus is the fault itself, so this waits on a timer.
	end := time.Now().Add(30 * time.Second)
	nextItem := time.Now()
	items := 0
	for time.Now().Before(end) {
		if !e2eAlive(pid) || !e2eAlive(s.agent.pid()) {
			t.Fatalf("after %s without the bus: bot alive %v, agent alive %v",
				30*time.Second-time.Until(end), e2eAlive(pid), e2eAlive(s.agent.pid()))
		}
		if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != pid {
			t.Fatalf("bots %v, want only %d", bots, pid)
		}
		if time.Now().After(nextItem) {
			// The bot is healthy, not merely alive: it keeps working.
			faultWriteAtomic(t, s.data("inbox", fmt.Sprintf("nobus-%d.txt", items)), []byte("x\n"))
			items++
			nextItem = time.Now().Add(5 * time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := faultCountDir(s.data("outbox"), func(n string) bool { return strings.HasPrefix(n, "nobus-") }); n < items-1 {
		t.Errorf("only %d of %d items posted without the bus", n, items)
	}
	if out := s.agent.out.String(); faultLogLines(out, "bot hung") > 0 || faultLogLines(out, "bot killed") > 0 || faultLogLines(out, "bot started") != 1 {
		t.Fatalf("the agent acted on the bot while the bus was gone:\n%s", out)
	}

	s.startDashboard() // same ports: the clients reconnect on their own
	st = s.running()
	if st.PID != pid || st.Restarts != 0 || st.Agent.PID != s.agent.pid() {
		t.Fatalf("after the bus came back: %+v", st)
	}
	// Hang detection is back too.
	evs := faultRecordEvents(t, s, "bot")
	syscall.Kill(pid, syscall.SIGSTOP)
	evs.wait(t, bus.EventHung, pid)
	s.waitStatus("hung bot replaced", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != pid })
}

// faultBystander starts a shell that logs every catchable signal it gets to
// a file, in a process group of its own (so a signal to the negated PID
// would reach it too). It returns its PID and the log's path.
func faultBystander(t *testing.T) (int, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "signals")
	script := `for s in HUP INT QUIT USR1 USR2 TERM CONT ALRM; do trap "echo $s >> '` + log + `'" $s; done; while :; do sleep 0.05; done`
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	return cmd.Process.Pid, log
}

// faultCheckBystander fails the test if the bystander was signalled.
func faultCheckBystander(t *testing.T, pid int, log string) {
	t.Helper()
	if data, _ := os.ReadFile(log); len(data) > 0 {
		t.Errorf("bystander %d was signalled: %s", pid, bytes.ReplaceAll(data, []byte("\n"), []byte(" ")))
	}
	if st := faultProcState(pid); st == "" || st == "Z" || st == "T" {
		t.Errorf("bystander %d is in state %q (killed or stopped)", pid, st)
	}
}

// faultSetNextPID makes the next process created on the machine get PID
// want (root only). It returns false with the reason when it cannot.
func faultSetNextPID(want int) error {
	return os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(want-1)), 0)
}

// faultStartAsPID runs start until the process it starts gets PID want,
// and reports whether it managed. Another process may fork between the write
// to ns_last_pid and ours and take the number; the attempt is then undone,
// and retried once the number is free again. When the number stays taken
// (by a long-lived process, or a thread), it gives up.
func faultStartAsPID(t *testing.T, want int, start func() int, undo func()) bool {
	t.Helper()
	for range 20 {
		for deadline := time.Now().Add(2 * time.Second); faultProcState(want) != ""; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				return false
			}
		}
		if err := faultSetNextPID(want); err != nil {
			t.Skipf("cannot choose the next PID (needs root on Linux): %v", err)
		}
		if start() == want {
			return true
		}
		undo()
	}
	return false
}

// faultFreePID returns a PID nobody uses, well ahead of the last one given.
func faultFreePID(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/kernel/ns_last_pid")
	if err != nil {
		t.Skipf("cannot read the last PID: %v", err)
	}
	last, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	maxData, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	pidMax, _ := strconv.Atoi(strings.TrimSpace(string(maxData)))
	for c := last + 200 + rand.IntN(200); ; c++ {
		if c >= pidMax-10 {
			c = 300
		}
		if faultProcState(c) == "" && faultProcState(c-1) == "" {
			return c
		}
	}
}

// faultLock holds an exclusive flock on path from this test process, the
// way a live process that is not the bot could. It returns the release.
func faultLock(t *testing.T, path string, content string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release
}

// 7. A PID file naming a live unrelated process, PID 1, the agent's own PID,
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

// 8. PID reuse: the bot dies while its agent is down and another process
// takes its PID before a new agent looks; that process is never signalled.
func TestFaultPIDReuse(t *testing.T) {
	if err := faultSetNextPID(faultFreePID(t)); err != nil {
		t.Skipf("cannot choose the next PID (needs root on Linux): %v", err)
	}
	s := faultNewStack(t)
	logf := filepath.Join(t.TempDir(), "signals")
	script := `for s in HUP INT QUIT USR1 USR2 TERM CONT ALRM; do trap "echo $s >> '` + logf + `'" $s; done; while :; do sleep 0.05; done`
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
			by = exec.Command("sh", "-c", script)
			by.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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

// faultOrphanAndReap kills the stack's agent with -9 and then its bot pid,
// and reaps the bot so that its PID is free. The bot outlives its agent, and
// the kernel would hand it to PID 1, which may never reap it; so this test
// process becomes the subreaper of its descendants until the bot is reaped.
func faultOrphanAndReap(t *testing.T, s *e2eStack, pid int) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a subreaper: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	s.agent.signal(syscall.SIGKILL)
	s.agent.wait(10 * time.Second)
	e2eWait(t, 5*time.Second, "the orphaned bot to be ours", func() (bool, string) {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		return strings.Contains(string(data), fmt.Sprintf("\nPPid:\t%d\n", os.Getpid())), string(data)
	})
	syscall.Kill(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("reap bot %d: %v", pid, err)
	}
}

// 9a. Two `lifeline bot` started at once on one PID file: exactly one wins;
// the other exits with status 3 naming the winner's PID.
func TestFaultTwoBotsOnePIDFile(t *testing.T) {
	s := faultStack(t, nil)
	for round := range 5 {
		a := e2eStart(t, "bot A", s.dir, s.agentEnv, "bot", "--nats-url", s.natsURL)
		b := e2eStart(t, "bot B", s.dir, s.agentEnv, "bot", "--nats-url", s.natsURL)
		var winner, loser *e2eProc
		e2eWait(t, 15*time.Second, "one of the two bots to give up", func() (bool, string) {
			select {
			case <-a.done:
				winner, loser = b, a
			case <-b.done:
				winner, loser = a, b
			default:
				return false, "both running"
			}
			return true, ""
		})
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

// 9b. Two agents for one bot in one data dir, started at once: exactly one
// supervises it; the other exits 1 saying another agent has it.
func TestFaultTwoAgentsOneDataDir(t *testing.T) {
	s := faultStack(t, faultAgentArgs)
	nc := s.connect()
	for round := range 3 {
		args := append([]string{"agent", "--nats-url", s.natsURL, "--stop-bot-on-exit"}, faultAgentArgs...)
		a := e2eStart(t, "agent A", s.dir, s.agentEnv, args...)
		b := e2eStart(t, "agent B", s.dir, s.agentEnv, args...)
		winner, loser := faultOneWins(t, a, b)
		st := faultWaitAgent(t, nc, "bot", "the winner to run the bot", func(st bus.Status) bool { return st.State == bus.StateRunning })
		if st.Agent.PID != winner.pid() {
			t.Fatalf("round %d: status from agent %d, want %d", round, st.Agent.PID, winner.pid())
		}
		if !strings.Contains(loser.out.String(), "another agent") || !strings.Contains(loser.out.String(), strconv.Itoa(winner.pid())) {
			t.Fatalf("round %d: loser's message does not say why:\n%s", round, loser.out)
		}
		if bots := botProcesses(s.dir); len(bots) != 1 || bots[0] != st.PID {
			t.Fatalf("round %d: bots %v", round, bots)
		}
		winner.signal(syscall.SIGTERM)
		winner.wait(15 * time.Second)
		e2eWaitGone(t, st.PID)
	}
}

// faultOneWins waits until one of two agents exits, checks it failed and the
// other still runs, and returns them as winner, loser.
func faultOneWins(t *testing.T, a, b *e2eProc) (winner, loser *e2eProc) {
	t.Helper()
	e2eWait(t, 15*time.Second, "one of the two agents to give up", func() (bool, string) {
		select {
		case <-a.done:
			winner, loser = b, a
		case <-b.done:
			winner, loser = a, b
		default:
			return false, "both running"
		}
		return true, ""
	})
	if loser.code != 1 {
		t.Fatalf("losing agent exit %d, want 1:\n%s", loser.code, loser.out)
	}
	select {
	case <-winner.done:
		t.Fatalf("both agents exited:\n%s\n%s", a.out, b.out)
	default:
	}
	return winner, loser
}

// 9c. Two agents for one bot name in two data dirs on the same bus, started
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
		winner, loser := faultOneWins(t, a, b)
		st := faultWaitAgent(t, nc, "bot", "the winner to run the bot", func(st bus.Status) bool { return st.State == bus.StateRunning })
		if st.Agent.PID != winner.pid() {
			t.Fatalf("round %d: status from agent %d, want %d", round, st.Agent.PID, winner.pid())
		}
		if !strings.Contains(loser.out.String(), "another agent") || !strings.Contains(loser.out.String(), strconv.Itoa(winner.pid())) {
			t.Fatalf("round %d: loser's message does not say why:\n%s", round, loser.out)
		}
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

// 10. Crash loop (the bot exits 1 at start): backoff state, growing delays
// up to a cap, reset after a healthy run; agent and dashboard stay
// responsive throughout.
func TestFaultCrashLoopBackoff(t *testing.T) {
	// Runs 1-8 crash at once; run 9 is healthy for 2.5 s (longer than
	// --backoff-reset) and then crashes; runs 10-11 crash; run 12 stays up.
	script := `n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count
case $n in 9) sleep 2.5; exit 1;; 12) exec sleep 1000;; esac
exit 1`
	s := faultScriptAgent(t, script, "--backoff-min", "50ms", "--backoff-max", "400ms", "--backoff-reset", "2s")
	nc := s.connect()
	evs := faultRecordEvents(t, s, "bot")

	faultWaitAgent(t, nc, "bot", "the agent to answer", func(bus.Status) bool { return true })
	s.waitStatus("the dashboard to know the bot", func(bus.Status) bool { return true })
	// Responsiveness: status over the bus and over HTTP, all along.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var slowest atomic.Int64
	var failures atomic.Int32
	var firstFailure atomic.Value
	failed := func(err error) {
		failures.Add(1)
		firstFailure.CompareAndSwap(nil, err.Error())
	}
	var sawBackoff atomic.Bool
	wg.Go(func() {
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			t0 := time.Now()
			st, err := faultAsk(nc, "bot")
			if err != nil {
				failed(fmt.Errorf("bus: %w", err))
				continue
			}
			if st.State == bus.StateBackoff && st.NextStartAt != nil && time.Until(*st.NextStartAt) <= 400*time.Millisecond {
				sawBackoff.Store(true)
			}
			req, _ := http.NewRequest("GET", s.httpURL+"/api/bot/status", nil)
			req.Header.Set("Authorization", "Bearer "+s.token)
			resp, err := client.Do(req)
			if err == nil {
				var body bytes.Buffer
				body.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, body.Bytes())
				}
			}
			if err != nil {
				failed(fmt.Errorf("dashboard: %w", err))
			}
			if d := time.Since(t0); d.Milliseconds() > slowest.Load() {
				slowest.Store(d.Milliseconds())
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	e2eWait(t, 30*time.Second, "11 crashes", func() (bool, string) {
		return len(evs.of(bus.EventCrashed)) >= 11 && len(faultRespawns(evs.of(bus.EventStarted))) >= 11, fmt.Sprint(evs.of())
	})
	st := faultWaitAgent(t, nc, "bot", "run 12 up", func(st bus.Status) bool { return st.State == bus.StateRunning })
	close(stop)
	wg.Wait()
	stop = make(chan struct{})

	crashed, started := evs.of(bus.EventCrashed), faultRespawns(evs.of(bus.EventStarted))
	if len(crashed) != 11 || len(started) != 11 {
		t.Fatalf("%d crashes, %d starts after them:\n%v", len(crashed), len(started), evs.of())
	}
	ms := time.Millisecond
	// Delay before the next start after each crash: 0 (the first young
	// exit restarts at once), then doubling from 50 ms, capped at 400 ms;
	// after the healthy run 9, back to the beginning.
	want := []time.Duration{0, 50 * ms, 100 * ms, 200 * ms, 400 * ms, 400 * ms, 400 * ms, 400 * ms, 0, 50 * ms, 100 * ms}
	var got []time.Duration
	for i := range crashed {
		d := started[i].Time.Sub(crashed[i].Time)
		got = append(got, d.Round(ms))
		if d < want[i]-5*ms || d > want[i]+300*ms {
			t.Errorf("delay after crash %d: %s, want %s", i+1, d, want[i])
		}
	}
	t.Logf("delays %v", got)
	if backoffs := evs.of(bus.EventBackoff); len(backoffs) != 9 { // one per delay but the zero ones
		t.Errorf("%d backoff events, want 9: %v", len(backoffs), backoffs)
	}
	if !sawBackoff.Load() {
		t.Error("never saw state backoff with next_start_at within the cap")
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d status requests failed during the crash loop, first: %v", n, firstFailure.Load())
	}
	if d := slowest.Load(); d > 1000 {
		t.Errorf("slowest status answer during the crash loop: %d ms", d)
	}
	if st.Restarts != 11 || st.LastExit == nil || st.LastExit.Code != 1 {
		t.Errorf("status %+v, last exit %+v", st, st.LastExit)
	}
}

// 11. Ten restart requests at once, from HTTP and the bus together:
// serialised, never two bots, every reply true to what happened.
func TestFaultTenConcurrentRestarts(t *testing.T) {
	s := faultNewStack(t)
	nc := s.connect()
	evs := faultRecordEvents(t, s, "bot")
	first := s.running().PID

	// Count the bots all along; there must never be two.
	stop := make(chan struct{})
	var most atomic.Int32
	var mon sync.WaitGroup
	mon.Go(func() {
		for {
			if n := int32(len(botProcesses(s.dir))); n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})

	type answer struct {
		via   string
		reply bus.Reply
		err   error
	}
	answers := make(chan answer, 10)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			<-gate
			req, _ := http.NewRequest("POST", s.httpURL+"/api/bot/restart", nil)
			req.Header.Set("Authorization", "Bearer "+s.token)
			resp, err := http.DefaultClient.Do(req)
			a := answer{via: fmt.Sprintf("http %d", i), err: err}
			if err == nil {
				var body bytes.Buffer
				body.ReadFrom(resp.Body)
				resp.Body.Close()
				if err := json.Unmarshal(body.Bytes(), &a.reply); err != nil || resp.StatusCode != 200 {
					a.err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, body.Bytes())
				}
			}
			answers <- a
		})
		wg.Go(func() {
			<-gate
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := bus.Ask(ctx, nc, "bot", bus.OpRestart, bus.Request{RequestedBy: fmt.Sprintf("fault test %d", i)})
			answers <- answer{via: fmt.Sprintf("bus %d", i), reply: r, err: err}
		})
	}
	close(gate)
	wg.Wait()
	close(answers)
	final := s.running()
	close(stop)
	mon.Wait()

	// Every reply is a success, and the replies chain: each restart
	// replaced the bot the previous one started, and the last one started
	// the bot running now.
	next := map[int]int{}
	for a := range answers {
		if a.err != nil || !a.reply.OK {
			t.Fatalf("%s: %+v %v", a.via, a.reply, a.err)
		}
		if n, seen := next[a.reply.OldPID]; seen && n != a.reply.NewPID {
			t.Fatalf("two different replies for restarts of %d: new %d and %d", a.reply.OldPID, n, a.reply.NewPID)
		}
		next[a.reply.OldPID] = a.reply.NewPID
	}
	chain := []int{first}
	for {
		n, ok := next[chain[len(chain)-1]]
		if !ok {
			break
		}
		chain = append(chain, n)
	}
	if len(chain)-1 != len(next) || chain[len(chain)-1] != final.PID {
		t.Fatalf("replies %v do not chain from %d to the running %d", next, first, final.PID)
	}
	if final.Restarts != len(next) {
		t.Fatalf("%d restarts done, status counts %d", len(next), final.Restarts)
	}
	for _, pid := range chain[:len(chain)-1] {
		e2eWaitGone(t, pid)
	}
	if n := most.Load(); n > 1 {
		t.Fatalf("%d bots ran at once", n)
	}
	e2eWait(t, 5*time.Second, "a restarted event per restart", func() (bool, string) {
		return len(evs.of(bus.EventRestarted)) == len(next), fmt.Sprint(evs.of(bus.EventRestarted))
	})
	for _, ev := range evs.of(bus.EventRestarted) {
		if next[faultReplaced(ev)] != ev.PID {
			t.Errorf("event %+v does not match the replies %v", ev, next)
		}
	}
	t.Logf("10 requests, %d restart(s): %v", len(next), chain)
}

// faultReplaced reads the old PID from a restarted event's reason.
func faultReplaced(ev bus.Event) int {
	var old int
	fmt.Sscanf(ev.Reason, "replaced pid %d", &old)
	return old
}

// 12a. A bot that ignores SIGTERM dies by SIGKILL after --stop-timeout.
func TestFaultIgnoresSIGTERM(t *testing.T) {
	// The trap logs SIGTERM and carries on: the script outlives it.
	s := faultScriptAgent(t, `trap 'echo TERM >> term.log' TERM; while :; do sleep 0.05; done`, "--stop-timeout", "1500ms")
	pid := s.running().PID
	t0 := time.Now()
	out, errOut, code := s.cli("stop")
	took := time.Since(t0)
	if code != 0 {
		t.Fatalf("lifeline stop: %d\n%s%s", code, out, errOut)
	}
	if took < 1500*time.Millisecond || took > 6*time.Second {
		t.Errorf("stop took %s, want --stop-timeout (1.5s) and a little", took)
	}
	e2eWaitGone(t, pid)
	if data, _ := os.ReadFile(filepath.Join(s.dir, "term.log")); !strings.Contains(string(data), "TERM") {
		t.Error("the bot never got SIGTERM before SIGKILL")
	}
	st := s.waitStatus("stopped", func(st bus.Status) bool { return st.State == bus.StateStopped })
	if st.LastExit == nil || st.LastExit.Signal != "killed" {
		t.Fatalf("last exit %+v, want killed", st.LastExit)
	}
}

// 12b. A bot with child processes leaves none behind: not when restarted,
// not when it crashes, not when stopped, not when its agent stops it on exit;
// even children that ignore SIGTERM.
func TestFaultChildProcesses(t *testing.T) {
	script := `sleep 1000 & echo $! >> kids.$$
sh -c 'trap "" TERM; sleep 1000 & echo $! >> kids.'$$'; wait' & echo $! >> kids.$$
sh -c 'trap "" TERM; exec sleep 1000' & echo $! >> kids.$$
while :; do sleep 0.05; done`
	s := faultScriptAgent(t, script, "--stop-timeout", "1s")
	nc := s.connect()
	kids := func(pid int) []int {
		var out []int
		e2eWait(t, 5*time.Second, fmt.Sprintf("bot %d to list its 4 children", pid), func() (bool, string) {
			data, _ := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("kids.%d", pid)))
			out = out[:0]
			for _, f := range strings.Fields(string(data)) {
				n, _ := strconv.Atoi(f)
				out = append(out, n)
			}
			return len(out) == 4, string(data)
		})
		for _, k := range out {
			if !e2eAlive(k) {
				t.Fatalf("child %d of bot %d is not running", k, pid)
			}
		}
		return out
	}
	gone := func(how string, pid int, children []int) {
		t.Helper()
		e2eWaitGone(t, pid)
		for _, k := range children {
			e2eWaitGone(t, k)
		}
		// Nothing else of its session either (the shell's current sleep, say).
		e2eWait(t, 10*time.Second, fmt.Sprintf("%s: bot %d's whole session to be gone", how, pid), func() (bool, string) {
			var left []int
			for _, p := range faultProcsIn(s.dir) {
				if faultSession(p) == pid {
					left = append(left, p)
				}
			}
			return len(left) == 0, fmt.Sprint("left: ", left)
		})
	}

	pid := s.running().PID
	children := kids(pid)
	r, err := bus.Ask(context.Background(), nc, "bot", bus.OpRestart, bus.Request{})
	if err != nil || !r.OK || r.OldPID != pid {
		t.Fatalf("restart: %+v %v", r, err)
	}
	gone("restart", pid, children)

	pid = s.waitStatus("bot after restart", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID == r.NewPID }).PID
	children = kids(pid)
	syscall.Kill(pid, syscall.SIGKILL) // a crash of the leader alone
	gone("crash", pid, children)

	pid = s.waitStatus("bot after crash", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != pid }).PID
	children = kids(pid)
	if out, errOut, code := s.cli("stop"); code != 0 {
		t.Fatalf("stop: %s%s", out, errOut)
	}
	gone("stop", pid, children)

	if out, errOut, code := s.cli("start"); code != 0 {
		t.Fatalf("start: %s%s", out, errOut)
	}
	pid = s.running().PID
	children = kids(pid)
	s.agent.signal(syscall.SIGTERM) // --stop-bot-on-exit
	if code := s.agent.wait(15 * time.Second); code != 0 {
		t.Fatalf("agent exit %d", code)
	}
	gone("agent exit", pid, children)
}

// 13. Nothing lost: 1,000 inbox items, the bot killed with -9 at random
// moments at least ten times while it works: every item is posted exactly
// once in the end, with the right content.
func TestFaultNothingLost1000Items(t *testing.T) {
	s := faultNewStack(t)
	s.running()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	inbox, outbox := s.data("inbox"), s.data("outbox")
	os.MkdirAll(inbox, 0o755)

	const items, waves = 1000, 12
	want := map[string]string{} // item name -> sha256 of its content
	kills, midWork := 0, 0
	next := 0
	for w := range waves {
		for ; next < (w+1)*items/waves; next++ {
			var b strings.Builder
			for range 1 + rng.IntN(40) {
				fmt.Fprintf(&b, "word%d ", rng.IntN(1000))
			}
			fmt.Fprintf(&b, "\nitem %d\n", next)
			name := fmt.Sprintf("item-%04d.txt", next)
			sum := sha256.Sum256([]byte(b.String()))
			want[name] = hex.EncodeToString(sum[:])
			faultWriteAtomic(t, filepath.Join(inbox, name), []byte(b.String()))
		}
		posted := faultCountDir(outbox, faultIsResult)
		// Kill the bot that is at work on this wave: sometimes as soon as it
		// exists, mostly once it has posted something, after a random pause.
		early := rng.IntN(3) == 0
		var pid int
		e2eWait(t, 20*time.Second, fmt.Sprintf("a bot at work on wave %d", w), func() (bool, string) {
			bots := botProcesses(s.dir)
			if len(bots) > 1 {
				t.Fatalf("two bots at once: %v", bots)
			}
			if len(bots) == 1 && (early || faultCountDir(outbox, faultIsResult) > posted) {
				pid = bots[0]
				return true, ""
			}
			return false, fmt.Sprint(bots)
		})
		time.Sleep(time.Duration(rng.IntN(15)) * time.Millisecond) // the random moment
		syscall.Kill(pid, syscall.SIGKILL)
		kills++
		if faultCountDir(inbox, func(n string) bool { return !strings.HasSuffix(n, ".tmp") }) > 0 {
			midWork++
		}
		e2eWaitGone(t, pid)
	}
	e2eWait(t, 60*time.Second, "every item posted", func() (bool, string) {
		in, out := faultCountDir(inbox, faultAny), faultCountDir(outbox, faultIsResult)
		return in == 0 && out == items, fmt.Sprintf("inbox %d, outbox %d", in, out)
	})
	if midWork < 10 {
		t.Fatalf("only %d of %d kills hit a bot with work in hand", midWork, kills)
	}
	entries, _ := os.ReadDir(outbox)
	if len(entries) != items {
		var names []string
		for _, e := range entries {
			if !faultIsResult(e.Name()) {
				names = append(names, e.Name())
			}
		}
		t.Fatalf("outbox holds %d entries, want %d results and nothing else; extra: %v", len(entries), items, names)
	}
	for name, sum := range want {
		data, err := os.ReadFile(filepath.Join(outbox, name+".json"))
		var r bot.Result
		if err != nil || json.Unmarshal(data, &r) != nil {
			t.Fatalf("result of %s: %v %q", name, err, data)
		}
		if r.Item != name || r.SHA256 != sum {
			t.Fatalf("result of %s is %+v, want sha256 %s", name, r, sum)
		}
	}
	t.Logf("%d kills, %d with work in hand", kills, midWork)
	if bots := botProcesses(s.dir); len(bots) != 1 {
		t.Fatalf("bots at the end: %v", bots)
	}
}

// faultMountOver mounts over dir, or skips the test saying why it cannot.
// The mount is taken away (lazily) when the test ends; the returned
// function takes it away earlier.
func faultMountOver(t *testing.T, dir string, mount func() error) func() {
	t.Helper()
	if err := mount(); err != nil {
		t.Skipf("cannot mount over %s (needs root on Linux): %v", dir, err)
	}
	var once sync.Once
	unmount := func() {
		once.Do(func() {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
	}
	t.Cleanup(unmount)
	return unmount
}

// faultReadOnly makes dir read-only: a read-only bind mount of itself.
// Files the bot already has open stay writable, as they would.
func faultReadOnly(t *testing.T, dir string) func() {
	t.Helper()
	return faultMountOver(t, dir, func() error {
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
			return err
		}
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
			return err
		}
		return nil
	})
}

// 14a. A data dir that turns read-only: the bot cannot be respawned, the
// agent keeps running and says why in status (and so does the dashboard);
// once the dir is writable again it recovers on its own. An agent started on
// a read-only data dir refuses with a clear message.
func TestFaultDataDirReadOnly(t *testing.T) {
	s := faultNewStack(t)
	nc := s.connect()
	pid := s.running().PID
	writable := faultReadOnly(t, s.data())
	syscall.Kill(pid, syscall.SIGKILL)
	st := faultWaitAgent(t, nc, "bot", "the problem in status", func(st bus.Status) bool {
		return st.Problem != "" && st.State == bus.StateBackoff
	})
	if !strings.Contains(st.Problem, "read-only file system") || !strings.Contains(st.Problem, "bot.pid") {
		t.Errorf("problem %q does not say what and where", st.Problem)
	}
	if hs := s.waitStatus("the dashboard shows the problem", func(st bus.Status) bool { return st.Problem != "" }); hs.Problem != st.Problem {
		t.Errorf("dashboard says %q, agent %q", hs.Problem, st.Problem)
	}
	if !e2eAlive(s.agent.pid()) || len(botProcesses(s.dir)) != 0 {
		t.Fatalf("agent alive %v, bots %v", e2eAlive(s.agent.pid()), botProcesses(s.dir))
	}
	writable()
	st = faultWaitAgent(t, nc, "bot", "recovery once the dir is writable", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.Problem == "" && st.PID != pid
	})

	// A new agent on a read-only data dir.
	s.agent.signal(syscall.SIGTERM)
	s.agent.wait(15 * time.Second)
	e2eWaitGone(t, st.PID)
	faultReadOnly(t, s.data())
	a := s.startAgent()
	if code := a.wait(15 * time.Second); code != 1 || !strings.Contains(a.out.String(), "read-only file system") {
		t.Fatalf("agent on a read-only data dir: exit %d\n%s", code, a.out)
	}
}

// 14b. A data dir that vanishes under a running bot: the bot keeps running,
// the agent keeps running and reports that the PID file is gone (a new agent
// could not find the bot); a restart writes it again and clears the problem.
func TestFaultDataDirVanishes(t *testing.T) {
	s := faultNewStack(t)
	nc := s.connect()
	pid := s.running().PID
	// The operator keeps a copy of its login elsewhere, as it would.
	opSeed := filepath.Join(t.TempDir(), "operator.nk")
	if b, err := os.ReadFile(s.data("bus", "operator.nk")); err != nil || os.WriteFile(opSeed, b, 0o600) != nil {
		t.Fatalf("copy the operator's seed: %v", err)
	}
	// Gone at once (a rename), then deleted: the bot recreates its inbox as
	// it polls, which a plain recursive delete would race with.
	if err := os.Rename(s.data(), s.data()+".gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(s.data() + ".gone"); err != nil {
		t.Fatal(err)
	}
	st := faultWaitAgent(t, nc, "bot", "the problem in status", func(st bus.Status) bool { return st.Problem != "" })
	if !strings.Contains(st.Problem, "bot.pid") || st.PID != pid || st.State != bus.StateRunning {
		t.Errorf("status %+v", st)
	}
	if !e2eAlive(pid) || !e2eAlive(s.agent.pid()) {
		t.Fatalf("bot alive %v, agent alive %v", e2eAlive(pid), e2eAlive(s.agent.pid()))
	}
	out, errOut, code := s.cli("restart", "--nats-nkey", opSeed)
	if code != 0 {
		t.Fatalf("restart: %d %s%s", code, out, errOut)
	}
	st = faultWaitAgent(t, nc, "bot", "a bot with a pid file again", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID != pid && st.Problem == ""
	})
	if got, err := s.pidFromFile(); err != nil || got != st.PID {
		t.Fatalf("pid file %d (%v), want %d", got, err, st.PID)
	}
	e2eWaitGone(t, pid)
}

// 14c. A log file that cannot be opened: the bot runs anyway (it matters
// more than its log), and the agent says in status that its output is lost.
func TestFaultLogFileUnwritable(t *testing.T) {
	s := faultStack(t, faultAgentArgs)
	if err := os.MkdirAll(s.data("bot.log"), 0o755); err != nil { // a directory where the log goes
		t.Fatal(err)
	}
	s.startAgent()
	st := s.running()
	if !strings.Contains(st.Problem, "bot.log") {
		t.Fatalf("problem %q does not mention the log", st.Problem)
	}
	os.Remove(s.data("bot.log"))
	if out, errOut, code := s.cli("restart"); code != 0 {
		t.Fatalf("restart: %s%s", out, errOut)
	}
	s.waitStatus("problem gone once the log can be opened", func(n bus.Status) bool {
		return n.State == bus.StateRunning && n.PID != st.PID && n.Problem == ""
	})
}

// 14d. A full disk: a bot that cannot get its PID file written is not left
// running without one; the agent keeps running, says why in status and in
// its reply, and recovers on its own once there is room. The disk is a
// 64 KiB tmpfs over the data dir or, where mounting is not allowed (or
// LIFELINE_TEST_NO_MOUNT is set), a file size limit of 0 on the agent
// (RLIMIT_FSIZE), which the bots it starts inherit.
func TestFaultDiskFull(t *testing.T) {
	s := faultStack(t, faultAgentArgs)
	nc := s.connect()
	var fill, free func()
	var want string
	err := errors.New("LIFELINE_TEST_NO_MOUNT is set")
	// The mount hides the dashboard's logins: keep a copy for the agent.
	saved := t.TempDir()
	clusterCopyBus(t, s.data("bus"), saved)
	if os.Getenv("LIFELINE_TEST_NO_MOUNT") == "" {
		err = syscall.Mount("tmpfs", s.data(), "tmpfs", 0, "size=64k")
	}
	if err == nil {
		faultMountOver(t, s.data(), func() error { return nil })
		clusterCopyBus(t, filepath.Join(saved, "data", "bus"), s.dir)
		want = "no space left on device"
		filler := s.data("filler")
		fill = func() {
			f, err := os.Create(filler)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			chunk := make([]byte, 4096)
			for {
				if _, err := f.Write(chunk); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("fill the disk: %v", err)
					}
					return
				}
			}
		}
		free = func() { os.Remove(filler) }
	} else {
		t.Logf("no tmpfs (%v): a file size limit on the agent stands in for a full disk", err)
		want = "file too large"
		var old unix.Rlimit
		fill = func() {
			pid := s.agent.pid()
			if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old); err != nil {
				t.Fatal(err)
			}
			if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 0, Max: old.Max}, nil); err != nil {
				t.Fatal(err)
			}
		}
		free = func() {
			if err := unix.Prlimit(s.agent.pid(), unix.RLIMIT_FSIZE, &old, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.startAgent()
	pid := s.running().PID
	if out, errOut, code := s.cli("stop"); code != 0 {
		t.Fatalf("stop: %s%s", out, errOut)
	}
	e2eWaitGone(t, pid)

	fill()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := bus.Ask(ctx, nc, "bot", bus.OpStart, bus.Request{})
	if err != nil || r.OK || !strings.Contains(r.Error, want) {
		t.Fatalf("start on a full disk: %+v %v, want an error saying %q", r, err, want)
	}
	st := faultWaitAgent(t, nc, "bot", "the problem in status", func(st bus.Status) bool { return st.Problem != "" })
	if !strings.Contains(st.Problem, want) || !strings.Contains(st.Problem, "bot.pid") || st.State != bus.StateBackoff {
		t.Errorf("status %+v", st)
	}
	if bots := botProcesses(s.dir); len(bots) != 0 {
		t.Fatalf("bots running without a pid file: %v", bots)
	}
	if !e2eAlive(s.agent.pid()) {
		t.Fatal("agent died")
	}

	free()
	st = faultWaitAgent(t, nc, "bot", "recovery once there is room", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.Problem == ""
	})
	if got, err := s.pidFromFile(); err != nil || got != st.PID {
		t.Fatalf("pid file %d (%v), want %d", got, err, st.PID)
	}
}
