//go:build !unix

package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/shirou/gopsutil/v4/process"
)

// e2eKill ends pid at once, the nearest thing to kill -9 (TerminateProcess
// on Windows).
func e2eKill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	defer p.Release()
	return p.Kill()
}

// e2eProbe returns nil while pid is there, as signal 0 does on Unix.
func e2eProbe(pid int) error {
	if ok, err := process.PidExists(int32(pid)); !ok {
		return fmt.Errorf("process %d: not found (%v)", pid, err)
	}
	return nil
}

// e2eFreeze skips the test: there is no SIGSTOP here, and the documented way
// to suspend a whole process (attaching as its debugger) is not one a test
// should take.
func e2eFreeze(t testing.TB, pid int) error {
	t.Skipf("cannot freeze process %d: no SIGSTOP on this platform", pid)
	return nil
}
