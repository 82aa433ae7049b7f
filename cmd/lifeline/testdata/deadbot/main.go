// Command deadbot is a bot built on lifeline's SDK whose work loop deadlocks
// after a few steps while its other goroutines keep running: its bus
// connection stays up and a side goroutine keeps writing a counter. Only the
// missing heartbeats give it away. The fault-injection suite
// (cmd/lifeline/e2e_faults_test.go) builds it and runs it under an agent,
// which passes the bot's name, PID file and bus in the environment.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/lifeline-dev/lifeline/bot"
)

func main() {
	steps := flag.Int("steps", 10, "steps before the work loop deadlocks")
	dir := flag.String("dir", ".", "where to write alive-PID (a counter the side goroutine bumps) and blocked-PID")
	flag.Parse()
	pid := os.Getpid()
	go func() { // a goroutine that lives on after the work loop is stuck
		alive := filepath.Join(*dir, fmt.Sprintf("alive-%d", pid))
		for n := 1; ; n++ {
			// A rename, so that a reader never sees the file half written.
			os.WriteFile(alive+".tmp", []byte(strconv.Itoa(n)), 0o600)
			os.Rename(alive+".tmp", alive)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bot.Bot{
		Name:      os.Getenv("LIFELINE_NAME"),
		NATSURL:   os.Getenv("NATS_URL"),
		PIDFile:   os.Getenv("LIFELINE_PID_FILE"),
		Heartbeat: 100 * time.Millisecond,
		Poll:      20 * time.Millisecond,
		Worker:    &stuck{after: *steps, marker: filepath.Join(*dir, fmt.Sprintf("blocked-%d", pid))},
	}
	if err := b.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "deadbot:", err)
		os.Exit(1)
	}
}

// stuck does `after` steps, then blocks forever in the next one, the way a
// worker waiting on a lock nobody releases would.
type stuck struct {
	n, after int
	marker   string
}

func (s *stuck) Step(context.Context) (bool, error) {
	s.n++
	if s.n > s.after {
		os.WriteFile(s.marker, nil, 0o600)
		<-make(chan struct{})
	}
	return false, nil
}

func (s *stuck) Stats() map[string]int64 { return map[string]int64{"steps": int64(s.n)} }
