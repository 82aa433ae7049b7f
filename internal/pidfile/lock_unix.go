//go:build unix

package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

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

func setCloseOnExec(f *os.File) { unix.CloseOnExec(int(f.Fd())) }

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
