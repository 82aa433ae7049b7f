//go:build linux

package main

// A bot that dies is replaced: exactly once per death, after a backoff that
// grows while it keeps crashing, and without losing any of its work.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bot"
	"github.com/lifeline-dev/lifeline/bus"
)

// kill -9 the bot twenty times in a row: each time exactly one new bot,
// the restart counter exact, an event for each.
func TestFaultKill9BotTwentyTimes(t *testing.T) {
	s, evs, st := faultNewRecorded(t)
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

// Crash loop (the bot exits 1 at start): backoff state, growing delays
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

// Nothing lost: 1,000 inbox items, the bot killed with -9 at random
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
