package pidfile

import (
	"fmt"
	"os"
	"strconv"
)

// HeldBy reports whether process pid has the file at path open, which, with
// the file's lock held, proves that pid is the lock holder rather than an
// unrelated process that happens to carry a recycled number.
func HeldBy(pid int, path string) (bool, error) {
	want, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("stat pid file: %w", err)
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("list descriptors of %d: %w", pid, err)
	}
	for _, e := range entries {
		fi, err := os.Stat(dir + "/" + e.Name())
		if err == nil && os.SameFile(fi, want) {
			return true, nil
		}
	}
	return false, nil
}
