//go:build unix

package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
	"golang.org/x/sys/unix"
)

// A PID file that cannot be written (here: a file size limit of 0, as on a
// full disk) fails the start with the reason, in the reply and in status,
// leaves no bot running without one, and the agent recovers once it can
// write again.
func TestUnwritablePIDFileFailsTheStart(t *testing.T) {
	h, dir := setup(t, "ok", true)
	first := h.running()
	if r, err := h.ask(bus.OpStop, "test"); err != nil || !r.OK {
		t.Fatalf("stop: %+v %v", r, err)
	}
	waitGone(t, first.PID)
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 0, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	restore := func() { unix.Setrlimit(unix.RLIMIT_FSIZE, &old) }
	defer restore()
	r, err := h.ask(bus.OpStart, "test")
	if err != nil || r.OK || !strings.Contains(r.Error, "file too large") {
		t.Fatalf("start: %+v %v", r, err)
	}
	st := h.waitStatus("problem", func(st bus.Status) bool { return st.Problem != "" })
	if !strings.Contains(st.Problem, "bot.pid") || st.State != bus.StateBackoff || st.PID != 0 {
		t.Fatalf("status %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "bot.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty pid file left behind: %v", err)
	}
	restore()
	h.waitStatus("recovered", func(st bus.Status) bool { return st.State == bus.StateRunning && st.Problem == "" })
}
