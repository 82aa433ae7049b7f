package bus

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
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
	subject := AgentSubject(name, op)
	data, err := request(ctx, nc, subject, Encode(req))
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		refused.Op = op
		return nil, err
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w bot %q", ErrNoAgent, name)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return nil, fmt.Errorf("%w bot %q (no answer in time)", ErrNoAgent, name)
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", op, name, err)
	}
	return data, nil
}

// request publishes data on subject and waits for the one reply. Unlike
// nats.go's Request it notices at once when the bus refuses the publish or
// the reply's subscription: the server says so only in an asynchronous
// -ERR, and a refused request would otherwise wait out its whole deadline.
// The PING after the PUB settles it: the server answers in order, so by the
// PONG any -ERR about this request has been read.
func request(ctx context.Context, nc *nats.Conn, subject string, data []byte) ([]byte, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	before := nc.LastError()
	if err := nc.PublishRequest(subject, inbox, data); err != nil {
		return nil, err
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return nil, err
	}
	// Every -ERR makes a new error value, so one that differs from before
	// came after our request; an older refusal of the same subject is not
	// taken for this one.
	if last := nc.LastError(); last != before && errors.Is(last, nats.ErrPermissionViolation) {
		for _, s := range []string{subject, inbox} {
			if refusedSubject(last, s) {
				return nil, &RefusedError{Login: LoginOf(nc), Subject: s, Inbox: s == inbox}
			}
		}
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return msg.Data, nil
}

// refusedSubject reports whether err, a permissions violation from the
// server, is about subject: `Permissions Violation for Publish to "SUBJECT"`
// or `... for Subscription to "SUBJECT"`. The server's text is the only
// place that names it.
func refusedSubject(err error, subject string) bool {
	return strings.Contains(err.Error(), ` to "`+subject+`"`)
}

// ErrRefused means the bus itself refused a request: the login may not
// publish it (a viewer asking for a restart) or may not receive its reply.
// It is a *RefusedError, which says who and what.
var ErrRefused = errors.New("the bus refused")

// RefusedError is a request the bus refused for lack of permission. Nothing
// reached an agent, so nothing changed.
type RefusedError struct {
	// Login is the login that asked ("" when unknown): the name its inbox
	// carries, else the user in the URL.
	Login string
	// Op is the operation asked for (OpRestart, ...), when known.
	Op string
	// Subject is the subject refused.
	Subject string
	// Inbox is set when the refusal was of the reply's subscription rather
	// than of the request.
	Inbox bool
}

func (e *RefusedError) Error() string {
	who := "this login"
	if e.Login != "" {
		who = "login " + e.Login
	}
	if e.Inbox {
		return fmt.Sprintf("%s: %s may not receive replies on %s", ErrRefused, who, e.Subject)
	}
	switch e.Op {
	case OpStatus:
		return fmt.Sprintf("%s: %s may not ask for the status of bots", ErrRefused, who)
	case OpRestart, OpStop, OpStart:
		return fmt.Sprintf("%s: %s may not %s bots", ErrRefused, who, e.Op)
	case OpLogs, OpLogsFollow:
		return fmt.Sprintf("%s: %s may not read bots' logs (operator logins and the dashboard only)", ErrRefused, who)
	}
	return fmt.Sprintf("%s: %s may not publish to %s", ErrRefused, who, e.Subject)
}

// Is makes errors.Is(err, ErrRefused) hold for every *RefusedError.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ErrLoginRefused means the bus refused the connection's login: no login
// where one is needed, or a wrong user, password or nkey.
var ErrLoginRefused = errors.New("the bus refused the login")

// loginRefused marks err, from connecting, with ErrLoginRefused when the
// server refused the credentials, keeping nats.go's own error in the chain.
func loginRefused(err error) error {
	// A bus with password logins only takes no nkey: nats.go refuses to
	// try, which to the user is the same wrong login.
	for _, auth := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked,
		nats.ErrAccountAuthExpired, nats.ErrNkeysNotSupported} {
		if errors.Is(err, auth) {
			return fmt.Errorf("%w: %w", ErrLoginRefused, err)
		}
	}
	return err
}

// LoginOf names the login nc is connected as, for messages: the name in its
// inbox prefix (Login.Options sets it), else the user in the URL it is
// connected to, else "".
func LoginOf(nc *nats.Conn) string {
	if p, ok := strings.CutPrefix(nc.Opts.InboxPrefix, InboxPrefix("")); ok && p != "" {
		return p
	}
	if u, err := url.Parse(nc.ConnectedUrlRedacted()); err == nil && u.User != nil {
		return u.User.Username()
	}
	return ""
}
