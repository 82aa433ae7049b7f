//go:build linux

package examples

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/internal/sdnotify"
)

// findPython asks python3 for the real interpreter behind it (not a pyenv
// shim, which costs a bash start per bot start), once.
var findPython = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	return strings.TrimSpace(string(out)), err
})

// python returns the interpreter, skipping when there is none, except under
// CI where the examples must run.
func python(t *testing.T) string {
	t.Helper()
	py, err := findPython()
	if err != nil || py == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 is required under CI: %v", err)
		}
		t.Skipf("python3 not usable (%v); the examples are not tested", err)
	}
	return py
}

// notes collects a socket's messages so tests can wait for one.
type notes struct {
	mu      sync.Mutex
	msgs    []sdnotify.Message
	changed chan struct{}
}

func listen(t *testing.T) (*sdnotify.Socket, *notes) {
	t.Helper()
	s, err := sdnotify.Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := &notes{changed: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range s.Messages() {
			n.mu.Lock()
			n.msgs = append(n.msgs, m)
			n.mu.Unlock()
			select {
			case n.changed <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { s.Close(); <-done })
	return s, n
}

// waitFor returns the first message from pid that ok accepts, failing after
// a deadline.
func (n *notes) waitFor(t *testing.T, pid int, what string, ok func(sdnotify.Message) bool) sdnotify.Message {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		n.mu.Lock()
		for _, m := range n.msgs {
			if m.PID == pid && ok(m) {
				n.mu.Unlock()
				return m
			}
		}
		n.mu.Unlock()
		select {
		case <-n.changed:
		case <-deadline:
			t.Fatalf("no %s from PID %d within 30s", what, pid)
		}
	}
}

// senders returns the PIDs messages came from.
func (n *notes) senders() map[int]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	pids := map[int]bool{}
	for _, m := range n.msgs {
		pids[m.PID] = true
	}
	return pids
}

// box is an inbox and outbox pair, with what was dropped in the inbox.
type box struct {
	in, out string
	mu      sync.Mutex
	sent    map[string]string // item name -> sha256 of its content
}

func newBox(t *testing.T) *box {
	d := t.TempDir()
	b := &box{in: filepath.Join(d, "inbox"), out: filepath.Join(d, "outbox"), sent: map[string]string{}}
	for _, dir := range []string{b.in, b.out} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// drop writes an item the way writers must: a temporary name, then a rename.
func (b *box) drop(t *testing.T, name, content string) {
	tmp := filepath.Join(b.in, name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(b.in, name)); err != nil {
		t.Error(err)
		return
	}
	sum := sha256.Sum256([]byte(content))
	b.mu.Lock()
	b.sent[name] = hex.EncodeToString(sum[:])
	b.mu.Unlock()
}

// pending counts items in the inbox and claimed by the bot.
func (b *box) pending(t *testing.T) int {
	n := 0
	for _, dir := range []string{b.in, filepath.Join(b.in, ".claimed")} {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() {
				n++
			}
		}
	}
	return n
}

