//go:build linux

package main

// `make bench`: timings of the real binary with real processes, each over
// benchRounds rounds, reported as median and p95. Timings live here and not
// in tests because the machines are shared and noisy.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"
)

// benchRounds is how many rounds each timing takes: 30 for `make bench`;
// `make bench-smoke` (CI) runs a few with -args -rounds 3, only so that the
// benchmarks cannot rot unnoticed.
var benchRounds = flag.Int("rounds", 30, "rounds per E2E benchmark")

// benchReport prints and records the median and p95 of samples.
func benchReport(b *testing.B, what string, samples []time.Duration) {
	slices.Sort(samples)
	med := samples[len(samples)/2]
	p95 := samples[(len(samples)*95+99)/100-1]
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("%-48s n=%d  median %7.2f ms  p95 %7.2f ms  max %7.2f ms\n", what, len(samples), ms(med), ms(p95), ms(samples[len(samples)-1]))
	key := strings.ReplaceAll(what, " ", "-")
	b.ReportMetric(ms(med), key+"-median-ms")
	b.ReportMetric(ms(p95), key+"-p95-ms")
}

// benchEvents collects lifecycle events with their arrival time.
type benchEvent struct {
	bus.Event
	at time.Time
}

func benchSubscribe(b *testing.B, nc *nats.Conn, subject string) chan *nats.Msg {
	ch := make(chan *nats.Msg, 1024)
	if _, err := nc.ChanSubscribe(subject, ch); err != nil {
		b.Fatal(err)
	}
	return ch
}

func benchWaitEvent(b *testing.B, ch chan *nats.Msg, typ bus.EventType) benchEvent {
	b.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-ch:
			ev, err := bus.DecodeEvent(m.Data)
			if err == nil && ev.Type == typ {
				return benchEvent{ev, time.Now()}
			}
		case <-timeout:
			b.Fatalf("no %s event", typ)
		}
	}
}

// benchWaitHeartbeat waits for a heartbeat from a pid other than old.
func benchWaitHeartbeat(b *testing.B, ch chan *nats.Msg, old int) (int, time.Time) {
	b.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-ch:
			hb, err := bus.DecodeHeartbeat(m.Data)
			if err == nil && hb.PID != old {
				return hb.PID, time.Now()
			}
		case <-timeout:
			b.Fatalf("no heartbeat from a pid other than %d", old)
		}
	}
}

func benchDrain(ch chan *nats.Msg) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// BenchmarkE2ERespawn kills the bot with SIGKILL and times the way back: to
// the new bot's first heartbeat as a bus client sees it, and the agent's own
// exit-to-spawn time from its events. Backoff is off (--backoff-reset 1ms)
// because the bot is killed 30 times in a row.
func BenchmarkE2ERespawn(b *testing.B) {
	s := e2eNewStack(b, "--backoff-reset", "1ms")
	nc := s.connect()
	beats := benchSubscribe(b, nc, bus.HeartbeatSubject("bot"))
	events := benchSubscribe(b, nc, bus.EventsSubject("bot"))
	pid := s.running().PID
	// Memory as a quiet bot's processes hold it, a few heartbeats in.
	benchWaitHeartbeat(b, beats, 0)
	benchWaitHeartbeat(b, beats, 0)
	benchRSS(b, s, "running")
	var toHeartbeat, toSpawn []time.Duration
	for range *benchRounds {
		benchDrain(beats)
		benchDrain(events)
		t0 := time.Now()
		syscall.Kill(pid, syscall.SIGKILL)
		newPID, at := benchWaitHeartbeat(b, beats, pid)
		toHeartbeat = append(toHeartbeat, at.Sub(t0))
		crashed := benchWaitEvent(b, events, bus.EventCrashed)
		started := benchWaitEvent(b, events, bus.EventStarted)
		toSpawn = append(toSpawn, started.Time.Sub(crashed.Time))
		pid = newPID
	}
	benchReport(b, "SIGKILL of bot -> new bot's first heartbeat", toHeartbeat)
	benchReport(b, "agent: bot exit seen -> new bot spawned", toSpawn)
	// And after the agent has run its respawn path thirty times, once it
	// has handed that garbage back: it waits for memoryQuiet without a
	// start first (see memoryReleaser), which nothing outside shows.
	time.Sleep(memoryQuiet + 300*time.Millisecond)
	benchRSS(b, s, "after-30-respawns")
}

