//go:build linux

package main

// Stopping and restarting a bot: a stubborn bot still dies, its children
// die with it, and restarts asked for at once run one at a time.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// A bot that ignores SIGTERM dies by SIGKILL after --stop-timeout.
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

// A bot with child processes leaves none behind: not when restarted,
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

// Ten restart requests at once, from HTTP and the bus together:
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
