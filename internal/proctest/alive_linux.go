package proctest

import (
	"os"
	"strconv"
	"strings"
)

// Alive reports whether pid is a live process. A zombie is dead for a
// test's purposes (it answers signal 0 until its parent reaps it), so the
// state is read from /proc/<pid>/stat, after the command name, which may
// itself hold spaces and parentheses.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}
