//go:build !linux

package memtrim

import (
	"errors"
	"fmt"
)

// ReleaseStartupPages releases nothing off Linux, and says so. What to drop
// is read from /proc/self/smaps, which only Linux has. macOS lists a
// process's mappings only through private libproc calls, and its
// madvise(MADV_DONTNEED) merely lowers the pages' priority; its pager
// reclaims clean code pages under memory pressure anyway. Windows can only
// trim the whole working set (SetProcessWorkingSetSizeEx), heap included,
// which the next garbage collection faults back in. Nothing depends on the
// release: the agent keeps a larger resident set, nothing more.
func ReleaseStartupPages() (Stats, error) {
	return Stats{}, fmt.Errorf("release startup pages: no /proc/self/smaps here: %w", errors.ErrUnsupported)
}
