package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
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
	if len(r.RequestedBy) > 256 {
		return Request{}, fmt.Errorf("%w: requested_by longer than 256 bytes", ErrBadRequest)
	}
	return r, nil
}

// DecodeHeartbeat parses and checks a heartbeat. It is lenient about unknown
// fields so that newer bots can add some, but strict about the ones it reads.
func DecodeHeartbeat(data []byte) (Heartbeat, error) {
	var hb Heartbeat
	if len(data) > 64<<10 {
		return hb, fmt.Errorf("%w: heartbeat of %d bytes", ErrBadRequest, len(data))
	}
	if err := json.Unmarshal(data, &hb); err != nil {
		return Heartbeat{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := ValidName(hb.Name); err != nil {
		return Heartbeat{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if hb.PID <= 0 {
		return Heartbeat{}, fmt.Errorf("%w: heartbeat pid %d", ErrBadRequest, hb.PID)
	}
	return hb, nil
}

// DecodeStatus parses a status object.
func DecodeStatus(data []byte) (Status, error) {
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return Status{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return st, nil
}

// DecodeReply parses a restart, stop, start or shutdown reply.
func DecodeReply(data []byte) (Reply, error) {
	var r Reply
	if err := json.Unmarshal(data, &r); err != nil {
		return Reply{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return r, nil
}

// DecodeEvent parses a lifecycle event.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := ValidName(e.Name); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	// Unknown types pass, so that a newer agent may add some; a missing or
	// odd one means the message is not an event at all.
	if !isLower(string(e.Type)) || len(e.Type) > 32 {
		return Event{}, fmt.Errorf("%w: event type %q", ErrBadRequest, e.Type)
	}
	return e, nil
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
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(Reply{Error: "encode: " + err.Error()})
	}
	return b
}
