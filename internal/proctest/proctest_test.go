package proctest

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestAlive: this process is alive; a child that exited is not, neither
// before its parent reaps it (a zombie, on Unix) nor after.
func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatalf("Alive(%d), this test's own PID, is false", os.Getpid())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary, told to run no test, exits at once.
	cmd := exec.Command(exe, "-test.run=^$")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a child: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d exits at once, but after 10 s Alive still says true (a zombie counted alive?)", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child %d: %v", pid, err)
	}
	if Alive(pid) {
		t.Errorf("Alive(%d) is true after the child was reaped", pid)
	}
}
