package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
)

// runWaits fires the wait timer until no wait is in progress, as the loop
// does, calling between before each poll.
func runWaits(s *supervisor, between func(poll int)) {
	for poll := 0; s.waiting != waitNone; poll++ {
		between(poll)
		<-s.waitT.C
		s.waitT = nil
		s.onWaitTimer()
	}
}

func newWaitSupervisor(t *testing.T) *supervisor {
	s, _ := newTestSupervisor()
	s.p, s.state = nil, bus.StateStopped
	s.cfg.PIDFile = filepath.Join(t.TempDir(), "bot.pid")
	return s
}

// lockUnwritten holds the PID file's lock without writing a PID, as a bot
// starting this instant does.
func lockUnwritten(t *testing.T, s *supervisor) *pidfile.File {
	pf, err := pidfile.Acquire(s.cfg.PIDFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pf.Remove() })
	return pf
}

func TestLookRereadsAPIDFileBeingWrittenOnTheWaitTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newWaitSupervisor(t)
		pf := lockUnwritten(t, s)
		start := time.Now()
		var got error
		done := false
		s.lookFor(func(_ *proc, err error) { got, done = err, true })
		if done || s.waiting != waitPIDWritten {
			t.Fatalf("look did not wait: done %v, waiting %d", done, s.waiting)
		}
		runWaits(s, func(poll int) {
			if poll == 3 {
				// Our own PID: the look must refuse it, which proves it read the file.
				if err := pf.WritePID(os.Getpid()); err != nil {
					t.Fatal(err)
				}
			}
		})
		if !done || got == nil || !strings.Contains(got.Error(), "names this agent") {
			t.Fatalf("look ended %v with %v, want the PID written meanwhile refused", done, got)
		}
		if d := time.Since(start); d != 4*pidWrittenPoll {
			t.Fatalf("look took %s, want %s", d, 4*pidWrittenPoll)
		}
	})
}

func TestLookGivesUpOnAPIDFileNeverWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newWaitSupervisor(t)
		lockUnwritten(t, s)
		start := time.Now()
		var order []string
		var got error
		s.lookFor(func(_ *proc, err error) { got = err; order = append(order, "first") })
		// A look asked for while the first waits follows it.
		s.lookFor(func(*proc, error) { order = append(order, "second") })
		runWaits(s, func(int) {
			if s.waitT == nil {
				t.Fatal("waiting without a wait timer")
			}
		})
		if !errors.Is(got, pidfile.ErrGarbage) || !strings.Contains(got.Error(), "locked but unreadable") {
			t.Fatalf("look ended with %v, want the PID file unreadable", got)
		}
		if want := 2 * pidWrittenTries * pidWrittenPoll; time.Since(start) != want {
			t.Fatalf("looks took %s, want %s (both waited their full tries)", time.Since(start), want)
		}
		if strings.Join(order, ",") != "first,second" {
			t.Fatalf("looks ended in order %v", order)
		}
	})
}

func TestExitWaitsForThePIDFileUnlockedOnTheWaitTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, pf, start := exitWithLockHeld(t)
		if s.waiting != waitUnlocked || s.lastExit != nil {
			t.Fatalf("exit went on while the lock was held: waiting %d", s.waiting)
		}
		runWaits(s, func(poll int) {
			if poll == 10 {
				pf.Remove() // its last child is gone
			}
		})
		if s.lastExit == nil || s.p != nil || s.state != bus.StateStopped {
			t.Fatalf("exit not handled once unlocked: state %s", s.state)
		}
		if d := time.Since(start); d != 11*unlockPoll {
			t.Fatalf("exit went on after %s, want %s", d, 11*unlockPoll)
		}
	})
}

func TestExitGoesOnAfterASecondOfLockHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _, start := exitWithLockHeld(t)
		runWaits(s, func(int) {})
		if d := time.Since(start); s.lastExit == nil || d < unlockWait || d > unlockWait+unlockPoll {
			t.Fatalf("exit handled %v after %s, want after %s", s.lastExit != nil, d, unlockWait)
		}
	})
}

// exitWithLockHeld is a supervisor whose bot has exited while the bot's
// locked PID file (returned) still names it, with the wait for the lock's
// release begun at the returned time.
func exitWithLockHeld(t *testing.T) (*supervisor, *pidfile.File, time.Time) {
	t.Helper()
	s := newWaitSupervisor(t)
	pf := lockUnwritten(t, s)
	if err := pf.WritePID(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	p := &proc{pid: os.Getpid(), pgid: os.Getpid(), startedAt: time.Now()}
	s.p, s.state, s.want = p, bus.StateRunning, false
	start := time.Now()
	s.unlockExit, s.unlockBy = exitInfo{p: p}, time.Now().Add(unlockWait)
	s.checkUnlocked()
	return s, pf, start
}
