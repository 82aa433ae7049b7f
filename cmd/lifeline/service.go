package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kardianos/service"
)

// serviceSummary is the one line `lifeline --help` says about service.
const serviceSummary = "Start the dashboard or an agent at boot: install, uninstall or show its system service."

// Errors of `lifeline service`, for errors.Is.
var (
	// ErrNotRoot: installing or removing a system service writes where only
	// root may (/etc/systemd/system, /etc/init.d, /Library/LaunchDaemons).
	ErrNotRoot = errors.New("installing or removing a system service needs root")
	// ErrSecretInUnit: the command line carries a credential itself. A unit
	// file is world-readable (and its command line shows in ps), so the
	// credential must come from a file the unit names instead.
	ErrSecretInUnit = errors.New("would write a secret into the service file, which every local user can read")
	// ErrServiceNotInstalled: uninstall of a service that is not there.
	ErrServiceNotInstalled = errors.New("is not installed")
)

// envFileDir holds the optional environment files the systemd unit reads
// (EnvironmentFile=-), one per service: where the LIFELINE_* secrets go.
const envFileDir = "/etc/lifeline"

// ServiceCommand registers `lifeline agent|dashboard FLAGS...` with the
// host's service manager (systemd, launchd, Windows services, SysV) through
// kardianos/service: `lifeline service install|uninstall|status`.
type ServiceCommand struct {
	env *env

	User        string
	Dir         string
	ServiceName string
	Print       bool
}

// flagSet defines the service command's own flags, the ones between the
// action and the role word.
func (c *ServiceCommand) flagSet() *flag.FlagSet {
	fs := newFlagSet("service")
	fs.StringVar(&c.User, "user", "", "Run the service as `USER` (default: the invoking user; under sudo, $SUDO_USER). On Windows the default is LocalSystem.")
	fs.StringVar(&c.Dir, "dir", "", "Working `DIR` of the service, where ./data/bus/*.nk and relative paths are found (default: the current directory).")
	fs.StringVar(&c.ServiceName, "service-name", "", "Name of the service (default: lifeline-dashboard, lifeline-agent, or lifeline-agent-NAME for --name NAME or --config NAME.toml).")
	fs.BoolVar(&c.Print, "print", false, "With install: print the systemd unit it would write, and install nothing (no root needed).")
	return fs
}

// Usage prints `lifeline service --help`.
func (c *ServiceCommand) Usage() {
	writeHelp(c.env.stdout, "lifeline service install|uninstall|status [flags] agent|dashboard [FLAGS...]", serviceSummary, `install registers "lifeline agent|dashboard FLAGS..." with the host's service
manager (systemd, launchd, Windows services, SysV init), enables it at boot and
starts it. It runs as the invoking user (under sudo: $SUDO_USER) in the current
directory, restarted whenever it exits. uninstall stops and removes it; status
prints running, stopped or not installed. Install and uninstall need root.

No secret goes into the service file, which every local user can read: a flag
that carries one (--token, --viewer-token, --alert, a password in a URL) is
refused. Give files instead (--nats-nkey FILE, --cluster-secret FILE,
--alert-file FILE, the dashboard's --data/dashboard.token), or LIFELINE_*
variables in the environment file the systemd unit reads,
/etc/lifeline/SERVICE.env (mode 0600, root's).

An agent's service stops only the agent (KillMode=process): its bot keeps
running and the next agent adopts it, as when an agent is restarted by hand;
with --stop-bot-on-exit the bot stops with it.

Examples:
  sudo lifeline service install dashboard
  sudo lifeline service install agent --name mybot -- python3 mybot.py
  sudo lifeline service install --user bots --dir /srv/bots agent --config bots.toml
  lifeline service install --print agent --name mybot -- ./mybot
  lifeline service status agent --name mybot
  sudo lifeline service uninstall agent --name mybot`,
		c.flagSet(), "user", "dir", "service-name", "print")
}

// serviceTarget is what one `lifeline service ACTION ... ROLE ARGS` acts on.
type serviceTarget struct {
	role         string   // "agent" or "dashboard"
	args         []string // the role's command line, as given
	name         string   // the service's name
	keepChildren bool     // stop only the main process: an agent's bot outlives it
}

