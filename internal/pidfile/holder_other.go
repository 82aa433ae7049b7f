//go:build !linux

package pidfile

import (
	"fmt"
	"path/filepath"

	"github.com/shirou/gopsutil/v4/process"
)

// HeldBy reports whether process pid has the file at path open. Off Linux it
// compares paths through gopsutil, which is weaker than comparing inodes.
func HeldBy(pid int, path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return false, fmt.Errorf("find process %d: %w", pid, err)
	}
	files, err := p.OpenFiles()
	if err != nil {
		return false, fmt.Errorf("list open files of %d: %w", pid, err)
	}
	for _, f := range files {
		if f.Path == abs {
			return true, nil
		}
	}
	return false, nil
}
