//go:build unix

package pidfile

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// dup returns a second descriptor for f's open file description, as a child
// process inherits it.
func dup(t *testing.T, f *os.File) uintptr {
	t.Helper()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return uintptr(fd)
}

func TestInherit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bot.pid")
	agent := mustAcquire(t, path)

	bot, err := Inherit(dup(t, agent.Descriptor()), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := bot.WritePID(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if pid, err := Read(path); err != nil || pid != os.Getpid() {
		t.Errorf("Read = %d, %v; want %d", pid, err, os.Getpid())
	}
	// The bot's own children must not inherit the lock.
	flags, err := unix.FcntlInt(bot.Descriptor().Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("inherited descriptor flags %#x, %v; want close-on-exec", flags, err)
	}
	// The lock outlives the agent's descriptor.
	if err := agent.Close(); err != nil {
		t.Fatal(err)
	}
	if pid, err := Read(path); err != nil || pid != os.Getpid() {
		t.Errorf("Read after the agent closed = %d, %v", pid, err)
	}
	if err := bot.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestInheritRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bot.pid")
	mustAcquire(t, path)
	other := mustAcquire(t, filepath.Join(dir, "other.pid"))

	// A descriptor for another file.
	if _, err := Inherit(dup(t, other.Descriptor()), path); err == nil {
		t.Error("Inherit of another file's descriptor succeeded")
	}
	// A descriptor for the right file that does not hold its lock.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Inherit(dup(t, f), path); err == nil {
		t.Error("Inherit of a descriptor without the lock succeeded")
	}
}