// Run carries out install, uninstall or status.
func (c *ServiceCommand) Run(_ context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("service", errors.New("say install, uninstall or status, then agent or dashboard"))
	}
	action := args[0]
	switch action {
	case "-h", "-help", "--help", "help":
		return flag.ErrHelp
	case "install", "uninstall", "status":
	default:
		return usageErr("service", fmt.Errorf("unknown action %q: want install, uninstall or status", action))
	}
	rest, err := parseArgs(c.flagSet(), args[1:], false)
	if err != nil {
		return usageErr("service", err)
	}
	if len(rest) == 0 {
		return usageErr("service", fmt.Errorf("%s what? say agent or dashboard", action))
	}
	if c.Print && action != "install" {
		return usageErr("service", errors.New("--print goes with install"))
	}
	t, err := c.target(rest[0], rest[1:])
	if err != nil {
		return usageErr("service", err)
	}
	switch action {
	case "install":
		return c.install(t)
	case "uninstall":
		return c.uninstall(t)
	}
	return c.status(t)
}

// target reads the role and its command line: the flags are parsed with the
// role's own flag set (an unknown flag is refused now, not at boot), but
// without the LIFELINE_* environment of the installing shell, which the
// service will not have.
func (c *ServiceCommand) target(role string, args []string) (serviceTarget, error) {
	t := serviceTarget{role: role, args: args}
	var fs *flag.FlagSet
	switch role {
	case "agent":
		fs = (&AgentCommand{}).flagSet()
	case "dashboard":
		fs = (&DashboardCommand{}).flagSet()
	default:
		return t, fmt.Errorf("unknown role %q: want agent or dashboard", role)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return t, fmt.Errorf("%s's flags: see lifeline %s --help", role, role)
		}
		return t, fmt.Errorf("%s: %w", role, err)
	}
	if role == "dashboard" && fs.NArg() > 0 {
		return t, fmt.Errorf("dashboard: unexpected argument %q", fs.Arg(0))
	}
	given := make(map[string]string)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })

	t.name = "lifeline-" + role
	switch {
	case c.ServiceName != "":
		t.name = c.ServiceName
	case given["config"] != "":
		base := filepath.Base(given["config"])
		t.name += "-" + strings.TrimSuffix(base, filepath.Ext(base))
	case given["name"] != "":
		t.name += "-" + given["name"]
	}
	if !validServiceName(t.name) {
		return t, fmt.Errorf("service name %q: want 1-100 of A-Z a-z 0-9 _ . - (set one with --service-name)", t.name)
	}
	t.keepChildren = role == "agent" && given["stop-bot-on-exit"] != "true"
	return t, nil
}

// validServiceName reports whether name is what every service manager
// takes as a name and a file name (systemd units, init.d scripts, launchd
// labels, Windows services): 1-100 of A-Z a-z 0-9 _ . -, not starting with
// . or -. A loop, not a package-level regexp: `[...]{0,99}` compiles to 99
// nested copies, ~1,300 allocations at every start of the binary (each
// `lifeline status` too) for a check only `lifeline service` makes.
func validServiceName(name string) bool {
	if name == "" || len(name) > 100 || name[0] == '.' || name[0] == '-' {
		return false
	}
	for _, c := range []byte(name) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkSecrets refuses a command line that carries a credential itself, and
// says where the credential goes instead. It never repeats the value.
func checkSecrets(t serviceTarget) error {
	var fs *flag.FlagSet
	if t.role == "agent" {
		fs = (&AgentCommand{}).flagSet()
	} else {
		fs = (&DashboardCommand{}).flagSet()
	}
	if err := fs.Parse(t.args); err != nil {
		return err
	}
	envFile := filepath.Join(envFileDir, t.name+".env")
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil {
			return
		}
		placeholder, _ := flag.UnquoteUsage(f)
		v := f.Value.String()
		switch {
		case isSecretFlag(f.Name) && placeholder != "FILE":
			where := "set " + envName(f.Name) + " in " + envFile + " (mode 0600) instead"
			switch f.Name {
			case "token":
				where = "leave it out: the dashboard keeps its access token in --data/dashboard.token (write yours there, mode 0600), or " + where
			case "viewer-token":
				where = "leave it out: the dashboard keeps its viewer token in --data/dashboard.viewer.token (write yours there, mode 0600), or " + where
			}
			err = fmt.Errorf("--%s %w; %s", f.Name, ErrSecretInUnit, where)
		case f.Name == "alert":
			// Notification URLs hold their tokens in many places (user,
			// path, query): all of them count as secrets.
			err = fmt.Errorf("--alert %w (notification URLs hold tokens); use --alert-file FILE (mode 0600), or set LIFELINE_ALERT in %s (mode 0600) instead",
				ErrSecretInUnit, envFile)
		case redactURLs(v) != v:
			err = fmt.Errorf("--%s has a password in its URL and %w; log in with --nats-nkey FILE, or set %s in %s (mode 0600) instead",
				f.Name, ErrSecretInUnit, envName(f.Name), envFile)
		}
	})
	if err != nil {
		return err
	}
	// The bot's own command line, after "--": the same rules, by the
	// usual names of credential flags.
	for _, arg := range fs.Args() {
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		name = strings.ToLower(name)
		isFile := strings.HasSuffix(name, "file") || strings.HasSuffix(name, "path")
		switch {
		case redactURLs(arg) != arg:
			return fmt.Errorf("the bot's command line has a password in a URL and %w; let the bot read it from its environment, set in %s (mode 0600)", ErrSecretInUnit, envFile)
		case strings.HasPrefix(arg, "-") && !isFile && (isSecretFlag(name) || strings.Contains(name, "apikey") || strings.Contains(name, "api-key") || strings.Contains(name, "api_key")):
			return fmt.Errorf("the bot's flag %s %w; let the bot read it from a file or its environment, set in %s (mode 0600)", strings.SplitN(arg, "=", 2)[0], ErrSecretInUnit, envFile)
		}
	}
	return nil
}

