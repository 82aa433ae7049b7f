package sdnotify

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bot keeps its NOTIFY_SOCKET when its agent dies: the next agent must
// listen at the same address, which depends only on the key.
func TestListenForFixedPath(t *testing.T) {
	dir := t.TempDir()
	a, err := ListenFor(dir, "/x/bot.pid")
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr()
	if !strings.HasPrefix(addr, dir+"/lifeline-notify-") || filepath.Base(addr) != "sock" {
		t.Fatalf("address %q, want %s/lifeline-notify-<hash>/sock", addr, dir)
	}
	if di, err := os.Lstat(filepath.Dir(addr)); err != nil || !di.IsDir() || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir not private: %v %v", di, err)
	}
	other, err := ListenFor(dir, "/x/other.pid")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.Addr() == addr {
		t.Fatalf("two keys share %q", addr)
	}
	a.Close()
	b, err := ListenFor(dir, "/x/bot.pid")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Addr() != addr {
		t.Fatalf("second address %q, want %q", b.Addr(), addr)
	}
	mustSend(t, b, "WATCHDOG=1")
	if m := next(t, b); !m.Watchdog {
		t.Errorf("got %+v", m)
	}
}

// kill -9 of an agent leaves its socket file; the next agent replaces it,
// and a bot sending to the old path reaches the new socket.
func TestListenForReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	a, err := ListenFor(dir, "k")
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr()
	// What kill -9 leaves: the file, with nobody reading it (Go never
	// unlinks a datagram socket on Close).
	dead, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr + ".dead", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	a.Close()
	if err := os.MkdirAll(filepath.Dir(addr), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(addr+".dead", addr); err != nil {
		t.Fatal(err)
	}
	b, err := ListenFor(dir, "k")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer b.Close()
	if b.Addr() != addr {
		t.Fatalf("address %q, want %q", b.Addr(), addr)
	}
	mustSend(t, b, "STATUS=back")
	if m := next(t, b); m.Status != "back" {
		t.Errorf("got %+v", m)
	}
}

// A socket someone still reads is another agent's: it is left alone.
func TestListenForRefusesLiveSocket(t *testing.T) {
	dir := t.TempDir()
	a, err := ListenFor(dir, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if b, err := ListenFor(dir, "k"); !errors.Is(err, ErrInUse) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("second ListenFor: %v, want ErrInUse", err)
	}
	mustSend(t, a, "READY=1")
	if m := next(t, a); !m.Ready {
		t.Errorf("first socket no longer served: %+v", m)
	}
}

// A symlink at the socket path is neither followed nor removed, and a
// directory that is not ours alone is passed over.
func TestListenForRefusesSymlinkAndOpenDir(t *testing.T) {
	dir := t.TempDir()
	name := fixedName("k")
	priv := filepath.Join(dir, name)
	if err := os.Mkdir(priv, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(priv, "sock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if s, err := ListenFor(dir, "k"); !errors.Is(err, ErrNotSocket) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("ListenFor over a symlink: %v, want ErrNotSocket", err)
	}
	if got, err := os.Readlink(link); err != nil || got != target {
		t.Errorf("symlink changed: %q %v", got, err)
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != "keep" {
		t.Errorf("symlink target changed: %q %v", data, err)
	}

	// A directory readable by others, or a symlink to a directory: refused.
	open := t.TempDir()
	if err := os.Mkdir(filepath.Join(open, name), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := listenFixed([]string{open}, name, false); !errors.Is(err, ErrNotPrivate) {
		t.Errorf("0755 dir: %v, want ErrNotPrivate", err)
	}
	linked := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(linked, name)); err != nil {
		t.Fatal(err)
	}
	if _, err := listenFixed([]string{linked}, name, false); !errors.Is(err, ErrNotPrivate) {
		t.Errorf("symlinked dir: %v, want ErrNotPrivate", err)
	}
}

// Too long a path: the fallbacks are as fixed as the first choice.
func TestListenForFallbackIsFixed(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	a, err := ListenFor(long, "k")
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr()
	a.Close()
	b, err := ListenFor(long, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Addr() != addr || strings.HasPrefix(addr, long) || len(addr) > maxPath {
		t.Errorf("addresses %q then %q, want one short path outside %q", addr, b.Addr(), long)
	}

	x, err := listenFixed([]string{long}, fixedName("k"), true)
	if err != nil {
		t.Fatal(err)
	}
	if x.Addr() != "@"+fixedName("k") {
		t.Errorf("abstract address %q", x.Addr())
	}
	mustSend(t, x, "WATCHDOG=1")
	if m := next(t, x); !m.Watchdog {
		t.Errorf("got %+v", m)
	}
	x.Close()
	// The kernel frees an abstract name with its socket: the next binds it.
	y, err := listenFixed([]string{long}, fixedName("k"), true)
	if err != nil {
		t.Fatal(err)
	}
	y.Close()
}

// Close removes only the socket file it bound: the next agent's may already
// be at the path.
func TestCloseLeavesAnotherSocket(t *testing.T) {
	dir := t.TempDir()
	a, err := ListenFor(dir, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(a.Addr()); err != nil {
		t.Fatal(err)
	}
	b, err := ListenFor(dir, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Close()
	mustSend(t, b, "READY=1")
	if m := next(t, b); !m.Ready {
		t.Errorf("got %+v", m)
	}
	b.Close()
	if _, err := os.Lstat(filepath.Dir(b.Addr())); !os.IsNotExist(err) {
		t.Errorf("socket dir left after the last Close: %v", err)
	}
}
