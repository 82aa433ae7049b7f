//go:build !unix

package agent

import (
	"errors"
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func getpgid(int) (int, error) { return 0, errors.New("process groups are not supported here") }

func signalGroup(int, syscall.Signal) {}

func signalName(sig syscall.Signal) string { return sig.String() }

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
	sigCont = syscall.Signal(0x12)
)

// openLog opens the bot's log for appending, created 0600; there is no
// O_NOFOLLOW to add here.
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}
