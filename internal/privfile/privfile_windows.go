//go:build windows

package privfile

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// OpenAppend opens path for appending. A reparse point there (a
// symbolic link or a junction) is refused, not followed: whoever planted it
// would have output appended to a file of their choosing. The file
// is opened without following one and checked through the handle, so the
// check and the open cannot be told apart by a swap. Windows has no mode
// bits: a new log gets the ACL its directory passes down, which for
// lifeline's data directory is its owner's. It is shared for delete too, so
// it can be rotated (renamed) while open.
func OpenAppend(path string) (*os.File, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	h, err := windows.CreateFile(name,
		windows.FILE_APPEND_DATA|windows.FILE_READ_ATTRIBUTES|windows.SYNCHRONIZE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_ALWAYS,
		windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if info.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("%s %w", path, ErrSymlink)
	}
	return os.NewFile(uintptr(h), path), nil
}
