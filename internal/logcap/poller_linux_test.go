package logcap

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/internal/proctest"
)

// TestReadEndStaysOutOfThePoller: the pipe the bot writes into is in the
// runtime's poller only while the reader waits on an empty pipe, through a
// duplicate it closes once data came; never the read end itself. A pipe
// kept in the poller costs the bot a wake-up of the agent per write (see
// pipe_unix.go), which BenchmarkCaptureThroughput/print measures.
func TestReadEndStaysOutOfThePoller(t *testing.T) {
	c := mustNew(t, Config{Path: filepath.Join(t.TempDir(), "bot.log")})
	for _, s := range []*stream{c.out, c.err} {
		if polled(t)[s.fd] {
			t.Fatalf("%s: the read end itself (fd %d) is in the poller", s.name, s.fd)
		}
	}
	idleFD := func() int {
		c.out.mu.Lock()
		defer c.out.mu.Unlock()
		if c.out.idle == nil {
			return -1
		}
		// Not Fd(): it would make the shared open file blocking.
		fd := -1
		if rc, err := c.out.idle.SyscallConn(); err == nil {
			_ = rc.Control(func(d uintptr) { fd = int(d) })
		}
		return fd
	}
	waitFor(t, 5*time.Second, "the idle reader waiting in the poller", func() bool {
		fd := idleFD()
		return fd >= 0 && polled(t)[fd]
	})
	idle := func() *os.File {
		c.out.mu.Lock()
		defer c.out.mu.Unlock()
		return c.out.idle
	}
	first := idle()
	if _, err := c.Stdout().WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the line read", func() bool {
		tl := c.Tail(1)
		return len(tl) == 1 && tl[0].Text == "hello"
	})
	// The duplicate that waited is closed, so out of the poller; a later
	// wait has one of its own (maybe with the same number).
	waitFor(t, 5*time.Second, "the waiting duplicate closed", func() bool {
		return idle() != first
	})
	if rc, err := first.SyscallConn(); err == nil && rc.Control(func(uintptr) {}) == nil {
		t.Fatal("the duplicate that waited is still open")
	}
	if polled(t)[c.out.fd] {
		t.Fatalf("the read end (fd %d) is in the poller after a read", c.out.fd)
	}
}

// polled returns the descriptors in this process's epoll sets.
func polled(t *testing.T) map[int]bool {
	t.Helper()
	fds := proctest.Polled()
	if len(fds) == 0 {
		t.Fatal("no descriptor in any epoll set: not the runtime this test knows")
	}
	return fds
}
