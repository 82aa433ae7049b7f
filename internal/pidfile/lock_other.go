//go:build !unix && !windows

package pidfile

import "os"

const lineEnd = "\n"

const maxPID = 1 << 22

func lockFile(string) (*os.File, error) { return nil, ErrUnsupported }

func openRead(path string) (*os.File, error) { return os.Open(path) }

func isHeld(*os.File, string) (bool, error) { return false, ErrUnsupported }

func holds(*os.File, string) (bool, error) { return false, ErrUnsupported }

func keepFromChildren(*os.File) error { return nil }

func removeFile(path string) error { return os.Remove(path) }
