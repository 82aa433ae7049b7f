package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceUnitContent checks the systemd unit line by line: the user, the
// directory, the env file, every argument escaped for systemd (quotes, %
// specifiers, $ variables), and KillMode=process only for an agent whose bot
// outlives it.
func TestServiceUnitContent(t *testing.T) {
	unit, err := systemdUnit(unitSpec{
		Name:         "lifeline-agent-mybot",
		Description:  "lifeline agent (lifeline-agent-mybot)",
		Exec:         "/usr/local/bin/lifeline",
		Args:         []string{"agent", "--name", "mybot", "--", "python3", "my bot.py", "$HOME", "50%", `say "hi"`, `a\b`, ""},
		User:         "alice",
		Dir:          "/srv/bots",
		EnvFile:      "/etc/lifeline/lifeline-agent-mybot.env",
		KeepChildren: true,
		Version:      "v1.2.3",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"Description=lifeline agent (lifeline-agent-mybot)",
		"After=network-online.target",
		"User=alice",
		"WorkingDirectory=/srv/bots",
		"EnvironmentFile=-/etc/lifeline/lifeline-agent-mybot.env",
		`ExecStart=/usr/local/bin/lifeline agent --name mybot -- python3 "my bot.py" $$HOME 50%% "say \"hi\"" "a\\b" ""`,
		"Restart=always",
		"KillMode=process",
		"WantedBy=multi-user.target",
	} {
		if !hasLine(unit, line) {
			t.Errorf("unit lacks line %q:\n%s", line, unit)
		}
	}

	dash, err := systemdUnit(unitSpec{Name: "lifeline-dashboard", Description: "lifeline dashboard", Exec: "/usr/bin/lifeline",
		Args: []string{"dashboard"}, User: "root", Dir: "/var/lib/lifeline", EnvFile: "/etc/lifeline/lifeline-dashboard.env"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dash, "KillMode") {
		t.Errorf("the dashboard's unit sets a KillMode:\n%s", dash)
	}

	for _, bad := range []string{"two\nlines", "{{Path}}"} {
		if _, err := systemdUnit(unitSpec{Exec: "/x", Args: []string{"agent", "--", bad}, Dir: "/"}); err == nil {
			t.Errorf("argument %q was written into a unit", bad)
		}
	}
}

// hasLine reports whether text has line as one whole line.
func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// TestServiceNames checks the service's name: one per role, one per named
// agent or config file, or --service-name; a name no service manager takes
// is refused.
func TestServiceNames(t *testing.T) {
	clearEnv(t)
	cases := []struct {
		flags []string
		args  []string
		want  string
	}{
		{nil, []string{"dashboard"}, "lifeline-dashboard"},
		{nil, []string{"agent"}, "lifeline-agent"},
		{nil, []string{"agent", "--name", "mybot", "--", "./bot"}, "lifeline-agent-mybot"},
		{nil, []string{"agent", "--config", "/etc/lifeline/bots.toml"}, "lifeline-agent-bots"},
		{[]string{"--service-name", "bots-eu"}, []string{"agent", "--name", "x"}, "bots-eu"},
	}
	for _, tc := range cases {
		c := &ServiceCommand{}
		if _, err := parseArgs(c.flagSet(), tc.flags, false); err != nil {
			t.Fatal(err)
		}
		got, err := c.target(tc.args[0], tc.args[1:])
		if err != nil || got.name != tc.want {
			t.Errorf("%v %v: name %q, %v; want %q", tc.flags, tc.args, got.name, err, tc.want)
		}
	}
	c := &ServiceCommand{ServiceName: "../etc/passwd"}
	if _, err := c.target("dashboard", nil); err == nil {
		t.Error("service name ../etc/passwd accepted")
	}
}

// TestServiceUsageErrors: a command line that cannot work exits 2 and says
// why, before anything is written.
func TestServiceUsageErrors(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"service"},
		{"service", "reinstall", "agent"},
		{"service", "install"},
		{"service", "install", "--print", "bot"},
		{"service", "install", "--print", "agent", "--no-such-flag"},
		{"service", "install", "--print", "dashboard", "extra"},
		{"service", "status", "--print", "agent"},
		{"service", "install", "--print", "--user", "no-such-user-here", "agent"},
		{"service", "install", "--print", "--dir", "/no/such/dir", "agent"},
	} {
		r := runCLI(t, args...)
		if r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, "lifeline service --help") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d and the help to read", args, r.code, r.stdout, r.stderr, exitUsage)
		}
	}
}