// serviceUser is the account the service runs as: --user, else the one who
// invoked lifeline (sudo's $SUDO_USER when root runs it through sudo).
func (c *ServiceCommand) serviceUser() (string, error) {
	if c.User != "" {
		if _, err := user.Lookup(c.User); err != nil {
			return "", fmt.Errorf("--user %q: %w", c.User, err)
		}
		return c.User, nil
	}
	if runtime.GOOS == "windows" {
		return "", nil // LocalSystem: a Windows account needs its password
	}
	if sudoUser := os.Getenv("SUDO_USER"); os.Geteuid() == 0 && sudoUser != "" {
		if _, err := user.Lookup(sudoUser); err == nil {
			return sudoUser, nil
		}
	}
	u, err := user.Current()
	if err != nil {
		return "", fmt.Errorf("find the invoking user: %w (give --user)", err)
	}
	return u.Username, nil
}

// workDir is the service's working directory: --dir, else the current one,
// made absolute (a service starts in /).
func (c *ServiceCommand) workDir() (string, error) {
	dir := c.Dir
	if runtime.GOOS == "windows" && dir != "" && !c.Print {
		// kardianos cannot set one there: say so rather than ignore it.
		return "", errors.New("--dir: a Windows service has no working directory; give absolute paths (--data, --nats-nkey, --config) instead")
	}
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("find the current directory: %w (give --dir)", err)
		}
		dir = wd
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--dir %q: %w", dir, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return "", fmt.Errorf("--dir %q: not a directory", abs)
	}
	return abs, nil
}

// executable is this binary's absolute path, symlinks resolved, which the
// service will run.
func executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this binary: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return exe, nil
}

