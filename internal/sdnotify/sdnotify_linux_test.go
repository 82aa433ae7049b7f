package sdnotify

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain turns the test binary into a sender when asked, so tests can send
// from a child process, and from a child run as another user.
func TestMain(m *testing.M) {
	if addr := os.Getenv("SDNOTIFY_TEST_SEND"); addr != "" {
		if err := sendTo(addr, []byte(os.Getenv("SDNOTIFY_TEST_PAYLOAD"))); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func sendTo(addr string, payload []byte) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write(payload)
	return err
}

func mustListen(tb testing.TB) *Socket {
	tb.Helper()
	s, err := Listen(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func mustSend(tb testing.TB, s *Socket, payload string) {
	tb.Helper()
	if err := sendTo(s.Addr(), []byte(payload)); err != nil {
		tb.Fatalf("send %q: %v", payload, err)
	}
}

// next waits for the next message, failing after a deadline.
func next(tb testing.TB, s *Socket) Message {
	tb.Helper()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			tb.Fatal("messages closed")
		}
		return m
	case <-time.After(5 * time.Second):
		tb.Fatalf("no message within 5s (stats %+v)", s.Stats())
	}
	return Message{}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root, and CI runs as root")
		}
		t.Skip("needs root to run a sender as user nobody")
	}
}

func TestEachMessageType(t *testing.T) {
	s := mustListen(t)
	for _, tt := range []struct {
		send string
		want Message
	}{
		{"READY=1", Message{Ready: true}},
		{"WATCHDOG=1", Message{Watchdog: true}},
		{"WATCHDOG=trigger", Message{WatchdogTrigger: true}},
		{"STATUS=processed 3 items", Message{Status: "processed 3 items", HasStatus: true}},
		{"STOPPING=1", Message{Stopping: true}},
		{"MAINPID=4242", Message{MainPID: 4242}},
		{"X_UNKNOWN=1\nREADY=1\nSTATUS=both", Message{Ready: true, Status: "both", HasStatus: true}},
	} {
		mustSend(t, s, tt.send)
		got := next(t, s)
		if got.PID != os.Getpid() || got.UID != os.Geteuid() || got.Received.IsZero() {
			t.Errorf("%q: sender %d/%d, want %d/%d", tt.send, got.PID, got.UID, os.Getpid(), os.Geteuid())
		}
		got.PID, got.UID, got.GID, got.Received = 0, 0, 0, time.Time{}
		if got != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.send, got, tt.want)
		}
	}
	// Unknown keys alone are not handed on.
	mustSend(t, s, "FDSTORE=1")
	mustSend(t, s, "READY=1")
	if m := next(t, s); !m.Ready {
		t.Errorf("got %+v, want the READY after the ignored message", m)
	}
	// The reader counts a delivery just after handing it over.
	st := s.Stats()
	for end := time.Now().Add(2 * time.Second); st.Delivered < 8 && time.Now().Before(end); st = s.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.Ignored != 1 || st.Delivered != 8 {
		t.Errorf("stats %+v, want 1 ignored and 8 delivered", st)
	}
}

func TestChildProcessPID(t *testing.T) {
	s := mustListen(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SDNOTIFY_TEST_SEND="+s.Addr(), "SDNOTIFY_TEST_PAYLOAD=READY=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sender: %v: %s", err, out)
	}
	if m := next(t, s); m.PID != cmd.Process.Pid || !m.Ready {
		t.Errorf("got %+v, want READY from PID %d", m, cmd.Process.Pid)
	}

	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 not found; the child-PID check ran with the Go sender only")
		return
	}
	// The ten lines a Python bot would use, as in examples/python.
	script := `import os, socket
a = os.environ["NOTIFY_SOCKET"]
a = "\0" + a[1:] if a[0] == "@" else a
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(a)
s.sendall(b"STATUS=from python\nWATCHDOG=1")`
	cmd = exec.Command(py, "-c", script)
	cmd.Env = ChildEnv(os.Environ(), s, time.Second)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python sender: %v: %s", err, out)
	}
	if m := next(t, s); m.PID != cmd.Process.Pid || !m.Watchdog || m.Status != "from python" {
		t.Errorf("got %+v, want WATCHDOG and STATUS from PID %d", m, cmd.Process.Pid)
	}
}

