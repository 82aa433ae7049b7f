//go:build linux || freebsd || netbsd || openbsd || dragonfly

package logcap

import "golang.org/x/sys/unix"

func pipe2(p []int) error { return unix.Pipe2(p, unix.O_CLOEXEC) }
