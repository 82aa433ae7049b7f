//go:build windows

package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
	"unsafe"

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
// so a symbolic link, junction or mount point at path is opened itself,
// never followed, and then refused; checking the handle rather than an
// Lstat beforehand leaves no moment in which a link could be swapped in.
// Only a regular disk file is accepted: not a directory, a device (NUL,
// CON) or a pipe.
//
// Not every reparse point is a link: OneDrive (which holds many users'
// Documents and Desktop) and deduplication tag ordinary files with one, and
// opening those "as themselves" bypasses the driver that supplies their
// data. Such a file is opened again normally, and kept only if it is still
// the same file (volume and file ID), which a link swapped in meanwhile
// would not be.
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
		// A link to a directory cannot be opened as a file at all.
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 {
				return nil, fmt.Errorf("%s %w", path, ErrSymlink)
			}
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	id, tag, err := inspectHandle(h, path)
	if err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	switch {
	case tag == 0:
	case tag&reparseTagNameSurrogate != 0:
		windows.CloseHandle(h)
		return nil, fmt.Errorf("%s %w", path, ErrSymlink)
	default:
		// Closed first: a holder's handle cannot share with a second one.
		windows.CloseHandle(h)
		h, err = windows.CreateFile(name, access, share, nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		again, _, err := inspectHandle(h, path)
		if err == nil && again != id {
			err = fmt.Errorf("%s %w (it was replaced while being opened)", path, ErrSymlink)
		}
		if err != nil {
			windows.CloseHandle(h)
			return nil, err
		}
	}
	return os.NewFile(uintptr(h), path), nil
}

// reparseTagNameSurrogate is the bit that IsReparseTagNameSurrogate tests:
// the reparse point names another file (symbolic link, junction, mount
// point) rather than standing for this one's data.
const reparseTagNameSurrogate = 0x20000000

// fileID identifies a file on a machine.
type fileID struct{ volume, high, low uint32 }

// inspectHandle checks that h is a regular disk file and returns its ID and
// reparse tag (0 for none).
func inspectHandle(h windows.Handle, path string) (fileID, uint32, error) {
	t, err := windows.GetFileType(h)
	if err != nil {
		return fileID{}, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if t != windows.FILE_TYPE_DISK {
		return fileID{}, 0, fmt.Errorf("%s %w", path, ErrNotRegular)
	}
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &fi); err != nil {
		return fileID{}, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	id := fileID{fi.VolumeSerialNumber, fi.FileIndexHigh, fi.FileIndexLow}
	if fi.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0 {
		return id, 0, fmt.Errorf("%s %w", path, ErrNotRegular)
	}
	if fi.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT == 0 {
		return id, 0, nil
	}
	// FILE_ATTRIBUTE_TAG_INFO
	var info struct{ FileAttributes, ReparseTag uint32 }
	if err := windows.GetFileInformationByHandleEx(h, windows.FileAttributeTagInfo,
		(*byte)(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		return id, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if info.ReparseTag == 0 {
		// A reparse point without a tag is not one to trust.
		return id, reparseTagNameSurrogate, nil
	}
	return id, info.ReparseTag, nil
}