// runAsNobody runs the test binary as user nobody sending payload to addr.
// The binary is copied where nobody can execute it (go test's work
// directory is private to root).
func runAsNobody(t *testing.T, addr, payload string) error {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdnotify-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sender")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{"SDNOTIFY_TEST_SEND=" + addr, "SDNOTIFY_TEST_PAYLOAD=" + payload}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}

func TestOtherUserCannotReachPathSocket(t *testing.T) {
	requireRoot(t)
	s := mustListen(t)
	err := runAsNobody(t, s.Addr(), "WATCHDOG=trigger")
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("nobody sent to the private socket (err %v), want permission denied", err)
	}
	mustSend(t, s, "READY=1")
	if m := next(t, s); !m.Ready || m.PID != os.Getpid() {
		t.Errorf("first message is %+v, want our own READY", m)
	}
}

func TestOtherUserDatagramDropped(t *testing.T) {
	requireRoot(t)
	// An abstract socket has no file permissions: only the UID check stands.
	s, err := listen(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := runAsNobody(t, s.Addr(), "WATCHDOG=trigger\nSTATUS=pwned"); err != nil {
		t.Fatalf("nobody could not send at all (%v); the UID check went untested", err)
	}
	mustSend(t, s, "READY=1")
	if m := next(t, s); !m.Ready || m.HasStatus || m.WatchdogTrigger {
		t.Errorf("first message is %+v, want our READY with nobody's dropped", m)
	}
	// The reader counts a delivery just after queueing it.
	st := s.Stats()
	for end := time.Now().Add(2 * time.Second); st.Delivered < 1 && time.Now().Before(end); st = s.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.Foreign != 1 || st.Delivered != 1 {
		t.Errorf("stats %+v, want 1 foreign and 1 delivered", st)
	}
}

func TestOversizedDatagramDropped(t *testing.T) {
	s := mustListen(t)
	big := "STATUS=" + strings.Repeat("x", 60000) + "\nWATCHDOG=trigger"
	mustSend(t, s, big)
	edge := "STATUS=" + strings.Repeat("y", MaxDatagram-len("STATUS=")) // exactly MaxDatagram
	mustSend(t, s, edge)
	mustSend(t, s, "STATUS="+strings.Repeat("z", MaxDatagram)) // one byte over
	mustSend(t, s, "READY=1")
	m := next(t, s)
	if m.WatchdogTrigger || !m.HasStatus || len(m.Status) != MaxStatus || m.Status[0] != 'y' {
		t.Errorf("first message %q..., want the %d-byte one, cut to %d bytes of status", m.Status[:min(8, len(m.Status))], MaxDatagram, MaxStatus)
	}
	if m := next(t, s); !m.Ready {
		t.Errorf("got %+v, want READY after the dropped ones", m)
	}
	if st := s.Stats(); st.Oversized != 2 {
		t.Errorf("stats %+v, want 2 oversized", st)
	}
}

func TestFloodStaysBoundedAndFast(t *testing.T) {
	s := mustListen(t)
	const senders, each = 8, 12500
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		wg.Go(func() {
			c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.Addr(), Net: "unixgram"})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := []byte("WATCHDOG=1\nSTATUS=flood")
			for range each {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Nobody consumes during the flood: the worst case for the queue.
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The reader still answers, promptly, with our message behind the flood.
	mustSend(t, s, "STATUS=alive")
	deadline := time.After(5 * time.Second)
	for alive := false; !alive; {
		select {
		case m := <-s.Messages():
			alive = m.Status == "alive"
		case <-deadline:
			t.Fatalf("reader silent after the flood (stats %+v)", s.Stats())
		}
	}
	elapsed := time.Since(start)
	st := s.Stats()
	if st.Delivered+st.Overflow < senders*each {
		t.Errorf("stats %+v: datagrams unaccounted for", st)
	}
	if st.Overflow == 0 {
		t.Errorf("stats %+v: expected the queue to overflow with no consumer", st)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 4<<20 {
		t.Errorf("heap grew by %d bytes during the flood, want bounded (< 4 MiB)", grow)
	}
	if elapsed > 20*time.Second {
		t.Errorf("100,000 datagrams took %v", elapsed)
	}
	t.Logf("%d datagrams in %v, stats %+v", senders*each, elapsed, st)
}

func TestPrivateFilesAndClose(t *testing.T) {
	s := mustListen(t)
	fi, err := os.Lstat(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	dir := filepath.Dir(s.Addr())
	di, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !di.IsDir() || di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v, want directory 0700", di.Mode())
	}
	if st := di.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
		t.Errorf("socket directory owned by %d, want %d", st.Uid, os.Geteuid())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory left behind: %v", err)
	}
	select {
	case _, ok := <-s.Messages():
		if ok {
			t.Error("message after Close")
		}
	case <-time.After(5 * time.Second):
		t.Error("Messages not closed by Close")
	}
}

func TestLongPathFallback(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100), strings.Repeat("e", 50))
	s, err := Listen(long)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a := s.Addr(); len(a) > 107 || strings.HasPrefix(a, long) || !filepath.IsAbs(a) {
		t.Errorf("address %q, want a short absolute path outside %q", a, long)
	}
	if di, err := os.Stat(filepath.Dir(s.Addr())); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("fallback directory not private: %v %v", di.Mode(), err)
	}
	mustSend(t, s, "READY=1")
	if m := next(t, s); !m.Ready {
		t.Errorf("got %+v", m)
	}

	// With no short directory at all, an abstract socket.
	a, err := listen([]string{long}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !strings.HasPrefix(a.Addr(), "@lifeline-notify-") {
		t.Fatalf("address %q, want an abstract one", a.Addr())
	}
	mustSend(t, a, "WATCHDOG=1")
	if m := next(t, a); !m.Watchdog || m.PID != os.Getpid() {
		t.Errorf("got %+v", m)
	}
	if _, err := listen([]string{long}, false); err == nil {
		t.Error("listen with no short directory and no abstract fallback succeeded")
	}
}

