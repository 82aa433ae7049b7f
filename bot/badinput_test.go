package bot

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/lifeline-dev/lifeline/internal/pidfile"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// TestBadShutdownRequestsChangeNothing sends every kind of bad body to a
// running bot's shutdown endpoint, and garbage to its micro discovery
// subjects: each shutdown request gets a 400 error reply, discovery answers
// as usual, and the bot keeps its PID file and keeps working. Then an empty
// body, what `nats req` sends, still stops it cleanly.
func TestBadShutdownRequestsChangeNothing(t *testing.T) {
	s := bustest.NewServer(t)
	nc := bustest.MustConnect(t, s)
	sub := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	b := newBot(t, s.ClientURL(), &countWorker{})
	done, _ := runBot(t, b)
	nextHeartbeat(t, sub)

	bodies := map[string]string{
		"garbage":               "garbage",
		"truncated":             `{"requested_by":"x"`,
		"wrong type":            `{"requested_by":5}`,
		"object type":           `{"requested_by":{"name":"x"}}`,
		"unknown field":         `{"requested_by":"x","now":true}`,
		"array":                 `[]`,
		"null":                  `null`,
		"string":                `"shutdown"`,
		"number":                `0`,
		"two objects":           `{}{}`,
		"trailing garbage":      `{"requested_by":"x"} trailing`,
		"invalid utf-8":         "\xff\xfe",
		"nul bytes":             "\x00\x00\x00",
		"deeply nested":         `{"requested_by":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`,
		"requested_by too long": `{"requested_by":"` + strings.Repeat("x", 257) + `"}`,
		"one byte too many":     `{"requested_by":"` + strings.Repeat("x", bus.MaxRequestBytes-18) + `"}`,
		"near the bus's limit":  strings.Repeat("{", int(nc.MaxPayload())-1024),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			msg := request(t, nc, bus.ShutdownSubject("tbot"), []byte(body))
			r, err := bus.DecodeReply(msg.Data)
			if err != nil || r.OK || r.Error == "" || r.PID != 0 || msg.Header.Get(micro.ErrorCodeHeader) != "400" {
				t.Errorf("reply %.200s, headers %v (%v); want a 400 error reply", msg.Data, msg.Header, err)
			}
		})
	}
	// Above the bus's limit nothing arrives at all.
	tooBig := make([]byte, nc.MaxPayload()+1)
	if _, err := nc.Request(bus.ShutdownSubject("tbot"), tooBig, time.Second); err != nats.ErrMaxPayload {
		t.Errorf("request above max payload: %v, want %v", err, nats.ErrMaxPayload)
	}
	if got := bustest.RawPublish(t, s, bus.ShutdownSubject("tbot"), tooBig); !strings.Contains(got, "Maximum Payload") {
		t.Errorf("raw publish above max payload: server said %q", got)
	}
	// Discovery ignores request bodies, bad or not.
	for _, verb := range []string{"PING", "INFO", "STATS"} {
		for _, subject := range []string{"$SRV." + verb, "$SRV." + verb + "." + bus.BotService} {
			msg := request(t, nc, subject, []byte(`{"garbage":`))
			var answer struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(msg.Data, &answer); err != nil || answer.Name != bus.BotService {
				t.Errorf("%s: %s (%v)", subject, msg.Data, err)
			}
		}
	}

	select {
	case err := <-done:
		t.Fatalf("Run returned %v after bad requests", err)
	default:
	}
	if pid, err := pidfile.Read(b.PIDFile); err != nil || pid != os.Getpid() {
		t.Errorf("pid file: %d, %v; want %d", pid, err, os.Getpid())
	}
	after := subscribe(t, nc, bus.HeartbeatSubject("tbot"))
	first := nextHeartbeat(t, after)
	if next := nextHeartbeat(t, after); next.Seq <= first.Seq || next.Stats["steps"] < first.Stats["steps"] {
		t.Errorf("heartbeats stalled: %+v then %+v", first, next)
	}
	var stats micro.Stats
	if err := json.Unmarshal(request(t, nc, "$SRV.STATS."+bus.BotService, nil).Data, &stats); err != nil {
		t.Fatal(err)
	}
	if len(stats.Endpoints) != 1 || stats.Endpoints[0].NumErrors != len(bodies) || stats.Endpoints[0].NumRequests != len(bodies) {
		t.Errorf("shutdown endpoint stats %+v, want %d requests, all errors", stats.Endpoints, len(bodies))
	}

	msg := request(t, nc, bus.ShutdownSubject("tbot"), nil)
	if r, err := bus.DecodeReply(msg.Data); err != nil || !r.OK || r.PID != os.Getpid() {
		t.Fatalf("reply to empty body: %s (%v)", msg.Data, err)
	}
	mustReturn(t, done)
	assertNoPIDFile(t, b.PIDFile)
}
