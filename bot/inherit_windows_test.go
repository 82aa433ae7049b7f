//go:build windows

package bot

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"golang.org/x/sys/windows"
)

// dupHandle returns a second handle for f's file object, as a child process
// inherits it.
func dupHandle(t *testing.T, f *os.File) uintptr {
	t.Helper()
	self := windows.CurrentProcess()
	var h windows.Handle
	if err := windows.DuplicateHandle(self, windows.Handle(f.Fd()), self, &h, 0, true, windows.DUPLICATE_SAME_ACCESS); err != nil {
		t.Fatal(err)
	}
	return uintptr(h)
}

// TestInheritedPIDFileWindows plays the agent in-process: it locks the PID
// file and hands the bot a duplicate of the locked handle through the
// environment, its value where a Unix agent puts a descriptor number.
func TestInheritedPIDFileWindows(t *testing.T) {
	s := bustest.NewServer(t)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	path := filepath.Join(t.TempDir(), "bot.pid")
	agent, err := pidfile.Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	t.Setenv(pidfile.EnvFD, strconv.FormatUint(uint64(dupHandle(t, agent.Descriptor())), 10))

	b := newBot(t, s.ClientURL(), &countWorker{})
	b.PIDFile = path
	done, cancel := runBot(t, b)
	nextHeartbeat(t, sub)
	if v, ok := os.LookupEnv(pidfile.EnvFD); ok {
		t.Errorf("%s=%s still set; the bot's children would inherit the claim", pidfile.EnvFD, v)
	}
	if pid, err := pidfile.Read(path); err != nil || pid != os.Getpid() {
		t.Errorf("pidfile.Read = %d, %v; want %d", pid, err, os.Getpid())
	}
	cancel()
	mustReturn(t, done)
	assertNoPIDFile(t, path)
}

func TestInheritedPIDFileMismatchWindows(t *testing.T) {
	dir := t.TempDir()
	other, err := pidfile.Acquire(filepath.Join(dir, "other.pid"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	h := strconv.FormatUint(uint64(dupHandle(t, other.Descriptor())), 10)
	for _, v := range []string{h, "not-a-number", "-1"} {
		t.Setenv(pidfile.EnvFD, v)
		b := newBot(t, closedURL(t), &countWorker{})
		b.PIDFile = filepath.Join(dir, "bot.pid")
		if err := b.Run(t.Context()); err == nil {
			t.Errorf("Run with %s=%s and another file succeeded", pidfile.EnvFD, v)
		}
	}
}