// install checks the command line, then writes and starts the service (or,
// with --print, prints the systemd unit).
func (c *ServiceCommand) install(t serviceTarget) error {
	if err := checkSecrets(t); err != nil {
		return usageErr("service", err)
	}
	u, err := c.serviceUser()
	if err != nil {
		return usageErr("service", err)
	}
	dir, err := c.workDir()
	if err != nil {
		return usageErr("service", err)
	}
	exe, err := executable()
	if err != nil {
		return err
	}
	spec := unitSpec{
		Name:         t.name,
		Exec:         exe,
		Args:         append([]string{t.role}, t.args...),
		User:         u,
		Dir:          dir,
		EnvFile:      filepath.Join(envFileDir, t.name+".env"),
		KeepChildren: t.keepChildren,
		Version:      c.env.version,
	}
	spec.Description = "lifeline " + t.role
	if t.name != "lifeline-"+t.role {
		spec.Description += " (" + t.name + ")"
	}
	unit, err := systemdUnit(spec)
	if err != nil {
		return usageErr("service", err)
	}
	if c.Print {
		_, err := fmt.Fprint(c.env.stdout, unit)
		return err
	}
	if err := needRoot("install", t); err != nil {
		return err
	}
	s, err := newService(spec, unit)
	if err != nil {
		return err
	}
	if err := s.Install(); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return advise(fmt.Errorf("install %s: %w", t.name, err), "remove it first: sudo lifeline service uninstall "+strings.Join(append([]string{t.role}, t.args...), " "))
		}
		return advise(fmt.Errorf("install %s: %w", t.name, err), "is this host's service manager running? (lifeline found "+s.Platform()+")")
	}
	fmt.Fprintf(c.env.stdout, "installed %s (%s): lifeline %s, as %s, in %s\n", t.name, s.Platform(), t.role, orLocalSystem(u), dir)
	if strings.Contains(s.Platform(), "systemd") {
		fmt.Fprintf(c.env.stdout, "secrets, if any: LIFELINE_* lines in %s (root's, mode 0600)\n", spec.EnvFile)
	}
	if err := s.Start(); err != nil {
		return advise(fmt.Errorf("start %s: %w", t.name, err), "it is installed and starts at boot; see the service manager's log (journalctl -u "+t.name+")")
	}
	fmt.Fprintf(c.env.stdout, "started %s; it starts at every boot\n", t.name)
	return nil
}

// orLocalSystem names the account of an empty user on Windows.
func orLocalSystem(u string) string {
	if u == "" {
		return "LocalSystem"
	}
	return u
}

// uninstall stops and removes the service.
func (c *ServiceCommand) uninstall(t serviceTarget) error {
	if err := needRoot("uninstall", t); err != nil {
		return err
	}
	s, err := newService(unitSpec{Name: t.name}, "")
	if err != nil {
		return err
	}
	if _, err := s.Status(); errors.Is(err, service.ErrNotInstalled) || !serviceFileExists(s.Platform(), t.name) {
		return fmt.Errorf("uninstall: %s %w", t.name, ErrServiceNotInstalled)
	}
	_ = s.Stop() // a stopped service is fine: it is being removed anyway
	if err := s.Uninstall(); err != nil {
		return fmt.Errorf("uninstall %s: %w", t.name, err)
	}
	fmt.Fprintf(c.env.stdout, "uninstalled %s\n", t.name)
	return nil
}

// status prints running, stopped or not installed. Exit status 0 whenever
// the state is known, so scripts read the word.
func (c *ServiceCommand) status(t serviceTarget) error {
	s, err := newService(unitSpec{Name: t.name}, "")
	if err != nil {
		return err
	}
	st, err := s.Status()
	if !serviceFileExists(s.Platform(), t.name) {
		err = service.ErrNotInstalled // the manager's answer says less, and differs
	}
	state := ""
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		state = "not installed"
	case err != nil:
		return fmt.Errorf("status of %s (%s): %w", t.name, s.Platform(), err)
	case st == service.StatusRunning:
		state = "running"
	case st == service.StatusStopped:
		state = "stopped"
	default:
		state = "unknown"
	}
	_, err = fmt.Fprintf(c.env.stdout, "%s: %s\n", t.name, state)
	return err
}

// needRoot refuses install and uninstall without root on Unix, before
// anything is written, with the command that works. Windows asks for an
// Administrator prompt itself.
func needRoot(action string, t serviceTarget) error {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		return nil
	}
	cmd := "sudo lifeline service " + action + " " + t.role
	if len(t.args) > 0 {
		cmd += " ..."
	}
	return advise(fmt.Errorf("%s %s: %w", action, t.name, ErrNotRoot), "run with sudo: "+cmd)
}

// serviceFileExists reports whether the file of service name is in place,
// where lifeline knows the file (systemd and SysV: kardianos writes
// /etc/systemd/system/NAME.service and /etc/init.d/NAME); elsewhere it
// trusts the service manager and reports true. SysV's `service NAME status`
// fails the same way for a missing script as for a stopped one.
func serviceFileExists(platform, name string) bool {
	var path string
	switch platform {
	case "linux-systemd":
		path = "/etc/systemd/system/" + name + ".service"
	case "unix-systemv":
		path = "/etc/init.d/" + name
	default:
		return true
	}
	_, err := os.Stat(path)
	return err == nil
}

