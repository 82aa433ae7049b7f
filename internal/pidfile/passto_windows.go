//go:build windows

package pidfile

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/windows"
)

// PassTo hands the locked file to the child cmd will start, so that the
// child holds the lock for as long as it keeps the handle open, even after
// this process exits. It returns the environment entry (EnvFD=H) that tells
// the child which handle it is; add it to cmd.Env. On Windows, where
// cmd.ExtraFiles is not supported, the handle is made inheritable and added
// to cmd.SysProcAttr.AdditionalInheritedHandles; an inherited handle keeps
// its value in the child, so H is the handle's value here.
//
// Call it after setting cmd.SysProcAttr: assigning SysProcAttr afterwards
// would drop the handle. Close this File once the child has started (which
// also ends its inheritability here); the child's copy then holds the lock
// alone. Go hands a child only the handles it lists, so another child
// started meanwhile does not get this one.
func (p *File) PassTo(cmd *exec.Cmd) (string, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.NoInheritHandles {
		return "", errors.New("pass pid file: the command inherits no handles (NoInheritHandles)")
	}
	h := windows.Handle(p.f.Fd())
	if err := windows.SetHandleInformation(h, windows.HANDLE_FLAG_INHERIT, windows.HANDLE_FLAG_INHERIT); err != nil {
		return "", fmt.Errorf("pass pid file: make handle inheritable: %w", err)
	}
	cmd.SysProcAttr.AdditionalInheritedHandles = append(cmd.SysProcAttr.AdditionalInheritedHandles, syscall.Handle(h))
	return EnvFD + "=" + strconv.FormatUint(uint64(h), 10), nil
}
