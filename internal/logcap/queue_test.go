//go:build linux

package logcap

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inPipe is how many bytes wait in the pipe f reads (FIONREAD, which
// Linux names TIOCINQ).
func inPipe(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// inPipeWrite reports whether a thread of pid sleeps in the kernel's
// pipe_write (anon_pipe_write on newer kernels): waiting for room.
func inPipeWrite(pid int) bool {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/wchan")
	for _, p := range tasks {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "pipe_write") {
			return true
		}
	}
	return false
}

// While the file cannot be written (the writer held on the capture's lock,
// as a stalled disk holds it in write(2)), the agent holds at most MaxQueued
// bytes of output: the bot waits in its write to a full pipe, as it would
// on a slow file. Once the disk is back, every line reaches the file.
func TestSlowDiskHoldsTheBotNotMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.log")
	c := mustNew(t, Config{Path: path, MaxSize: 1 << 30})
	c.mu.Lock()
	held := true
	defer func() {
		if held {
			c.mu.Unlock()
		}
	}()
	const n = 400 // 64 KiB blocks: 25 MiB, far more than MaxQueued and the pipe
	cmd := botCmd("bulk", "LOGCAP_N="+strconv.Itoa(n))
	cmd.Stdout, cmd.Stderr = c.Stdout(), c.Stderr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, 10*time.Second, "the bot waiting on a full pipe", func() bool {
		return len(c.free) == 0 && inPipe(t, c.out.r) >= c.out.pipe-64<<10 && inPipeWrite(cmd.Process.Pid)
	})
	// It stays so: the agent takes in no more while the disk is stuck.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if q := c.queued.Load(); q > MaxQueued {
			t.Fatalf("%d bytes queued for the file, over MaxQueued %d", q, MaxQueued)
		}
		select {
		case err := <-exited:
			t.Fatalf("the bot wrote all its output while the disk was stuck (%v)", err)
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("disk stuck: %d bytes queued (bound %d), %d in the pipe, the bot waiting", c.queued.Load(), MaxQueued, inPipe(t, c.out.r))
	held = false
	c.mu.Unlock()
	if err := <-exited; err != nil {
		t.Fatalf("bot: %v", err)
	}
	lines := closeAndRead(t, c, path)
	if len(lines) != n*1024 {
		t.Fatalf("file has %d lines, want %d", len(lines), n*1024)
	}
	for i, s := range lines {
		if s != strings.Repeat("y", 63) {
			t.Fatalf("line %d = %q", i, s)
		}
	}
}
