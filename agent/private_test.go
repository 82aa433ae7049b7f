//go:build unix

package agent

// Tests for issue 9: the agent's files are private to its user, symlinks
// planted at their paths are refused, and the bot's process group is
// signalled only while its leader is unreaped.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
)

// nobodyUID is the uid (and gid) of user nobody.
const nobodyUID = 65534

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test acts as user nobody and needs root, as CI runs")
		}
		t.Skip("needs root, to act as user nobody")
	}
}

// asNobody runs argv as user nobody, returning its combined output.
func asNobody(t *testing.T, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func permOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The attack: another user ran `flock data/bot.pid sleep 25` once the bot
// was killed, and the agent stayed in backoff until the lock was let go.
// Now the PID file is 0600: in a directory every user can enter (0755, as
// data/ was), user nobody cannot even open it, so the agent respawns the
// bot as usual.
func TestOtherUserCannotLockThePIDFile(t *testing.T) {
	requireRoot(t)
	flock, err := exec.LookPath("flock")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("flock(1) is missing; it is in util-linux, on every Debian machine")
		}
		t.Skip("needs flock(1) from util-linux")
	}
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := newAgent(t, srv.ClientURL(), dir, "ok")
	a.StopBotOnExit = true
	h := mustStart(t, nc, a)
	first := h.running()
	pidPath := filepath.Join(dir, "bot.pid")
	for _, name := range []string{"bot.pid", "bot.agent.pid", "bot.log"} {
		if m := permOf(t, filepath.Join(dir, name)); m != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, m)
		}
	}
	// nobody reaches the file (the directory lets them), so only its mode
	// keeps them out.
	if out, err := asNobody(t, "stat", pidPath); err != nil {
		t.Fatalf("nobody cannot stat the pid file, so this test proves nothing: %v %s", err, out)
	}

	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	out, err := asNobody(t, flock, pidPath, "sleep", "25")
	if err == nil || !strings.Contains(strings.ToLower(out), "permission denied") {
		t.Fatalf("flock as nobody = %v, %q; want permission denied", err, out)
	}
	st := h.waitStatus("respawned", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID > 0 && st.PID != first.PID
	})
	if took := time.Since(killed); took > 5*time.Second {
		t.Errorf("respawn took %s", took)
	}
	if st.Problem != "" || readPIDFile(t, pidPath) != st.PID {
		t.Errorf("after the respawn: %+v", st)
	}
	waitGone(t, first.PID)
}

// A directory the agent creates for its files is 0700.
func TestCreatedDataDirectoryIsPrivate(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	data := filepath.Join(t.TempDir(), "data")
	a := newAgent(t, srv.ClientURL(), data, "ok")
	a.LogFile = ""
	a.StopBotOnExit = true
	mustStart(t, nc, a).running()
	if m := permOf(t, data); m != 0o700 {
		t.Errorf("created directory has mode %v, want 0700", m)
	}
}

// A log left readable by others (by an older lifeline) is made private.
func TestOldLogIsMadePrivate(t *testing.T) {
	nc, a, _ := newTestAgent(t, "ok")
	if err := os.WriteFile(a.LogFile, []byte("old output\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(a.LogFile, 0o644); err != nil {
		t.Fatal(err)
	}
	a.StopBotOnExit = true
	mustStart(t, nc, a).running()
	if m := permOf(t, a.LogFile); m != 0o600 {
		t.Errorf("bot.log has mode %v, want 0600", m)
	}
	if data, _ := os.ReadFile(a.LogFile); !strings.HasPrefix(string(data), "old output\n") {
		t.Errorf("bot.log was not appended to: %q", data)
	}
}

// plantSymlink puts a symbolic link at path pointing to a fresh file, and
// returns a check that the file is still untouched.
func plantSymlink(t *testing.T, path string) func() {
	t.Helper()
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if data, err := os.ReadFile(target); err != nil || string(data) != "precious\n" {
			t.Errorf("symlink target = %q, %v; want it unchanged", data, err)
		}
		if m := permOf(t, target); m != 0o644 {
			t.Errorf("symlink target's mode changed to %v", m)
		}
	}
}

// A symbolic link planted at the log path is not followed: the bot runs
// without a log, status says why, and the link's target gets none of the
// bot's output.
func TestSymlinkAtLogPathIsNotFollowed(t *testing.T) {
	nc, a, _ := newTestAgent(t, "ok")
	a.Command = append([]string{"sh", "-c", `echo leaked; exec "$@"`, "sh"}, a.Command...)
	a.StopBotOnExit = true
	unchanged := plantSymlink(t, a.LogFile)
	st := mustStart(t, nc, a).running()
	if !strings.Contains(st.Problem, "bot log") || !strings.Contains(st.Problem, "symbolic link") {
		t.Errorf("status problem %q, want the refused symlink", st.Problem)
	}
	unchanged()
}

// A symbolic link planted at the PID file's path is not followed: no bot
// starts, status says why, the target is untouched; once the link is gone
// the agent starts the bot.
func TestSymlinkAtPIDFileIsNotFollowed(t *testing.T) {
	nc, a, _ := newTestAgent(t, "ok")
	a.StopBotOnExit = true
	unchanged := plantSymlink(t, a.PIDFile)
	h := mustStart(t, nc, a)
	st := h.waitStatus("refusal", func(st bus.Status) bool { return st.Problem != "" })
	if !strings.Contains(st.Problem, "symbolic link") || st.PID != 0 || st.State != bus.StateBackoff {
		t.Errorf("status %+v, want backoff naming the refused symlink", st)
	}
	unchanged()
	if err := os.Remove(a.PIDFile); err != nil {
		t.Fatal(err)
	}
	st = h.running()
	if got := readPIDFile(t, a.PIDFile); got != st.PID {
		t.Errorf("pid file says %d, status %d", got, st.PID)
	}
	unchanged()
}

// When the bot is killed (SIGKILL to it alone), the child it left behind in
// its process group is killed too, and the agent starts a new bot.
func TestKilledBotsLeftoverChildIsKilled(t *testing.T) {
	nc, a, childFile := newChildrenAgent(t)
	a.StopBotOnExit = true
	h := mustStart(t, nc, a)
	first := h.running()
	child := waitChildFile(t, childFile)
	if pg, err := syscall.Getpgid(child); err != nil || pg != first.PID {
		t.Fatalf("child %d is in group %d (%v), want the bot's %d", child, pg, err, first.PID)
	}
	if err := os.Remove(childFile); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, child)
	h.waitStatus("respawned", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID > 0 && st.PID != first.PID
	})
}
