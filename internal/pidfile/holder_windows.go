//go:build windows

package pidfile

import (
	"fmt"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The Restart Manager (rstrtmgr.dll, restartmanager.h) is Windows' documented
// way to ask which processes have a file open; installers use it to name the
// programs that block an update. x/sys/windows does not wrap it. These are
// read-only handles to system DLL functions, loaded from System32 only, as
// x/sys/windows declares its own.
var (
	modRstrtmgr             = windows.NewLazySystemDLL("rstrtmgr.dll")
	procRmStartSession      = modRstrtmgr.NewProc("RmStartSession")
	procRmRegisterResources = modRstrtmgr.NewProc("RmRegisterResources")
	procRmGetList           = modRstrtmgr.NewProc("RmGetList")
	procRmEndSession        = modRstrtmgr.NewProc("RmEndSession")
)

// Sizes from restartmanager.h.
const (
	cchRmSessionKey = 32 // CCH_RM_SESSION_KEY: sizeof(GUID) * 2
	cchRmMaxAppName = 255
	cchRmMaxSvcName = 63
)

// rmUniqueProcess is RM_UNIQUE_PROCESS.
type rmUniqueProcess struct {
	ProcessID        uint32
	ProcessStartTime windows.Filetime
}

// rmProcessInfo is RM_PROCESS_INFO (668 bytes, 4-byte aligned).
type rmProcessInfo struct {
	Process          rmUniqueProcess
	AppName          [cchRmMaxAppName + 1]uint16
	ServiceShortName [cchRmMaxSvcName + 1]uint16
	ApplicationType  uint32 // RM_APP_TYPE
	AppStatus        uint32
	TSSessionID      uint32
	Restartable      int32 // BOOL
}

// The layout above must match the C one, or RmGetList writes past infos.
var _ = [1]struct{}{}[unsafe.Sizeof(rmProcessInfo{})-668]

// HeldBy reports whether process pid has the file at path open, which, with
// the file's lock held, proves that pid is the lock holder rather than an
// unrelated process that happens to carry a recycled number.
//
// It asks the Restart Manager, which lists the processes holding a handle
// to the file, inherited handles included. Its weaknesses: it sees only
// processes this user may query (a bot of the same user, as here, is one),
// a session costs a few milliseconds, and at most 64 sessions may be open on
// the machine at once, so under that load it fails and the agent refuses to
// signal rather than guess.
func HeldBy(pid int, path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, fmt.Errorf("resolve pid file path: %w", err)
	}
	name, err := windows.UTF16PtrFromString(abs)
	if err != nil {
		return false, fmt.Errorf("resolve pid file path: %w", err)
	}
	if err := procRmStartSession.Find(); err != nil {
		return false, fmt.Errorf("list processes holding %s: %w", path, err)
	}
	var session uint32
	var key [cchRmSessionKey + 1]uint16
	if r, _, _ := procRmStartSession.Call(uintptr(unsafe.Pointer(&session)), 0, uintptr(unsafe.Pointer(&key[0]))); r != 0 {
		return false, fmt.Errorf("start restart manager session: %w", windows.Errno(r))
	}
	defer procRmEndSession.Call(uintptr(session))

	files := []*uint16{name}
	if r, _, _ := procRmRegisterResources.Call(uintptr(session),
		1, uintptr(unsafe.Pointer(&files[0])), 0, 0, 0, 0); r != 0 {
		return false, fmt.Errorf("register %s with the restart manager: %w", path, windows.Errno(r))
	}

	// The list can grow between asking its size and fetching it; a few
	// rounds settle it.
	infos := make([]rmProcessInfo, 8)
	for range 4 {
		var needed, reasons uint32
		n := uint32(len(infos))
		r, _, _ := procRmGetList.Call(uintptr(session),
			uintptr(unsafe.Pointer(&needed)), uintptr(unsafe.Pointer(&n)),
			uintptr(unsafe.Pointer(&infos[0])), uintptr(unsafe.Pointer(&reasons)))
		switch windows.Errno(r) {
		case 0:
			for _, info := range infos[:n] {
				if info.Process.ProcessID == uint32(pid) {
					return true, nil
				}
			}
			return false, nil
		case windows.ERROR_MORE_DATA:
			infos = make([]rmProcessInfo, needed+4)
		default:
			return false, fmt.Errorf("list processes holding %s: %w", path, windows.Errno(r))
		}
	}
	return false, fmt.Errorf("list processes holding %s: the list kept growing", path)
}
