//go:build windows

package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// lineEnd ends the PID on Windows, where Notepad, `type` and `set /p` expect
// CRLF; Parse accepts either ending on every platform.
const lineEnd = "\r\n"

// maxPID: a Windows process ID is a DWORD, and on a busy machine it can pass
// Linux's limit; the largest int on 32-bit Windows bounds it here.
const maxPID = 1<<31 - 1

// On Windows the lock is a sharing mode, not LockFileEx. LockFileEx's lock
// belongs to the process that took it: the documentation says a child that
// inherits the handle "is not granted access to the locked region", and the
// lock goes when its process ends. So a lock taken by the agent could not
// outlive the agent into the bot, which is what the handover promises. A
// sharing mode belongs to the open file object instead, which every
// inherited handle shares, and lasts until the last of those handles is
// closed: flock's semantics exactly.
//
// The holder opens the file for reading and writing while denying write
// access to every other open (share mode FILE_SHARE_READ |
// FILE_SHARE_DELETE). Anyone may read the PID (os.ReadFile, `type`,
// Get-Content: they all open with FILE_SHARE_WRITE) and delete the file, as
// on Unix; nobody else can open it for writing while it is held. Whether it
// is held is asked by opening it for writing while sharing everything, which
// fails with ERROR_SHARING_VIOLATION exactly when some open denies writing,
// and only a holder does that.
const (
	holderAccess = windows.GENERIC_READ | windows.GENERIC_WRITE
	holderShare  = windows.FILE_SHARE_READ | windows.FILE_SHARE_DELETE
	shareAll     = windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE
)

// busyWait bounds how long lockFile retries a sharing violation: another
// process asking whether the file is held (isHeld) keeps a write handle open
// for a moment, which a new holder's open cannot share.
const busyWait = 100 * time.Millisecond

// lockFile opens or creates path and takes its lock, or returns errHeld.
func lockFile(path string) (*os.File, error) {
	deadline := time.Now().Add(busyWait)
	for {
		f, err := openPrivate(path, holderAccess, holderShare, windows.OPEN_ALWAYS)
		if errors.Is(err, windows.ERROR_SHARING_VIOLATION) {
			if time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return nil, errHeld
		}
		if err != nil {
			return nil, fmt.Errorf("open pid file: %w", err)
		}
		return f, nil
	}
}

// openRead opens path for reading its PID, refusing what lockFile refuses.
func openRead(path string) (*os.File, error) {
	return openPrivate(path, windows.GENERIC_READ, shareAll, windows.OPEN_EXISTING)
}

// isHeld reports whether anyone holds the lock of path, which f is open on.
func isHeld(_ *os.File, path string) (bool, error) {
	f, err := openPrivate(path, windows.GENERIC_WRITE, shareAll, windows.OPEN_EXISTING)
	if errors.Is(err, windows.ERROR_SHARING_VIOLATION) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	f.Close()
	return false, nil
}

// holds reports whether f itself is the holder's handle. The file being held
// is not enough: a read-only handle for a file somebody else holds proves
// nothing. A handle with write access is: a holder and any other handle
// with write access cannot both be open, whichever came second would have
// been refused, so a writable handle on a held file is the holder's.
func holds(f *os.File, path string) (bool, error) {
	var n uint32
	if err := windows.WriteFile(windows.Handle(f.Fd()), nil, &n, nil); err != nil {
		return false, nil // not open for writing
	}
	return isHeld(f, path)
}

// keepFromChildren stops f's handle being inherited. Go creates its handles
// non-inheritable and hands a child only those it lists
// (PROC_THREAD_ATTRIBUTE_HANDLE_LIST), so this undoes only what PassTo did
// for the agent, whose handle the bot now has.
func keepFromChildren(f *os.File) error {
	return windows.SetHandleInformation(windows.Handle(f.Fd()), windows.HANDLE_FLAG_INHERIT, 0)
}

// removeFile deletes path. A reader that opened the file without
// FILE_SHARE_DELETE (Go's os.Open does) blocks the delete while it reads, so
// a sharing violation is retried for a moment.
func removeFile(path string) error {
	deadline := time.Now().Add(busyWait)
	for {
		err := os.Remove(path)
		if errors.Is(err, windows.ERROR_SHARING_VIOLATION) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		return err
	}
}

// openPrivate opens path with CreateFile and FILE_FLAG_OPEN_REPARSE_POINT,
// so a symbolic link or junction at path is opened itself, never followed,
// and then refused; checking the handle rather than an Lstat beforehand
// leaves no moment in which the link could be swapped in. Only a regular
// disk file is accepted: not a directory, a device (NUL, CON) or a pipe.
//
// The handle is not inheritable (no SECURITY_ATTRIBUTES). A file created
// here takes its parent directory's ACL, which under a user's profile is
// that user's alone; Unix's owner and mode checks have no simple Windows
// counterpart (an administrator's files are owned by the Administrators
// group), so none is made.
func openPrivate(path string, access, share, disposition uint32) (*os.File, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(name, access, share, nil, disposition,
		windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if err := checkRegular(h, path); err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	return os.NewFile(uintptr(h), path), nil
}

func checkRegular(h windows.Handle, path string) error {
	t, err := windows.GetFileType(h)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if t != windows.FILE_TYPE_DISK {
		return fmt.Errorf("%s %w", path, ErrNotRegular)
	}
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &fi); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	switch {
	case fi.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0:
		return fmt.Errorf("%s %w", path, ErrSymlink)
	case fi.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0:
		return fmt.Errorf("%s %w", path, ErrNotRegular)
	}
	return nil
}
