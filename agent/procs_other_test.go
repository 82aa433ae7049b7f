//go:build !linux

package agent

import (
	"slices"

	"github.com/shirou/gopsutil/v4/process"
)

// alive reports whether pid is a live process; a zombie is dead for our
// purposes. Off Linux there is no /proc to read, so gopsutil asks the
// system (ps on macOS).
func alive(pid int) bool {
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
