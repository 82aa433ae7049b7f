package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Heartbeat is what a bot publishes on HeartbeatSubject every interval. A
// heartbeat is a promise that the bot's work loop made progress since the last
// one, not merely that the process exists.
type Heartbeat struct {
	Name      string           `json:"name"`
	PID       int              `json:"pid"`
	Host      string           `json:"host"`
	Seq       uint64           `json:"seq"`
	Time      time.Time        `json:"time"`
	StartedAt time.Time        `json:"started_at"`
	Version   string           `json:"version,omitempty"`
	Stats     map[string]int64 `json:"stats,omitempty"`
}

// EventType names a lifecycle event.
type EventType string

// Lifecycle event types published by the agent.
const (
	EventStarted   EventType = "started"
	EventExited    EventType = "exited"
	EventCrashed   EventType = "crashed"
	EventHung      EventType = "hung"
	EventKilled    EventType = "killed"
	EventRestarted EventType = "restarted"
	EventStopped   EventType = "stopped"
	EventBackoff   EventType = "backoff"
	EventAdopted   EventType = "adopted"
)

// Event is a lifecycle event published on EventsSubject.
type Event struct {
	Time        time.Time `json:"time"`
	Name        string    `json:"name"`
	Type        EventType `json:"type"`
	PID         int       `json:"pid,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	RequestedBy string    `json:"requested_by,omitempty"`
}

// State is the supervision state of a bot.
type State string

// The states of SPEC's status object.
const (
	StateRunning  State = "running"
	StateStarting State = "starting"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
	StateHung     State = "hung"
	StateBackoff  State = "backoff"
	StateUnknown  State = "unknown"
)

// Exit describes how the bot's last process ended.
type Exit struct {
	At     time.Time `json:"at"`
	Code   int       `json:"code"`
	Signal string    `json:"signal,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// AgentInfo tells whether an agent supervises the bot.
type AgentInfo struct {
	PID       int    `json:"pid,omitempty"`
	Host      string `json:"host,omitempty"`
	Connected bool   `json:"connected"`
	// Bus is the server the agent is connected to (password redacted), so
	// operators of a clustered bus can see which dashboard carries it.
	Bus string `json:"bus,omitempty"`
}

// Status is the status object the agent answers on OpStatus and the dashboard
// serves over HTTP.
type Status struct {
	Name            string           `json:"name"`
	State           State            `json:"state"`
	PID             int              `json:"pid,omitempty"`
	Host            string           `json:"host,omitempty"`
	StartedAt       *time.Time       `json:"started_at,omitempty"`
	LastHeartbeatAt *time.Time       `json:"last_heartbeat_at,omitempty"`
	HeartbeatAgeMS  *int64           `json:"heartbeat_age_ms,omitempty"`
	Restarts        int              `json:"restarts"`
	LastExit        *Exit            `json:"last_exit,omitempty"`
	Agent           AgentInfo        `json:"agent"`
	CPUPercent      float64          `json:"cpu_percent"`
	RSSBytes        uint64           `json:"rss_bytes"`
	Version         string           `json:"version,omitempty"`
	Stats           map[string]int64 `json:"stats,omitempty"`
	NextStartAt     *time.Time       `json:"next_start_at,omitempty"`
	// Problem is a condition the operator must fix (for example a data
	// directory that cannot be written); empty when all is well.
	Problem string `json:"problem,omitempty"`
	// StatusText is what the bot last said about itself with sd_notify's
	// STATUS=, at most MaxStatusTextBytes.
	StatusText string `json:"status_text,omitempty"`
	// HangDetection says whether the bot's hangs are detected: "on", or
	// "off: " and why (a bot that has not yet shown it can heartbeat, or
	// hang detection turned off). Empty when no bot runs.
	HangDetection string `json:"hang_detection,omitempty"`
}

// Request is the body of a restart, stop, start or status request. An empty
// body is a valid request.
type Request struct {
	// RequestedBy says who asked, for the event log: "cli alice@web-1",
	// "dashboard web-1:8000 from 10.0.0.7".
	RequestedBy string `json:"requested_by,omitempty"`
}

// Reply is the agent's answer to restart, stop and start, and the bot's
// answer to shutdown.
type Reply struct {
	OK     bool   `json:"ok"`
	PID    int    `json:"pid,omitempty"`
	OldPID int    `json:"old_pid,omitempty"`
	NewPID int    `json:"new_pid,omitempty"`
	TookMS int64  `json:"took_ms,omitempty"`
	Error  string `json:"error,omitempty"`
}

// ErrBadRequest wraps every decoding failure, so handlers can answer with a
// client error rather than a server one.
var ErrBadRequest = errors.New("bad request")

// Size limits of the messages on the bus. Any login that may publish a
// heartbeat or an event reaches every dashboard, and events are kept in the
// shared history: without limits, one bot could fill the dashboards' memory
// and push every other bot's history out. The decoders refuse anything
// beyond them; Encode clips what lifeline itself sends to fit.
const (
	// MaxMessageBytes bounds a whole heartbeat, event or reply.
	MaxMessageBytes = 4 << 10
	// MaxStatusBytes bounds a whole status, which carries a bot's stats as
	// a heartbeat does, plus the agent's own fields: a status with every
	// field at its limit is about 7 KiB.
	MaxStatusBytes = 8 << 10
	// MaxTextBytes bounds a short text field: host, version, reason,
	// requested_by, signal, bus URL.
	MaxTextBytes = 256
	// MaxProblemBytes bounds a status's problem and a reply's error, which
	// may quote a path or an error chain.
	MaxProblemBytes = 1 << 10
	// MaxStatusTextBytes bounds a status's status_text (sd_notify STATUS=,
	// which the agent cuts to this length).
	MaxStatusTextBytes = 512
	// MaxStats bounds the entries of a stats map, and MaxStatKeyBytes the
	// length of each key.
	MaxStats        = 32
	MaxStatKeyBytes = 64
	// maxWordBytes bounds a one-word field: a state or an event type.
	maxWordBytes = 32
)

// DecodeRequest parses a request body. Empty or blank bodies (what
// `nats req SUBJECT ""` sends) are the zero request; anything else must be a
// JSON object with known fields and at most MaxRequestBytes long.
func DecodeRequest(data []byte) (Request, error) {
	var r Request
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return r, nil
	}
	// encoding/json decodes null into a struct without complaint; a request
	// is an object or nothing.
	if trimmed[0] != '{' {
		return Request{}, fmt.Errorf("%w: body is not a JSON object", ErrBadRequest)
	}
	if err := decodeStrict(data, &r); err != nil {
		return Request{}, err
	}
	if err := checkText("requested_by", r.RequestedBy, MaxTextBytes); err != nil {
		return Request{}, err
	}
	return r, nil
}

