//go:build unix

package pidfile

import (
	"os/exec"
	"strconv"
)

// PassTo hands the locked file to the child cmd will start, so that the
// child holds the lock for as long as it keeps the descriptor open, even
// after this process exits. It returns the environment entry (EnvFD=N) that
// tells the child which descriptor it is; add it to cmd.Env. On Unix the
// file goes into cmd.ExtraFiles, so N is 3 plus the files already there.
//
// Call it after setting cmd.SysProcAttr (on Windows PassTo adds the handle
// to it), and Close this File once the child has started: the child's copy
// then holds the lock alone.
func (p *File) PassTo(cmd *exec.Cmd) (string, error) {
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, p.f)
	return EnvFD + "=" + strconv.Itoa(fd), nil
}
