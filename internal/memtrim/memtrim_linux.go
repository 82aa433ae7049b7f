package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseStartupPages drops the process's mappings of its own executable that
// can only ever hold clean file pages: read-only, and without a single page
// copied on write (a relocated read-only segment of a dynamically linked
// binary has such copies, and dropping them would lose the relocations).
// Call it once the process has finished starting.
func ReleaseStartupPages() (Stats, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return Stats{}, fmt.Errorf("release startup pages: %w", err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return Stats{}, fmt.Errorf("release startup pages: %w", err)
	}
	var st Stats
	for _, m := range parseSmaps(data) {
		if !m.releasable(exe) {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return st, fmt.Errorf("release startup pages: madvise %x-%x: %w", m.start, m.end, errno)
		}
		st.Mappings++
		st.Bytes += m.rssKB << 10
	}
	return st, nil
}

// mapping is one entry of /proc/PID/smaps, with the fields used here.
type mapping struct {
	start, end uintptr
	perms      string
	path       string
	rssKB      int64
	anonKB     int64
}

// releasable reports whether m holds nothing but clean pages of file exe.
func (m mapping) releasable(exe string) bool {
	return m.path == exe && !strings.ContainsRune(m.perms, 'w') && m.anonKB == 0 && m.rssKB > 0
}

// parseSmaps reads the mappings of an smaps file: a header line per mapping
// ("start-end perms offset dev inode [path]") followed by "Key: value kB"
// lines.
func parseSmaps(data []byte) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, rest, isField := strings.Cut(line, ":")
		if isField && !strings.Contains(key, " ") && len(out) > 0 {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			switch key {
			case "Rss":
				out[len(out)-1].rssKB = kb
			case "Anonymous":
				out[len(out)-1].anonKB = kb
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		m := mapping{start: uintptr(start), end: uintptr(end), perms: f[1]}
		if len(f) >= 6 {
			// The path is the rest of the line, spaces and " (deleted)" included.
			m.path = strings.TrimSpace(line[strings.Index(line, f[5]):])
		}
		out = append(out, m)
	}
	return out
}
