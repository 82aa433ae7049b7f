//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errNoReport: a bot did not report in time.
var errNoReport = errors.New("no report from the bot")

// report is one tinybot start as the bot itself announced it.
type report struct {
	name string
	pid  int
	at   time.Time // when the harness received it
}

// probe receives tinybot's start reports on a unix datagram socket. Every
// start is timed by the arrival of its report, whichever supervisor (or the
// harness itself) started the bot, so all figures end at the same event.
type probe struct {
	path string
	conn *net.UnixConn
	ch   chan report

	mu   sync.Mutex
	pids map[int]bool // every bot PID that reported, to clean up after
}

func newProbe(path string) (*probe, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("listen on probe socket: %w", err)
	}
	p := &probe{path: path, conn: conn, ch: make(chan report, 1<<14), pids: make(map[int]bool)}
	go p.loop()
	return p, nil
}

func (p *probe) loop() {
	buf := make([]byte, 256)
	for {
		n, _, err := p.conn.ReadFromUnix(buf)
		at := time.Now()
		if err != nil {
			return
		}
		name, pidText, ok := strings.Cut(string(buf[:n]), " ")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil {
			continue
		}
		p.mu.Lock()
		p.pids[pid] = true
		p.mu.Unlock()
		p.ch <- report{name: name, pid: pid, at: at}
	}
}

func (p *probe) close() { p.conn.Close() }

// drain forgets reports already received.
func (p *probe) drain() {
	for {
		select {
		case <-p.ch:
		default:
			return
		}
	}
}

// wait returns the next report from bot name with a PID other than not.
func (p *probe) wait(name string, not int, timeout time.Duration) (report, error) {
	deadline := time.After(timeout)
	for {
		select {
		case r := <-p.ch:
			if r.name == name && r.pid != not {
				return r, nil
			}
		case <-deadline:
			return report{}, fmt.Errorf("%w %s within %s", errNoReport, name, timeout)
		}
	}
}

// waitAll returns the first report of each bot in names whose PID is not
// old[name].
func (p *probe) waitAll(names []string, old map[string]int, timeout time.Duration) (map[string]report, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	got := make(map[string]report, len(names))
	deadline := time.After(timeout)
	for len(got) < len(want) {
		select {
		case r := <-p.ch:
			if want[r.name] && r.pid != old[r.name] {
				if _, seen := got[r.name]; !seen {
					got[r.name] = r
				}
			}
		case <-deadline:
			return got, fmt.Errorf("%w: %d of %d bots within %s", errNoReport, len(got), len(want), timeout)
		}
	}
	return got, nil
}

// reported returns every PID that ever reported.
func (p *probe) reported() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.pids))
	for pid := range p.pids {
		out = append(out, pid)
	}
	return out
}
