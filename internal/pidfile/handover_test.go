package pidfile

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envHelper makes the test binary act as a handed-down bot: see
// TestHandoverChild.
const envHelper = "PIDFILE_TEST_HANDOVER_CHILD"

// TestHandoverChild is the child's side of TestHandoverToChild: it takes
// over the descriptor named in the environment, writes its PID, says so on
// stdout and holds the lock until its stdin closes.
func TestHandoverChild(t *testing.T) {
	if os.Getenv(envHelper) == "" {
		t.Skip("only run as the child of TestHandoverToChild")
	}
	fd, err := ParseFD(os.Getenv(EnvFD))
	if err != nil {
		t.Fatal(err)
	}
	pf, err := Inherit(fd, os.Getenv(envHelper))
	if err != nil {
		t.Fatal(err)
	}
	if err := pf.WritePID(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("ready\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// TestHandoverToChild hands a locked PID file to a real child process, as
// the agent does: after the parent lets go, the child alone holds the lock,
// and when the child exits the file is stale. On Unix that is a descriptor
// in ExtraFiles; on Windows, an inherited handle (untested here: no Windows
// machine runs these tests yet).
func TestHandoverToChild(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.pid")
	pf, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHandoverChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelper+"="+path)
	env, err := pf.PassTo(cmd)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err := pf.Close(); err != nil { // the child's copy holds the lock now
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("child said %q, %v; want ready", line, err)
	}
	if pid, err := Read(path); err != nil || pid != cmd.Process.Pid {
		t.Fatalf("Read = %d, %v; want the child's pid %d", pid, err, cmd.Process.Pid)
	}
	var locked *LockedError
	if _, err := Acquire(path); !errors.As(err, &locked) || locked.PID != cmd.Process.Pid {
		t.Fatalf("Acquire while the child holds it = %v; want a LockedError naming %d", err, cmd.Process.Pid)
	}

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := Read(path)
		if errors.Is(err, ErrStale) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Read after the child exited = %v; want ErrStale", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if data, _ := os.ReadFile(path); strings.TrimSpace(string(data)) != pid {
		t.Errorf("pid file holds %q, want the child's pid %s", data, pid)
	}
}
