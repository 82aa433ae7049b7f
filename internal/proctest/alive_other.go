//go:build !linux

package proctest

import (
	"slices"

	"github.com/shirou/gopsutil/v4/process"
)

// Alive reports whether pid is a live process; a zombie is dead for a
// test's purposes. Off Linux there is no /proc to read, so gopsutil asks
// the system (ps and sysctl on macOS). Where it cannot tell the state
// (Windows has no zombies), an existing process counts as alive.
func Alive(pid int) bool {
	if ok, _ := process.PidExists(int32(pid)); !ok {
		return false
	}
	ps, err := process.NewProcess(int32(pid))
	if err != nil {
		return false
	}
	st, err := ps.Status()
	return err != nil || !slices.Contains(st, process.Zombie)
}
