//go:build !unix && !windows

package privfile

import "os"

// OpenAppend opens path for appending, created 0600; there is no
// O_NOFOLLOW to add here.
func OpenAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}
