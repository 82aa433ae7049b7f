//go:build unix && !(linux || freebsd || netbsd || openbsd || dragonfly)

package logcap

import "syscall"

// pipe2 without pipe2(2) (macOS): the fork lock keeps a concurrent exec
// from inheriting the descriptors before they are close-on-exec.
func pipe2(p []int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := syscall.Pipe(p); err != nil {
		return err
	}
	syscall.CloseOnExec(p[0])
	syscall.CloseOnExec(p[1])
	return nil
}