// DecodeHeartbeat parses and checks a heartbeat. It is lenient about unknown
// fields so that newer bots can add some, but strict about the ones it reads,
// and about the size of all.
func DecodeHeartbeat(data []byte) (Heartbeat, error) {
	var hb Heartbeat
	if err := decodeLimited("heartbeat", data, MaxMessageBytes, &hb); err != nil {
		return Heartbeat{}, err
	}
	if err := ValidName(hb.Name); err != nil {
		return Heartbeat{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if hb.PID <= 0 {
		return Heartbeat{}, fmt.Errorf("%w: heartbeat pid %d", ErrBadRequest, hb.PID)
	}
	if err := errors.Join(
		checkText("host", hb.Host, MaxTextBytes),
		checkText("version", hb.Version, MaxTextBytes),
		checkStats(hb.Stats),
	); err != nil {
		return Heartbeat{}, err
	}
	return hb, nil
}

// DecodeStatus parses a status object. An agent's error reply decodes to a
// status without a name.
func DecodeStatus(data []byte) (Status, error) {
	var st Status
	if err := decodeLimited("status", data, MaxStatusBytes, &st); err != nil {
		return Status{}, err
	}
	if st.Name != "" {
		if err := ValidName(st.Name); err != nil {
			return Status{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
	}
	checks := []error{
		checkText("state", string(st.State), maxWordBytes),
		checkText("host", st.Host, MaxTextBytes),
		checkText("version", st.Version, MaxTextBytes),
		checkText("problem", st.Problem, MaxProblemBytes),
		checkText("status text", st.StatusText, MaxStatusTextBytes),
		checkText("hang detection", st.HangDetection, MaxTextBytes),
		checkText("agent host", st.Agent.Host, MaxTextBytes),
		checkText("agent bus", st.Agent.Bus, MaxTextBytes),
		checkStats(st.Stats),
	}
	if st.LastExit != nil {
		checks = append(checks,
			checkText("exit signal", st.LastExit.Signal, MaxTextBytes),
			checkText("exit reason", st.LastExit.Reason, MaxTextBytes))
	}
	if err := errors.Join(checks...); err != nil {
		return Status{}, err
	}
	return st, nil
}

// DecodeReply parses a restart, stop, start or shutdown reply.
func DecodeReply(data []byte) (Reply, error) {
	var r Reply
	if err := decodeLimited("reply", data, MaxMessageBytes, &r); err != nil {
		return Reply{}, err
	}
	if err := checkText("error", r.Error, MaxProblemBytes); err != nil {
		return Reply{}, err
	}
	return r, nil
}

// DecodeEvent parses a lifecycle event.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if err := decodeLimited("event", data, MaxMessageBytes, &e); err != nil {
		return Event{}, err
	}
	if err := ValidName(e.Name); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	// Unknown types pass, so that a newer agent may add some; a missing or
	// odd one means the message is not an event at all.
	if !isLower(string(e.Type)) || len(e.Type) > maxWordBytes {
		return Event{}, fmt.Errorf("%w: event type %q", ErrBadRequest, e.Type)
	}
	if err := errors.Join(
		checkText("reason", e.Reason, MaxTextBytes),
		checkText("requested_by", e.RequestedBy, MaxTextBytes),
	); err != nil {
		return Event{}, err
	}
	return e, nil
}

// decodeLimited refuses data longer than limit unread, then unmarshals it
// into v, leniently about unknown fields.
func decodeLimited(what string, data []byte, limit int, v any) error {
	if len(data) > limit {
		return fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrBadRequest, what, len(data), limit)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrBadRequest, field, len(s), limit)
	}
	return nil
}