// TestServiceRefusesSecrets: every way of putting a credential itself on the
// service's command line is refused with exit 2, says where it goes instead,
// never repeats the secret, and prints no unit.
func TestServiceRefusesSecrets(t *testing.T) {
	clearEnv(t)
	const secret = "s3cr3t-value-0123456789"
	cases := []struct {
		args   []string
		advice string
	}{
		{[]string{"dashboard", "--token", secret}, "dashboard.token"},
		{[]string{"dashboard", "--token=" + secret}, "LIFELINE_TOKEN"},
		{[]string{"dashboard", "--viewer-token", secret}, "dashboard.viewer.token"},
		{[]string{"dashboard", "--nats-url", "nats://lifeline:" + secret + "@nats.example:4222"}, "--nats-nkey FILE"},
		{[]string{"agent", "--nats-url", "nats://" + secret + "@127.0.0.1:4222"}, "LIFELINE_NATS_URL"},
		{[]string{"dashboard", "--alert", "generic+https://hooks.example/" + secret}, "--alert-file FILE"},
		{[]string{"agent", "--nats-url", "nats://127.0.0.1:4222,tls://u:" + secret + "@b:4222"}, "LIFELINE_NATS_URL"},
		{[]string{"agent", "--name", "x", "--", "./bot", "--api-key", secret}, "environment"},
		{[]string{"agent", "--name", "x", "--", "./bot", "--password=" + secret}, "environment"},
		{[]string{"agent", "--name", "x", "--", "./bot", "postgres://bot:" + secret + "@db/x"}, "environment"},
	}
	for _, tc := range cases {
		r := runCLI(t, append([]string{"service", "install", "--print"}, tc.args...)...)
		if r.code != exitUsage || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q; want exit %d and no unit", tc.args, r.code, r.stdout, exitUsage)
		}
		if !strings.Contains(r.stderr, ErrSecretInUnit.Error()) || !strings.Contains(r.stderr, tc.advice) {
			t.Errorf("%q: stderr %q; want the refusal and %q", tc.args, r.stderr, tc.advice)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("%q: the secret is repeated: %q", tc.args, r.stderr)
		}
	}
	// Files that hold secrets are fine: the unit names them.
	r := runCLI(t, "service", "install", "--print", "dashboard", "--cluster-secret", "data/bus/route.secret", "--nats-users", "users.txt")
	if r.code != exitOK || !strings.Contains(r.stdout, "--cluster-secret data/bus/route.secret") {
		t.Errorf("secret files refused: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// A bot flag that names a file is fine too.
	r = runCLI(t, "service", "install", "--print", "agent", "--", "./bot", "--token-file", "/etc/bot/token")
	if r.code != exitOK {
		t.Errorf("--token-file of the bot refused: exit %d, %q", r.code, r.stderr)
	}
}

// TestServiceUserAndDir: the unit runs as the invoking user (sudo's
// $SUDO_USER when root), or --user; in the current directory, or --dir.
func TestServiceUserAndDir(t *testing.T) {
	clearEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: $SUDO_USER counts only for root")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("SUDO_USER", "nobody")
	r := runCLI(t, "service", "install", "--print", "dashboard")
	if r.code != exitOK || !hasLine(r.stdout, "User=nobody") || !hasLine(r.stdout, "WorkingDirectory="+dir) {
		t.Errorf("under sudo: exit %d, %s %s; want User=nobody and WorkingDirectory=%s", r.code, r.stdout, r.stderr, dir)
	}
	r = runCLI(t, "service", "install", "--print", "--user", "root", "--dir", "/", "dashboard")
	if r.code != exitOK || !hasLine(r.stdout, "User=root") || !hasLine(r.stdout, "WorkingDirectory=/") {
		t.Errorf("--user root --dir /: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestServiceStatusNotInstalled: status of a service that is not there says
// so, exit 0, and uninstall of it fails naming it.
func TestServiceStatusNotInstalled(t *testing.T) {
	clearEnv(t)
	name := "lifeline-test-absent-" + strings.ReplaceAll(t.Name(), "/", "-")
	r := runCLI(t, "service", "status", "--service-name", name, "agent")
	if r.code != exitOK || r.stdout != name+": not installed\n" {
		t.Errorf("status: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if os.Geteuid() != 0 {
		return
	}
	r = runCLI(t, "service", "uninstall", "--service-name", name, "agent")
	if r.code != exitFailure || !strings.Contains(r.stderr, name+" "+ErrServiceNotInstalled.Error()) {
		t.Errorf("uninstall: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestE2EServiceUnitVerifies renders units with the built binary and has
// systemd-analyze verify them, failing on any complaint about the file
// (verify exits 0 on a bad line: it only prints it).
func TestE2EServiceUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd): the unit's content is still checked by TestServiceUnitContent")
	}
	bin := e2eBin(t)
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"lifeline-dashboard":   {"dashboard", "--http", "0.0.0.0:8080", "--cluster-secret", "data/bus/route.secret"},
		"lifeline-agent-mybot": {"agent", "--name", "mybot", "--", "python3", "my bot.py", "$HOME", "50%", `it's "quoted"`},
		"lifeline-agent-bots":  {"agent", "--config", "bots.toml", "--stop-bot-on-exit"},
	} {
		cmd := exec.Command(bin, append([]string{"service", "install", "--print"}, args...)...)
		cmd.Dir = dir
		cmd.Env = e2eEnv()
		unit, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path := filepath.Join(dir, name+".service")
		if err := os.WriteFile(path, unit, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || strings.Contains(string(out), name+".service") {
			t.Errorf("systemd-analyze verify %s: %v\n%s\n%s", name, err, out, unit)
		}
	}
}

// TestE2EServiceNoSecretInUnit: secrets in the installing shell's
// environment and in the seed files the unit names never reach the unit.
func TestE2EServiceNoSecretInUnit(t *testing.T) {
	bin := e2eBin(t)
	dir := t.TempDir()
	const seed = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4"
	if err := os.MkdirAll(filepath.Join(dir, "data", "bus"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "bus", "agent.nk"), []byte(seed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := []string{seed, "token-from-env-0123456789", "viewer-from-env-0123456789", "nats-password-0123"}
	for _, args := range [][]string{
		{"dashboard"},
		{"agent", "--name", "mybot", "--nats-nkey", "data/bus/agent.nk", "--", "./bot"},
	} {
		cmd := exec.Command(bin, append([]string{"service", "install", "--print"}, args...)...)
		cmd.Dir = dir
		cmd.Env = e2eEnv("LIFELINE_TOKEN="+secrets[1], "LIFELINE_VIEWER_TOKEN="+secrets[2],
			"NATS_URL=nats://lifeline:"+secrets[3]+"@127.0.0.1:4222", "LIFELINE_NATS_URL=nats://lifeline:"+secrets[3]+"@127.0.0.1:4222")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		for _, s := range secrets {
			if strings.Contains(string(out), s) {
				t.Errorf("%q: the unit holds secret %q:\n%s", args, s, out)
			}
		}
	}
}