// check fails unless every item sent has exactly one result with its hash,
// and nothing else is left anywhere.
func (b *box) check(t *testing.T) {
	t.Helper()
	if n := b.pending(t); n != 0 {
		t.Errorf("%d items left in the inbox or claimed", n)
	}
	ents, err := os.ReadDir(b.out)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	got := map[string]bool{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			t.Errorf("stray file in the outbox: %s", e.Name())
			continue
		}
		data, err := os.ReadFile(filepath.Join(b.out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Item   string `json:"item"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			t.Errorf("result %s is not whole JSON: %v: %q", e.Name(), err, data)
			continue
		}
		if want, ok := b.sent[name]; !ok || r.Item != name || r.SHA256 != want {
			t.Errorf("result %s = %+v, want item %q with sha256 %s", e.Name(), r, name, want)
		}
		got[name] = true
	}
	for name := range b.sent {
		if !got[name] {
			t.Errorf("item %s lost: no result", name)
		}
	}
}

// bot is one run of an example bot.
type bot struct {
	cmd    *exec.Cmd
	stderr lockedBuffer
	done   chan error
}

// lockedBuffer is the bot's stderr, read by the test while exec's copier
// still writes it (a bare bytes.Buffer there is a data race).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, s *sdnotify.Socket, env []string, name string, args ...string) *bot {
	t.Helper()
	b := &bot{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	b.cmd.Env = append(sdnotify.ChildEnv(os.Environ(), s, 5*time.Second), env...)
	b.cmd.Stderr = &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
		b.done <- nil
	})
	return b
}

// wait returns how the bot exited, failing after a deadline.
func (b *bot) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err
		return err
	case <-time.After(30 * time.Second):
	}
	// Stuck: ask for its stack (a Python bot's faulthandler prints every
	// thread's on SIGABRT), then say what it printed.
	_ = b.cmd.Process.Signal(syscall.SIGABRT)
	select {
	case err := <-b.done:
		b.done <- err
	case <-time.After(5 * time.Second):
	}
	t.Fatalf("bot still running 30s on; stderr:\n%s", b.stderr.String())
	return nil
}

func startPython(t *testing.T, s *sdnotify.Socket, b *box, args ...string) *bot {
	t.Helper()
	// faulthandler: a SIGABRT makes a stuck bot print where it is stuck.
	args = append([]string{"-X", "faulthandler", "python/bot.py", "--inbox", b.in, "--outbox", b.out}, args...)
	return start(t, s, nil, python(t), args...)
}

func status(text string) func(sdnotify.Message) bool {
	return func(m sdnotify.Message) bool { return m.HasStatus && m.Status == text }
}

func TestPythonBotSpeaksSDNotify(t *testing.T) {
	s, notes := listen(t)
	box := newBox(t)
	bot := startPython(t, s, box, "--poll", "0.05")
	pid := bot.cmd.Process.Pid
	notes.waitFor(t, pid, "READY=1", func(m sdnotify.Message) bool { return m.Ready })
	for i := range 5 {
		box.drop(t, fmt.Sprintf("item-%d", i), strings.Repeat("word ", i+1))
	}
	notes.waitFor(t, pid, "STATUS=processed 5 items", status("processed 5 items"))
	notes.waitFor(t, pid, "WATCHDOG=1", func(m sdnotify.Message) bool { return m.Watchdog })
	if err := bot.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := bot.wait(t); err != nil {
		t.Fatalf("bot exited with %v on SIGTERM; stderr:\n%s", err, bot.stderr.String())
	}
	notes.waitFor(t, pid, "STOPPING=1", func(m sdnotify.Message) bool { return m.Stopping })
	box.check(t)
	if got := notes.senders(); len(got) != 1 || !got[pid] {
		t.Errorf("messages came from %v, want only the bot's PID %d", got, pid)
	}
}

func TestPythonBotFinishesItemInHandOnSIGTERM(t *testing.T) {
	s, notes := listen(t)
	box := newBox(t)
	bot := startPython(t, s, box, "--poll", "0.05", "--work-delay", "1")
	pid := bot.cmd.Process.Pid
	notes.waitFor(t, pid, "READY=1", func(m sdnotify.Message) bool { return m.Ready })
	box.drop(t, "slow", "one item that takes a second")
	claimed := filepath.Join(box.in, ".claimed", "slow")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(claimed); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("item never claimed; stderr:\n%s", bot.stderr.String())
		}
	}
	// A second item must wait for the next start: the bot stops after the
	// one in hand.
	box.drop(t, "later", "not taken")
	if err := bot.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := bot.wait(t); err != nil {
		t.Fatalf("bot exited with %v on SIGTERM; stderr:\n%s", err, bot.stderr.String())
	}
	notes.waitFor(t, pid, "STOPPING=1", func(m sdnotify.Message) bool { return m.Stopping })
	if _, err := os.Stat(filepath.Join(box.out, "slow.json")); err != nil {
		t.Errorf("item in hand not posted before exit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(box.in, "later")); err != nil {
		t.Errorf("item dropped after SIGTERM was taken: %v", err)
	}
	// The next run posts the rest.
	bot = startPython(t, s, box, "--poll", "0.05")
	notes.waitFor(t, bot.cmd.Process.Pid, "STATUS=processed 1 items", status("processed 1 items"))
	box.check(t)
}

// TestPythonBotLosesNoItemUnderKill9 kills the bot again and again while
// items flow. Guarantee checked: every item ends with exactly one result,
// whole and with its content's hash; processing is at-least-once (an item
// whose result was written just before a kill is processed again by the next
// run, which finds the same hash posted and only drops the claim).
func TestPythonBotLosesNoItemUnderKill9(t *testing.T) {
	s, notes := listen(t)
	box := newBox(t)
	const items = 300
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := range items {
			box.drop(t, fmt.Sprintf("item-%03d", i), strings.Repeat(fmt.Sprintf("line %d\n", i), 1+i%7))
			time.Sleep(3 * time.Millisecond) // a steady flow, not one burst
		}
	}()
	kills, recovered := 0, 0
	for running := true; running || kills < 8; {
		select {
		case <-produced:
			running = false
		default:
		}
		bot := startPython(t, s, box, "--poll", "0.01", "--work-delay", "0.002")
		notes.waitFor(t, bot.cmd.Process.Pid, "READY=1", func(m sdnotify.Message) bool { return m.Ready })
		time.Sleep(time.Duration(10+rand.IntN(60)) * time.Millisecond) // kill at a random moment of its work
		if err := bot.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		bot.wait(t)
		kills++
		if strings.Contains(bot.stderr.String(), "recovered") {
			recovered++
		}
	}
	bot := startPython(t, s, box, "--poll", "0.01")
	for deadline := time.Now().Add(60 * time.Second); box.pending(t) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d items still pending after 60s; stderr:\n%s", box.pending(t), bot.stderr.String())
		}
	}
	if err := bot.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := bot.wait(t); err != nil {
		t.Fatalf("last run exited with %v; stderr:\n%s", err, bot.stderr.String())
	}
	box.check(t)
	t.Logf("%d items, %d kill -9, %d runs recovered claimed items", items, kills, recovered)
}

func TestShellBotNotifiesFromItsOwnPID(t *testing.T) {
	// The shell bot sends through a python3 one-liner; put the real one first.
	path := "PATH=" + filepath.Dir(python(t)) + string(os.PathListSeparator) + os.Getenv("PATH")
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum not found")
	}
	s, notes := listen(t)
	box := newBox(t)
	bot := start(t, s, []string{"POLL=0.05", path}, "sh", "shell/bot.sh", box.in, box.out)
	pid := bot.cmd.Process.Pid
	notes.waitFor(t, pid, "READY=1", func(m sdnotify.Message) bool { return m.Ready })
	box.drop(t, "a", "hello\n")
	box.drop(t, "b", "world\n")
	notes.waitFor(t, pid, "STATUS=processed 2 items", status("processed 2 items"))
	notes.waitFor(t, pid, "WATCHDOG=1", func(m sdnotify.Message) bool { return m.Watchdog })
	if err := bot.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A SIGTERM while the one-liner runs ends the bot by the signal, between
	// items; otherwise it stops cleanly and says so.
	if err := bot.wait(t); err == nil {
		notes.waitFor(t, pid, "STOPPING=1", func(m sdnotify.Message) bool { return m.Stopping })
	}
	box.check(t)
	if got := notes.senders(); len(got) != 1 || !got[pid] {
		t.Errorf("messages came from %v, want only the bot's PID %d", got, pid)
	}
}
