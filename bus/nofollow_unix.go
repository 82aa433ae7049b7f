//go:build unix

package bus

import "syscall"

// noFollow makes opening a credentials file fail on a symlink, so another
// user cannot point it elsewhere.
const noFollow = syscall.O_NOFOLLOW

const isWindows = false
