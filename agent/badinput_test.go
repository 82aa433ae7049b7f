package agent

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// steadyTimeout is the hang timeout of the bad-input tests. They prove that
// nothing happens, so a starved CPU (-race on a busy two-core machine can
// delay a heartbeat past the usual 400 ms) must not make something happen.
const steadyTimeout = 2 * time.Second

// badBodies are request bodies no agent endpoint may act on.
func badBodies(maxPayload int64) map[string][]byte {
	return map[string][]byte{
		"garbage":                    []byte("garbage"),
		"truncated":                  []byte(`{"requested_by":"x"`),
		"wrong type":                 []byte(`{"requested_by":5}`),
		"object type":                []byte(`{"requested_by":{"name":"x"}}`),
		"unknown field":              []byte(`{"requested_by":"x","force":true}`),
		"array":                      []byte(`[{"requested_by":"x"}]`),
		"null":                       []byte(`null`),
		"string":                     []byte(`"restart"`),
		"number":                     []byte(`1`),
		"true":                       []byte(`true`),
		"two objects":                []byte(`{}{}`),
		"trailing garbage":           []byte(`{"requested_by":"x"} x`),
		"invalid utf-8":              []byte("\xff\xfe\xfd"),
		"nul bytes":                  make([]byte, 16),
		"deeply nested":              []byte(`{"requested_by":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`),
		"nested past the size limit": []byte(strings.Repeat(`{"a":`, 800) + strings.Repeat("}", 800)),
		"requested_by too long":      []byte(`{"requested_by":"` + strings.Repeat("x", 257) + `"}`),
		"one byte too many":          []byte(`{"requested_by":"` + strings.Repeat("x", bus.MaxRequestBytes-18) + `"}`),
		"near the bus's limit":       []byte(strings.Repeat("x", int(maxPayload)-1024)),
	}
}

// TestBadRequestsOnEveryAgentSubject sends every bad body to every endpoint
// of a real agent supervising a real bot process: each gets a 400 error
// reply, and the bot, its PID file and the agent's status stay as they were.
func TestBadRequestsOnEveryAgentSubject(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	dir := t.TempDir()
	a := newAgent(t, srv.ClientURL(), dir, "ok")
	a.StopBotOnExit = true
	a.HeartbeatTimeout = steadyTimeout
	h := mustStart(t, nc, a)
	first := h.running()
	h.waitEvent(bus.EventStarted)

	refused := 0
	for _, op := range []string{bus.OpStatus, bus.OpRestart, bus.OpStop, bus.OpStart} {
		for name, body := range badBodies(nc.MaxPayload()) {
			t.Run(op+" "+name, func(t *testing.T) {
				msg, err := nc.Request(bus.AgentSubject("bot", op), body, 5*time.Second)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				refused++
				if code := msg.Header.Get(micro.ErrorCodeHeader); code != "400" {
					t.Errorf("error code %q, want 400 (reply %.200s)", code, msg.Data)
				}
				if msg.Header.Get(micro.ErrorHeader) == "" {
					t.Errorf("no %s header", micro.ErrorHeader)
				}
				r, err := bus.DecodeReply(msg.Data)
				if err != nil || r.OK || r.Error == "" || r.PID != 0 || r.NewPID != 0 {
					t.Errorf("reply %.200s (%v), want ok false with an error", msg.Data, err)
				}
			})
		}
	}

	// Above the bus's limit nothing arrives at all: the client refuses to
	// send it, and a raw connection is cut off by the server.
	tooBig := make([]byte, nc.MaxPayload()+1)
	if _, err := nc.Request(bus.AgentSubject("bot", bus.OpRestart), tooBig, time.Second); err != nats.ErrMaxPayload {
		t.Errorf("request above max payload: %v, want %v", err, nats.ErrMaxPayload)
	}
	if got := bustest.RawPublish(t, srv, bus.AgentSubject("bot", bus.OpRestart), tooBig); !strings.Contains(got, "Maximum Payload") {
		t.Errorf("raw publish above max payload: server said %q", got)
	}

	assertUntouched(t, h, dir, first)
	// micro counted every refusal as an error of its endpoint.
	var stats micro.Stats
	msg, err := nc.Request("$SRV.STATS."+bus.AgentService, nil, 2*time.Second)
	if err != nil || json.Unmarshal(msg.Data, &stats) != nil {
		t.Fatalf("agent stats: %v %s", err, msg.Data)
	}
	errs := 0
	for _, ep := range stats.Endpoints {
		errs += ep.NumErrors
	}
	if errs != refused {
		t.Errorf("agent service counted %d errors, want %d", errs, refused)
	}
	// And it still obeys a good request: the refusals were not deafness.
	if r, err := h.ask(bus.OpRestart, "test"); err != nil || !r.OK || r.OldPID != first.PID {
		t.Fatalf("restart after bad requests: %+v %v", r, err)
	}
}

