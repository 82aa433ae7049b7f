//go:build !unix

package bus

import "runtime"

// noFollow is 0 where the platform has no O_NOFOLLOW; there, credentials
// files rely on the directory's access control.
const noFollow = 0

// isWindows skips the Unix mode checks, which Windows does not keep.
var isWindows = runtime.GOOS == "windows"
