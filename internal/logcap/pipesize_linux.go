package logcap

import (
	"os"

	"golang.org/x/sys/unix"
)

// A big pipe lets a burst of output wait in the pipe rather than hold up
// the bot, while the agent is not running: on a loaded machine it may not
// be scheduled for tens of milliseconds, in which a bot printing 300 MB/s
// fills 1 MiB three times over. bigPipeSize is beyond fs.pipe-max-size
// (1 MiB by default), which only a privileged agent may pass; pipeSize is
// the most an unprivileged one may ask for by default. A pipe's pages are
// taken as the bot writes and given back as we read, so an empty big pipe
// costs next to nothing.
const (
	bigPipeSize = 8 << 20
	pipeSize    = 1 << 20
)

// setPipeSize grows the pipe f belongs to and returns its size (0 if
// unknown).
func setPipeSize(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	size := 0
	_ = rc.Control(func(fd uintptr) {
		for _, want := range []int{bigPipeSize, pipeSize} {
			if n, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, want); err == nil {
				size = n
				return
			}
		}
		size, _ = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
	})
	return size
}
