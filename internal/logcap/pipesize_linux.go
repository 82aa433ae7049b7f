package logcap

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize lets a burst of output wait in the pipe rather than hold up the
// bot; 1 MiB is the most an unprivileged user may ask for by default.
const pipeSize = 1 << 20

func setPipeSize(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
	})
}
