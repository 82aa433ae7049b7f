package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Why a config file is refused, beside the reasons of ConfigError.
var (
	ErrUnknownKey = errors.New("unknown key")
	ErrNoBots     = errors.New("names no bot: add a [bot.NAME] table")
	ErrBadEnv     = errors.New("is not an environment variable name")
	ErrNotDir     = errors.New("is not a directory")
)

// FileError is a config file that cannot be used: the file, the line (0
// when the reason has no one line) and why.
type FileError struct {
	File string
	Line int
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// FileConfig is what an agent config file says: the bus settings shared by
// every bot, and the bots, sorted by name, each with every default filled
// in as the agent's flags have them and its paths made absolute.
type FileConfig struct {
	NATSURL  string // empty: the flag's (or $NATS_URL's)
	NATSCA   string
	NATSNkey string
	Bots     []Agent
}

// fileTOML is the file's layout. Every field of a bot is a pointer (or
// nil-able), so that a bot's own value is told from one it did not give and
// that [defaults] fills in.
type fileTOML struct {
	NATSURL  string             `toml:"nats_url"`
	NATSCA   string             `toml:"nats_ca"`
	NATSNkey string             `toml:"nats_nkey"`
	Defaults botTOML            `toml:"defaults"`
	Bot      map[string]botTOML `toml:"bot"`
}

type botTOML struct {
	Command          []string          `toml:"command"`
	Dir              *string           `toml:"dir"`
	Env              map[string]string `toml:"env"`
	PIDFile          *string           `toml:"pid_file"`
	LogFile          *string           `toml:"log_file"`
	HeartbeatTimeout *duration         `toml:"heartbeat_timeout"`
	StartTimeout     *duration         `toml:"start_timeout"`
	StopTimeout      *duration         `toml:"stop_timeout"`
	BackoffMin       *duration         `toml:"backoff_min"`
	BackoffMax       *duration         `toml:"backoff_max"`
	BackoffReset     *duration         `toml:"backoff_reset"`
	StopBotOnExit    *bool             `toml:"stop_bot_on_exit"`
	RequireHeartbeat *bool             `toml:"require_heartbeat"`
	Ready            *string           `toml:"ready"`
	LogMaxSize       *logSize          `toml:"log_max_size"`
	LogKeep          *int              `toml:"log_keep"`
	LogTimestamps    *bool             `toml:"log_timestamps"`
}

// duration is a TOML string such as "5s".
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"5s\"", b)
	}
	*d = duration(v)
	return nil
}

// fieldKeys maps Agent's fields to their keys in the file, for messages.
var fieldKeys = map[string]string{
	"Command":          "command",
	"HeartbeatTimeout": "heartbeat_timeout",
	"StartTimeout":     "start_timeout",
	"StopTimeout":      "stop_timeout",
	"BackoffMin":       "backoff_min",
	"BackoffMax":       "backoff_max",
	"BackoffReset":     "backoff_reset",
	"Ready":            "ready",
	"LogMaxSize":       "log_max_size",
	"LogKeep":          "log_keep",
}

// LoadConfig reads and checks the agent config file at path. Every bot it
// names passes Validate and has a program that can be found; a bad file is
// a *FileError with the line at fault.
func LoadConfig(path string) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, data)
}

