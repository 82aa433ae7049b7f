//go:build linux

package main

// Bots in any language: a program that sends no heartbeat is not killed for
// it, and one that speaks sd_notify gets hang detection with no NATS client.
// Every test runs the built binary, a real dashboard and real python3 bots
// (testdata/notifybot.py, steered through files; examples/python/bot.py).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

func notifyPython(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is needed by the sd_notify tests and CI must have it")
		}
		t.Skip("no python3 on this machine")
	}
	// The interpreter itself: a version manager's shim (pyenv) can take
	// seconds to start on a loaded machine, which the timings here do not
	// allow for.
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// notifyDash starts a dashboard alone; agents are started by the test.
func notifyDash(t *testing.T) *e2eStack {
	t.Helper()
	s := &e2eStack{t: t, dir: t.TempDir(), httpListen: "127.0.0.1:0", natsListen: "127.0.0.1:0"}
	s.startDashboard()
	return s
}

// notifyAgent starts `lifeline ARGS...` in the stack's directory with the
// bus in NATS_URL, as a user beside the dashboard would.
func notifyAgent(t *testing.T, s *e2eStack, args ...string) *e2eProc {
	t.Helper()
	a := e2eStart(t, "agent", s.dir, e2eEnv("NATS_URL="+s.natsURL), args...)
	t.Cleanup(func() {
		a.signal(syscall.SIGTERM) // --stop-bot-on-exit or not, the test's bots go with the test
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			a.signal(syscall.SIGKILL)
		}
	})
	return a
}

func notifyStatus(s *e2eStack, name string) (bus.Status, string) {
	code, body := s.api("GET", "/api/bots/"+name)
	var st bus.Status
	if code != 200 || json.Unmarshal(body, &st) != nil {
		return st, fmt.Sprintf("HTTP %d: %s", code, body)
	}
	return st, string(body)
}

func notifyWaitStatus(t *testing.T, s *e2eStack, name, what string, cond func(bus.Status) bool) bus.Status {
	t.Helper()
	var st bus.Status
	e2eWait(t, 20*time.Second, what, func() (bool, string) {
		var raw string
		st, raw = notifyStatus(s, name)
		return st.Name != "" && cond(st), raw
	})
	return st
}

// notifyBot is a stack whose agent runs testdata/notifybot.py as "bot".
type notifyBot struct {
	*e2eStack
	ctl string
	evs *faultEvents
}

