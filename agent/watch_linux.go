package agent

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// watcher follows one bot process through a pidfd: the exit arrives as an
// event from the runtime's poller (no polling of /proc), it works for a bot
// this agent did not start, and signals sent through it cannot hit a process
// that later reused the PID.
type watcher struct {
	f   *os.File
	cmd *exec.Cmd
}

func newWatcher(pid int, cmd *exec.Cmd) (*watcher, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open pidfd for %d: %w", pid, err)
	}
	return &watcher{f: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), cmd: cmd}, nil
}

// wait blocks until the process exits, or returns ok false once close is
// called. It does not reap a child of ours: until reap, the zombie keeps its
// PID, and so its process group's ID, from being given to anyone else.
func (w *watcher) wait() (ok bool) {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return false
	}
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		return n > 0
	})
	return err == nil
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

func (w *watcher) signal(sig syscall.Signal) error {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("signal %v: %w", sig, serr)
	}
	return nil
}

func (w *watcher) close() { w.f.Close() }
