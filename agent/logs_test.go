package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10MB": 10 << 20, "512kb": 512 << 10, "1048576": 1 << 20, "2 M": 2 << 20, "1G": 1 << 30, "100B": 100} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MB", "ten", "1TB", "99999999999999GB"} {
		if _, err := ParseSize(in); !errors.Is(err, ErrBadSize) {
			t.Errorf("ParseSize(%q) = %v, want ErrBadSize", in, err)
		}
	}
}

// The log keys of a config file: defaults as the flags', [defaults] and a
// bot's own, and each bad value refused at its line.
func TestParseConfigLogKeys(t *testing.T) {
	cfg, err := ParseConfig("f.toml", []byte(`
[defaults]
log_keep = 2
log_timestamps = true
[bot.a]
command = ["sh", "-c", "sleep 1"]
log_max_size = "2MB"
[bot.b]
command = ["sh", "-c", "sleep 1"]
log_max_size = 4096
log_timestamps = false
[bot.c]
command = ["sh", "-c", "sleep 1"]
log_keep = 7
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]any{"a": {int64(2 << 20), 2, true}, "b": {int64(4096), 2, false}, "c": {int64(DefaultLogMaxSize), 7, true}}
	for _, b := range cfg.Bots {
		if got := [3]any{b.LogMaxSize, b.LogKeep, b.LogTimestamps}; got != want[b.Name] {
			t.Errorf("bot %s: %v, want %v", b.Name, got, want[b.Name])
		}
	}
	for body, line := range map[string]int{
		"[bot.a]\ncommand = [\"sh\"]\nlog_keep = 0\n":             3,
		"[bot.a]\ncommand = [\"sh\"]\nlog_max_size = \"lots\"\n":  3,
		"[bot.a]\ncommand = [\"sh\"]\nlog_max_size = -5\n":        3,
		"[bot.a]\ncommand = [\"sh\"]\nlog_timestamps = \"yes\"\n": 3,
	} {
		_, err := ParseConfig("f.toml", []byte(body))
		var fe *FileError
		if !errors.As(err, &fe) || fe.Line != line {
			t.Errorf("%q: %v, want an error at line %d", body, err, line)
		}
	}
}

// The logs endpoints answer from the bot's captured output, refuse a bad n,
// and a follow streams new lines and ends when the agent stops.
func TestLogsEndpoints(t *testing.T) {
	nc, a, _ := newTestAgent(t, "ok")
	a.StopBotOnExit = true
	h := mustStart(t, nc, a)
	h.running()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bus.AskLogs(ctx, nc, a.Name, 10); err != nil {
		t.Fatalf("logs: %v", err)
	}
	m, err := nc.Request(bus.AgentSubject(a.Name, bus.OpLogs), []byte(`{"n":-3}`), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := bus.DecodeLogsReply(m.Data); r.OK || !strings.Contains(r.Error, "n must be") {
		t.Errorf("n -3: %s", m.Data)
	}
	inbox := nc.NewInbox()
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := bus.FollowLogs(ctx, nc, a.Name, inbox, bus.LogsRequest{N: 5}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if r, err := bus.DecodeLogsReply(m.Data); err != nil || !r.OK || r.End {
			t.Fatalf("first batch %s: %v", m.Data, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no first batch")
	}
	// A renewal is answered at once, so a follower knows its agent lives.
	if err := bus.FollowLogs(ctx, nc, a.Name, inbox, bus.LogsRequest{Renew: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-msgs:
	case <-time.After(5 * time.Second):
		t.Fatal("renewal not answered")
	}
	h.stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-msgs:
			if r, _ := bus.DecodeLogsReply(m.Data); r.End {
				return
			}
		case <-deadline:
			t.Fatal("no end of the follow when the agent stopped")
		}
	}
}
