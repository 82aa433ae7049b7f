// Package privfile opens a log file for appending without following a
// symbolic link planted at its path: whoever planted it would choose which
// file gets the bot's output. The agent's plain bot log and the log capture
// (internal/logcap) open their files through it.
package privfile

import "errors"

// ErrSymlink refuses a symbolic link (on Windows, any reparse point) at the
// path.
var ErrSymlink = errors.New("is a symbolic link; refusing to follow it")