func newNotifyBot(t *testing.T, beat bool, agentArgs ...string) *notifyBot {
	t.Helper()
	py := notifyPython(t)
	bot, err := filepath.Abs("testdata/notifybot.py")
	if err != nil {
		t.Fatal(err)
	}
	ctl := t.TempDir()
	if beat {
		if err := os.WriteFile(filepath.Join(ctl, "beat"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := notifyDash(t)
	b := &notifyBot{e2eStack: s, ctl: ctl, evs: faultRecordEvents(t, s, "bot")}
	args := append([]string{"agent", "--name", "bot", "--heartbeat-timeout", "1s", "--start-timeout", "2s",
		"--stop-timeout", "3s", "--backoff-max", "200ms", "--stop-bot-on-exit"}, agentArgs...)
	notifyAgent(t, s, append(args, "--", py, bot, ctl)...)
	return b
}

// send has the bot send msg as one datagram (or do "spawn-child", "exit N").
func (b *notifyBot) send(t *testing.T, msg string) {
	t.Helper()
	tmp := filepath.Join(b.ctl, "send.tmp")
	if err := os.WriteFile(tmp, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(b.ctl, "send")); err != nil {
		t.Fatal(err)
	}
	e2eWait(t, 10*time.Second, "the bot to take "+msg, func() (bool, string) {
		_, err := os.Stat(filepath.Join(b.ctl, "send"))
		return os.IsNotExist(err), fmt.Sprint(err)
	})
}

func (b *notifyBot) beat(t *testing.T, on bool) {
	t.Helper()
	p := filepath.Join(b.ctl, "beat")
	if on {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func (b *notifyBot) st(t *testing.T, what string, cond func(bus.Status) bool) bus.Status {
	t.Helper()
	return notifyWaitStatus(t, b.e2eStack, "bot", what, cond)
}

// env returns what the bot with pid was handed: NOTIFY_SOCKET, WATCHDOG_USEC.
func (b *notifyBot) env(t *testing.T, pid int) (sock, usec string) {
	t.Helper()
	var data []byte
	e2eWait(t, 10*time.Second, "the bot's env file", func() (bool, string) {
		var err error
		data, err = os.ReadFile(filepath.Join(b.ctl, fmt.Sprintf("env-%d", pid)))
		return err == nil, fmt.Sprint(err)
	})
	lines := strings.Split(string(data), "\n")
	return lines[0], lines[1]
}

// WATCHDOG=1 is a heartbeat: the agent publishes one on the bus for the bot,
// and when they stop the bot is hung, killed and respawned. The socket is
// private to the agent's user.
func TestE2ENotifyWatchdogIsHeartbeat(t *testing.T) {
	b := newNotifyBot(t, true)
	nc := b.connect()
	beats := make(chan bus.Heartbeat, 64)
	sub, err := nc.Subscribe(bus.HeartbeatSubject("bot"), func(m *nats.Msg) {
		if hb, err := bus.DecodeHeartbeat(m.Data); err == nil {
			select {
			case beats <- hb:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	st := b.st(t, "running with heartbeats and hang detection on", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.HeartbeatAgeMS != nil && st.HangDetection == "on"
	})
	select {
	case hb := <-beats:
		if hb.PID != st.PID || hb.Name != "bot" {
			t.Fatalf("bus heartbeat %+v for bot pid %d", hb, st.PID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no bus heartbeat for the bot's WATCHDOG=1")
	}
	sock, usec := b.env(t, st.PID)
	if usec != "1000000" {
		t.Errorf("WATCHDOG_USEC %q, want 1000000", usec)
	}
	fi, err := os.Stat(filepath.Dir(sock))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket dir %s: %v %v, want mode 0700", sock, fi, err)
	}
	if !strings.HasPrefix(sock, b.data()) {
		t.Errorf("NOTIFY_SOCKET %q not under the data dir %s", sock, b.data())
	}

	b.beat(t, false)
	hung := b.evs.wait(t, bus.EventHung, st.PID)
	if !strings.Contains(hung.Reason, "no heartbeat for 1s") {
		t.Errorf("hung reason %q", hung.Reason)
	}
	b.evs.wait(t, bus.EventKilled, st.PID)
	b.beat(t, true)
	b.st(t, "respawned", func(n bus.Status) bool { return n.State == bus.StateRunning && n.PID != st.PID && n.Restarts == 1 })
}

// --ready notify: starting until READY=1; READY=1 with WATCHDOG_USEC arms
// hang detection; a bot known to speak the protocol waits for READY=1 on its
// next start too, bounded by --start-timeout.
func TestE2ENotifyReady(t *testing.T) {
	b := newNotifyBot(t, false, "--ready", "notify", "--start-timeout", "4s")
	first := b.st(t, "starting until READY=1", func(st bus.Status) bool { return st.State == bus.StateStarting && st.PID > 0 })
	b.send(t, "READY=1")
	b.st(t, "running, armed", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID == first.PID && st.HangDetection == "on"
	})
	hung := b.evs.wait(t, bus.EventHung, first.PID)
	if !strings.Contains(hung.Reason, "no heartbeat for 1s") {
		t.Errorf("hung reason %q", hung.Reason)
	}
	second := b.st(t, "respawned, starting", func(st bus.Status) bool { return st.State == bus.StateStarting && st.PID != first.PID })
	hung = b.evs.wait(t, bus.EventHung, second.PID)
	if !strings.Contains(hung.Reason, "no READY=1 within 4s") {
		t.Errorf("hung reason %q", hung.Reason)
	}
}

// Without --ready, a bot runs at once; status says hang detection is off
// until READY=1 arms it; WATCHDOG=trigger is hung now.
func TestE2ENotifyTrigger(t *testing.T) {
	b := newNotifyBot(t, false, "--heartbeat-timeout", "30s")
	first := b.st(t, "running at once, not armed", func(st bus.Status) bool {
		return st.State == bus.StateRunning && strings.HasPrefix(st.HangDetection, "off: no heartbeat yet")
	})
	out, _, _ := b.cli("status")
	if !strings.Contains(out, "hang detection off: no heartbeat yet") {
		t.Errorf("lifeline status does not say hang detection is off:\n%s", out)
	}
	b.send(t, "READY=1")
	b.st(t, "armed by READY=1", func(st bus.Status) bool { return st.HangDetection == "on" })
	b.send(t, "WATCHDOG=trigger")
	hung := b.evs.wait(t, bus.EventHung, first.PID)
	if !strings.Contains(hung.Reason, "WATCHDOG=trigger") {
		t.Errorf("hung reason %q", hung.Reason)
	}
	b.evs.wait(t, bus.EventKilled, first.PID)
	b.st(t, "respawned", func(st bus.Status) bool { return st.PID != first.PID && st.PID > 0 })
}

// STATUS= is status_text over the API and in `lifeline status`, with no
// escape sequence reaching the terminal.
func TestE2ENotifyStatusText(t *testing.T) {
	b := newNotifyBot(t, false)
	b.st(t, "running", func(st bus.Status) bool { return st.State == bus.StateRunning })
	b.send(t, "STATUS=processed 7 items")
	b.st(t, "status_text", func(st bus.Status) bool { return st.StatusText == "processed 7 items" })
	out, _, code := b.cli("status")
	if code != 0 || !strings.Contains(out, "status: processed 7 items") {
		t.Fatalf("lifeline status (exit %d):\n%s", code, out)
	}
	b.send(t, "STATUS=\x1b[2Jwiped\x07")
	b.st(t, "cleaned status_text", func(st bus.Status) bool { return strings.Contains(st.StatusText, "wiped") })
	out, _, _ = b.cli("status")
	if strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, "wiped") {
		t.Fatalf("control characters reached lifeline status: %q", out)
	}
}

// STOPPING=1: state stopping, and the exit that follows is not a crash.
func TestE2ENotifyStopping(t *testing.T) {
	b := newNotifyBot(t, false)
	first := b.st(t, "running", func(st bus.Status) bool { return st.State == bus.StateRunning })
	b.send(t, "STOPPING=1")
	b.st(t, "stopping", func(st bus.Status) bool { return st.State == bus.StateStopping && st.PID == first.PID })
	b.send(t, "exit 3")
	ev := b.evs.wait(t, bus.EventExited, first.PID)
	if !strings.Contains(ev.Reason, "STOPPING=1") {
		t.Errorf("exited reason %q", ev.Reason)
	}
	st := b.st(t, "respawned", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID != first.PID })
	if st.LastExit == nil || st.LastExit.Reason != "exited" {
		t.Errorf("last exit %+v, want exited", st.LastExit)
	}
	for _, ev := range b.evs.of(bus.EventCrashed) {
		if ev.PID == first.PID {
			t.Errorf("a bot that said STOPPING=1 was reported crashed: %+v", ev)
		}
	}
}

// Messages from another process are ignored, and so is a MAINPID= naming a
// process that is not the bot's descendant; a proven MAINPID='s heartbeats
// count.
func TestE2ENotifyMainPIDAndStrangers(t *testing.T) {
	py := notifyPython(t)
	b := newNotifyBot(t, false)
	first := b.st(t, "running", func(st bus.Status) bool { return st.State == bus.StateRunning })
	sock, _ := b.env(t, first.PID)
	// A stranger (the test's child, not the bot's) heartbeats for the bot.
	stranger := exec.Command(py, "-c", `
import socket, sys, time
a = sys.argv[1]
a = "\0" + a[1:] if a.startswith("@") else a
while True:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"WATCHDOG=1", a)
    time.sleep(0.05)
`, sock)
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stranger.Process.Kill(); stranger.Wait() }()
	b.send(t, "READY=1")
	b.send(t, fmt.Sprintf("MAINPID=%d", stranger.Process.Pid))
	hung := b.evs.wait(t, bus.EventHung, first.PID)
	if !strings.Contains(hung.Reason, "no heartbeat for 1s") {
		t.Errorf("hung reason %q", hung.Reason)
	}

	// The next bot hands over to its child, whose WATCHDOG=1 keep it alive.
	if err := os.MkdirAll(filepath.Join(b.ctl, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.ctl, "child", "beat"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	second := b.st(t, "respawned", func(st bus.Status) bool { return st.PID != first.PID && st.PID > 0 })
	b.send(t, "spawn-child")
	b.st(t, "running on the child's heartbeats", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.PID == second.PID && st.HangDetection == "on"
	})
	until := time.Now().Add(3 * time.Second) // three heartbeat timeouts
	for time.Now().Before(until) {
		st, raw := notifyStatus(b.e2eStack, "bot")
		if st.PID != second.PID || st.State != bus.StateRunning {
			t.Fatalf("bot kept alive by its proven MAINPID was replaced: %s", raw)
		}
		time.Sleep(100 * time.Millisecond) // sampling the status, not waiting for it
	}
}

// Every example command line with a python3 program, in `lifeline --help`,
// `lifeline agent --help`, the README and examples/README.md, is run here as
// a new user would, with a program that sends no heartbeat: it stays
// running, never restarted, past the start timeout, and status says hang
// detection is off and why. With --require-heartbeat it is hung instead.
func TestE2EHelpExamplesSilentPython(t *testing.T) {
	notifyPython(t)
	bin := e2eBin(t)
	var docs []string
	for _, args := range [][]string{{"--help"}, {"agent", "--help"}} {
		out, _ := exec.Command(bin, args...).CombinedOutput()
		docs = append(docs, string(out))
	}
	for _, f := range []string{"../../README.md", "../../examples/README.md"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(data))
	}
	re := regexp.MustCompile(`(?m)lifeline agent ((?:--[a-z-]+(?: [^-\s]\S*)? )*)-- python3 (\S+\.py)([^\n` + "`" + `]*)`)
	seen := map[string]bool{}
	var examples [][]string
	for _, d := range docs {
		for _, m := range re.FindAllStringSubmatch(d, -1) {
			if seen[m[0]] {
				continue
			}
			seen[m[0]] = true
			examples = append(examples, m)
		}
	}
	if len(examples) < 2 {
		t.Fatalf("found %d python examples in the help and READMEs; the pattern is stale", len(examples))
	}
	s := notifyDash(t)
	for i, m := range examples {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			t.Logf("example: %s", m[0])
			flags := strings.Fields(m[1])
			name := "bot"
			for j := range flags {
				if flags[j] == "--name" && j+1 < len(flags) {
					flags[j+1] += fmt.Sprint(i) // one bot per example
					name = flags[j+1]
				}
			}
			dir := t.TempDir()
			script := filepath.Join(dir, filepath.Base(m[2]))
			if err := os.WriteFile(script, []byte("import time\nwhile True:\n    time.sleep(1)\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// Only the start timeout is shortened, so the test need not wait
			// 30 s to see a silent program outlive it.
			args := append([]string{"agent", "--start-timeout", "500ms", "--stop-bot-on-exit"}, flags...)
			rest, _, _ := strings.Cut(m[3], "#") // a comment in a shell block
			prog, progArgs := script, strings.Fields(rest)
			if m[2] == "examples/python/bot.py" {
				// The real example, with its folders in the test's, and the
				// start timeout left alone: READY=1 may come after 500 ms.
				args = append([]string{"agent", "--stop-bot-on-exit"}, flags...)
				prog, _ = filepath.Abs("../../examples/python/bot.py")
				progArgs = []string{"--inbox", filepath.Join(dir, "in"), "--outbox", filepath.Join(dir, "out")}
			}
			args = append(append(args, "--", "python3", prog), progArgs...)
			notifyAgent(t, s, args...)
			first := notifyWaitStatus(t, s, name, "running", func(st bus.Status) bool { return st.State == bus.StateRunning && st.PID > 0 })
			deadline := time.Now().Add(2 * time.Second) // four start timeouts
			for time.Now().Before(deadline) {
				st, raw := notifyStatus(s, name)
				if st.PID != first.PID || st.Restarts != 0 || st.State != bus.StateRunning {
					t.Fatalf("a program with no heartbeat was not left running: %s", raw)
				}
				time.Sleep(100 * time.Millisecond) // sampling, not waiting
			}
			if strings.Contains(m[0], "examples/python/bot.py") {
				return // it speaks sd_notify: hang detection is on
			}
			if !strings.HasPrefix(first.HangDetection, "off: no heartbeat yet") {
				t.Errorf("hang_detection %q", first.HangDetection)
			}
			out, _, _ := s.cli("status", name)
			if !strings.Contains(out, "hang detection off") {
				t.Errorf("lifeline status %s:\n%s", name, out)
			}
		})
	}
	t.Run("require-heartbeat", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "mybot.py")
		if err := os.WriteFile(script, []byte("import time\nwhile True:\n    time.sleep(1)\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		evs := faultRecordEvents(t, s, "strict")
		notifyAgent(t, s, "agent", "--name", "strict", "--start-timeout", "500ms", "--stop-bot-on-exit", "--require-heartbeat", "--", "python3", script)
		first := notifyWaitStatus(t, s, "strict", "starting", func(st bus.Status) bool { return st.PID > 0 })
		hung := evs.wait(t, bus.EventHung, first.PID)
		if !strings.Contains(hung.Reason, "no first heartbeat within 500ms") {
			t.Errorf("hung reason %q", hung.Reason)
		}
	})
}

// The example: examples/python/bot.py under a real agent with the
// system's python3. It runs and shows its STATUS=; SIGSTOP is a hang and
// respawned; kill -9 is a crash and respawned; and no item is lost while it
// is killed again and again.
func TestE2EPythonExample(t *testing.T) {
	py := notifyPython(t)
	botPy, err := filepath.Abs("../../examples/python/bot.py")
	if err != nil {
		t.Fatal(err)
	}
	s := notifyDash(t)
	evs := faultRecordEvents(t, s, "pybot")
	inbox, outbox := filepath.Join(s.dir, "in"), filepath.Join(s.dir, "out")
	notifyAgent(t, s, "agent", "--name", "pybot", "--heartbeat-timeout", "1s", "--stop-timeout", "3s",
		"--backoff-max", "200ms", "--stop-bot-on-exit", "--", py, botPy,
		"--inbox", inbox, "--outbox", outbox, "--poll", "0.05")
	st := notifyWaitStatus(t, s, "pybot", "running, armed, with its STATUS=", func(st bus.Status) bool {
		return st.State == bus.StateRunning && st.HangDetection == "on" && strings.HasPrefix(st.StatusText, "processed ")
	})
	out, _, _ := s.cli("status", "pybot")
	if !strings.Contains(out, "status: processed ") {
		t.Errorf("lifeline status pybot does not show STATUS=:\n%s", out)
	}

	// SIGSTOP: hung, killed, respawned.
	syscall.Kill(st.PID, syscall.SIGSTOP)
	evs.wait(t, bus.EventHung, st.PID)
	evs.wait(t, bus.EventKilled, st.PID)
	st = notifyWaitStatus(t, s, "pybot", "respawned after the hang", func(n bus.Status) bool {
		return n.State == bus.StateRunning && n.PID != st.PID
	})

	// Items flow in while the bot is killed -9 again and again.
	const items = 300
	want := map[string]string{}
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		for i := range items {
			name := fmt.Sprintf("item-%04d.txt", i)
			data := []byte(strings.Repeat(fmt.Sprintf("line %d of %s\n", i, name), 1+i%50))
			tmp := filepath.Join(inbox, "."+name+".tmp")
			if os.WriteFile(tmp, data, 0o644) != nil || os.Rename(tmp, filepath.Join(inbox, name)) != nil {
				return
			}
			time.Sleep(5 * time.Millisecond) // the pace items arrive at
		}
	}()
	for i := range items {
		name := fmt.Sprintf("item-%04d.txt", i)
		sum := sha256.Sum256([]byte(strings.Repeat(fmt.Sprintf("line %d of %s\n", i, name), 1+i%50)))
		want[name] = hex.EncodeToString(sum[:])
	}
	for k := range 6 {
		time.Sleep(time.Duration(50+rand.IntN(150)) * time.Millisecond) // kill at random moments
		syscall.Kill(st.PID, syscall.SIGKILL)
		ev := evs.wait(t, bus.EventCrashed, st.PID)
		if !strings.Contains(ev.Reason, "killed") {
			t.Errorf("kill %d: crashed reason %q", k, ev.Reason)
		}
		prev := st.PID
		st = notifyWaitStatus(t, s, "pybot", "respawned after kill -9", func(n bus.Status) bool {
			return n.State == bus.StateRunning && n.PID != prev
		})
	}
	<-feedDone
	e2eWait(t, 60*time.Second, "every item posted", func() (bool, string) {
		entries, _ := os.ReadDir(outbox)
		n := 0
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
		return n == items, fmt.Sprintf("%d of %d", n, items)
	})
	for name, sha := range want {
		data, err := os.ReadFile(filepath.Join(outbox, name+".json"))
		var r struct {
			SHA256 string `json:"sha256"`
		}
		if err != nil || json.Unmarshal(data, &r) != nil || r.SHA256 != sha {
			t.Errorf("%s: result %q %v, want sha %s", name, data, err, sha)
		}
	}
	e2eWait(t, 10*time.Second, "no claim left", func() (bool, string) {
		left, _ := os.ReadDir(filepath.Join(inbox, ".claimed"))
		return len(left) == 0, fmt.Sprint(len(left))
	})
}