// BenchmarkE2EHangDetection stops the bot with SIGSTOP and times how long
// after the heartbeat timeout the agent declares it hung.
func BenchmarkE2EHangDetection(b *testing.B) {
	const timeout = 500 * time.Millisecond
	s := e2eNewStack(b, "--heartbeat-timeout", timeout.String(), "--backoff-reset", "1ms")
	nc := s.connect()
	beats := benchSubscribe(b, nc, bus.HeartbeatSubject("bot"))
	events := benchSubscribe(b, nc, bus.EventsSubject("bot"))
	pid := s.running().PID
	var late []time.Duration
	for range *benchRounds {
		// Stop it right after a heartbeat, then find the last one it sent.
		benchDrain(beats)
		<-beats
		syscall.Kill(pid, syscall.SIGSTOP)
		last := time.Now()
		hung := benchWaitEvent(b, events, bus.EventHung)
		for len(beats) > 0 {
			if m := <-beats; m != nil {
				last = time.Now() // a heartbeat already in flight
			}
		}
		late = append(late, hung.at.Sub(last)-timeout)
		newPID, _ := benchWaitHeartbeat(b, beats, pid)
		pid = newPID
		benchDrain(events)
	}
	benchReport(b, "hang noticed after the timeout", late)
}

// BenchmarkE2ERestart times restart requests over the bus: the whole request,
// and the part beyond the old bot's own shutdown (from its exit, seen through
// a pidfd, to the reply naming the new running bot).
func BenchmarkE2ERestart(b *testing.B) {
	s := e2eNewStack(b)
	nc := s.connect()
	pid := s.running().PID
	var total, beyond []time.Duration
	for range *benchRounds {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			b.Fatalf("pidfd: %v", err)
		}
		exited := make(chan time.Time, 1)
		go func() {
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 30000)
			exited <- time.Now()
			unix.Close(fd)
		}()
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := bus.Ask(ctx, nc, "bot", bus.OpRestart, bus.Request{RequestedBy: "bench"})
		cancel()
		t1 := time.Now()
		if err != nil || !r.OK {
			b.Fatalf("restart: %+v %v", r, err)
		}
		total = append(total, t1.Sub(t0))
		beyond = append(beyond, t1.Sub(<-exited))
		pid = r.NewPID
	}
	benchReport(b, "restart request -> new bot running", total)
	benchReport(b, "restart beyond the old bot's shutdown", beyond)
}

// BenchmarkE2EBotStart times the demo bot's own start, without any agent:
// from exec to its first heartbeat on the bus. It is the part of a respawn
// or restart that belongs to the bot, not to lifeline, and the figure to
// subtract from them to see lifeline's own share.
func BenchmarkE2EBotStart(b *testing.B) {
	s := e2eNewStack(b)
	nc := s.connect()
	hb := benchSubscribe(b, nc, bus.HeartbeatSubject("solo"))
	bin := e2eBin(b)
	var took []time.Duration
	for range *benchRounds {
		cmd := exec.Command(bin, "bot", "--name", "solo", "--nats-url", s.natsURL,
			"--pid-file", s.data("solo.pid"), "--inbox", s.data("solo-in"), "--outbox", s.data("solo-out"))
		cmd.Dir = s.dir // where the dashboard wrote data/bus/bot.nk, the bot's default login
		cmd.Env = e2eEnv()
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		_, at := benchWaitHeartbeat(b, hb, 0)
		took = append(took, at.Sub(t0))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("bot did not stop cleanly: %v", err)
		}
		benchDrain(hb)
	}
	benchReport(b, "bot's own start: exec -> first heartbeat", took)
}

// BenchmarkE2EStatusCLI times `lifeline status` as a user runs it.
func BenchmarkE2EStatusCLI(b *testing.B) {
	s := e2eNewStack(b)
	s.running()
	bin := e2eBin(b)
	var wall []time.Duration
	for range *benchRounds {
		cmd := exec.Command(bin, "status")
		cmd.Dir = s.dir // as an operator runs it: in the dashboard's directory, with its login
		cmd.Env = e2eEnv("NATS_URL=" + s.natsURL)
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("status: %v\n%s", err, out)
		}
		wall = append(wall, time.Since(t0))
	}
	benchReport(b, "lifeline status wall time", wall)
}

// benchRSS prints the resident memory of each long-running process, at the
// moment named by when.
func benchRSS(b *testing.B, s *e2eStack, when string) {
	botPID, _ := s.pidFromFile()
	for _, p := range []struct {
		name string
		pid  int
	}{{"agent", s.agent.pid()}, {"dashboard", s.dash.pid()}, {"bot", botPID}} {
		rss, pss := procMemKB(p.pid, "VmRSS:"), procRollupKB(p.pid, "Pss:")
		fmt.Printf("%-48s RSS %6.1f MB  PSS %6.1f MB\n", p.name+" memory, "+when, float64(rss)/1024, float64(pss)/1024)
		b.ReportMetric(float64(rss)/1024, p.name+"-"+when+"-RSS-MB")
	}
}

func procMemKB(pid int, key string) int {
	return procFieldKB("/proc/"+strconv.Itoa(pid)+"/status", key)
}

func procRollupKB(pid int, key string) int {
	return procFieldKB("/proc/"+strconv.Itoa(pid)+"/smaps_rollup", key)
}

func procFieldKB(path, key string) int {
	data, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	return 0
}
