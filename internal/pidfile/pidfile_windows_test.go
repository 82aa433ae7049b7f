//go:build windows

package pidfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"
)

// dupHandle returns a second handle for f's file object, as a child
// process inherits it.
func dupHandle(t *testing.T, f *os.File) uintptr {
	t.Helper()
	self := windows.CurrentProcess()
	var h windows.Handle
	if err := windows.DuplicateHandle(self, windows.Handle(f.Fd()), self, &h, 0, true, windows.DUPLICATE_SAME_ACCESS); err != nil {
		t.Fatal(err)
	}
	return uintptr(h)
}

func TestInheritWindows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.pid")
	agent := mustAcquire(t, path)

	bot, err := Inherit(dupHandle(t, agent.Descriptor()), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := bot.WritePID(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	// The bot's own children must not inherit the lock.
	var flags uint32
	getInfo := windows.NewLazySystemDLL("kernel32.dll").NewProc("GetHandleInformation")
	if ok, _, err := getInfo.Call(bot.Descriptor().Fd(), uintptr(unsafe.Pointer(&flags))); ok == 0 || flags&windows.HANDLE_FLAG_INHERIT != 0 {
		t.Errorf("inherited handle flags %#x, %v; want not inheritable", flags, err)
	}
	// The lock outlives the agent's handle.
	if err := agent.Close(); err != nil {
		t.Fatal(err)
	}
	if pid, err := Read(path); err != nil || pid != os.Getpid() {
		t.Errorf("Read after the agent closed = %d, %v", pid, err)
	}
	if err := bot.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove left the file: %v", err)
	}
}

func TestInheritRefusesReadOnlyHandle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.pid")
	mustAcquire(t, path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Inherit(dupHandle(t, f), path); err == nil {
		t.Error("Inherit of a read-only handle for a file someone else holds succeeded")
	}
}

// TestHeldFileStaysReadable: what a lock must not do on Windows is make the
// PID unreadable (LockFileEx's locks are mandatory for the bytes they
// cover). Readers that share writing, as os.ReadFile and `type` do, read it.
func TestHeldFileStaysReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.pid")
	pf := mustAcquire(t, path)
	if err := pf.WritePID(4242); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "4242\r\n" {
		t.Errorf("os.ReadFile = %q, %v; want 4242 and CRLF", data, err)
	}
	out, err := exec.Command("cmd", "/c", "type", path).Output()
	if err != nil || strings.TrimSpace(string(out)) != "4242" {
		t.Errorf("type = %q, %v", out, err)
	}
	if held, err := HeldBy(os.Getpid(), path); err != nil || !held {
		t.Errorf("HeldBy(this process) = %v, %v; want true", held, err)
	}
}

func TestSymlinkIsNotFollowedWindows(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bot.pid")
	if err := os.Symlink(target, path); err != nil {
		t.Skipf("cannot create a symbolic link (needs developer mode or the privilege): %v", err)
	}
	if _, err := Acquire(path); !errors.Is(err, ErrSymlink) {
		t.Errorf("Acquire through a symbolic link = %v, want ErrSymlink", err)
	}
	if _, err := Read(path); !errors.Is(err, ErrSymlink) {
		t.Errorf("Read through a symbolic link = %v, want ErrSymlink", err)
	}
}

func TestPassToWindows(t *testing.T) {
	pf := mustAcquire(t, filepath.Join(t.TempDir(), "bot.pid"))
	cmd := exec.Command("cmd", "/c", "exit")
	cmd.SysProcAttr = &syscall.SysProcAttr{HideWindow: true}
	env, err := pf.PassTo(cmd)
	if err != nil {
		t.Fatal(err)
	}
	h := pf.Descriptor().Fd()
	if want := EnvFD + "=" + strconv.FormatUint(uint64(h), 10); env != want {
		t.Errorf("PassTo = %q, want %q", env, want)
	}
	if !cmd.SysProcAttr.HideWindow || len(cmd.SysProcAttr.AdditionalInheritedHandles) != 1 ||
		uintptr(cmd.SysProcAttr.AdditionalInheritedHandles[0]) != h {
		t.Errorf("SysProcAttr = %+v; want the earlier fields kept and the handle added", cmd.SysProcAttr)
	}
	cmd.SysProcAttr.NoInheritHandles = true
	if _, err := pf.PassTo(cmd); err == nil {
		t.Error("PassTo to a command that inherits no handles succeeded")
	}
}
