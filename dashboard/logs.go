package dashboard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/dashboard/session"
	"github.com/nats-io/nats.go"
)

// errViewerLogs answers a viewer asking for logs: logs may hold secrets
// (tokens a bot prints, customer data), so only operators read them, as on
// the bus, where a viewer login may not ask an agent for them either.
const errViewerLogs = "logs may hold secrets: viewers may not read them; log in with the operator token"

// logsTimeout bounds the wait for an agent's logs reply.
const logsTimeout = 5 * time.Second

// logsParams checks the bot name, the role and ?n= of a logs request; an
// empty name means it answered the request already (with fail's error).
func logsParams(c fiber.Ctx) (string, int, error) {
	name := c.Params("name")
	if err := bus.ValidName(name); err != nil {
		return "", 0, fail(c, fiber.StatusBadRequest, err.Error())
	}
	if r, _ := c.Locals(keyRole).(session.Role); r != session.RoleOperator {
		return "", 0, fail(c, fiber.StatusForbidden, errViewerLogs)
	}
	n := bus.DefaultLogLines
	if q := c.Query("n"); q != "" {
		v, err := strconv.Atoi(q)
		if err != nil || v < 0 || v > bus.MaxLogLines {
			return "", 0, fail(c, fiber.StatusBadRequest, fmt.Sprintf("n=%q: %v", q, bus.ErrBadLogLines))
		}
		n = v
	}
	return name, n, nil
}

// handleLogs answers GET /api/bots/:name/logs?n=100 with the agent's last
// lines, each with its stream: {"ok":true,"lines":[{stream,time,text}]}.
func (d *Dashboard) handleLogs(c fiber.Ctx) error {
	name, n, err := logsParams(c)
	if err != nil || name == "" {
		return err
	}
	ctx, cancel := context.WithTimeout(d.runCtx, logsTimeout)
	defer cancel()
	r, err := bus.AskLogs(ctx, d.nc, name, n)
	switch {
	case errors.Is(err, bus.ErrNoAgent) && !d.state.known(name):
		return fail(c, fiber.StatusNotFound, fmt.Sprintf("unknown bot %q: no agent answers for it", name))
	case errors.Is(err, bus.ErrNoAgent):
		return fail(c, fiber.StatusServiceUnavailable, err.Error())
	case errors.Is(err, bus.ErrRefused):
		return fail(c, fiber.StatusForbidden, "the dashboard's bus login may not read logs: "+err.Error())
	case err != nil && r.Error != "":
		return c.Status(fiber.StatusServiceUnavailable).JSON(r)
	case err != nil:
		return fail(c, fiber.StatusBadGateway, err.Error())
	}
	return c.JSON(r)
}

// handleLogsStream serves GET /api/bots/:name/logs/stream: server-sent
// "logs" events, each a JSON {"ok","lines":[...]} batch, first the last ?n=
// lines, then new lines as the agent's capture reads them (no polling of
// the file: the agent pushes batches at most bus.LogsBatchDelay late). A
// "logs-error" event says the agent is gone or refused; the stream goes on
// and resumes when an agent answers again. It counts against the same
// stream caps as /api/stream.
func (d *Dashboard) handleLogsStream(c fiber.Ctx) error {
	name, n, err := logsParams(c)
	if err != nil || name == "" {
		return err
	}
	kind, _ := c.Locals(keyAuth).(authKind)
	r, _ := c.Locals(keyRole).(session.Role)
	key, limit := "bearer "+r.String(), session.MaxStreamsPerBearer
	if kind == authCookie {
		sess, _ := c.Locals(keySession).(string)
		key, limit = "session "+sess, session.MaxStreamsPerSession
	}
	if !d.auth.OpenStream(key, limit) {
		return fail(c, fiber.StatusTooManyRequests,
			fmt.Sprintf("too many live streams (at most %d per %s, %d in all); close another tab or stream first", limit, kind, session.MaxStreamsTotal))
	}
	inbox := d.nc.NewInbox()
	msgs := make(chan *nats.Msg, 256)
	sub, err := d.nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		d.auth.CloseStream(key)
		return fail(c, fiber.StatusServiceUnavailable, "subscribe: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(d.runCtx, logsTimeout)
	err = bus.FollowLogs(ctx, d.nc, name, inbox, bus.LogsRequest{N: n})
	cancel()
	if err != nil {
		_ = sub.Unsubscribe()
		d.auth.CloseStream(key)
		return fail(c, fiber.StatusServiceUnavailable, err.Error())
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no")
	return c.SendStreamWriter(func(w *bufio.Writer) {
		defer d.auth.CloseStream(key)
		defer sub.Unsubscribe()
		if _, err := w.WriteString("retry: 2000\n\n"); err != nil || w.Flush() != nil {
			return
		}
		renew := time.NewTicker(bus.LogsFollowRenew)
		defer renew.Stop()
		keepAlive := time.NewTicker(keepAliveInterval)
		defer keepAlive.Stop()
		var last time.Time
		for {
			select {
			case <-d.runCtx.Done():
				return
			case <-renew.C:
				ctx, cancel := context.WithTimeout(d.runCtx, logsTimeout)
				_ = bus.FollowLogs(ctx, d.nc, name, inbox, bus.LogsRequest{Renew: true, Since: last})
				cancel()
				continue // nothing written: no flush needed
			case <-keepAlive.C:
				w.WriteString(": keep-alive\n\n")
			case m := <-msgs:
				if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
					fmt.Fprintf(w, "event: logs-error\ndata: %s\n\n", bus.EncodeLogs(bus.LogsReply{Error: "no agent answers for bot " + name}))
					break
				}
				rep, err := bus.DecodeLogsReply(m.Data)
				if err != nil {
					continue
				}
				if n := len(rep.Lines); n > 0 {
					last = rep.Lines[n-1].Time
				}
				ev := "logs"
				if !rep.OK || rep.End {
					ev = "logs-error"
				}
				// The agent's JSON has no raw newline: one data line.
				fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev, m.Data)
			}
			if w.Flush() != nil {
				return // the browser went away; the follow expires unrenewed
			}
		}
	})
}
