//go:build linux

package main

// A data dir that fails (read-only, gone, full, a log that cannot be
// opened): the agent keeps running, says why in status, and recovers on its
// own once the disk does.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"golang.org/x/sys/unix"
)

// faultMountOver mounts over dir, or skips the test saying why it cannot.
// The mount is taken away (lazily) when the test ends; the returned
// function takes it away earlier.
func faultMountOver(t *testing.T, dir string, mount func() error) func() {
	t.Helper()
	if err := mount(); err != nil {
		t.Skipf("cannot mount over %s (needs root on Linux): %v", dir, err)
	}
	var once sync.Once
	unmount := func() {
		once.Do(func() {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
	}
	t.Cleanup(unmount)
	return unmount
}

// faultReadOnly makes dir read-only: a read-only bind mount of itself.
// Files the bot already has open stay writable, as they would.
func faultReadOnly(t *testing.T, dir string) func() {
	t.Helper()
	return faultMountOver(t, dir, func() error {
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
			return err
		}
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
			return err
		}
		return nil
	})
}

// A data dir that turns read-only: the bot cannot be respawned, the
// agent keeps running and says why in status (and so does the dashboard);
// once the dir is writable again it recovers on its own. An agent started on
// a read-only data dir refuses with a clear message.
func TestFaultDataDirReadOnly(t *testing.T) {
	s := faultNewStack(t)
	nc := s.connect()
	pid := s.running().PID
	writable := faultReadOnly(t, s.data())
	syscall.Kill(pid, syscall.SIGKILL)
	st := faultWaitAgent(t, nc, "bot", "the problem in status", func(st bus.Status) bool {
		return st.Problem != "" && st.State == bus.StateBackoff
	})
	if !strings.Contains(st.Problem, "read-only file system") || !strings.Contains(st.Problem, "bot.pid") {
		t.Errorf("problem %q does not say what and where", st.Problem)
	}
	if hs := s.waitStatus("the dashboard shows the problem", func(st bus.Status) bool { return st.Problem != "" }); hs.Problem != st.Problem {
		t.Errorf("dashboard says %q, agent %q", hs.Problem, st.Problem)
	}
	if !e2eAlive(s.agent.pid()) || len(botProcesses(s.dir)) != 0 {
		t.Fatalf("agent alive %v, bots %v", e2eAlive(s.agent.pid()), botProcesses(s.dir))
	}
	writable()
	st = faultWaitAgent(t, nc, "bot", "recovery once the dir is writable", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.Problem == "" && st.PID != pid
	})

	// A new agent on a read-only data dir.
	s.agent.signal(syscall.SIGTERM)
	s.agent.wait(15 * time.Second)
	e2eWaitGone(t, st.PID)
	faultReadOnly(t, s.data())
	a := s.startAgent()
	if code := a.wait(15 * time.Second); code != 1 || !strings.Contains(a.out.String(), "read-only file system") {
		t.Fatalf("agent on a read-only data dir: exit %d\n%s", code, a.out)
	}
}

// A data dir that vanishes under a running bot: the bot keeps running,
// the agent keeps running and reports that the PID file is gone (a new agent
// could not find the bot); a restart writes it again and clears the problem.
func TestFaultDataDirVanishes(t *testing.T) {
	s := faultNewStack(t)
	nc := s.connect()
	pid := s.running().PID
	// The operator keeps a copy of its login elsewhere, as it would.
	opSeed := filepath.Join(t.TempDir(), "operator.nk")
	if b, err := os.ReadFile(s.data("bus", "operator.nk")); err != nil || os.WriteFile(opSeed, b, 0o600) != nil {
		t.Fatalf("copy the operator's seed: %v", err)
	}
	// Gone at once (a rename), then deleted: the bot recreates its inbox as
	// it polls, which a plain recursive delete would race with.
	if err := os.Rename(s.data(), s.data()+".gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(s.data() + ".gone"); err != nil {
		t.Fatal(err)
	}
	st := faultWaitAgent(t, nc, "bot", "the problem in status", func(st bus.Status) bool { return st.Problem != "" })
	if !strings.Contains(st.Problem, "bot.pid") || st.PID != pid || st.State != bus.StateRunning {
		t.Errorf("status %+v", st)
	}
	if !e2eAlive(pid) || !e2eAlive(s.agent.pid()) {
		t.Fatalf("bot alive %v, agent alive %v", e2eAlive(pid), e2eAlive(s.agent.pid()))
	}
	out, errOut, code := s.cli("restart", "--nats-nkey", opSeed)
	if code != 0 {
		t.Fatalf("restart: %d %s%s", code, out, errOut)
	}
	st = faultWaitAgent(t, nc, "bot", "a bot with a pid file again", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID != pid && st.Problem == ""
	})
	if got, err := s.pidFromFile(); err != nil || got != st.PID {
		t.Fatalf("pid file %d (%v), want %d", got, err, st.PID)
	}
	e2eWaitGone(t, pid)
}

