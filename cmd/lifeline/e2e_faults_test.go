//go:build linux

package main

// The fault-injection suite: each test attacks the real binary's processes
// (dashboard, agent, bot) the way production does, and checks one promise
// the product makes. The tests live in one file per promise:
//
//   - e2e_respawn_test.go: a bot that dies is replaced, once, with backoff,
//     and no work is lost;
//   - e2e_hang_test.go: a bot that makes no progress is killed and replaced;
//   - e2e_outage_test.go: the bot outlives its dashboard, its agent and the bus;
//   - e2e_pidfile_test.go: a PID file never makes the agent signal a stranger;
//   - e2e_exclusive_test.go: one bot, one agent, however many are started;
//   - e2e_stop_test.go: a stop or restart leaves nothing behind, one at a time;
//   - e2e_disk_test.go: a data dir that fails is reported, and recovered from.
//
// This file holds the stacks and the bus side the tests share;
// e2e_process_test.go holds what looks at and plays with processes. Bots
// that misbehave in ways the demo bot cannot (ignore SIGTERM, leave
// children, deadlock, crash at start) are small shell scripts run with
// `agent -- COMMAND`, or testdata/deadbot built on the SDK.
//
// Some faults need root on Linux (choosing the next PID through
// /proc/sys/kernel/ns_last_pid, mounting a read-only bind or a tiny tmpfs);
// those tests say so and skip when they cannot do it. CI runs as root.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
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

// faultNewRecorded is faultNewStack with the bot's events recorded from
// the start, once the bot runs: the opening of most fault tests.
func faultNewRecorded(t *testing.T) (*e2eStack, *faultEvents, bus.Status) {
	t.Helper()
	s := faultNewStack(t)
	evs := faultRecordEvents(t, s, "bot")
	return s, evs, s.running()
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