// noProgram is the service.Interface kardianos wants; lifeline only manages
// the service here, it never runs as one through kardianos (the unit runs
// `lifeline agent|dashboard` directly).
type noProgram struct{}

func (noProgram) Start(service.Service) error { return nil }
func (noProgram) Stop(service.Service) error  { return nil }

// newService returns the kardianos service for spec. On systemd it writes
// unit, rendered by systemdUnit, word for word: the tested text is the text
// installed. Elsewhere kardianos writes its own file from the same config.
func newService(spec unitSpec, unit string) (service.Service, error) {
	cfg := &service.Config{
		Name:             spec.Name,
		DisplayName:      spec.Description,
		Description:      "Keeps a bot alive and lets its operators restart it from anywhere.",
		UserName:         spec.User,
		Arguments:        spec.Args,
		Executable:       spec.Exec,
		WorkingDirectory: spec.Dir,
		Option: service.KeyValue{
			"KeepAlive": true,     // launchd: restart when it exits
			"RunAtLoad": true,     // launchd: start at boot
			"Restart":   "always", // kardianos's own systemd/OpenRC templates
		},
	}
	if unit != "" {
		cfg.Option["SystemdScript"] = unit
	}
	s, err := service.New(noProgram{}, cfg)
	if err != nil {
		return nil, fmt.Errorf("find the service manager: %w", err)
	}
	return s, nil
}

// unitSpec is what the systemd unit says.
type unitSpec struct {
	Name         string
	Description  string
	Exec         string
	Args         []string
	User         string
	Dir          string
	EnvFile      string
	KeepChildren bool
	Version      string
}

// systemdUnit renders the systemd unit for spec. Every value is escaped for
// systemd (quotes, %-specifiers, $-variables); one that cannot be written in
// a unit (a newline, or "{{", which kardianos's template would read) is
// refused.
func systemdUnit(spec unitSpec) (string, error) {
	for _, v := range append([]string{spec.Description, spec.Exec, spec.User, spec.Dir}, spec.Args...) {
		if strings.ContainsAny(v, "\n\r\x00") || strings.Contains(v, "{{") || strings.Contains(v, "}}") {
			return "", fmt.Errorf("%q cannot be written in a service file", v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `lifeline service install` (lifeline %s).\n", spec.Version)
	b.WriteString("# No secret belongs here: every local user can read this file. LIFELINE_*\n")
	fmt.Fprintf(&b, "# variables with secrets go in %s (root's, mode 0600).\n", spec.EnvFile)
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=%s\n", systemdEscape(spec.Description))
	b.WriteString("Documentation=https://github.com/lifeline-dev/lifeline#start-at-boot\n")
	b.WriteString("Wants=network-online.target\n")
	b.WriteString("After=network-online.target\n")
	b.WriteString("StartLimitIntervalSec=0\n") // never give up: keeping things alive is the point
	b.WriteString("\n[Service]\n")
	b.WriteString("Type=simple\n")
	if spec.User != "" {
		fmt.Fprintf(&b, "User=%s\n", spec.User)
	}
	fmt.Fprintf(&b, "WorkingDirectory=%s\n", systemdEscape(spec.Dir))
	fmt.Fprintf(&b, "EnvironmentFile=-%s\n", systemdEscape(spec.EnvFile))
	args := []string{systemdArg(spec.Exec)}
	for _, a := range spec.Args {
		args = append(args, systemdArg(a))
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(args, " "))
	b.WriteString("Restart=always\n")
	b.WriteString("RestartSec=2\n")
	if spec.KeepChildren {
		// The bot outlives its agent, as when the agent is restarted by
		// hand: the next agent adopts it through its PID file.
		b.WriteString("KillMode=process\n")
	}
	b.WriteString("TimeoutStopSec=60\n")
	b.WriteString("\n[Install]\n")
	b.WriteString("WantedBy=multi-user.target\n")
	return b.String(), nil
}

// systemdEscape escapes systemd's specifiers (%) in a value.
func systemdEscape(s string) string {
	return strings.ReplaceAll(s, "%", "%%")
}

// systemdArg writes one ExecStart word: specifiers and variables escaped,
// and quoted unless made only of characters systemd never splits on or
// interprets.
func systemdArg(s string) string {
	s = strings.ReplaceAll(systemdEscape(s), "$", "$$")
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,=@+%$", r))
	}) < 0 {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