// tomlLine finds the line in a decoding error that is not a ParseError. It
// is compiled when needed: every lifeline process links this package, few
// read a config file.
func tomlLine(msg string) int {
	m := regexp.MustCompile(`^toml: line (\d+)`).FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// ParseConfig is LoadConfig of data read from path.
func ParseConfig(path string, data []byte) (*FileConfig, error) {
	fail := func(line int, err error) (*FileConfig, error) {
		return nil, &FileError{File: path, Line: line, Err: err}
	}
	var f fileTOML
	md, err := toml.Decode(string(data), &f)
	if pe := (toml.ParseError{}); errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		return fail(pe.Position.Line, errors.New(msg))
	}
	if err != nil {
		return fail(tomlLine(err.Error()), errors.New(strings.TrimPrefix(err.Error(), "toml: ")))
	}
	lines := indexKeys(data)
	if bad := md.Undecoded(); len(bad) > 0 {
		return fail(lines.find(bad[0]...), fmt.Errorf("%w %q", ErrUnknownKey, bad[0].String()))
	}
	if len(f.Bot) == 0 {
		return fail(0, ErrNoBots)
	}
	names := make([]string, 0, len(f.Bot))
	for n := range f.Bot {
		names = append(names, n)
	}
	slices.Sort(names)
	cfg := &FileConfig{NATSURL: f.NATSURL, NATSCA: f.NATSCA, NATSNkey: f.NATSNkey}
	pids := map[string]string{}
	for _, name := range names {
		b := merge(f.Defaults, f.Bot[name])
		// find names the line of key in the bot's table, else in
		// [defaults], else the table's header.
		find := func(key ...string) int {
			for _, table := range [][]string{{"bot", name}, {"defaults"}} {
				for n := len(key); n > 0; n-- {
					if l, ok := lines[strings.Join(append(slices.Clone(table), key[:n]...), ".")]; ok {
						return l
					}
				}
			}
			return lines.find("bot", name)
		}
		a, key, err := b.agent(name)
		if err != nil {
			return fail(find(key...), fmt.Errorf("bot %q: %w", name, err))
		}
		// Every default is in already: a zero left is one the file gave.
		if err := a.Validate(); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) && ce.Field == "Name" {
				return fail(find(), fmt.Errorf("bot name %q: %w", name, ce.Err))
			}
			if errors.As(err, &ce) {
				k := fieldKeys[ce.Field]
				v := ce.Value
				if d, ok := v.(time.Duration); ok {
					v = d.String()
				}
				return fail(find(k), fmt.Errorf("bot %q: %s %v %w", name, k, v, ce.Err))
			}
			return fail(find(), fmt.Errorf("bot %q: %w", name, err))
		}
		if len(a.Command) > 0 { // the demo bot needs the binary, known only at run time
			if err := a.lookCommand(); err != nil {
				return fail(find("command"), fmt.Errorf("bot %q: %w", name, err))
			}
		}
		if other, ok := pids[a.PIDFile]; ok {
			return fail(find("pid_file"), fmt.Errorf("bot %q: pid_file %s %w: %q and %q", name, a.PIDFile, ErrDuplicatePIDFile, other, name))
		}
		pids[a.PIDFile] = name
		cfg.Bots = append(cfg.Bots, *a)
	}
	return cfg, nil
}

// merge returns b with what it does not say taken from d.
func merge(d, b botTOML) botTOML {
	out := d
	if b.Command != nil {
		out.Command = b.Command
	}
	if len(d.Env) > 0 || len(b.Env) > 0 {
		out.Env = map[string]string{}
		for k, v := range d.Env {
			out.Env[k] = v
		}
		for k, v := range b.Env {
			out.Env[k] = v
		}
	}
	for _, p := range []struct{ dst, src **string }{{&out.Dir, &b.Dir}, {&out.PIDFile, &b.PIDFile}, {&out.LogFile, &b.LogFile}} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	for _, p := range []struct{ dst, src **duration }{
		{&out.HeartbeatTimeout, &b.HeartbeatTimeout}, {&out.StartTimeout, &b.StartTimeout},
		{&out.StopTimeout, &b.StopTimeout}, {&out.BackoffMin, &b.BackoffMin},
		{&out.BackoffMax, &b.BackoffMax}, {&out.BackoffReset, &b.BackoffReset},
	} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	if b.StopBotOnExit != nil {
		out.StopBotOnExit = b.StopBotOnExit
	}
	if b.RequireHeartbeat != nil {
		out.RequireHeartbeat = b.RequireHeartbeat
	}
	if b.Ready != nil {
		out.Ready = b.Ready
	}
	mergeLogs(&out, b)
	return out
}

