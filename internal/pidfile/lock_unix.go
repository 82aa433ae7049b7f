//go:build unix

package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// lineEnd ends the PID, so `kill $(cat bot.pid)` works.
const lineEnd = "\n"

// maxPID is Linux's largest PID (PID_MAX_LIMIT); macOS and the BSDs stay
// below it too.
const maxPID = 1 << 22

// lockFile opens or creates path and takes its lock, or returns errHeld.
func lockFile(path string) (*os.File, error) {
	f, err := openPrivate(path, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("open pid file: %w", err)
	}
	ok, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock pid file %s: %w", path, err)
	}
	if !ok {
		f.Close()
		return nil, errHeld
	}
	return f, nil
}

// openRead opens path for reading its PID, refusing what lockFile refuses.
func openRead(path string) (*os.File, error) { return openPrivate(path, os.O_RDONLY) }

// isHeld reports whether anyone holds the lock of the file f is open on.
// When nobody does, f now holds it; closing f lets it go again.
func isHeld(f *os.File, _ string) (bool, error) {
	free, err := tryLock(f)
	return !free, err
}

// holds reports whether f holds the lock: locking an open file description
// that holds it already is a no-op that succeeds. (Where nobody held it, f
// holds it now.)
func holds(f *os.File, _ string) (bool, error) { return tryLock(f) }

// keepFromChildren marks f close-on-exec, so the bot's own children do not
// keep its lock alive.
func keepFromChildren(f *os.File) error {
	unix.CloseOnExec(int(f.Fd()))
	return nil
}

func removeFile(path string) error { return os.Remove(path) }

// tryLock takes an exclusive flock on f without blocking. It reports false
// when another open file description holds it.
func tryLock(f *os.File) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		default:
			return false, err
		}
	}
}

// openPrivate opens path for this user alone. A symbolic link there is
// refused rather than followed (O_NOFOLLOW): whoever planted it could
// otherwise have the lock taken on, and a PID written into, a file of their
// choosing. O_NONBLOCK keeps a planted FIFO from hanging the open. The file
// must be a regular file owned by this user, since its owner can flock it
// and so keep every bot from starting; one created here is 0600, and one
// left readable by others (by an older lifeline) is made 0600 when opened
// for writing.
func openPrivate(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return nil, fmt.Errorf("%s %w", path, ErrSymlink)
			}
		}
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%s %w", path, ErrNotRegular)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		f.Close()
		return nil, fmt.Errorf("%s %w (owner uid %d, this process runs as uid %d)", path, ErrNotOwned, st.Uid, euid)
	}
	if flag&(os.O_WRONLY|os.O_RDWR) != 0 && st.Mode&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("make %s private: %w", path, err)
		}
	}
	return f, nil
}
