package agent

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseConfigGood(t *testing.T) {
	dir := t.TempDir()
	data := `
nats_url = "nats://127.0.0.1:4222"
nats_nkey = "data/bus/agent.nk"

[defaults]
heartbeat_timeout = "0s"
env = { SHARED = "1", MODE = "paper" }

[bot.trader]
command = ["sh", "-c", "sleep 100"]
dir = "` + dir + `"
env = { MODE = "live" }
heartbeat_timeout = "10s"
backoff_max = "1m"
stop_bot_on_exit = true

[bot.demo]
pid_file = "` + filepath.Join(dir, "d.pid") + `"
`
	cfg, err := ParseConfig("fleet.toml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATSURL != "nats://127.0.0.1:4222" || cfg.NATSNkey != "data/bus/agent.nk" {
		t.Errorf("bus settings = %+v", cfg)
	}
	if len(cfg.Bots) != 2 || cfg.Bots[0].Name != "demo" || cfg.Bots[1].Name != "trader" {
		t.Fatalf("bots = %+v", cfg.Bots)
	}
	demo, tr := cfg.Bots[0], cfg.Bots[1]
	if demo.Command != nil || demo.HeartbeatTimeout != 0 || demo.PIDFile != filepath.Join(dir, "d.pid") {
		t.Errorf("demo = %+v", demo)
	}
	wd, _ := os.Getwd()
	if demo.LogFile != filepath.Join(wd, "data", "demo.log") {
		t.Errorf("demo log = %q, want absolute data/demo.log", demo.LogFile)
	}
	if !slices.Equal(tr.Command, []string{"sh", "-c", "sleep 100"}) || tr.Dir != dir ||
		tr.HeartbeatTimeout != 10*time.Second || tr.BackoffMax != time.Minute ||
		tr.StopTimeout != DefaultStopTimeout || !tr.StopBotOnExit {
		t.Errorf("trader = %+v", tr)
	}
	if !slices.Equal(tr.Env, []string{"MODE=live", "SHARED=1"}) {
		t.Errorf("trader env = %q", tr.Env)
	}
}

// Every bad file is refused with its line and the reason.
func TestParseConfigBad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, data string
		line       int
		want       string
		is         error
	}{
		{"syntax", "[bot.a]\ncommand = [\"sleep\", \"9\"\n", 2, "", nil},
		{"unknown key", "[bot.a]\ncommand = [\"sleep\", \"9\"]\nheartbeat_timout = \"5s\"\n", 3, `unknown key "bot.a.heartbeat_timout"`, ErrUnknownKey},
		{"unknown table", "[bots.a]\ncommand = [\"sleep\"]\n", 1, "unknown key", ErrUnknownKey},
		{"unknown top key", "nats = \"x\"\n[bot.a]\n", 1, `unknown key "nats"`, ErrUnknownKey},
		{"bad duration", "[bot.a]\n\nstop_timeout = \"ten\"\n", 3, `"ten" is not a duration`, nil},
		{"number duration", "[bot.a]\nstart_timeout = 10\n", 2, `"10" is not a duration`, nil},
		{"zero stop timeout", "[bot.a]\ncommand = [\"sleep\", \"9\"]\nstop_timeout = \"0s\"\n", 3, "stop_timeout 0s must be positive", ErrNotPositive},
		{"negative heartbeat", "[bot.a]\nheartbeat_timeout = \"-1s\"\n", 2, "must not be negative", ErrNegative},
		{"backoff order", "[bot.a]\nbackoff_min = \"2s\"\nbackoff_max = \"1s\"\n", 3, "backoff_max 1s is shorter", ErrBackoffOrder},
		{"backoff order from defaults", "[defaults]\nbackoff_max = \"1ms\"\n[bot.a]\n", 2, "backoff_max", ErrBackoffOrder},
		{"bad name", "[bot.ok]\n[bot.\"no way\"]\n", 2, `bot name "no way"`, nil},
		{"empty command", "[bot.a]\ncommand = [\"\"]\n", 2, "names no program", ErrEmptyCommand},
		{"missing program", "[bot.a]\ncommand = [\"no-such-program-xyz\"]\n", 2, "no-such-program-xyz", nil},
		{"duplicate pid file", "[bot.a]\npid_file = \"x.pid\"\n[bot.b]\npid_file = \"x.pid\"\n", 4, "is the pid file of two bots", ErrDuplicatePIDFile},
		{"bad env", "[bot.a]\nenv = { \"A=B\" = \"1\" }\n", 2, "not an environment variable name", ErrBadEnv},
		{"dir missing", "[bot.a]\ndir = \"/no/such/dir\"\n", 2, "dir", nil},
		{"dir a file", "[bot.a]\ndir = \"" + file + "\"\n", 2, "is not a directory", ErrNotDir},
		{"wrong type", "[bot.a]\ncommand = \"sleep 9\"\n", 2, "command", nil},
		{"no bots", "nats_url = \"nats://x:4222\"\n", 0, "names no bot", ErrNoBots},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig("fleet.toml", []byte(c.data))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FileError", err)
			}
			if fe.Line != c.line || fe.File != "fleet.toml" {
				t.Errorf("at %s:%d, want line %d: %v", fe.File, fe.Line, c.line, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %q, want it to say %q", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err = %v, want errors.Is %v", err, c.is)
			}
			if c.line > 0 && !strings.HasPrefix(err.Error(), "fleet.toml:"+strconv.Itoa(c.line)+": ") {
				t.Errorf("err = %q, want it to start with file:line", err)
			}
		})
	}
}

func TestSameSettings(t *testing.T) {
	a := Agent{Name: "a", Command: []string{"sleep", "9"}, Env: []string{"A=1"}}
	b := a
	b.Command = slices.Clone(a.Command)
	b.OnBotRunning = func() {}
	if !sameSettings(&a, &b) {
		t.Error("equal settings with other hooks count as changed")
	}
	b.Env = []string{"A=2"}
	if sameSettings(&a, &b) {
		t.Error("a changed env counts as unchanged")
	}
}
