package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// The agent's log endpoints. OpLogs answers once with the last lines;
// OpLogsFollow streams: the agent publishes batches of new lines to the
// request's reply subject until LogsFollowExpiry passes without a renewal
// (the same request, Renew set, to the same reply subject). One subject
// token each, so an agent login's "lifeline.agent.BOT.*" covers them.
const (
	OpLogs       = "logs"
	OpLogsFollow = "logs-follow"
)

// Limits of the logs protocol.
const (
	// DefaultLogLines is what a request without n gets.
	DefaultLogLines = 100
	// MaxLogLines is the most a request may ask for: what the agent keeps
	// in memory per stream.
	MaxLogLines = 1000
	// MaxLogsBytes bounds one logs reply or follow batch: the oldest lines
	// are left out beyond it (Omitted says how many). Half the server's
	// 1 MiB max payload, so a batch always fits.
	MaxLogsBytes = 512 << 10
	// LogsFollowExpiry is how long a follow lives without a renewal;
	// LogsFollowRenew is how often followers renew (CLI, dashboard).
	LogsFollowExpiry = 30 * time.Second
	LogsFollowRenew  = 5 * time.Second
	// LogsBatchDelay is the longest a captured line waits before it is
	// published to a follower: batches, not one message per line.
	LogsBatchDelay = 10 * time.Millisecond
)

// LogsRequest asks for the last N lines (OpLogs), or starts or renews a
// follow (OpLogsFollow). A follow starts with the last N lines (0: none);
// Since, when set, leaves out lines captured before it (so a follow resumed
// by a new agent repeats nothing the follower has seen).
type LogsRequest struct {
	N     int       `json:"n,omitempty"`
	Since time.Time `json:"since,omitzero"`
	Renew bool      `json:"renew,omitempty"`
}

// LogLine is one captured line of the bot's output.
type LogLine struct {
	// Stream is "stdout", "stderr", or "lifeline" for a note from the
	// capture itself (lines skipped for a slow follower).
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
	Text   string    `json:"text"`
	// Cut: the bot's line was longer than 64 KiB and goes on in the next
	// line of the same stream.
	Cut     bool   `json:"cut,omitempty"`
	Skipped int    `json:"skipped,omitempty"`
	Seq     uint64 `json:"seq"`
}

// LogsReply is the answer to OpLogs and each batch of a follow. End, in a
// follow, is its last message (the agent is stopping or the follow
// expired).
type LogsReply struct {
	OK      bool      `json:"ok"`
	Lines   []LogLine `json:"lines"`
	Omitted int       `json:"omitted,omitempty"`
	End     bool      `json:"end,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// ErrBadLogLines refuses an n outside 0..MaxLogLines.
var ErrBadLogLines = fmt.Errorf("n must be 0 to %d lines", MaxLogLines)

// DecodeLogsRequest parses and checks a logs request; an empty body asks for
// DefaultLogLines.
func DecodeLogsRequest(data []byte) (LogsRequest, error) {
	var r LogsRequest
	if len(bytes.TrimSpace(data)) == 0 {
		r.N = DefaultLogLines
		return r, nil
	}
	if t := bytes.TrimSpace(data); t[0] != '{' {
		return LogsRequest{}, fmt.Errorf("%w: body is not a JSON object", ErrBadRequest)
	}
	if err := decodeStrict(data, &r); err != nil {
		return LogsRequest{}, err
	}
	if r.N < 0 || r.N > MaxLogLines {
		return LogsRequest{}, fmt.Errorf("%w: %w (got %d)", ErrBadRequest, ErrBadLogLines, r.N)
	}
	return r, nil
}

// DecodeLogsReply parses a logs reply or follow batch.
func DecodeLogsReply(data []byte) (LogsReply, error) {
	var r LogsReply
	if err := decodeLimited("logs reply", data, MaxLogsBytes+MaxMessageBytes, &r); err != nil {
		return LogsReply{}, err
	}
	return r, nil
}

// EncodeLogs marshals a logs reply within MaxLogsBytes, leaving out the
// oldest lines that do not fit.
func EncodeLogs(r LogsReply) []byte {
	size := 64 + len(r.Error)
	keep := 0
	for i := len(r.Lines) - 1; i >= 0; i-- {
		// JSON escaping may inflate a text: count it generously.
		n := 96 + len(r.Lines[i].Stream) + len(r.Lines[i].Text)*6/5
		if size+n > MaxLogsBytes {
			break
		}
		size += n
		keep++
	}
	if drop := len(r.Lines) - keep; drop > 0 {
		r.Omitted += drop
		r.Lines = r.Lines[drop:]
	}
	if r.Lines == nil {
		r.Lines = []LogLine{}
	}
	data, err := json.Marshal(r)
	for err == nil && len(data) > MaxLogsBytes && len(r.Lines) > 0 {
		// Escaping beyond the estimate: drop half and try again.
		drop := (len(r.Lines) + 1) / 2
		r.Omitted += drop
		r.Lines = r.Lines[drop:]
		data, err = json.Marshal(r)
	}
	if err != nil {
		return []byte(`{"ok":false,"lines":[],"error":"encode logs"}`)
	}
	return data
}

// AskLogs asks the agent of bot name for its last n lines.
func AskLogs(ctx context.Context, nc *nats.Conn, name string, n int) (LogsReply, error) {
	if err := ValidName(name); err != nil {
		return LogsReply{}, err
	}
	if n < 0 || n > MaxLogLines {
		return LogsReply{}, ErrBadLogLines
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	data, err := request(ctx, nc, AgentSubject(name, OpLogs), mustJSON(LogsRequest{N: n}))
	if err = logsErr(err, name, OpLogs); err != nil {
		return LogsReply{}, err
	}
	r, err := DecodeLogsReply(data)
	if err != nil {
		return LogsReply{}, fmt.Errorf("logs of %s: %w", name, err)
	}
	if !r.OK {
		return r, fmt.Errorf("logs of %s: %s", name, r.Error)
	}
	return r, nil
}

// FollowLogs starts (renew false) or renews a follow of bot name's log: the
// agent publishes LogsReply batches to inbox, which the caller subscribed.
// It returns once the bus has taken the request; a refused login is an
// error at once.
func FollowLogs(ctx context.Context, nc *nats.Conn, name, inbox string, req LogsRequest) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	subject := AgentSubject(name, OpLogsFollow)
	before := nc.LastError()
	if err := nc.PublishRequest(subject, inbox, mustJSON(req)); err != nil {
		return fmt.Errorf("follow logs of %s: %w", name, err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("follow logs of %s: %w", name, err)
	}
	if last := nc.LastError(); last != before && errors.Is(last, nats.ErrPermissionViolation) {
		for _, s := range []string{subject, inbox} {
			if refusedSubject(last, s) {
				return &RefusedError{Login: LoginOf(nc), Subject: s, Inbox: s == inbox, Op: OpLogsFollow}
			}
		}
	}
	return nil
}

func logsErr(err error, name, op string) error {
	var refused *RefusedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused):
		refused.Op = op
		return err
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w bot %q", ErrNoAgent, name)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w bot %q (no answer in time)", ErrNoAgent, name)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		return []byte("{}")
	}
	return data
}

// Stream names of LogLine.
const (
	StreamStdout   = "stdout"
	StreamStderr   = "stderr"
	StreamLifeline = "lifeline"
)
