//go:build unix

package main

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/lifeline-dev/lifeline/bus"
)

// e2eNobody returns the credential of user nobody, for tests that play
// another local user. They need root to switch users: CI runs as root, and
// a developer's laptop skips them.
func e2eNobody(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test plays another Unix user and needs root, as CI runs")
		}
		t.Skip("needs root to run commands as user nobody")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// TestE2EOtherUserCannotUseTheBus: another Unix user on the dashboard's host
// (nobody), with the stock NATS CLI and lifeline itself, can neither log in
// to the bus nor read the logins of the data directory, nor lock the PID
// file; the bot is untouched.
func TestE2EOtherUserCannotUseTheBus(t *testing.T) {
	cred := e2eNobody(t)
	natsBin, err := exec.LookPath("nats")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the stock NATS CLI is missing; .ci/run installs it (go install github.com/nats-io/natscli/nats@v0.5.0)")
		}
		t.Skip("stock NATS CLI not installed: go install github.com/nats-io/natscli/nats@v0.5.0")
	}
	s := e2eNewStack(t)
	before := s.running()
	e2eOpenUp(t, s.dir)
	home, err := os.MkdirTemp("", "lifeline-nobody-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	e2eOpenUp(t, home)
	if err := os.Chown(home, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	// The binaries must be reachable by nobody too.
	bin := e2eBin(t)
	e2eOpenUp(t, filepath.Dir(bin))
	e2eOpenUp(t, filepath.Dir(natsBin))
	asNobody := func(name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir = s.dir
		cmd.Env = e2eEnv("HOME="+home, "NATS_URL="+s.natsURL)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	attempts := []struct {
		what string
		cmd  []string
		want string // in the output: the refusal the user sees
	}{
		{"stock CLI without a login stops the bot", []string{natsBin, "--server", s.natsURL, "req", "lifeline.agent.bot.stop", ""}, "Authorization Violation"},
		{"stock CLI writes a fake event into the history", []string{natsBin, "--server", s.natsURL, "pub", bus.HistorySubject("bot"), `{"type":"crashed"}`}, "Authorization Violation"},
		{"stock CLI with the operator's seed file", []string{natsBin, "--server", s.natsURL, "--nkey", "data/bus/operator.nk", "--inbox-prefix", "_INBOX.operator",
			"req", "lifeline.agent.bot.stop", ""}, "permission denied"},
		{"reading the operator's seed", []string{"cat", "data/bus/operator.nk"}, "Permission denied"},
		{"lifeline stop beside the dashboard", []string{bin, "stop", "--timeout", "5s"}, "refused the login"},
		{"lifeline stop with the operator's seed", []string{bin, "stop", "--timeout", "5s", "--nats-nkey", "data/bus/operator.nk"}, "permission denied"},
		{"locking the PID file", []string{"flock", "--nonblock", "data/bot.pid", "true"}, "ermission denied"},
	}
	for _, a := range attempts {
		if a.cmd[0] == "flock" {
			if _, err := exec.LookPath("flock"); err != nil {
				continue // util-linux is on every Debian machine; the agent tests cover it too
			}
		}
		out, err := asNobody(a.cmd[0], a.cmd[1:]...)
		if err == nil || !strings.Contains(out, a.want) {
			t.Errorf("%s: err %v, want a failure saying %q; output:\n%s", a.what, err, a.want, out)
		}
	}
	// Nothing changed: the same bot, no restart, no stop, no forged event.
	after := s.running()
	if after.PID != before.PID || after.Restarts != before.Restarts {
		t.Fatalf("the bot changed: before %+v, after %+v", before, after)
	}
	for _, ev := range s.events() {
		if ev.Type != bus.EventStarted {
			t.Errorf("unexpected event after another user's attempts: %+v", ev)
		}
	}
}
