//go:build !unix && !windows

package pidfile

import "os/exec"

// PassTo would hand the locked file to cmd's child; without locks there is
// nothing to hand (Acquire fails first).
func (p *File) PassTo(*exec.Cmd) (string, error) { return "", ErrUnsupported }
