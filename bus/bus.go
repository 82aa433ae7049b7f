// Package bus is lifeline's wire protocol: the NATS subjects, the JSON message
// types every role exchanges, the client connection they share and the
// embedded server the dashboard runs. It imports no other lifeline package.
package bus

import (
	"errors"
	"fmt"
	"regexp"
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

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether name may be used as a bot name. Names become NATS
// subject tokens, so dots, wildcards and spaces are refused.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w (got %q)", ErrBadName, name)
	}
	return nil
}

// HeartbeatSubject is where bot name publishes its heartbeats.
func HeartbeatSubject(name string) string { return "lifeline.bot." + name + ".heartbeat" }

// ShutdownSubject is where bot name answers graceful shutdown requests.
func ShutdownSubject(name string) string { return "lifeline.bot." + name + ".shutdown" }

// AgentSubject is where the agent of bot name answers op (OpStatus, ...).
func AgentSubject(name, op string) string { return "lifeline.agent." + name + "." + op }

// EventsSubject is where the agent of bot name publishes lifecycle events.
func EventsSubject(name string) string { return "lifeline.events." + name }

// NameFromSubject returns the bot name in a heartbeat, event or agent subject,
// or "" when the subject is not one of lifeline's.
func NameFromSubject(subject string) string {
	m := subjectRE.FindStringSubmatch(subject)
	if m == nil {
		return ""
	}
	for _, s := range m[1:] {
		if s != "" {
			return s
		}
	}
	return ""
}

var subjectRE = regexp.MustCompile(`^lifeline\.(?:bot\.([A-Za-z0-9_-]{1,64})\.[a-z]+|events\.([A-Za-z0-9_-]{1,64})|agent\.([A-Za-z0-9_-]{1,64})\.[a-z]+)$`)
