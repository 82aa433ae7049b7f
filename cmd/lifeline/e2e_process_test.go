//go:build linux

package main

// Process helpers of the end-to-end tests: what they read of a process in
// /proc, and the processes they plant (bystanders, lock holders, PIDs
// chosen in advance) to prove that lifeline leaves them alone.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// e2eUnread is how many bytes wait in the named pipe at path (FIONREAD,
// which Linux names TIOCINQ). The bot holds a reader of its own, so opening
// and closing one here is no reader going away for it.
func e2eUnread(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	if cerr := rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// e2eAlive reports whether pid is a live (not zombie) process.
func e2eAlive(pid int) bool {
	st := faultProcState(pid)
	return st != "" && st != "Z"
}

// botProcesses lists the live demo bots whose working directory is dir:
// the way to prove there is exactly one.
func botProcesses(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !e2eAlive(pid) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(cmdline), "\x00")
		if len(args) < 2 || args[0] != e2eBinFile() || args[1] != "bot" {
			continue
		}
		if cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd"); cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// faultKillLeftovers registers the cleanup that kills every live process
// working in dir. Registered before the stack, it runs after the stack's own
// cleanup has killed the agent, so nothing respawns what it kills.
func faultKillLeftovers(t *testing.T, dir string) {
	t.Cleanup(func() {
		for _, pid := range faultProcsIn(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range faultProcsIn(dir) {
			e2eWaitGone(t, pid)
		}
	})
}

// faultProcsIn lists the live processes whose working directory is dir or
// below it: everything a stack started, and everything those started.
func faultProcsIn(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !e2eAlive(pid) {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat returns the fields of /proc/<pid>/stat that follow the command
// name, which may itself hold spaces and parentheses: f[0] is the state
// letter, f[3] the session id. It returns nil when there is no such process
// at all (not even a zombie).
func procStat(pid int) []string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// faultProcState returns the state letter of pid (R, S, T, Z, ...), or ""
// when there is no such process at all (not even a zombie).
func faultProcState(pid int) string {
	f := procStat(pid)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// faultSession returns the session id of pid, or 0 when it is gone.
func faultSession(pid int) int {
	f := procStat(pid)
	if len(f) < 4 {
		return 0
	}
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// faultSignalLogger is a shell that logs every catchable signal it gets to
// the file log, in a process group of its own (so a signal to the negated
// PID would reach it too). It is not started.
func faultSignalLogger(log string) *exec.Cmd {
	script := `for s in HUP INT QUIT USR1 USR2 TERM CONT ALRM; do trap "echo $s >> '` + log + `'" $s; done; while :; do sleep 0.05; done`
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// faultBystander starts a faultSignalLogger that lives until the test ends.
// It returns its PID and the log's path.
func faultBystander(t *testing.T) (int, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "signals")
	cmd := faultSignalLogger(log)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	return cmd.Process.Pid, log
}

// faultCheckBystander fails the test if the bystander was signalled.
func faultCheckBystander(t *testing.T, pid int, log string) {
	t.Helper()
	if data, _ := os.ReadFile(log); len(data) > 0 {
		t.Errorf("bystander %d was signalled: %s", pid, bytes.ReplaceAll(data, []byte("\n"), []byte(" ")))
	}
	if st := faultProcState(pid); st == "" || st == "Z" || st == "T" {
		t.Errorf("bystander %d is in state %q (killed or stopped)", pid, st)
	}
}

// faultSetNextPID makes the next process created on the machine get PID
// want (root only). It returns false with the reason when it cannot.
func faultSetNextPID(want int) error {
	return os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(want-1)), 0)
}

// faultStartAsPID runs start until the process it starts gets PID want,
// and reports whether it managed. Another process may fork between the write
// to ns_last_pid and ours and take the number; the attempt is then undone,
// and retried once the number is free again. When the number stays taken
// (by a long-lived process, or a thread), it gives up.
func faultStartAsPID(t *testing.T, want int, start func() int, undo func()) bool {
	t.Helper()
	for range 20 {
		for deadline := time.Now().Add(2 * time.Second); faultProcState(want) != ""; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				return false
			}
		}
		if err := faultSetNextPID(want); err != nil {
			t.Skipf("cannot choose the next PID (needs root on Linux): %v", err)
		}
		if start() == want {
			return true
		}
		undo()
	}
	return false
}

// faultFreePID returns a PID nobody uses, well ahead of the last one given.
func faultFreePID(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/kernel/ns_last_pid")
	if err != nil {
		t.Skipf("cannot read the last PID: %v", err)
	}
	last, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	maxData, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	pidMax, _ := strconv.Atoi(strings.TrimSpace(string(maxData)))
	for c := last + 200 + rand.IntN(200); ; c++ {
		if c >= pidMax-10 {
			c = 300
		}
		if faultProcState(c) == "" && faultProcState(c-1) == "" {
			return c
		}
	}
}

// faultLock holds an exclusive flock on path from this test process, the
// way a live process that is not the bot could. It returns the release.
func faultLock(t *testing.T, path string, content string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release
}

// faultOrphanAndReap kills the stack's agent with -9 and then its bot pid,
// and reaps the bot so that its PID is free. The bot outlives its agent, and
// the kernel would hand it to PID 1, which may never reap it; so this test
// process becomes the subreaper of its descendants until the bot is reaped.
func faultOrphanAndReap(t *testing.T, s *e2eStack, pid int) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a subreaper: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	s.agent.signal(syscall.SIGKILL)
	s.agent.wait(10 * time.Second)
	e2eWait(t, 5*time.Second, "the orphaned bot to be ours", func() (bool, string) {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		return strings.Contains(string(data), fmt.Sprintf("\nPPid:\t%d\n", os.Getpid())), string(data)
	})
	syscall.Kill(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("reap bot %d: %v", pid, err)
	}
}

// faultFirstExit waits until one of two processes exits and returns the
// other as winner, the exited one as loser.
func faultFirstExit(t *testing.T, what string, a, b *e2eProc) (winner, loser *e2eProc) {
	t.Helper()
	e2eWait(t, 15*time.Second, what, func() (bool, string) {
		select {
		case <-a.done:
			winner, loser = b, a
		case <-b.done:
			winner, loser = a, b
		default:
			return false, "both running"
		}
		return true, ""
	})
	return winner, loser
}

// faultOneWins waits until one of two agents exits, checks it failed and the
// other still runs, and returns them as winner, loser.
func faultOneWins(t *testing.T, a, b *e2eProc) (winner, loser *e2eProc) {
	t.Helper()
	winner, loser = faultFirstExit(t, "one of the two agents to give up", a, b)
	if loser.code != 1 {
		t.Fatalf("losing agent exit %d, want 1:\n%s", loser.code, loser.out)
	}
	select {
	case <-winner.done:
		t.Fatalf("both agents exited:\n%s\n%s", a.out, b.out)
	default:
	}
	return winner, loser
}

// e2eProcEnviron returns pid's environment, NUL-separated, from /proc.
func e2eProcEnviron(pid int) ([]byte, error) {
	return os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
}

// e2eProcCmdline returns pid's argv, NUL-separated, from /proc.
func e2eProcCmdline(pid int) ([]byte, error) {
	return os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
}
