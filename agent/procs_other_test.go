//go:build !linux

package agent

import "github.com/lifeline-dev/lifeline/internal/proctest"

// alive reports whether pid is a live process; a zombie is dead for our
// purposes. Off Linux there is no /proc to read: proctest asks the system.
func alive(pid int) bool { return proctest.Alive(pid) }
