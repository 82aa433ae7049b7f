//go:build !unix && !windows

package pidfile

// HeldBy cannot tell, without a way to list another process's files.
func HeldBy(int, string) (bool, error) { return false, ErrUnsupported }
