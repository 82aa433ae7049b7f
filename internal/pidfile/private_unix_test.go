//go:build unix

package pidfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobodyUID is the uid of user nobody on Linux and the BSDs.
const nobodyUID = 65534

// openDir makes dir and its parent (the test's temporary directory)
// reachable by every user, as a data/ directory of mode 0755 is, so that
// only the file's own mode stands between another user and the file.
func openDir(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestAcquireMakesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "bot.pid")
	mustAcquire(t, path)
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("created directory has mode %v, want 0700", m)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("pid file has mode %v, want 0600", m)
	}

	// A directory that exists already keeps the mode its user gave it, but
	// a file left readable by an older version is made private.
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(shared, "bot.pid")
	if err := os.WriteFile(old, []byte("4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	mustAcquire(t, old)
	if m := mode(t, shared); m != 0o755 {
		t.Errorf("existing directory changed to mode %v", m)
	}
	if m := mode(t, old); m != 0o600 {
		t.Errorf("old pid file has mode %v after Acquire, want 0600", m)
	}
}

// A symbolic link planted where the PID file goes is refused with a clear
// error by Acquire and Read, and its target is left as it was.
func TestSymlinkIsNotFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bot.pid")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.pid")
	if err := os.Symlink(filepath.Join(dir, "nothing"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, dangling} {
		if f, err := Acquire(p); !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), "symbolic link") {
			if f != nil {
				f.Close()
			}
			t.Errorf("Acquire(%s) through a symlink = %v, want ErrSymlink", filepath.Base(p), err)
		}
		if _, err := Read(p); !errors.Is(err, ErrSymlink) {
			t.Errorf("Read(%s) through a symlink = %v, want ErrSymlink", filepath.Base(p), err)
		}
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != "precious\n" {
		t.Errorf("symlink target = %q, %v; want it unchanged", data, err)
	}
	if m := mode(t, target); m != 0o644 {
		t.Errorf("symlink target mode changed to %v", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "nothing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dangling symlink's target was created: %v", err)
	}
}

// A FIFO planted where the PID file goes must not hang the agent.
func TestFIFOIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.pid")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Read of a FIFO = %v, want ErrNotRegular", err)
	}
	if _, err := Acquire(path); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Acquire of a FIFO = %v, want ErrNotRegular", err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to act as user nobody")
	}
}

// A PID file that another user made (and so can flock whenever they like)
// is refused, not used.
func TestFileOfAnotherUserIsRefused(t *testing.T) {
	requireRoot(t)
	path := filepath.Join(t.TempDir(), "bot.pid")
	if err := os.WriteFile(path, []byte("4242\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, nobodyUID, nobodyUID); err != nil {
		t.Fatal(err)
	}
	if f, err := Acquire(path); !errors.Is(err, ErrNotOwned) {
		if f != nil {
			f.Close()
		}
		t.Errorf("Acquire of nobody's file = %v, want ErrNotOwned", err)
	}
	if _, err := Read(path); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Read of nobody's file = %v, want ErrNotOwned", err)
	}
}

// Another user cannot even open the PID file, so cannot flock it: `flock`
// run as nobody fails with permission denied, and the lock stays free.
func TestOtherUserCannotLock(t *testing.T) {
	requireRoot(t)
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("needs flock(1) from util-linux")
	}
	dir := t.TempDir()
	openDir(t, dir)
	path := filepath.Join(dir, "bot.pid")
	f := mustAcquire(t, path)
	if err := f.Close(); err != nil { // the bot was killed: the lock is free
		t.Fatal(err)
	}
	cmd := exec.Command(flock, "--nonblock", path, "true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "permission denied") {
		t.Fatalf("flock as nobody: %v, %q; want permission denied", err, out)
	}
	g := mustAcquire(t, path)
	if err := g.WritePID(4242); err != nil {
		t.Fatal(err)
	}
}
