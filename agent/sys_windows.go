//go:build windows

package agent

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/windows"
)

// Built for Windows from its documented APIs, but never run: no machine
// this is developed or tested on has Windows.

// sysProcAttr starts the bot in its own console process group, so the
// console's Ctrl+C does not reach it and CTRL_BREAK_EVENT can be sent to it
// and its children (see sysStopper.term). It still shares the agent's
// console, as CTRL_BREAK_EVENT requires, so what a console does to all its
// processes reaches the bot too: Ctrl+Break typed there, and the closing of
// its window (CTRL_CLOSE_EVENT), which ends the bot with the agent. A bot
// meant to outlive its agent needs an agent without a console window of its
// own (a service, or started detached).
//
// It also starts the bot suspended: newWatcher puts it in its Job Object
// and only then lets it run, so not even a child it spawns in its first
// instant escapes the job. Whoever starts a process with this must hand it
// to newWatcher, or kill it; nothing else resumes it.
//
// An agent without a console (a service) has its bot start without a
// window (CREATE_NO_WINDOW), rather than pop one up for each bot; such a bot
// has a console of its own, which CTRL_BREAK_EVENT cannot reach, so it is
// stopped by the bus request, then its job.
func sysProcAttr() *syscall.SysProcAttr {
	flags := uint32(windows.CREATE_NEW_PROCESS_GROUP | windows.CREATE_SUSPENDED)
	if !hasConsole() {
		flags |= windows.CREATE_NO_WINDOW
	}
	return &syscall.SysProcAttr{CreationFlags: flags}
}

// hasConsole reports whether this process is attached to a console:
// CONOUT$ opens only then, whatever its standard handles are redirected to.
func hasConsole() bool {
	name, err := windows.UTF16PtrFromString("CONOUT$")
	if err != nil {
		return false
	}
	h, err := windows.CreateFile(name, windows.GENERIC_READ|windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE, nil, windows.OPEN_EXISTING, 0, 0)
	if err != nil {
		return false
	}
	windows.CloseHandle(h)
	return true
}

// errNoGroups: Windows cannot tell which console process group a process
// is in.
var errNoGroups = errors.New("process groups cannot be read on windows")

// getpgid always fails: nothing tells a process's console group. A bot's
// children are known instead by its Job Object (see inGroup).
func getpgid(int) (int, error) { return 0, errNoGroups }

// signalGroup can only end the process pgid itself, for sigKill: Windows
// has no call that ends a console process group, a bot's Job Object does
// that (sysStopper.kill, watcher.reap). It is used on a bot this agent
// started and has not waited for, whose PID os/exec's handle keeps from
// being reused, so the PID is still that bot's.
func signalGroup(pgid int, sig syscall.Signal) {
	if sig != sigKill {
		return
	}
	h, err := windows.OpenProcess(windows.PROCESS_TERMINATE, false, uint32(pgid))
	if err != nil {
		return
	}
	defer windows.CloseHandle(h)
	_ = windows.TerminateProcess(h, killExitCode)
}

func signalName(sig syscall.Signal) string { return sig.String() }

// The stop steps as the supervisor names them (see takeStep). SIGCONT has
// no meaning on Windows, which cannot stop a process the way SIGSTOP does:
// its step does nothing, and this number only tells it apart.
const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
	sigCont = syscall.Signal(0x12)
)

// killExitCode is the exit code a bot ended by kill gets; reap reports it
// as "killed", as a SIGKILL is on unix.
const killExitCode = 1

// sysStopper ends a bot with what Windows has: CTRL_BREAK_EVENT, then its
// Job Object.
type sysStopper struct{ p *proc }

// term sends CTRL_BREAK_EVENT to the bot's console process group: the bot
// and its children get it, a Go program as os.Interrupt. Only a group this
// agent created is sent it (see breakGroup). It reaches the bot only if the
// bot shares this agent's console (it does when the agent has one);
// otherwise it fails and kill follows at StopTimeout.
func (s sysStopper) term() error {
	group, err := breakGroup(s.p)
	if err != nil {
		return err
	}
	if err := windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, group); err != nil {
		return fmt.Errorf("send CTRL_BREAK_EVENT to group %d: %w", group, err)
	}
	return nil
}

// cont does nothing: without SIGSTOP there is no stopped bot to wake.
func (sysStopper) cont() error { return nil }

// kill ends the bot's whole tree through its Job Object, or only the bot
// when it has none (adopted; see watcher.terminate).
func (s sysStopper) kill() error { return s.p.watch.terminate() }

// createdNow reads the creation time of the process p's watcher holds open.
// The handle keeps the PID from being reused, and the creation time proves
// it is the process whose time was recorded when it was found; it is in
// gopsutil's unit (ms since the epoch, from the same GetProcessTimes), so
// the identity is the one recorded on every platform.
func createdNow(p *proc) (int64, error) {
	if p.watch == nil {
		return p.ps.CreateTime()
	}
	return p.watch.createTime()
}

// inGroup reports whether pid is in the Job Object of a bot this agent
// started: the bot's descendants, which is what its process group is on
// unix. An adopted bot has none of ours, so only its own PID speaks for it.
func inGroup(p *proc, pid int) bool {
	return p.watch != nil && p.watch.inJob(pid)
}
