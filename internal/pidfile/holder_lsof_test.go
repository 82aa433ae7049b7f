//go:build unix

package pidfile

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestLsofListed(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want bool
	}{
		{"", false},
		{"4242\n", true},
		{"17\n4242\n", true},
		{"42420\n", false},
		{"424\n", false},
		{"4242", true},
		{" 4242 \r\n", true},
	} {
		if got := lsofListed([]byte(tc.out), 4242); got != tc.want {
			t.Errorf("lsofListed(%q, 4242) = %v, want %v", tc.out, got, tc.want)
		}
	}
}

// TestHeldByLsof runs the lsof check that macOS and the BSDs use against
// real processes, with Linux's lsof, which takes the same options.
func TestHeldByLsof(t *testing.T) {
	lsof, err := exec.LookPath("lsof")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("lsof is required under CI (.ci/run installs it)")
		}
		t.Skip("lsof is not installed (apt-get install lsof)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bot.pid")
	pf := mustAcquire(t, path)
	if err := pf.WritePID(os.Getpid()); err != nil {
		t.Fatal(err)
	}

	if held, err := heldByLsof(lsof, os.Getpid(), path); err != nil || !held {
		t.Errorf("heldByLsof(this process) = %v, %v; want true", held, err)
	}
	// A process that does not have the file open: a recycled PID.
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	if held, err := heldByLsof(lsof, sleeper.Process.Pid, path); err != nil || held {
		t.Errorf("heldByLsof(a stranger) = %v, %v; want false", held, err)
	}
	// Another file of the same process is not this one.
	other := filepath.Join(dir, "other.pid")
	if err := os.WriteFile(other, []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if held, err := heldByLsof(lsof, os.Getpid(), other); err != nil || held {
		t.Errorf("heldByLsof(a file nobody has open) = %v, %v; want false", held, err)
	}
	// Same name, new file: matched by inode, not by name.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if held, err := heldByLsof(lsof, os.Getpid(), path); err != nil || held {
		t.Errorf("heldByLsof(a replacement file) = %v, %v; want false", held, err)
	}
	if _, err := heldByLsof(lsof, os.Getpid(), filepath.Join(dir, "missing")); err == nil {
		t.Error("heldByLsof of a missing file succeeded")
	}
}
