//go:build darwin

package pidfile

// HeldBy reports whether process pid has the file at path open, which, with
// the file's lock held, proves that pid is the lock holder rather than an
// unrelated process that happens to carry a recycled number.
//
// macOS has no /proc, its descriptor list (proc_pidinfo in libproc.h) is
// declared private and subject to change, and gopsutil's OpenFiles is not
// implemented there, so this asks the lsof that ships with macOS, by
// absolute path so that $PATH cannot substitute another. It compares device
// and inode, as the Linux version does, but costs a process start.
func HeldBy(pid int, path string) (bool, error) {
	return heldByLsof("/usr/sbin/lsof", pid, path)
}
