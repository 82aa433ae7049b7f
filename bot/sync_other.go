//go:build !unix

package bot

// syncDir is a no-op where directories cannot be opened for syncing
// (Windows); the rename itself is still atomic.
func syncDir(string) error { return nil }
