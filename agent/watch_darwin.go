package agent

import (
	"errors"
	"fmt"
	"os/exec"
	"sync/atomic"
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
	kq  int
	// g keeps the kqueue from being closed under a wait blocked on it (the
	// number could be another file's by the time kevent looks at it): close
	// wakes the wait, which closes it on its way out (see handleGuard).
	g      handleGuard
	exited atomic.Bool // the exit was seen, or had happened before we looked
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
	w.g.release = func() { unix.Close(kq) }

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
		w.exited.Store(true)
	case err != nil:
		unix.Close(kq)
		return nil, fmt.Errorf("watch %d: add exit filter: %w", pid, err)
	default:
		// The filter only reports exits after it was attached: one that
		// happened before, leaving a zombie child, is caught here. One that
		// happens after this look fires the filter.
		w.exited.Store(exitedAlready(pid))
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
	if !w.g.beginWait() {
		return false
	}
	exited := w.exited.Load() || w.waitExit()
	if w.g.endWait() {
		return false
	}
	w.exited.Store(exited)
	return exited
}

// waitExit blocks in kevent until the exit filter fires (true) or close
// triggers the wake-up filter (false).
func (w *watcher) waitExit() bool {
	events := make([]unix.Kevent_t, 2)
	for {
		n, err := keventRetry(w.kq, nil, events)
		if err != nil {
			return false // the exit goes unseen, as with a closed pidfd on Linux
		}
		for _, ev := range events[:n] {
			switch {
			case ev.Filter == unix.EVFILT_PROC && ev.Fflags&unix.NOTE_EXIT != 0:
				return true
			case ev.Filter == unix.EVFILT_USER:
				return false
			}
		}
	}
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
// the identity check stays what it is everywhere, proc.verify right before
// every signal (same create time, still the PID file's lock holder), but a
// PID-reuse window remains between that check and the kill(2) here, which
// a pidfd closes on Linux. Once wait has seen an adopted bot exit, nothing
// is sent at all.
func (w *watcher) signal(sig syscall.Signal) error {
	return w.g.use(func() error {
		if w.cmd == nil && w.exited.Load() {
			return fmt.Errorf("signal %v: %w", sig, unix.ESRCH)
		}
		if err := unix.Kill(w.pid, sig); err != nil {
			return fmt.Errorf("signal %v: %w", sig, err)
		}
		return nil
	})
}

// close ends the watch: a wait blocked in kevent is woken through the
// EVFILT_USER filter and closes the kqueue as it returns; otherwise the
// kqueue is closed here. It may be called more than once.
func (w *watcher) close() { w.g.close(w.wake) }

// wake triggers the EVFILT_USER filter. Should that fail, the wait goes on
// until the bot exits, and the kqueue stays open until then.
func (w *watcher) wake() {
	var ev unix.Kevent_t
	unix.SetKevent(&ev, wakeIdent, unix.EVFILT_USER, 0)
	ev.Fflags = unix.NOTE_TRIGGER
	_, _ = keventRetry(w.kq, []unix.Kevent_t{ev}, nil)
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
