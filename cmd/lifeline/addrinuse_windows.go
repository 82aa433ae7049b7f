package main

import (
	"errors"
	"syscall"

	"golang.org/x/sys/windows"
)

// addrInUse reports whether err says a listen address is taken. Windows
// sockets say WSAEADDRINUSE, which is not syscall.EADDRINUSE there.
func addrInUse(err error) bool {
	return errors.Is(err, windows.WSAEADDRINUSE) || errors.Is(err, syscall.EADDRINUSE)
}