// A log file that cannot be opened: the bot runs anyway (it matters
// more than its log), and the agent says in status that its output is lost.
func TestFaultLogFileUnwritable(t *testing.T) {
	s := faultStack(t, faultAgentArgs)
	if err := os.MkdirAll(s.data("bot.log"), 0o755); err != nil { // a directory where the log goes
		t.Fatal(err)
	}
	s.startAgent()
	st := s.running()
	if !strings.Contains(st.Problem, "bot.log") {
		t.Fatalf("problem %q does not mention the log", st.Problem)
	}
	os.Remove(s.data("bot.log"))
	if out, errOut, code := s.cli("restart"); code != 0 {
		t.Fatalf("restart: %s%s", out, errOut)
	}
	s.waitStatus("problem gone once the log can be opened", func(n bus.Status) bool {
		return n.State == bus.StateRunning && n.PID != st.PID && n.Problem == ""
	})
}

// A full disk: a bot that cannot get its PID file written is not left
// running without one; the agent keeps running, says why in status and in
// its reply, and recovers on its own once there is room. The disk is a
// 64 KiB tmpfs over the data dir or, where mounting is not allowed (or
// LIFELINE_TEST_NO_MOUNT is set), a file size limit of 0 on the agent
// (RLIMIT_FSIZE), which the bots it starts inherit.
func TestFaultDiskFull(t *testing.T) {
	s := faultStack(t, faultAgentArgs)
	nc := s.connect()
	var fill, free func()
	var want string
	err := errors.New("LIFELINE_TEST_NO_MOUNT is set")
	// The mount hides the dashboard's logins: keep a copy for the agent.
	saved := t.TempDir()
	bustest.CopyBusDir(t, s.data("bus"), saved)
	if os.Getenv("LIFELINE_TEST_NO_MOUNT") == "" {
		err = syscall.Mount("tmpfs", s.data(), "tmpfs", 0, "size=64k")
	}
	if err == nil {
		faultMountOver(t, s.data(), func() error { return nil })
		bustest.CopyBusDir(t, filepath.Join(saved, "bus"), s.data())
		want = "no space left on device"
		filler := s.data("filler")
		fill = func() {
			f, err := os.Create(filler)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			chunk := make([]byte, 4096)
			for {
				if _, err := f.Write(chunk); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("fill the disk: %v", err)
					}
					return
				}
			}
		}
		free = func() { os.Remove(filler) }
	} else {
		t.Logf("no tmpfs (%v): a file size limit on the agent stands in for a full disk", err)
		want = "file too large"
		var old unix.Rlimit
		fill = func() {
			pid := s.agent.pid()
			if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old); err != nil {
				t.Fatal(err)
			}
			if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 0, Max: old.Max}, nil); err != nil {
				t.Fatal(err)
			}
		}
		free = func() {
			if err := unix.Prlimit(s.agent.pid(), unix.RLIMIT_FSIZE, &old, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.startAgent()
	pid := s.running().PID
	if out, errOut, code := s.cli("stop"); code != 0 {
		t.Fatalf("stop: %s%s", out, errOut)
	}
	e2eWaitGone(t, pid)

	fill()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := bus.Ask(ctx, nc, "bot", bus.OpStart, bus.Request{})
	if err != nil || r.OK || !strings.Contains(r.Error, want) {
		t.Fatalf("start on a full disk: %+v %v, want an error saying %q", r, err, want)
	}
	st := faultWaitAgent(t, nc, "bot", "the problem in status", func(st bus.Status) bool { return st.Problem != "" })
	if !strings.Contains(st.Problem, want) || !strings.Contains(st.Problem, "bot.pid") || st.State != bus.StateBackoff {
		t.Errorf("status %+v", st)
	}
	if bots := botProcesses(s.dir); len(bots) != 0 {
		t.Fatalf("bots running without a pid file: %v", bots)
	}
	if !e2eAlive(s.agent.pid()) {
		t.Fatal("agent died")
	}

	free()
	st = faultWaitAgent(t, nc, "bot", "recovery once there is room", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.Problem == ""
	})
	if got, err := s.pidFromFile(); err != nil || got != st.PID {
		t.Fatalf("pid file %d (%v), want %d", got, err, st.PID)
	}
}
