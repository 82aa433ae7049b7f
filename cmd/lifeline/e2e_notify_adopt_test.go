//go:build linux

package main

// A bot outlives its agent (README "What survives what"), and so does its
// NOTIFY_SOCKET: the socket's path is fixed by the PID file, so the agent
// that adopts the bot after a kill -9 listens where the bot still sends.

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// adoptBot is a notifybot.py bot whose agent the test kills and replaces.
type adoptBot struct {
	*notifyBot
	args  []string
	agent *e2eProc
}

func newAdoptBot(t *testing.T) *adoptBot {
	t.Helper()
	py := notifyPython(t)
	bot, err := filepath.Abs("testdata/notifybot.py")
	if err != nil {
		t.Fatal(err)
	}
	ctl := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctl, "beat"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := notifyDash(t)
	b := &adoptBot{notifyBot: &notifyBot{e2eStack: s, ctl: ctl, evs: faultRecordEvents(t, s, "bot")}}
	b.args = []string{"agent", "--name", "bot", "--heartbeat-timeout", "1s", "--start-timeout", "2s",
		"--stop-timeout", "3s", "--backoff-max", "200ms", "--stop-bot-on-exit", "--", py, bot, ctl}
	b.agent = notifyAgent(t, s, b.args...)
	return b
}

// killAgent kill -9s the agent and checks the bot lives on, with its socket
// file left behind at NOTIFY_SOCKET.
func (b *adoptBot) killAgent(t *testing.T, pid int, sock string) {
	t.Helper()
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // whatever the new agent does
	b.agent.signal(syscall.SIGKILL)
	b.agent.wait(10 * time.Second)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the bot %d died with its agent: %v", pid, err)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("kill -9 left no stale socket at %s: %v %v", sock, fi, err)
	}
}

// newAgent starts the next agent on the same command line; it adopts pid.
func (b *adoptBot) newAgent(t *testing.T, pid int) {
	t.Helper()
	b.agent = notifyAgent(t, b.e2eStack, b.args...)
	b.evs.wait(t, bus.EventAdopted, pid)
}

func socketDirPrivate(t *testing.T, sock string) {
	t.Helper()
	fi, err := os.Lstat(filepath.Dir(sock))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket dir of %s: %v %v, want a 0700 directory", sock, fi, err)
	}
}

// kill -9 of the agent: the new agent adopts the same bot, replaces the dead
// agent's socket file at the same path, and hears the bot there: STATUS=
// reaches `lifeline status`, WATCHDOG=1 arms hang detection again, and a
// SIGSTOP of the bot is a hang the new agent detects and acts on.
func TestE2ENotifyAdoptedBotStillHeard(t *testing.T) {
	b := newAdoptBot(t)
	first := b.st(t, "running with hang detection on", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.HangDetection == "on"
	})
	sock, _ := b.env(t, first.PID)
	socketDirPrivate(t, sock)
	b.send(t, "STATUS=before the kill")
	b.st(t, "status text from the first agent", func(st bus.Status) bool { return st.StatusText == "before the kill" })
	before, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}

	b.killAgent(t, first.PID, sock)
	b.newAgent(t, first.PID)

	after, err := os.Lstat(sock)
	// The inode number may be reused at once; the new file is younger.
	if err != nil || after.Mode().Type() != os.ModeSocket || !after.ModTime().After(before.ModTime()) {
		t.Fatalf("stale socket at %s not replaced by a new one: %v %v", sock, after, err)
	}
	socketDirPrivate(t, sock)
	b.send(t, "STATUS=heard by the new agent")
	st := b.st(t, "the adopted bot's STATUS= via the new agent, armed by its WATCHDOG=1", func(st bus.Status) bool {
		return st.StatusText == "heard by the new agent" && st.HangDetection == "on"
	})
	if st.PID != first.PID || st.State != bus.StateRunning {
		t.Fatalf("status %+v, want the adopted pid %d running", st, first.PID)
	}
	e2eWait(t, 10*time.Second, "lifeline status to show the new text", func() (bool, string) {
		out, _, _ := b.cli("status")
		return strings.Contains(out, "status: heard by the new agent") && !strings.Contains(out, "hang detection off"), out
	})

	if err := syscall.Kill(first.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	hung := b.evs.wait(t, bus.EventHung, first.PID)
	if !strings.Contains(hung.Reason, "no heartbeat for 1s") {
		t.Errorf("hung reason %q", hung.Reason)
	}
	b.evs.wait(t, bus.EventKilled, first.PID)
	next := b.st(t, "respawned", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID != first.PID && st.PID > 0 && st.HangDetection == "on"
	})
	if s, _ := b.env(t, next.PID); s != sock {
		t.Errorf("respawned bot's NOTIFY_SOCKET %q, want the same %q", s, sock)
	}
}

// A symlink at the socket path (here in place of the dead agent's socket)
// is neither followed nor removed: the new agent adopts the bot and
// supervises it without sd_notify, saying why.
func TestE2ENotifyAdoptRefusesSymlinkAtSocket(t *testing.T) {
	b := newAdoptBot(t)
	first := b.st(t, "running with hang detection on", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.HangDetection == "on"
	})
	sock, _ := b.env(t, first.PID)
	b.killAgent(t, first.PID, sock)

	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, sock); err != nil {
		t.Fatal(err)
	}
	b.newAgent(t, first.PID)
	b.agent.waitOutput("no sd_notify socket", 10*time.Second)
	if !strings.Contains(b.agent.out.String(), "is not a socket") {
		t.Errorf("the agent does not say why:\n%s", b.agent.out)
	}
	if got, err := os.Readlink(sock); err != nil || got != target {
		t.Errorf("symlink at %s changed: %q %v", sock, got, err)
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != "keep" {
		t.Errorf("symlink target changed: %q %v", data, err)
	}
	socketDirPrivate(t, sock)
	st := b.st(t, "adopted and running, hang detection off", func(st bus.Status) bool {
		return st.State == bus.StateRunning && strings.HasPrefix(st.HangDetection, "off")
	})
	if st.PID != first.PID {
		t.Errorf("pid %d, want the adopted %d", st.PID, first.PID)
	}
}
