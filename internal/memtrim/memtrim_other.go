//go:build !linux

package memtrim

// ReleaseStartupPages does nothing where /proc/self/smaps does not exist.
func ReleaseStartupPages() (Stats, error) { return Stats{}, nil }
