package agent

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// procState returns the state letter of pid from /proc ("Z" for a zombie),
// or "" when there is no such process (it has been reaped).
func procState(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// A bot that exits leaving a child in its process group: the group is
// SIGKILLed while the leader is still an unreaped zombie, whose PID (the
// group's ID) no other process can then have, and only then is the leader
// reaped. Signalling after the reap could hit a stranger's group once PIDs
// wrap.
func TestGroupIsKilledBeforeLeaderIsReaped(t *testing.T) {
	childFile := filepath.Join(t.TempDir(), "child")
	cmd := exec.Command("sh", "-c", `sleep 1000 & echo $! > "$0"; exit 3`, childFile)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	w, err := newWatcher(pid, cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	p := &proc{pid: pid, pgid: pid, cmd: cmd, watch: w}

	if !w.wait() {
		t.Fatal("wait saw no exit")
	}
	if s := procState(pid); s != "Z" {
		t.Fatalf("after wait the leader's state is %q, want an unreaped zombie", s)
	}
	data, err := os.ReadFile(childFile)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if !alive(child) {
		t.Fatalf("leftover child %d not running", child)
	}

	var calls int
	code, sig := p.settle(func(pgid int, s syscall.Signal) {
		calls++
		if pgid != pid || s != sigKill {
			t.Errorf("signalled group %d with %v, want %d with SIGKILL", pgid, s, pid)
		}
		if st := procState(pid); st != "Z" {
			t.Errorf("group signalled while the leader's state is %q, want an unreaped zombie", st)
		}
		if pg, err := syscall.Getpgid(child); err != nil || pg != pid {
			t.Errorf("group %d signalled, but the leftover child is in %d (%v)", pid, pg, err)
		}
		signalGroup(pgid, s)
	})
	if calls != 1 || code != 3 || sig != "" {
		t.Errorf("settle: %d group signals, exit %d %q; want 1, 3", calls, code, sig)
	}
	waitGone(t, child)
	if s := procState(pid); s == "Z" {
		t.Errorf("leader not reaped by settle")
	}
	// Once reaped, the group is never signalled again.
	if err := p.kill(sigTerm); !errors.Is(err, errReaped) {
		t.Errorf("kill after the reap = %v, want errReaped", err)
	}
}
