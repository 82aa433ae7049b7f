//go:build !unix

package agent

import (
	"errors"
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
