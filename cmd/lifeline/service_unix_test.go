//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestE2EServiceRefusedWhenNotRoot: user nobody cannot install or uninstall;
// lifeline says to run it with sudo, exits 1, and writes no service file.
func TestE2EServiceRefusedWhenNotRoot(t *testing.T) {
	cred := e2eNobody(t)
	bin := e2eBin(t)
	e2eOpenUp(t, filepath.Dir(bin))
	dir := t.TempDir()
	e2eOpenUp(t, dir)
	const name = "lifeline-agent-e2e-not-root"
	files := []string{"/etc/systemd/system/" + name + ".service", "/etc/init.d/" + name, "/Library/LaunchDaemons/" + name + ".plist"}
	for _, action := range []string{"install", "uninstall"} {
		cmd := exec.Command(bin, "service", action, "agent", "--name", "e2e-not-root", "--", "./bot")
		cmd.Dir = dir
		cmd.Env = e2eEnv("HOME=" + dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitFailure {
			t.Errorf("%s as nobody: %v, want exit %d\n%s", action, err, exitFailure, out)
		}
		if !strings.Contains(string(out), ErrNotRoot.Error()) || !strings.Contains(string(out), "run with sudo: sudo lifeline service "+action+" agent") {
			t.Errorf("%s as nobody says %q; want the refusal and the sudo advice", action, out)
		}
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("%s as nobody left %s", action, f)
			}
		}
	}
}
