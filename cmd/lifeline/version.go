package main

import (
	"context"
	"fmt"
	"runtime"
)

// versionSummary is the one line `lifeline --help` says about version.
const versionSummary = "Print the version of this binary."

// VersionCommand prints the build's version: `lifeline version`.
type VersionCommand struct {
	env *env
}

// Usage prints `lifeline version --help`.
func (c *VersionCommand) Usage() {
	writeHelp(c.env.stdout, "lifeline version", versionSummary, `Prints "lifeline VERSION (GO OS/ARCH)", for example:
  lifeline v1.2.0 (go1.26.8 linux/amd64)

Examples:
  lifeline version`, newFlagSet("version"))
}

// Run prints "lifeline VERSION (GO OS/ARCH)".
func (c *VersionCommand) Run(_ context.Context, args []string) error {
	rest, err := parseArgs(newFlagSet("version"), args, false)
	if err != nil {
		return usageErr("version", err)
	}
	if len(rest) > 0 {
		return usageErr("version", fmt.Errorf("unexpected argument %q", rest[0]))
	}
	_, err = fmt.Fprintf(c.env.stdout, "lifeline %s (%s %s/%s)\n", c.env.version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