func checkStats(stats map[string]int64) error {
	if len(stats) > MaxStats {
		return fmt.Errorf("%w: %d stats exceed %d", ErrBadRequest, len(stats), MaxStats)
	}
	for k := range stats {
		if len(k) > MaxStatKeyBytes {
			return fmt.Errorf("%w: stat name of %d bytes exceeds %d", ErrBadRequest, len(k), MaxStatKeyBytes)
		}
	}
	return nil
}

func decodeStrict(data []byte, v any) error {
	if len(data) > MaxRequestBytes {
		return fmt.Errorf("%w: body of %d bytes exceeds %d", ErrBadRequest, len(data), MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after JSON object", ErrBadRequest)
	}
	return nil
}

// Encode marshals v; message types cannot fail to marshal, so a failure is a
// programming error reported as a JSON error body rather than a panic.
//
// Heartbeats, events, statuses and replies are clipped to the decoders'
// limits first (see clip), so that a long error text or a bot with many
// stats still gets its messages through rather than refused. Only text that
// JSON escaping inflates (control characters, <, >, &) can still make the
// whole message exceed its limit.
func Encode(v any) []byte {
	switch m := v.(type) {
	case Heartbeat:
		v = m.clip()
	case Event:
		v = m.clip()
	case Status:
		v = m.clip()
	case Reply:
		v = m.clip()
	case Request:
		m.RequestedBy = clipText(m.RequestedBy, MaxTextBytes)
		v = m
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(Reply{Error: "encode: " + err.Error()})
	}
	return b
}

func (hb Heartbeat) clip() Heartbeat {
	hb.Host = clipText(hb.Host, MaxTextBytes)
	hb.Version = clipText(hb.Version, MaxTextBytes)
	hb.Stats = clipStats(hb.Stats)
	return hb
}

func (e Event) clip() Event {
	e.Reason = clipText(e.Reason, MaxTextBytes)
	e.RequestedBy = clipText(e.RequestedBy, MaxTextBytes)
	return e
}

func (st Status) clip() Status {
	st.Host = clipText(st.Host, MaxTextBytes)
	st.Version = clipText(st.Version, MaxTextBytes)
	st.Problem = clipText(st.Problem, MaxProblemBytes)
	st.StatusText = clipText(st.StatusText, MaxStatusTextBytes)
	st.HangDetection = clipText(st.HangDetection, MaxTextBytes)
	st.Agent.Host = clipText(st.Agent.Host, MaxTextBytes)
	st.Agent.Bus = clipText(st.Agent.Bus, MaxTextBytes)
	st.Stats = clipStats(st.Stats)
	if st.LastExit != nil {
		x := *st.LastExit
		x.Signal = clipText(x.Signal, MaxTextBytes)
		x.Reason = clipText(x.Reason, MaxTextBytes)
		st.LastExit = &x
	}
	return st
}

func (r Reply) clip() Reply {
	r.Error = clipText(r.Error, MaxProblemBytes)
	return r
}

// clipText cuts s to at most limit bytes, at a character boundary, after
// making it valid UTF-8: JSON would turn each invalid byte into a
// three-byte replacement character, and the decoded text would then be
// longer than what was clipped.
func clipText(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clipStats keeps the first MaxStats stats, in name order, whose names are
// at most MaxStatKeyBytes long; the map given is never changed.
func clipStats(stats map[string]int64) map[string]int64 {
	fits := func(k string) bool { return len(k) <= MaxStatKeyBytes && utf8.ValidString(k) }
	clipped := len(stats) > MaxStats
	for k := range stats {
		clipped = clipped || !fits(k)
	}
	if !clipped {
		return stats
	}
	out := make(map[string]int64, MaxStats)
	for _, k := range slices.Sorted(maps.Keys(stats)) {
		if len(out) == MaxStats {
			break
		}
		if fits(k) {
			out[k] = stats[k]
		}
	}
	return out
}
