// Package pidfile implements lifeline's PID file: the decimal PID and a
// newline (CRLF on Windows), held under an exclusive lock for the life of the
// bot. A PID file whose lock nobody holds is stale and is never trusted.
//
// On Unix the lock is flock(2); on Windows it is the file opened with a
// sharing mode that denies writing to everyone else (lock_windows.go says
// why not LockFileEx). Both belong to the open file, not to a process, so a
// child that inherits the handle keeps the lock after its parent exits. That
// is also why it calls the system directly rather than through a locking
// library: the agent hands the locked handle itself to the bot it starts,
// and the libraries keep theirs private (and gofrs/flock uses LockFileEx on
// Windows, whose lock a child does not inherit).
package pidfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// EnvFD names the environment variable through which the agent tells the bot
// which inherited descriptor holds the locked PID file.
const EnvFD = "LIFELINE_PID_FD"

// Errors that tell apart what a PID file can be.
var (
	// ErrGarbage means the file does not hold a plausible PID.
	ErrGarbage = errors.New("pid file does not hold a valid pid")
	// ErrStale means nobody holds the file's lock, so its PID means nothing.
	ErrStale = errors.New("pid file is stale (nobody holds its lock)")
	// ErrUnsupported means advisory locks are not available on this platform.
	ErrUnsupported = errors.New("pid file locks are not supported on this platform")
	// ErrSymlink means a symbolic link stands where the file should be. It
	// is refused, never followed: another user may have planted it.
	ErrSymlink = errors.New("is a symbolic link; refusing to follow it")
	// ErrNotOwned means the file belongs to another user, who could hold
	// its lock (or rewrite it) at will.
	ErrNotOwned = errors.New("is owned by another user; refusing it")
	// ErrNotRegular means something other than a regular file (a FIFO, a
	// device) stands where the file should be.
	ErrNotRegular = errors.New("is not a regular file")

	// errHeld is what the platform's lockFile returns when another open
	// file holds the lock.
	errHeld = errors.New("held by another process")
)

// LockedError is returned by Acquire when a live process holds the lock.
type LockedError struct {
	Path string
	PID  int // 0 when the file could not be read
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("pid file %s is held by running process %d", e.Path, e.PID)
	}
	return fmt.Sprintf("pid file %s is held by another running process", e.Path)
}

// Parse reads a PID file's contents. It accepts only a positive decimal
// number with optional surrounding white space (so "1234\n" and the
// "1234\r\n" of a Windows editor alike); PIDs 0 and 1 are refused
// because signalling them would hit a process group or init.
func Parse(data []byte) (int, error) {
	s := string(bytes.TrimSpace(data))
	if s == "" || len(s) > 10 {
		return 0, fmt.Errorf("%w: %q", ErrGarbage, truncate(s))
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrGarbage, truncate(s))
		}
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 1 || pid > maxPID {
		return 0, fmt.Errorf("%w: %q", ErrGarbage, truncate(s))
	}
	return pid, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// File is a PID file whose lock this process holds.
type File struct {
	f    *os.File
	path string
}

// Acquire creates path (and its directory) if needed and takes its lock. When
// another process holds the lock it returns a *LockedError naming its PID.
//
// The file is private to this user (0600, see openPrivate): if another user
// could open it, they could flock it and so keep the bot from ever being
// started again. A directory created here is 0700; one that exists already
// keeps its mode, as it is the user's to choose.
func Acquire(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create pid file directory: %w", err)
	}
	f, err := lockFile(path)
	if errors.Is(err, errHeld) {
		return nil, &LockedError{Path: path, PID: holderPID(path)}
	}
	if err != nil {
		return nil, err
	}
	return &File{f: f, path: path}, nil
}

// holderPID reads the PID of the process that holds path's lock. A holder
// writes its PID just after taking the lock, so a file read in between is
// empty: it is read again for a moment before the PID is given up as unknown.
func holderPID(path string) int {
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		data, _ := os.ReadFile(path)
		if pid, err := Parse(data); err == nil || time.Now().After(deadline) {
			return pid
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Inherit takes over a descriptor (on Windows, a handle) handed down by the
// agent through PassTo, after checking that it is the file at path and that
// it holds the lock. It is then kept from the bot's own children (close-on-
// exec; on Windows, no longer inheritable), so they do not keep the lock
// alive.
func Inherit(fd uintptr, path string) (*File, error) {
	f := os.NewFile(fd, path)
	if f == nil {
		return nil, fmt.Errorf("inherit pid file: descriptor %d is not open", fd)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("inherit pid file: descriptor %d: %w", fd, err)
	}
	pi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("inherit pid file: %w", err)
	}
	if !os.SameFile(fi, pi) {
		return nil, fmt.Errorf("inherit pid file: descriptor %d is not %s", fd, path)
	}
	// This only confirms what the agent promised.
	ok, err := holds(f, path)
	if err != nil || !ok {
		return nil, fmt.Errorf("inherit pid file: descriptor %d does not hold the lock", fd)
	}
	if err := keepFromChildren(f); err != nil {
		return nil, fmt.Errorf("inherit pid file: %w", err)
	}
	return &File{f: f, path: path}, nil
}

// ParseFD reads the value of EnvFD: a descriptor number on Unix, a handle
// value on Windows (handles fit in 32 bits, even in 64-bit processes, so
// that they can be shared with 32-bit ones).
func ParseFD(v string) (uintptr, error) {
	fd, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("inherit pid file: %s=%q is not a descriptor", EnvFD, v)
	}
	return uintptr(fd), nil
}

// Path returns the PID file's path.
func (p *File) Path() string { return p.path }

// Descriptor returns the open, locked file.
func (p *File) Descriptor() *os.File { return p.f }

// WritePID records pid. It overwrites in place (the lock belongs to this
// inode, so no rename) and truncates afterwards, so a reader never sees an
// empty file once a PID has been written.
func (p *File) WritePID(pid int) error {
	b := []byte(strconv.Itoa(pid) + lineEnd)
	if _, err := p.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := p.f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// Close releases this process's hold on the file without removing it. If a
// child inherited the descriptor, the lock lives on in the child.
func (p *File) Close() error { return p.f.Close() }

// Remove deletes the file, if the path still names this file, and releases
// the lock. It is what a bot does on clean exit.
func (p *File) Remove() error {
	fi, err := p.f.Stat()
	if err == nil {
		if pi, err := os.Stat(p.path); err == nil && os.SameFile(fi, pi) {
			if err := removeFile(p.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				p.f.Close()
				return fmt.Errorf("remove pid file: %w", err)
			}
		}
	}
	return p.f.Close()
}

// Read inspects the PID file at path without taking it. It returns the PID
// only when the file's lock is held by someone; otherwise fs.ErrNotExist,
// ErrStale or ErrGarbage (a locked file not yet written also counts as
// garbage; callers may retry). A symbolic link, or a file of another user,
// is refused as Acquire refuses it.
func Read(path string) (int, error) {
	f, err := openRead(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	defer f.Close()
	held, err := isHeld(f, path)
	if err != nil {
		return 0, fmt.Errorf("read pid file %s: %w", path, err)
	}
	if !held {
		// On Unix f took the lock to find out; closing f drops it.
		return 0, fmt.Errorf("%s: %w", path, ErrStale)
	}
	data := make([]byte, 64)
	n, err := f.ReadAt(data, 0)
	if err != nil && n == 0 && !errors.Is(err, os.ErrClosed) {
		return 0, fmt.Errorf("%s: %w", path, ErrGarbage)
	}
	pid, err := Parse(data[:n])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return pid, nil
}
