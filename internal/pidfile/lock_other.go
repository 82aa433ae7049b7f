//go:build !unix

package pidfile

import "os"

func tryLock(*os.File) (bool, error) { return false, ErrUnsupported }

func setCloseOnExec(*os.File) {}
