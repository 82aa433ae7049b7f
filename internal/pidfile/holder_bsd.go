//go:build unix && !linux && !darwin

package pidfile

import (
	"fmt"
	"os/exec"
)

// HeldBy reports whether process pid has the file at path open, which, with
// the file's lock held, proves that pid is the lock holder rather than an
// unrelated process that happens to carry a recycled number.
//
// The BSDs and others have no documented per-process descriptor list that
// gopsutil implements, so this asks lsof (a package there, found on $PATH);
// without it the answer is an error, and the agent refuses to signal.
func HeldBy(pid int, path string) (bool, error) {
	lsof, err := exec.LookPath("lsof")
	if err != nil {
		return false, fmt.Errorf("list open files of %d: %w", pid, err)
	}
	return heldByLsof(lsof, pid, path)
}
