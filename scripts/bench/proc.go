//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux this runs on.
const clockTick = 100

// memKB sums a field (RSS from status, Pss from smaps_rollup) over pids.
func memKB(pids []int) (rss, pss int) {
	for _, pid := range pids {
		rss += procFieldKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		pss += procFieldKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	}
	return rss, pss
}

func procFieldKB(path, key string) int {
	data, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// cpuTicks sums user and system time, in clock ticks, over pids (every
// thread, dead ones included).
func cpuTicks(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name may hold spaces: fields count from after ")".
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + st
	}
	return total
}

// cpuPercent is the share of one core that pids use over window.
func cpuPercent(pids []int, window time.Duration) float64 {
	t0, c0 := time.Now(), cpuTicks(pids)
	time.Sleep(window)
	c1, t1 := cpuTicks(pids), time.Now()
	return float64(c1-c0) / clockTick / t1.Sub(t0).Seconds() * 100
}

// alive reports whether pid is a live tinybot (not a zombie, not a
// recycled PID).
func alive(pid int, bot string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.HasPrefix(string(cmdline), bot) {
		return false
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// reap kills every reported tinybot still alive and waits until none is.
func reap(pids []int, bot string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := slices.DeleteFunc(slices.Clone(pids), func(pid int) bool { return !alive(pid, bot) })
		if len(left) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until none of pids is a live tinybot.
func waitGone(pids []int, bot string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !slices.ContainsFunc(pids, func(pid int) bool { return alive(pid, bot) }) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// timed runs cmd and returns its wall time; a failure carries its output.
func timed(cmd *exec.Cmd) (time.Duration, error) {
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("run %s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return d, nil
}

// cleanEnv is the harness's environment without lifeline, NATS or PM2
// settings from the developer's shell, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LIFELINE_") || strings.HasPrefix(kv, "NATS_") || strings.HasPrefix(kv, "PM2_") || strings.HasPrefix(kv, "BENCH_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// waitFileLine polls file until a line starting with prefix appears, and
// returns the rest of that line.
func waitFileLine(file, prefix string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(file)
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
				return strings.TrimSpace(rest), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("wait for %q in %s: not within %s:\n%s", prefix, file, timeout, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
