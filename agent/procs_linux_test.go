//go:build linux

package agent

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// alive reports whether pid is a live process, read from /proc; a zombie
// is dead for our purposes.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil {
		return false
	}
	// A zombie still answers signal 0; it is dead for our purposes.
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}
