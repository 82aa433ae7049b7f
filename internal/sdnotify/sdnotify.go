// Package sdnotify receives systemd's notify protocol (sd_notify(3)) from the
// bots an agent starts, so programs written for Type=notify and WatchdogSec=
// run unchanged under lifeline, in any language.
//
// The agent opens one Socket per bot with ListenFor (at a path fixed by the
// bot's PID file, so a bot adopted by a new agent still reaches it), hands
// each child the environment from ChildEnv (NOTIFY_SOCKET, and WATCHDOG_USEC
// when hang detection is on), and reads parsed datagrams from
// Socket.Messages. The Socket only proves who sent a datagram (kernel-checked
// PID and UID, SO_PASSCRED) and drops those from other users; deciding
// which PID is the bot is the agent's job.
//
// Only Linux passes credentials on datagram sockets; elsewhere Listen returns
// ErrUnsupported and the agent supervises without sd_notify.
package sdnotify

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrUnsupported means this platform cannot receive sd_notify datagrams with
// their sender's credentials (everything but Linux).
var ErrUnsupported = errors.New("sd_notify is not supported on this platform")

// ListenFor refuses a socket path it cannot trust to be ours:
// ErrNotPrivate for a directory that is a symlink, someone else's or not
// 0700, ErrNotSocket for a file there that is not a socket (a symlink above
// all: it is never followed nor removed), ErrInUse for a socket a live
// agent still reads.
var (
	ErrNotPrivate = errors.New("is not a private directory of ours (mode 0700)")
	ErrNotSocket  = errors.New("is not a socket; refusing to remove or follow it")
	ErrInUse      = errors.New("is in use by another agent")
)

// MaxDatagram is the largest datagram accepted; systemd's own limit is 4 KiB
// too (NOTIFY_BUFFER_MAX is larger, but no real message comes close). Longer
// ones are dropped whole, never cut, so a half message cannot be misread.
const MaxDatagram = 4096

// MaxStatus bounds STATUS= text kept from one message, in bytes.
const MaxStatus = 512

// Environment variables a child reads. WATCHDOG_PID is deliberately not set
// by ChildEnv: see WatchdogEnv.
const (
	EnvSocket       = "NOTIFY_SOCKET"
	EnvWatchdogUSec = "WATCHDOG_USEC"
	EnvWatchdogPID  = "WATCHDOG_PID"
)

// Message is one parsed datagram. Fields for keys that were absent keep their
// zero value; unknown keys are ignored.
type Message struct {
	// PID, UID and GID are the sender's, checked by the kernel
	// (SCM_CREDENTIALS), not claimed by the sender.
	PID, UID, GID int
	// Received is when the reader took the datagram off the socket.
	Received time.Time

	Ready    bool // READY=1: started
	Stopping bool // STOPPING=1: shutting down on its own or on request
	// Watchdog is WATCHDOG=1, a heartbeat.
	Watchdog bool
	// WatchdogTrigger is WATCHDOG=trigger: the bot says it is hung now.
	WatchdogTrigger bool
	// Status is the STATUS= text, made printable (see cleanStatus); HasStatus
	// tells "STATUS=" (clear the text) from no STATUS key at all.
	Status    string
	HasStatus bool
	// MainPID is MAINPID=, the PID the sender says is the bot's main process
	// now (0 when absent or not a positive number). Only trust it when the
	// sender is the bot and the new PID is its descendant (see Descendant).
	MainPID int
}

// parse reads the newline-separated KEY=VALUE assignments of one datagram.
// It reports false when the datagram holds no key this package knows, so
// noise is not handed on.
func parse(b []byte) (Message, bool) {
	var m Message
	known := false
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch key {
		case "READY":
			m.Ready, known = val == "1", known || val == "1"
		case "STOPPING":
			m.Stopping, known = val == "1", known || val == "1"
		case "WATCHDOG":
			switch val {
			case "1":
				m.Watchdog, known = true, true
			case "trigger":
				m.WatchdogTrigger, known = true, true
			}
		case "STATUS":
			m.Status, m.HasStatus, known = cleanStatus(val), true, true
		case "MAINPID":
			if pid, err := strconv.Atoi(val); err == nil && pid > 0 {
				m.MainPID, known = pid, true
			}
		}
	}
	return m, known
}

// cleanStatus makes STATUS= text safe to print in a terminal and store in
// JSON: invalid UTF-8 and control characters (escape sequences could rewrite
// an operator's screen in `lifeline status`) become U+FFFD or a space, and
// the text is cut to MaxStatus bytes on a rune boundary.
func cleanStatus(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > MaxStatus {
		cut := MaxStatus
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// Stats counts what the reader did with datagrams, for metrics and tests.
type Stats struct {
	// Delivered counts messages queued for Messages; Overflow those of them
	// later dropped unread.
	Delivered uint64
	// Overflow counts messages dropped because the consumer was behind
	// (the oldest queued one goes, so the newest state survives).
	Overflow  uint64
	Foreign   uint64 // from another UID
	Oversized uint64 // longer than MaxDatagram
	NoCreds   uint64 // without sender credentials (should not happen)
	Ignored   uint64 // no known key
}

// Env returns the NOTIFY_SOCKET assignment for a child of the agent.
func Env(s *Socket) []string {
	return []string{EnvSocket + "=" + s.Addr()}
}

// WatchdogEnv returns WATCHDOG_USEC for a hang timeout, or nothing when
// timeout is not positive (hang detection off).
//
// WATCHDOG_PID is left out on purpose: os/exec fixes a child's environment
// before fork, so the agent cannot know the PID to put there, and
// sd_watchdog_enabled(3) and the libraries modelled on it treat a missing
// WATCHDOG_PID as "the watchdog is for me". Setting it to a wrong value would
// switch the bot's watchdog off.
func WatchdogEnv(timeout time.Duration) []string {
	if timeout <= 0 {
		return nil
	}
	return []string{EnvWatchdogUSec + "=" + strconv.FormatInt(timeout.Microseconds(), 10)}
}

// ChildEnv returns base (usually os.Environ()) without any NOTIFY_SOCKET,
// WATCHDOG_USEC or WATCHDOG_PID it carries (an agent itself run by systemd
// with Type=notify has them, and its bot must not notify systemd), plus the
// socket's NOTIFY_SOCKET and, when timeout > 0, WATCHDOG_USEC. A nil s gives
// base without those variables, for platforms where Listen failed.
func ChildEnv(base []string, s *Socket, timeout time.Duration) []string {
	out := make([]string, 0, len(base)+2)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k == EnvSocket || k == EnvWatchdogUSec || k == EnvWatchdogPID {
			continue
		}
		out = append(out, kv)
	}
	if s == nil {
		return out
	}
	out = append(out, Env(s)...)
	return append(out, WatchdogEnv(timeout)...)
}
