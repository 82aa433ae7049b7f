package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lifeline-dev/lifeline/agent"
	"github.com/lifeline-dev/lifeline/bus"
)

// errBusChanged refuses a reload that changes the bus settings: the one
// connection every bot shares is not remade under them.
var errBusChanged = errors.New("nats_url, nats_ca or nats_nkey changed; restart the agent to use them")

// runFleet supervises every bot of the --config file in this process
// (`lifeline agent --config FILE`), or only checks the file (--check).
func (c *AgentCommand) runFleet(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the SIGHUP watcher, whatever Run returns
	// Caught from the start, so that a SIGHUP sent while the bots start
	// reloads instead of killing the agent.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, err := agent.LoadConfig(c.Config)
	if c.Check {
		if err != nil {
			return usageErr("agent", err)
		}
		fmt.Fprintf(c.env.stdout, "%s: ok, %d bots: %s\n", c.Config, len(cfg.Bots), names(cfg.Bots))
		return nil
	}
	if err != nil {
		return usageErr("agent", err)
	}
	self, err := os.Executable()
	if err != nil {
		return advise(fmt.Errorf("find the lifeline binary: %w", err), "run lifeline by its full path")
	}
	log := c.env.logger(slog.LevelInfo)
	b, err := c.fleetBus(cfg)
	if err != nil {
		return err
	}
	var mem memoryReleaser
	defer mem.wait()
	// dress gives the file's bots what comes from the command line and the
	// process rather than the file.
	dress := func(bots []agent.Agent) []agent.Agent {
		for i := range bots {
			a := &bots[i]
			a.NATSURL, a.NATSCA, a.Login, a.BotLogin = b.url, b.ca, b.login, b.botLogin
			a.Self, a.Version, a.Logger = self, c.env.version, log
			a.OnBotRunning = mem.release
		}
		return bots
	}
	f := &agent.Fleet{
		NATSURL:   b.url,
		NATSCA:    b.ca,
		Login:     b.login,
		Logger:    log.With("component", "agent"),
		Bots:      dress(cfg.Bots),
		OnStarted: func() { releaseStartupPages(log.With("component", "agent")) },
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			flog := log.With("component", "agent", "config", c.Config)
			next, err := agent.LoadConfig(c.Config)
			if err == nil {
				if nb, berr := c.fleetBus(next); berr != nil || nb.url != b.url || nb.ca != b.ca || nb.login.NkeyFile != b.login.NkeyFile {
					err = errBusChanged
				}
			}
			if err != nil {
				flog.Error("reload refused; nothing changed", "err", err)
				continue
			}
			if err := f.Reload(dress(next.Bots)); err != nil {
				flog.Error("reload", "err", err)
				continue
			}
			flog.Info("reloaded", "bots", len(next.Bots))
		}
	}()
	err = f.Run(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, agent.ErrAnotherAgent):
		return advise(err, "only one agent may supervise a bot: stop the other agent, or take the bot out of this file")
	case errors.Is(err, exec.ErrNotFound):
		return advise(err, "install it, or give its full path in command")
	case errors.Is(err, fs.ErrPermission):
		return advise(err, "make the pid_file and log_file directories writable, and run the agent as the same user as the bots")
	default:
		return advise(err, "see the log above and the bots' log files")
	}
}

// fleetBus is the bus a fleet connects to and the logins it uses.
type fleetBus struct {
	url, ca         string
	login, botLogin bus.Login
}

// fleetBus resolves the bus settings: the file's, else the flags' (and
// their environment variables').
func (c *AgentCommand) fleetBus(cfg *agent.FileConfig) (fleetBus, error) {
	b := fleetBus{url: orDefault(cfg.NATSURL, c.NATSURL), ca: orDefault(cfg.NATSCA, c.NATSCA)}
	login, err := bus.ResolveLogin(b.url, orDefault(cfg.NATSNkey, c.NATSNkey), bus.LoginAgent)
	if err != nil {
		return b, adviseLogin(err)
	}
	botLogin, err := bus.ResolveLogin("", botNkey(login), "")
	if err != nil {
		return b, adviseLogin(err)
	}
	b.login, b.botLogin = login, botLogin
	return b, nil
}

func names(bots []agent.Agent) string {
	n := make([]string, len(bots))
	for i := range bots {
		n[i] = bots[i].Name
	}
	return strings.Join(n, ", ")
}
