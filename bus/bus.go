// Package bus is lifeline's wire protocol: the NATS subjects, the JSON message
// types every role exchanges, the client connection they share and the
// embedded server the dashboard runs. It imports no other lifeline package.
package bus

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultURL is the bus address used when neither --nats-url nor $NATS_URL is set.
const DefaultURL = "nats://127.0.0.1:4222"

// Micro service names, so `nats micro ls` groups agents and bots.
const (
	AgentService = "lifeline-agent"
	BotService   = "lifeline-bot"
)

// Wildcards a dashboard subscribes to in order to follow every bot.
const (
	HeartbeatWildcard = "lifeline.bot.*.heartbeat"
	EventsWildcard    = "lifeline.events.*"
)

// HistoryWildcard is what the events history stream keeps: dashboards copy
// every event they receive there (see HistorySubject), so only dashboards,
// never agents, viewers or bots, write history.
const HistoryWildcard = "lifeline.history.*"

// Agent operations, each an endpoint of the lifeline-agent service.
const (
	OpStatus  = "status"
	OpRestart = "restart"
	OpStop    = "stop"
	OpStart   = "start"
)

// MaxRequestBytes bounds a request body; anything larger is refused unread.
const MaxRequestBytes = 4 << 10

// ErrBadName is returned by ValidName for a name outside the allowed alphabet.
var ErrBadName = errors.New("bot name must be 1-64 characters of A-Z a-z 0-9 _ -")

// ValidName reports whether name may be used as a bot name. Names become NATS
// subject tokens, so dots, wildcards and spaces are refused. (A loop, not a
// regexp: compiling one at init costs every start of the binary, and
// `lifeline status` must start fast.)
func ValidName(name string) error {
	if !validToken(name, 64) {
		return fmt.Errorf("%w (got %q)", ErrBadName, name)
	}
	return nil
}

func validToken(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// HeartbeatSubject is where bot name publishes its heartbeats.
func HeartbeatSubject(name string) string { return "lifeline.bot." + name + ".heartbeat" }

// ShutdownSubject is where bot name answers graceful shutdown requests.
func ShutdownSubject(name string) string { return "lifeline.bot." + name + ".shutdown" }

// AgentSubject is where the agent of bot name answers op (OpStatus, ...).
func AgentSubject(name, op string) string { return "lifeline.agent." + name + "." + op }

// EventsSubject is where the agent of bot name publishes lifecycle events.
func EventsSubject(name string) string { return "lifeline.events." + name }

// HistorySubject is where dashboards record the events of bot name into the
// history stream, with a JetStream publish acknowledged by the stream.
func HistorySubject(name string) string { return "lifeline.history." + name }

// NameFromSubject returns the bot name in a heartbeat, event or agent subject,
// or "" when the subject is not one of lifeline's.
func NameFromSubject(subject string) string {
	t := strings.Split(subject, ".")
	switch {
	case len(t) == 4 && t[0] == "lifeline" && (t[1] == "bot" || t[1] == "agent") && isLower(t[3]),
		len(t) == 3 && t[0] == "lifeline" && t[1] == "events":
		if validToken(t[2], 64) {
			return t[2]
		}
	}
	return ""
}

func isLower(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// ServiceVersion returns v in the semantic-version form the micro package
// insists on ("v1.2.3-4-gabc" becomes "1.2.3-4-gabc"), or "0.0.0-dev" when v
// is not one (a bare commit hash, "dev").
func ServiceVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	rest, meta, hasMeta := strings.Cut(v, "+")
	core, pre, hasPre := strings.Cut(rest, "-")
	nums := strings.Split(core, ".")
	ok := len(nums) == 3
	for _, n := range nums {
		ok = ok && n != "" && strings.Trim(n, "0123456789") == "" && (n == "0" || n[0] != '0')
	}
	if hasPre {
		for _, id := range strings.Split(pre, ".") {
			numeric := strings.Trim(id, "0123456789") == ""
			ok = ok && validToken(strings.ReplaceAll(id, "_", "!"), 256) && !(numeric && len(id) > 1 && id[0] == '0')
		}
	}
	if hasMeta {
		for _, id := range strings.Split(meta, ".") {
			ok = ok && validToken(strings.ReplaceAll(id, "_", "!"), 256)
		}
	}
	if !ok {
		return "0.0.0-dev"
	}
	return v
}
