//go:build linux

package logcap

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/internal/proctest"
)

// ticks returns the numbers of the "tick N T" lines in a log, and whether
// each line is whole.
func ticks(t *testing.T, path string) (nums []int, done bool) {
	t.Helper()
	for _, s := range readLines(t, path) {
		if s == "done" {
			done = true
			continue
		}
		f := strings.Fields(s)
		n, err := strconv.Atoi(f[1])
		if len(f) != 3 || f[0] != "tick" || err != nil {
			t.Fatalf("line %q is not whole", s)
		}
		nums = append(nums, n)
	}
	return nums, done
}

// unread is how many bytes wait in the named pipe at path. The bot holds a
// reader of its own (openFIFO), so opening and closing one here is no
// reader going away for it.
func unread(t *testing.T, path string) int {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return inPipe(t, f)
}

// waitWritesUnread waits until the bot has written more bytes into the
// named pipe at path than it held at first, with nobody reading them: the
// bot lives through a time without a capture, however slow the machine.
func waitWritesUnread(t *testing.T, path string, more int) {
	t.Helper()
	first := unread(t, path)
	waitFor(t, 5*time.Second, "the bot writing on with no capture", func() bool { return unread(t, path) >= first+more })
}

// The agent closes its Capture (a graceful exit leaving the bot running);
// the bot writes on into the named pipe, and a second Capture takes over
// the pipes and gets every line, none lost and none cut.
func TestFIFOBotOutlivesCaptureAndNextCaptureGetsEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "bot.log"), FIFODir: filepath.Join(dir, "pipes")}
	c1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1500 // 1.5 s at one line a millisecond
	cmd := botCmd("paced", "LOGCAP_N="+strconv.Itoa(n), "LOGCAP_EVERY_US=1000")
	cmd.Stdout, cmd.Stderr = c1.Stdout(), c1.Stderr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, 5*time.Second, "200 lines", func() bool { return len(c1.Tail(200)) == 200 })
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	// No reader while the bot writes 100 lines or so: it does not die.
	gapStart := len(readLines(t, cfg.Path))
	waitWritesUnread(t, filepath.Join(cfg.FIFODir, "stdout"), 2<<10)
	select {
	case err := <-exited:
		t.Fatalf("bot exited while no capture read its pipe: %v", err)
	default:
	}
	c2 := mustNew(t, cfg)
	if err := <-exited; err != nil {
		t.Fatalf("bot: %v", err)
	}
	waitFor(t, 5*time.Second, "done line", func() bool {
		tl := c2.Tail(1)
		return len(tl) == 1 && tl[0].Text == "done"
	})
	c2.Close()
	nums, done := ticks(t, cfg.Path)
	for i, got := range nums {
		if got != i {
			t.Fatalf("line %d is tick %d: lost or repeated across the hand-over", i, got)
		}
	}
	if len(nums) != n || !done {
		t.Fatalf("%d ticks (done %v), want %d", len(nums), done, n)
	}
	t.Logf("%d lines written by the first capture, the rest (from the pipe buffer and after) by the second", gapStart)
}

// The agent holding the Capture is killed with kill -9: the bot keeps its
// PID and runs on, and a new Capture gets its output.
func TestFIFOBotSurvivesKilledAgent(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "bot.log"), FIFODir: filepath.Join(dir, "pipes")}
	const n = 2000
	agent := botCmd("agent", "LOGCAP_LOG="+cfg.Path, "LOGCAP_FIFO="+cfg.FIFODir,
		"LOGCAP_N="+strconv.Itoa(n), "LOGCAP_EVERY_US=1000")
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatal("agent said nothing")
	}
	pid, err := strconv.Atoi(sc.Text())
	if err != nil {
		t.Fatalf("agent: %s", sc.Text())
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	waitFor(t, 5*time.Second, "200 lines in the log", func() bool {
		b, _ := os.ReadFile(cfg.Path)
		return strings.Count(string(b), "\n") >= 200
	})
	agent.Process.Kill()
	agent.Wait()
	waitWritesUnread(t, filepath.Join(cfg.FIFODir, "stdout"), 2<<10)
	if !proctest.Alive(pid) {
		t.Fatal("the bot died with its agent")
	}
	before, _ := ticks(t, cfg.Path)

	c2 := mustNew(t, cfg)
	waitFor(t, 10*time.Second, "done line", func() bool {
		tl := c2.Tail(1)
		return len(tl) == 1 && tl[0].Text == "done"
	})
	c2.Close()
	nums, _ := ticks(t, cfg.Path)
	// Only what the killed agent had read but not yet written can be lost:
	// one read's worth, at the instant of the kill. Everything the bot
	// wrote after is there, in order.
	after := nums[len(before):]
	for i := 1; i < len(after); i++ {
		if after[i] != after[i-1]+1 {
			t.Fatalf("gap after the kill: tick %d then %d", after[i-1], after[i])
		}
	}
	if len(after) == 0 || after[len(after)-1] != n-1 {
		t.Fatalf("new capture got %d ticks, ending at %v", len(after), after)
	}
	lost := n - len(nums)
	t.Logf("killed agent wrote %d ticks, new capture %d, lost at the kill %d", len(before), len(after), lost)
	if lost != 0 && (len(before) == 0 || after[0]-before[len(before)-1]-1 != lost) {
		t.Fatalf("lines lost elsewhere than at the kill")
	}
	if proctest.Alive(pid) {
		waitFor(t, 5*time.Second, "bot exit", func() bool { return !proctest.Alive(pid) })
	}
}

// Evidence for the FIFO: with a plain pipe, a bot whose reader is gone
// dies on its next write (SIGPIPE, or EPIPE where it is ignored).
func TestPlainPipeBotDiesWhenCaptureGone(t *testing.T) {
	c, err := New(Config{Path: filepath.Join(t.TempDir(), "bot.log")})
	if err != nil {
		t.Fatal(err)
	}
	cmd := botCmd("paced", "LOGCAP_N=5000", "LOGCAP_EVERY_US=1000")
	cmd.Stdout, cmd.Stderr = c.Stdout(), c.Stderr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "first lines", func() bool { return len(c.Tail(1)) > 0 })
	c.Close() // as an agent's death closes its read end
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Logf("bot on a plain pipe, reader gone: %v", err)
		if err == nil {
			t.Fatal("bot exited cleanly")
		}
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatal("bot on a plain pipe survived its reader")
	}
}
