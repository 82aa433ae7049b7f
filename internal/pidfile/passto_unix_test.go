//go:build unix

package pidfile

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestPassToBookkeeping(t *testing.T) {
	dir := t.TempDir()
	pf := mustAcquire(t, filepath.Join(dir, "bot.pid"))
	other, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	// Files the caller passes already keep their numbers; the PID file
	// comes after them, and the entry names its number in the child.
	cmd := exec.Command("true")
	cmd.ExtraFiles = []*os.File{other}
	env, err := pf.PassTo(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if env != EnvFD+"=4" {
		t.Errorf("PassTo = %q, want %s=4", env, EnvFD)
	}
	if len(cmd.ExtraFiles) != 2 || cmd.ExtraFiles[0] != other || cmd.ExtraFiles[1] != pf.Descriptor() {
		t.Errorf("ExtraFiles = %v, want [dir, pid file]", cmd.ExtraFiles)
	}

	cmd = exec.Command("true")
	if env, err := pf.PassTo(cmd); err != nil || env != EnvFD+"=3" {
		t.Errorf("PassTo on a bare command = %q, %v; want %s=3", env, err, EnvFD)
	}
}

func TestParseFD(t *testing.T) {
	for _, v := range []string{"3", "0", "4294967295"} {
		if _, err := ParseFD(v); err != nil {
			t.Errorf("ParseFD(%q) = %v", v, err)
		}
	}
	for _, v := range []string{"", "-1", "x", "3 ", "0x3", "4294967296"} {
		if fd, err := ParseFD(v); err == nil {
			t.Errorf("ParseFD(%q) = %d, want an error", v, fd)
		}
	}
}
