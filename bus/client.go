package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrNoAgent means no agent answered for the bot: none is running, or it is
// not connected to this bus.
var ErrNoAgent = errors.New("no agent is supervising")

// DefaultRequestTimeout bounds requests that do not carry their own deadline.
// Restart and stop wait for the bot's shutdown, so they take longer.
const DefaultRequestTimeout = 2 * time.Second

// AskStatus asks the agent of bot name for its status.
func AskStatus(ctx context.Context, nc *nats.Conn, name string) (Status, error) {
	data, err := ask(ctx, nc, name, OpStatus, Request{})
	if err != nil {
		return Status{}, err
	}
	st, err := DecodeStatus(data)
	if err != nil {
		return Status{}, fmt.Errorf("status of %s: %w", name, err)
	}
	if st.Name == "" {
		// An error reply from the agent has no name.
		r, _ := DecodeReply(data)
		return Status{}, fmt.Errorf("status of %s: %s", name, r.Error)
	}
	return st, nil
}

// Ask sends op (OpRestart, OpStop or OpStart) to the agent of bot name. A
// reply with ok false is returned as a Reply, not an error: the agent
// answered, and its error text is for the user.
func Ask(ctx context.Context, nc *nats.Conn, name, op string, req Request) (Reply, error) {
	data, err := ask(ctx, nc, name, op, req)
	if err != nil {
		return Reply{}, err
	}
	r, err := DecodeReply(data)
	if err != nil {
		return Reply{}, fmt.Errorf("%s %s: %w", op, name, err)
	}
	return r, nil
}

func ask(ctx context.Context, nc *nats.Conn, name, op string, req Request) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	msg, err := nc.RequestWithContext(ctx, AgentSubject(name, op), Encode(req))
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w bot %q", ErrNoAgent, name)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return nil, fmt.Errorf("%w bot %q (no answer in time)", ErrNoAgent, name)
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", op, name, err)
	}
	return msg.Data, nil
}
