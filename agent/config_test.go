package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
)

// complete is an Agent whose every field Validate looks at is set and good.
func complete() Agent {
	return Agent{
		Name:             "bot",
		HeartbeatTimeout: DefaultHeartbeatTimeout,
		StartTimeout:     DefaultStartTimeout,
		StopTimeout:      DefaultStopTimeout,
		BackoffMin:       DefaultBackoffMin,
		BackoffMax:       DefaultBackoffMax,
		BackoffReset:     DefaultBackoffReset,
	}
}

func TestValidateNamesTheFieldAndWhy(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*Agent)
		field  string
		why    error
	}{
		"bad name":               {func(a *Agent) { a.Name = "bad name" }, "Name", bus.ErrBadName},
		"empty program":          {func(a *Agent) { a.Command = []string{"", "x"} }, "Command", ErrEmptyCommand},
		"negative heartbeat":     {func(a *Agent) { a.HeartbeatTimeout = -time.Second }, "HeartbeatTimeout", ErrNegative},
		"zero start timeout":     {func(a *Agent) { a.StartTimeout = 0 }, "StartTimeout", ErrNotPositive},
		"negative stop timeout":  {func(a *Agent) { a.StopTimeout = -time.Second }, "StopTimeout", ErrNotPositive},
		"zero backoff min":       {func(a *Agent) { a.BackoffMin = 0 }, "BackoffMin", ErrNotPositive},
		"negative backoff reset": {func(a *Agent) { a.BackoffReset = -time.Minute }, "BackoffReset", ErrNotPositive},
		"max below min": {func(a *Agent) { a.BackoffMin, a.BackoffMax = 2*time.Second, time.Second },
			"BackoffMax", ErrBackoffOrder},
	} {
		a := complete()
		tc.change(&a)
		err := a.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, tc.why) {
			t.Errorf("%s: Validate() = %v, want a ConfigError for %s: %v", name, err, tc.field, tc.why)
		}
	}
	a := complete()
	a.HeartbeatTimeout = 0 // hang detection off
	if err := a.Validate(); err != nil {
		t.Errorf("zero HeartbeatTimeout: %v", err)
	}
}

// The zero durations take the Default* values before Run validates, so an
// Agent given only a name is good; negatives stay and are refused.
func TestZeroDurationsTakeTheDefaults(t *testing.T) {
	a := &Agent{Name: "bot"}
	c := a.withDefaults()
	if c.StartTimeout != DefaultStartTimeout || c.StopTimeout != DefaultStopTimeout || c.BackoffMin != DefaultBackoffMin ||
		c.BackoffMax != DefaultBackoffMax || c.BackoffReset != DefaultBackoffReset || c.HeartbeatTimeout != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("an agent given only a name: %v", err)
	}
	a.StopTimeout = -time.Second
	if c := a.withDefaults(); c.StopTimeout != -time.Second || c.Validate() == nil {
		t.Fatalf("a negative StopTimeout became %s", c.StopTimeout)
	}
}

// The agent does nothing process-wide by itself: OnStarted and OnBotRunning
// are where its binary does, once at start and for every bot that runs.
func TestHooksAreCalledOnStartAndForEveryRunningBot(t *testing.T) {
	srv := bustest.NewServer(t)
	nc := bustest.MustConnect(t, srv)
	a := newAgent(t, srv.ClientURL(), t.TempDir(), "ok")
	a.StopBotOnExit = true
	var started atomic.Int32
	running := make(chan struct{}, 8)
	a.OnStarted = func() { started.Add(1) }
	a.OnBotRunning = func() { running <- struct{}{} }
	botRunning := func(when string) {
		t.Helper()
		select {
		case <-running:
		case <-time.After(10 * time.Second):
			t.Fatalf("no OnBotRunning %s", when)
		}
	}
	h := mustStart(t, nc, a)
	first := h.running()
	botRunning("after the start")
	if r, err := h.ask(bus.OpRestart, "test"); err != nil || !r.OK {
		t.Fatalf("restart: %+v %v", r, err)
	}
	botRunning("after the restart")
	if err := h.stop(); err != nil {
		t.Fatalf("agent stop: %v", err)
	}
	waitGone(t, first.PID)
	if n, extra := started.Load(), len(running); n != 1 || extra != 0 {
		t.Fatalf("OnStarted called %d times, want 1; %d more OnBotRunning", n, extra)
	}
}

// A config Run refuses leaves no hook called.
func TestRefusedConfigCallsNoHook(t *testing.T) {
	a := &Agent{Name: "bot", PIDFile: filepath.Join(t.TempDir(), "x.pid"), Self: "/bin/true", BackoffMin: time.Minute}
	a.OnStarted = func() { t.Error("OnStarted called") }
	a.OnBotRunning = func() { t.Error("OnBotRunning called") }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Run(ctx); !errors.Is(err, ErrBackoffOrder) {
		t.Fatalf("BackoffMin of a minute with the default BackoffMax: %v", err)
	}
	if _, err := os.Stat(a.PIDFile); !os.IsNotExist(err) {
		t.Fatalf("pid file: %v", err)
	}
}