// agent returns the Agent b describes, with the agent flags' defaults for
// what it leaves out (a value given as zero stays zero, for Validate to
// refuse), or the key at fault.
func (b botTOML) agent(name string) (*Agent, []string, error) {
	a := &Agent{
		Name:             name,
		Command:          b.Command,
		HeartbeatTimeout: DefaultHeartbeatTimeout,
		StartTimeout:     DefaultStartTimeout,
		StopTimeout:      DefaultStopTimeout,
		BackoffMin:       DefaultBackoffMin,
		BackoffMax:       DefaultBackoffMax,
		BackoffReset:     DefaultBackoffReset,
	}
	for _, p := range []struct {
		dst *time.Duration
		src *duration
	}{
		{&a.HeartbeatTimeout, b.HeartbeatTimeout}, {&a.StartTimeout, b.StartTimeout},
		{&a.StopTimeout, b.StopTimeout}, {&a.BackoffMin, b.BackoffMin},
		{&a.BackoffMax, b.BackoffMax}, {&a.BackoffReset, b.BackoffReset},
	} {
		if p.src != nil {
			*p.dst = time.Duration(*p.src)
		}
	}
	if b.StopBotOnExit != nil {
		a.StopBotOnExit = *b.StopBotOnExit
	}
	if b.RequireHeartbeat != nil {
		a.RequireHeartbeat = *b.RequireHeartbeat
	}
	if b.Ready != nil {
		a.Ready = *b.Ready
	}
	if key, err := b.logs(a); err != nil {
		return nil, []string{key}, err
	}
	// Paths are made absolute against the agent's directory, as its flags
	// are, so that the bot's own dir does not move them.
	abs := func(p *string, def string) (string, error) {
		v := def
		if p != nil {
			v = *p
		}
		if v == "" {
			return "", nil
		}
		return filepath.Abs(v)
	}
	var err error
	if a.PIDFile, err = abs(b.PIDFile, filepath.Join("data", name+".pid")); err != nil {
		return nil, []string{"pid_file"}, err
	}
	if a.LogFile, err = abs(b.LogFile, filepath.Join("data", name+".log")); err != nil {
		return nil, []string{"log_file"}, err
	}
	if a.Dir, err = abs(b.Dir, ""); err != nil {
		return nil, []string{"dir"}, err
	}
	if a.Dir != "" {
		if st, err := os.Stat(a.Dir); err != nil {
			return nil, []string{"dir"}, fmt.Errorf("dir: %w", err)
		} else if !st.IsDir() {
			return nil, []string{"dir"}, fmt.Errorf("dir %s %w", a.Dir, ErrNotDir)
		}
	}
	keys := make([]string, 0, len(b.Env))
	for k := range b.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(b.Env[k], 0) {
			return nil, []string{"env", k}, fmt.Errorf("env %q %w", k, ErrBadEnv)
		}
		a.Env = append(a.Env, k+"="+b.Env[k])
	}
	return a, nil, nil
}

// keyLines maps a key's dotted path ("bot.trader.command") to the line
// that sets it, or the line of its table's header. The TOML library reports
// lines for syntax and value errors only; this lexical index finds them for
// the errors found after decoding (an unknown key, a value Validate
// refuses). The first line wins.
type keyLines map[string]int

func indexKeys(data []byte) keyLines {
	lines := keyLines{}
	var table []string
	for i, raw := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(raw)
		if l == "" || l[0] == '#' {
			continue
		}
		var path []string
		if l[0] == '[' {
			inner := strings.Trim(strings.SplitN(l, "#", 2)[0], "[] \t")
			table = splitKey(inner)
			path = table
		} else if eq := strings.IndexByte(l, '='); eq > 0 {
			path = append(slices.Clone(table), splitKey(l[:eq])...)
		} else {
			continue
		}
		k := strings.Join(path, ".")
		if _, ok := lines[k]; !ok {
			lines[k] = i + 1
		}
	}
	return lines
}

// splitKey splits a dotted TOML key, unquoting its parts.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

// find returns the line of the key, or of the nearest table or key above
// it that the file names; 0 when there is none.
func (k keyLines) find(key ...string) int {
	for n := len(key); n > 0; n-- {
		if l, ok := k[strings.Join(key[:n], ".")]; ok {
			return l
		}
	}
	return 0
}
