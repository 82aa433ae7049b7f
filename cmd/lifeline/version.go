package main

import (
	"context"
	"fmt"
	"runtime"
)

// versionCmd prints the build's version.
type versionCmd struct{}

// Run prints "lifeline VERSION (GO OS/ARCH)".
func (versionCmd) Run(_ context.Context, e *env) error {
	_, err := fmt.Fprintf(e.stdout, "lifeline %s (%s %s/%s)\n", e.version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