func TestPassedDescriptorsAreClosed(t *testing.T) {
	s := mustListen(t)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(c)
	n := fds()
	for range 50 {
		rights := unix.UnixRights(int(f.Fd()), int(f.Fd()))
		if err := unix.Sendmsg(c, []byte("WATCHDOG=1"), rights, &unix.SockaddrUnix{Name: s.Addr()}, 0); err != nil {
			t.Fatal(err)
		}
		if m := next(t, s); !m.Watchdog {
			t.Fatalf("got %+v", m)
		}
	}
	if got := fds(); got > n {
		t.Errorf("descriptors went from %d to %d: passed files leak into the agent", n, got)
	}
}

func TestDescendant(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for _, tt := range []struct {
		pid, ancestor int
		want          bool
	}{
		{os.Getpid(), os.Getpid(), true},
		{cmd.Process.Pid, os.Getpid(), true},
		{os.Getpid(), cmd.Process.Pid, false},
		{os.Getppid(), os.Getpid(), false},
		{1, os.Getpid(), false},
	} {
		got, err := Descendant(tt.pid, tt.ancestor)
		if err != nil || got != tt.want {
			t.Errorf("Descendant(%d, %d) = %v, %v; want %v", tt.pid, tt.ancestor, got, err, tt.want)
		}
	}
	if _, err := Descendant(1<<22+7, os.Getpid()); err == nil {
		t.Error("Descendant of a PID that does not exist: no error")
	}
}

func TestChildEnv(t *testing.T) {
	s := mustListen(t)
	base := []string{"PATH=/bin", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_PID=1"}
	want := []string{"PATH=/bin", "NOTIFY_SOCKET=" + s.Addr(), "WATCHDOG_USEC=" + strconv.Itoa(1500000)}
	if got := ChildEnv(base, s, 1500*time.Millisecond); !slices.Equal(got, want) {
		t.Errorf("ChildEnv = %q, want %q", got, want)
	}
	if got := ChildEnv(base, s, 0); !slices.Equal(got, want[:2]) {
		t.Errorf("ChildEnv without hang detection = %q, want %q", got, want[:2])
	}
}

// BenchmarkWatchdogToMessage measures a WATCHDOG=1 datagram from send to
// delivery on Messages.
func BenchmarkWatchdogToMessage(b *testing.B) {
	s := mustListen(b)
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.Addr(), Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := []byte("WATCHDOG=1")
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		<-s.Messages()
	}
}
