//go:build unix

package pidfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// lsofWait bounds one lsof run; it is on the path to a signal, not a hot one.
const lsofWait = 10 * time.Second

// heldByLsof reports whether process pid has the file at path open, asking
// lsof(8): "lsof -a -t -p PID -- PATH" lists PID exactly when that process
// has the file open, and lsof matches a named file by device and inode, not
// by name. -t prints bare PIDs and implies -w (no warnings); lsof exits 1
// having listed nothing. It is used where the kernel offers no documented
// per-process descriptor list (macOS, whose proc_pidinfo is private API, and
// the BSDs), and is built on Linux too so that its parsing is tested there.
func heldByLsof(lsof string, pid int, path string) (bool, error) {
	if _, err := os.Stat(path); err != nil {
		return false, fmt.Errorf("stat pid file: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lsofWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, lsof, "-a", "-t", "-p", strconv.Itoa(pid), "--", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() == 1 && stderr.Len() == 0 && stdout.Len() == 0:
		return false, nil // nothing listed: pid does not have it open
	default:
		return false, fmt.Errorf("list open files of %d: %w: %s", pid, err, strings.TrimSpace(stderr.String()))
	}
	return lsofListed(stdout.Bytes(), pid), nil
}

// lsofListed reports whether lsof's terse output (one PID a line) names pid.
func lsofListed(out []byte, pid int) bool {
	want := strconv.Itoa(pid)
	for line := range strings.Lines(string(out)) {
		if strings.TrimSpace(line) == want {
			return true
		}
	}
	return false
}
