//go:build unix

package agent

import "syscall"

// sigkill kills pid outright, as kill -9 would.
func sigkill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// exists reports whether pid still answers signal 0: alive, or a zombie.
func exists(pid int) bool { return syscall.Kill(pid, 0) == nil }
