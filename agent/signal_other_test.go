//go:build !unix

package agent

import (
	"os"

	"github.com/shirou/gopsutil/v4/process"
)

// sigkill ends pid at once, the nearest thing to kill -9 (TerminateProcess
// on Windows).
func sigkill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	defer p.Release()
	return p.Kill()
}

// exists reports whether pid is still there.
func exists(pid int) bool {
	ok, _ := process.PidExists(int32(pid))
	return ok
}
