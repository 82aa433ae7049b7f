//go:build !unix

package pidfile

import "os"

func tryLock(*os.File) (bool, error) { return false, ErrUnsupported }

func setCloseOnExec(*os.File) {}

// openPrivate opens path with mode 0600 when it creates it; without unix
// permissions and O_NOFOLLOW there is nothing more to check.
func openPrivate(path string, flag int) (*os.File, error) {
	return os.OpenFile(path, flag, 0o600)
}
