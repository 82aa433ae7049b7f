//go:build unix

package main

import (
	"syscall"
	"testing"
)

// e2eKill kills pid outright, as kill -9 would.
func e2eKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// e2eProbe sends pid signal 0: nil while it is alive or a zombie.
func e2eProbe(pid int) error { return syscall.Kill(pid, 0) }

// e2eFreeze stops pid with SIGSTOP, the way a bot hangs.
func e2eFreeze(_ testing.TB, pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }
