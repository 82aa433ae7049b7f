//go:build unix

package logcap

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/lifeline-dev/lifeline/internal/privfile"
)

// openLog opens the log for appending, private to this user: a symbolic
// link is refused, not followed, and only our own regular file will do (the
// rotation renames it).
func openLog(path string) (*os.File, error) {
	f, err := privfile.OpenAppend(path)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	if err := makePrivate(f, path, 0, 0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func isSymlink(path string, err error) bool {
	if !errors.Is(err, syscall.ELOOP) {
		return false
	}
	fi, lerr := os.Lstat(path)
	return lerr == nil && fi.Mode()&fs.ModeSymlink != 0
}

// makePrivate checks that f is ours and of the wanted type, and takes away
// any access of group and others.
func makePrivate(f *os.File, path string, typ fs.FileMode, perm fs.FileMode) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Type() != typ || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %w", path, ErrNotPrivate)
	}
	if fi.Mode().Perm() != perm {
		if err := f.Chmod(perm); err != nil {
			return fmt.Errorf("make %s private: %w", path, err)
		}
	}
	return nil
}

// openFIFO opens the named pipe dir/name, creating it (and dir) if missing.
// The child's end is opened read-write: holding a reader itself, the bot
// never gets EPIPE when no capture is reading, it only waits once the pipe
// is full. Our end is read-only, and read as pipe_unix.go says.
func openFIFO(dir, name string) (r, w *os.File, err error) {
	if err := privateDir(dir); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, name)
	if err := syscall.Mkfifo(path, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, nil, fmt.Errorf("create fifo %s: %w", path, err)
	}
	wfd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if isSymlink(path, err) {
			return nil, nil, fmt.Errorf("open fifo %s: %w", path, ErrSymlink)
		}
		return nil, nil, fmt.Errorf("open fifo %s: %w", path, err)
	}
	// A blocking descriptor, not in the poller: it is the child's stdout.
	w = os.NewFile(uintptr(wfd), path)
	if err := makePrivate(w, path, fs.ModeNamedPipe, 0o600); err != nil {
		w.Close()
		return nil, nil, err
	}
	// Blocking, so that the runtime does not poll it (see pipe_unix.go); it
	// cannot block here, as we hold a writer. prepare makes it non-blocking.
	rfd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("open fifo %s: %w", path, err)
	}
	r = os.NewFile(uintptr(rfd), path)
	return r, w, nil
}

// privateDir makes sure dir is a directory of ours that nobody else may
// enter, so nobody can swap the pipes in it.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create fifo dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("stat fifo dir: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("fifo dir %s: %w", dir, ErrSymlink)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("fifo dir %s %w", dir, ErrNotPrivate)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, fi.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("make fifo dir private: %w", err)
		}
	}
	return nil
}
