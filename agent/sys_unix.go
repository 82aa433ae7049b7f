//go:build unix

package agent

import "syscall"

// sysProcAttr puts the bot in its own session, so the terminal's Ctrl+C does
// not reach it and its whole process group can be signalled at once.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

func getpgid(pid int) (int, error) { return syscall.Getpgid(pid) }

func signalGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }

func signalName(sig syscall.Signal) string { return sig.String() }

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
	sigCont = syscall.SIGCONT
)
