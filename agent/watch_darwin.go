package agent

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// watcher follows one bot process through a kqueue of its own: an
// EVFILT_PROC/NOTE_EXIT filter on the bot, so that its exit arrives as an
// event (no polling, and it works for a bot this agent did not start), and
// an EVFILT_USER filter that close triggers to wake a blocked wait.
//
// NOTE_EXIT fires when the process exits, before its parent reaps it, so
// for a child of ours wait does not reap, as on Linux: until reap, the
// zombie keeps its PID, and so its process group's ID, from being given to
// anyone else, and settle's group kill cannot reach a stranger.
//
// kevent blocks the thread that calls it (the runtime's own poller is not
// told about this kqueue), so a bot being watched costs one thread parked
// in the kernel; a pidfd on Linux costs none.
type watcher struct {
	pid int
	cmd *exec.Cmd

	// mu guards the kqueue's descriptor: close must not close it while wait
	// is blocked on it (the number could be reused by then), so whichever of
	// the two comes last closes it.
	mu      sync.Mutex
	kq      int  // -1 once closed
	waiting bool // a wait is blocked in kevent
	closed  bool // close was called
	exited  bool // the exit was seen, or had happened before we looked
}

// wakeIdent names the EVFILT_USER filter close triggers.
const wakeIdent = 1

// sZomb is p_stat of a process that has exited and awaits its reaping
// (SZOMB in <sys/proc.h>; golang.org/x/sys does not export it).
const sZomb = 5

func newWatcher(pid int, cmd *exec.Cmd) (*watcher, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, fmt.Errorf("open kqueue for %d: %w", pid, err)
	}
	// A kqueue is not inherited across fork anyway; this is belt and braces
	// for the bots this agent starts.
	unix.CloseOnExec(kq)
	w := &watcher{pid: pid, cmd: cmd, kq: kq}

	var wake unix.Kevent_t
	unix.SetKevent(&wake, wakeIdent, unix.EVFILT_USER, unix.EV_ADD|unix.EV_CLEAR)
	if _, err := keventRetry(kq, []unix.Kevent_t{wake}, nil); err != nil {
		unix.Close(kq)
		return nil, fmt.Errorf("watch %d: add wake-up filter: %w", pid, err)
	}

	var exit unix.Kevent_t
	unix.SetKevent(&exit, pid, unix.EVFILT_PROC, unix.EV_ADD|unix.EV_ONESHOT)
	exit.Fflags = unix.NOTE_EXIT
	_, err = keventRetry(kq, []unix.Kevent_t{exit}, nil)
	switch {
	case errors.Is(err, unix.ESRCH):
		// Gone before we looked (or, for a child, already a zombie, which
		// XNU does not attach to): the exit will not fire, so it counts as
		// seen. A child's status is still there for reap.
		w.exited = true
	case err != nil:
		unix.Close(kq)
		return nil, fmt.Errorf("watch %d: add exit filter: %w", pid, err)
	default:
		// The filter only reports exits after it was attached: one that
		// happened before, leaving a zombie child, is caught here. One that
		// happens after this look fires the filter.
		w.exited = exitedAlready(pid)
	}
	return w, nil
}

// exitedAlready reports whether pid has exited: no such process, or a
// zombie.
func exitedAlready(pid int) bool {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return true
	}
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if errors.Is(err, unix.EIO) {
		return true // the sysctl returned no entry: the process is gone
	}
	return err == nil && kp.Proc.P_stat == sZomb
}

// wait blocks until the process exits, or returns ok false once close is
// called. It does not reap a child of ours (see watcher).
func (w *watcher) wait() (ok bool) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	if w.exited {
		w.mu.Unlock()
		return true
	}
	w.waiting = true
	kq := w.kq
	w.mu.Unlock()

	exited := false
	events := make([]unix.Kevent_t, 2)
	for done := false; !done; {
		n, err := keventRetry(kq, nil, events)
		if err != nil {
			break // an error leaves the exit unseen, as a closed pidfd does on Linux
		}
		for _, ev := range events[:n] {
			switch {
			case ev.Filter == unix.EVFILT_PROC && ev.Fflags&unix.NOTE_EXIT != 0:
				exited, done = true, true
			case ev.Filter == unix.EVFILT_USER:
				done = true
			}
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiting = false
	w.exited = w.exited || exited
	if w.closed {
		unix.Close(kq)
		w.kq = -1
		return false
	}
	return exited
}

// reap collects the exit status of a process wait saw exit, releasing its
// PID. It returns at once, the process being a zombie by then.
func (w *watcher) reap() (code int, sig string) {
	if w.cmd == nil {
		return -1, "" // not our child: the exit status is not ours to read
	}
	_ = w.cmd.Wait()
	return describeExit(w.cmd.ProcessState)
}

// signal sends sig by PID: macOS has no pidfd to aim it with. For a child
// of ours that is exact, since only reap frees its PID. For an adopted bot
// a PID-reuse window remains between proc.verify (create time and PID-file
// lock, checked right before every signal) and the kill(2) here; once wait
// has seen the bot exit, nothing is sent at all.
func (w *watcher) signal(sig syscall.Signal) error {
	w.mu.Lock()
	gone := w.exited && w.cmd == nil
	w.mu.Unlock()
	if gone {
		return fmt.Errorf("signal %v: %w", sig, unix.ESRCH)
	}
	if err := unix.Kill(w.pid, sig); err != nil {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	return nil
}

// close ends the watch: a wait blocked in kevent is woken by the
// EVFILT_USER filter and closes the kqueue on its way out; otherwise it is
// closed here. It may be called more than once.
func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	if w.waiting {
		var wake unix.Kevent_t
		unix.SetKevent(&wake, wakeIdent, unix.EVFILT_USER, 0)
		wake.Fflags = unix.NOTE_TRIGGER
		// Should the trigger fail, the descriptor is still left to the
		// wait, which returns false once the bot exits: closing it under a
		// blocked kevent could let the number be reused meanwhile.
		_, _ = keventRetry(w.kq, []unix.Kevent_t{wake}, nil)
		return
	}
	unix.Close(w.kq)
	w.kq = -1
}

// keventRetry is kevent without a timeout, retried when a signal
// interrupts it.
func keventRetry(kq int, changes, events []unix.Kevent_t) (int, error) {
	for {
		n, err := unix.Kevent(kq, changes, events, nil)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
