//go:build !linux && !darwin && !windows

package agent

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// watcher follows one bot process. Without pidfds it waits on its child or
// checks an adopted PID every quarter second; the goroutine doing so is left
// behind when the agent exits before the bot, which only matters in tests,
// and those run on Linux.
type watcher struct {
	pid  int
	cmd  *exec.Cmd
	done chan struct{}
}

func newWatcher(pid int, cmd *exec.Cmd) (*watcher, error) {
	return &watcher{pid: pid, cmd: cmd, done: make(chan struct{})}, nil
}

// wait blocks until the process exits, or returns ok false once close is
// called. Without pidfds there is no waiting for a child's exit without
// reaping it, so a child of ours is reaped here already.
func (w *watcher) wait() (ok bool) {
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		if w.cmd != nil {
			_ = w.cmd.Wait()
			return
		}
		for {
			if alive, _ := process.PidExists(int32(w.pid)); !alive {
				return
			}
			select {
			case <-w.done:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	select {
	case <-w.done:
		return false
	case <-exited:
		return true
	}
}

// reap returns the exit status of a process wait saw exit.
func (w *watcher) reap() (code int, sig string) {
	if w.cmd == nil {
		return -1, ""
	}
	return describeExit(w.cmd.ProcessState)
}

func (w *watcher) signal(sig syscall.Signal) error {
	p, err := os.FindProcess(w.pid)
	if err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	return nil
}

func (w *watcher) close() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}
