package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// Defaults of Agent's timing fields (SPEC's), for the fields left zero and
// for the CLI's flags. DefaultHeartbeatTimeout is the CLI's only: a zero
// HeartbeatTimeout turns hang detection off rather than taking a default.
const (
	DefaultHeartbeatTimeout = 5 * time.Second
	DefaultStartTimeout     = 30 * time.Second
	DefaultStopTimeout      = 10 * time.Second
	DefaultBackoffMin       = 100 * time.Millisecond
	DefaultBackoffMax       = 15 * time.Second
	DefaultBackoffReset     = 60 * time.Second
)

// Why a ConfigError refuses a field.
var (
	ErrNegative     = errors.New("must not be negative")
	ErrNotPositive  = errors.New("must be positive")
	ErrBackoffOrder = errors.New("is shorter than BackoffMin")
	ErrEmptyCommand = errors.New("names no program")
	ErrBadReady     = errors.New(`is not "" or "notify"`)
)

// ReadyNotify is Agent.Ready for a bot that counts as started once it sends
// READY=1 over sd_notify.
const ReadyNotify = "notify"

// ConfigError is a field of Agent that cannot work. Callers that know the
// field by another name (a flag) tell it by Field and Err.
type ConfigError struct {
	Field string // the Agent field, such as "StopTimeout"
	Value any    // its value
	// Err says what is wrong: one of the Err* above, or for Name the error
	// of bus.ValidName.
	Err error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("agent %s %v: %v", e.Field, e.Value, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate returns a *ConfigError for the first field that cannot work, as
// the fields are: a bad Name, a Command whose program is empty, a negative
// HeartbeatTimeout (zero turns hang detection off), another duration that is
// not positive, or BackoffMax shorter than BackoffMin. Run validates after it
// has put the Default* values in the zero fields; Validate itself fills in
// nothing, so a caller can refuse a zero it was given explicitly.
func (a *Agent) Validate() error {
	if err := bus.ValidName(a.Name); err != nil {
		return &ConfigError{Field: "Name", Value: a.Name, Err: err}
	}
	if len(a.Command) > 0 && a.Command[0] == "" {
		return &ConfigError{Field: "Command", Value: a.Command, Err: ErrEmptyCommand}
	}
	if a.Ready != "" && a.Ready != ReadyNotify {
		return &ConfigError{Field: "Ready", Value: a.Ready, Err: ErrBadReady}
	}
	if a.HeartbeatTimeout < 0 {
		return &ConfigError{Field: "HeartbeatTimeout", Value: a.HeartbeatTimeout, Err: ErrNegative}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"StartTimeout", a.StartTimeout},
		{"StopTimeout", a.StopTimeout},
		{"BackoffMin", a.BackoffMin},
		{"BackoffMax", a.BackoffMax},
		{"BackoffReset", a.BackoffReset},
	} {
		if d.v <= 0 {
			return &ConfigError{Field: d.field, Value: d.v, Err: ErrNotPositive}
		}
	}
	if a.BackoffMax < a.BackoffMin {
		return &ConfigError{Field: "BackoffMax", Value: a.BackoffMax, Err: ErrBackoffOrder}
	}
	if a.LogMaxSize < 0 {
		return &ConfigError{Field: "LogMaxSize", Value: a.LogMaxSize, Err: ErrNegative}
	}
	if a.LogKeep < 0 {
		return &ConfigError{Field: "LogKeep", Value: a.LogKeep, Err: ErrNegative}
	}
	return nil
}

// withDefaults returns a copy of a with the zero fields set to their
// defaults. Negative durations stay, for Validate to refuse.
func (a *Agent) withDefaults() Agent {
	c := *a
	if c.NATSURL == "" {
		c.NATSURL = bus.DefaultURL
	}
	if c.PIDFile == "" {
		c.PIDFile = filepath.Join("data", c.Name+".pid")
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.StartTimeout, DefaultStartTimeout},
		{&c.StopTimeout, DefaultStopTimeout},
		{&c.BackoffMin, DefaultBackoffMin},
		{&c.BackoffMax, DefaultBackoffMax},
		{&c.BackoffReset, DefaultBackoffReset},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("component", "agent", "bot", c.Name)
	return c
}

// command returns the bot's command line.
func (a *Agent) command() []string {
	if len(a.Command) > 0 {
		return a.Command
	}
	// The bus URL reaches the bot through NATS_URL, not its command line,
	// where a password in it would show in ps.
	return []string{a.Self, "bot", "--name", a.Name, "--pid-file", a.PIDFile}
}

// lookCommand makes sure the bot's program can be found before anything
// starts.
func (a *Agent) lookCommand() error {
	cmd := a.command()
	if cmd[0] == "" {
		return errors.New("no bot command: set Command or Self")
	}
	prog := cmd[0]
	if a.Dir != "" && !filepath.IsAbs(prog) && strings.ContainsRune(prog, filepath.Separator) {
		prog = filepath.Join(a.Dir, prog) // where exec will look for it
	}
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("bot command %q: %w", cmd[0], err)
	}
	return nil
}
