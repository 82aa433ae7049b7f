//go:build !linux

package main

import (
	"errors"
	"strings"

	"github.com/lifeline-dev/lifeline/internal/proctest"
	"github.com/shirou/gopsutil/v4/process"
)

// e2eAlive reports whether pid is a live (not zombie) process. Off Linux
// there is no /proc: proctest asks the system.
func e2eAlive(pid int) bool { return proctest.Alive(pid) }

// botProcesses lists the live demo bots whose working directory is dir:
// the way to prove there is exactly one.
func botProcesses(dir string) []int {
	var pids []int
	all, _ := process.Processes()
	for _, ps := range all {
		args, err := ps.CmdlineSlice()
		if err != nil || len(args) < 2 || args[0] != e2eBinFile() || args[1] != "bot" || !e2eAlive(int(ps.Pid)) {
			continue
		}
		if cwd, _ := ps.Cwd(); cwd == dir {
			pids = append(pids, int(ps.Pid))
		}
	}
	return pids
}

// e2eProcEnviron returns pid's environment, NUL-separated as in Linux's
// /proc/PID/environ.
func e2eProcEnviron(pid int) ([]byte, error) {
	ps, err := process.NewProcess(int32(pid))
	if err != nil {
		return nil, err
	}
	env, err := ps.Environ()
	if err != nil {
		return nil, err
	}
	return []byte(strings.Join(env, "\x00") + "\x00"), nil
}

// e2eProcCmdline returns pid's argv, NUL-separated as in Linux's
// /proc/PID/cmdline.
func e2eProcCmdline(pid int) ([]byte, error) {
	ps, err := process.NewProcess(int32(pid))
	if err != nil {
		return nil, err
	}
	args, err := ps.CmdlineSlice()
	if err != nil {
		return nil, err
	}
	return []byte(strings.Join(args, "\x00") + "\x00"), nil
}

// e2eUnread: how full a named pipe is is read on Linux only.
func e2eUnread(string) (int, error) { return 0, errors.ErrUnsupported }