// assertUntouched checks that nothing happened to the bot since first: the
// same process runs, holds the PID file and has not been restarted, and the
// agent published no event.
func assertUntouched(t *testing.T, h *harness, dir string, first bus.Status) {
	t.Helper()
	st := h.running()
	if st.PID != first.PID || st.Restarts != 0 || st.LastExit != nil || st.Problem != "" {
		t.Errorf("status changed: was %+v, now %+v", first, st)
	}
	if !alive(first.PID) {
		t.Errorf("bot %d is gone", first.PID)
	}
	if pid := readPIDFile(t, filepath.Join(dir, "bot.pid")); pid != first.PID {
		t.Errorf("pid file names %d, want %d", pid, first.PID)
	}
	select {
	case ev := <-h.events:
		t.Errorf("event published: %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

// badHeartbeats returns heartbeats that must not count for bot pid, each
// with the subject it is published on. None names the bot with its own PID
// on its own subject in a form the agent accepts: that one is a real
// heartbeat, whoever sends it.
func badHeartbeats(pid, bystander int) map[string]struct {
	subject string
	data    []byte
} {
	own := bus.HeartbeatSubject("bot")
	now := time.Now().UTC().Format(time.RFC3339Nano)
	hb := func(fields string) []byte {
		return []byte(`{"host":"h","time":"` + now + `","started_at":"` + now + `",` + fields + `}`)
	}
	p := strconv.Itoa(pid)
	type msg = struct {
		subject string
		data    []byte
	}
	return map[string]msg{
		"garbage":                   {own, []byte("garbage")},
		"empty":                     {own, nil},
		"null":                      {own, []byte("null")},
		"array":                     {own, []byte(`[{"name":"bot","pid":` + p + `}]`)},
		"pid as string":             {own, hb(`"name":"bot","pid":"` + p + `"`)},
		"pid 0":                     {own, hb(`"name":"bot","pid":0`)},
		"negative pid":              {own, hb(`"name":"bot","pid":-` + p)},
		"huge pid":                  {own, hb(`"name":"bot","pid":99999999999999999999`)},
		"pid of another process":    {own, hb(`"name":"bot","pid":` + strconv.Itoa(bystander))},
		"huge seq, another pid":     {own, hb(`"name":"bot","pid":` + strconv.Itoa(bystander) + `,"seq":18446744073709551615`)},
		"seq out of range":          {own, hb(`"name":"bot","pid":` + p + `,"seq":18446744073709551616`)},
		"negative seq":              {own, hb(`"name":"bot","pid":` + p + `,"seq":-1`)},
		"bad time":                  {own, hb(`"name":"bot","pid":` + p + `,"time":"now"`)},
		"no name":                   {own, hb(`"pid":` + p)},
		"another bot's name":        {own, hb(`"name":"other","pid":` + p)},
		"bad name":                  {own, hb(`"name":"bot.x","pid":` + p)},
		"on another bot's subject":  {bus.HeartbeatSubject("other"), hb(`"name":"bot","pid":` + p)},
		"stats of the wrong type":   {own, hb(`"name":"bot","pid":` + p + `,"stats":{"x":"y"}`)},
		"deeply nested":             {own, hb(`"name":"bot","pid":` + p + `,"stats":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000))},
		"above 64 KiB":              {own, hb(`"name":"bot","pid":` + p + `,"host":"` + strings.Repeat("x", 64<<10) + `"`)},
		"two heartbeats in one":     {own, append(hb(`"name":"bot","pid":`+p), hb(`"name":"bot","pid":`+p)...)},
		"trailing garbage":          {own, append(hb(`"name":"bot","pid":`+p), " x"...)},
		"invalid utf-8 in the name": {own, hb(`"name":"bot\xff","pid":` + p)},
	}
}

func startBystander(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestBadHeartbeatsChangeNothing publishes every bad heartbeat, over and over
// for longer than a hang timeout, beside a healthy bot: nothing changes.
func TestBadHeartbeatsChangeNothing(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	dir := t.TempDir()
	a := newAgent(t, srv.ClientURL(), dir, "ok")
	a.StopBotOnExit = true
	a.HeartbeatTimeout = steadyTimeout
	h := mustStart(t, nc, a)
	first := h.running()
	h.waitEvent(bus.EventStarted)
	bystander := startBystander(t)

	msgs := badHeartbeats(first.PID, bystander)
	// A heartbeat with the bot's own name and PID but a seq far ahead is
	// still the bot's heartbeat: it changes nothing either.
	msgs["huge seq"] = struct {
		subject string
		data    []byte
	}{bus.HeartbeatSubject("bot"), bus.Encode(bus.Heartbeat{Name: "bot", PID: first.PID, Seq: 1<<64 - 1, Time: time.Now()})}
	until := time.Now().Add(a.HeartbeatTimeout + 500*time.Millisecond)
	for time.Now().Before(until) {
		for _, m := range msgs {
			if err := nc.Publish(m.subject, m.data); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond) // the flood's pace over a whole heartbeat timeout, not a wait
	}
	// The largest heartbeats go once: a flood of them would make the agent a
	// slow consumer, which is another test.
	near := `{"name":"bot","pid":` + strconv.Itoa(first.PID) + `,"host":"` + strings.Repeat("x", int(nc.MaxPayload())-1024) + `"}`
	if err := nc.Publish(bus.HeartbeatSubject("bot"), []byte(near)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(bus.HeartbeatSubject("bot"), make([]byte, nc.MaxPayload()+1)); err != nats.ErrMaxPayload {
		t.Errorf("heartbeat above max payload: %v, want %v", err, nats.ErrMaxPayload)
	}
	if got := bustest.RawPublish(t, srv, bus.HeartbeatSubject("bot"), make([]byte, nc.MaxPayload()+1)); !strings.Contains(got, "Maximum Payload") {
		t.Errorf("raw heartbeat above max payload: server said %q", got)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	assertUntouched(t, h, dir, first)
	if !alive(bystander) {
		t.Fatal("bystander was signalled")
	}
}

// TestNullRequestIsRefused pins the bug the fuzz target found: encoding/json
// decodes null into a struct without complaint, so `null` once restarted the
// bot as if it were an empty request.
func TestNullRequestIsRefused(t *testing.T) {
	nc, a, dir := newTestAgent(t, "ok")
	a.StopBotOnExit = true
	a.HeartbeatTimeout = steadyTimeout
	h := mustStart(t, nc, a)
	first := h.running()
	h.waitEvent(bus.EventStarted)
	for _, op := range []string{bus.OpRestart, bus.OpStop} {
		msg, err := h.nc.Request(bus.AgentSubject("bot", op), []byte(" null\n"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := bus.DecodeReply(msg.Data); r.OK {
			t.Fatalf("%s with body null: %s", op, msg.Data)
		}
	}
	assertUntouched(t, h, dir, first)
}
