package main

import (
	"flag"
	"os/exec"
	"strings"
	"testing"
)

// secretEnv sets every variable a secret can come in by to a value with a
// marker the tests look for in the output, and returns the markers.
func secretEnv(t *testing.T) []string {
	t.Helper()
	clearEnv(t)
	env := map[string]string{
		// A password, and a second server that logs in with a token (NATS
		// reads a user without a password as one).
		"NATS_URL":              "nats://alice:natsurl-pw-SECRET1@127.0.0.1:4222,nats://natsurl-tok-SECRET2@127.0.0.2:4222",
		"LIFELINE_NATS_URL":     "nats://bob:lifeline-pw-SECRET3@127.0.0.1:4222,carol:noscheme-pw-SECRET4@127.0.0.3:4222",
		"LIFELINE_TOKEN":        "token-SECRET5-0123456789abcdef",
		"LIFELINE_VIEWER_TOKEN": "viewer-SECRET6-0123456789abcdef",
		"NGROK_AUTHTOKEN":       "ngrok-SECRET7",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return []string{"SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5", "SECRET6", "SECRET7"}
}

// assertNoSecret fails when out shows any of the secrets.
func assertNoSecret(t *testing.T, what, out string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s shows secret %s:\n%s", what, s, out)
		}
	}
}

// TestHelpHidesSecrets asks every sub-command for its help, every way there
// is, with each secret the environment can hold set: none shows up, while
// --nats-url's default (from $NATS_URL) still shows where it points.
func TestHelpHidesSecrets(t *testing.T) {
	secrets := secretEnv(t)
	var runs [][]string
	for _, c := range commands {
		runs = append(runs, []string{"help", c.name})
		if c.name == "help" {
			continue
		}
		runs = append(runs, []string{c.name, "--help"}, []string{c.name, "-h"}, []string{c.name, "-help"})
		switch c.name {
		case "status", "restart", "stop", "start":
			// After a name among the flags.
			runs = append(runs, []string{c.name, "mybot", "--json", "--help"})
		}
		// A usage mistake: the message and the pointer to the help.
		runs = append(runs, []string{c.name, "--no-such-flag"})
	}
	runs = append(runs, []string{"--help"}, []string{}, []string{"no-such-command"})
	for _, args := range runs {
		r := runCLI(t, args...)
		assertNoSecret(t, strings.Join(args, " ")+" (stdout)", r.stdout, secrets)
		assertNoSecret(t, strings.Join(args, " ")+" (stderr)", r.stderr, secrets)
	}
	for _, name := range []string{"agent", "bot", "status", "restart"} {
		r := runCLI(t, name, "--help")
		want := "--nats-url=nats://alice:xxxxx@127.0.0.1:4222,nats://xxxxx@127.0.0.2:4222"
		if !strings.Contains(r.stdout, want) {
			t.Errorf("%s --help lacks %q:\n%s", name, want, r.stdout)
		}
	}
}

// TestBuiltBinaryHelpHidesSecrets runs the real binary, as an operator would,
// with the secrets in its environment: `lifeline agent --help` and the rest
// never print them.
func TestBuiltBinaryHelpHidesSecrets(t *testing.T) {
	secrets := secretEnv(t)
	bin := e2eBin(t)
	for _, c := range commands {
		out, err := exec.CommandContext(t.Context(), bin, c.name, "--help").CombinedOutput()
		if c.name == "help" {
			out, err = exec.CommandContext(t.Context(), bin, "--help").CombinedOutput()
		}
		if err != nil {
			t.Errorf("%s --help: %v\n%s", c.name, err, out)
		}
		assertNoSecret(t, c.name+" --help", string(out), secrets)
	}
}

// TestSecretDefaultsHidden covers a credential flag that got a default
// (from the environment, as --nats-url does), whatever the command: its help
// shows that there is one, never what it is.
func TestSecretDefaultsHidden(t *testing.T) {
	clearEnv(t)
	fs := newFlagSet("x")
	fs.String("token", "tok-SECRET", "Token `T`.")
	fs.String("viewer-token", "", "Viewer token `T`.")
	fs.String("nats-password", "pw-SECRET", "Password.")
	fs.String("routes", "nats://r:route-SECRET@h:6222", "Routes.")
	fs.String("http", "0.0.0.0:8000", "Address.")
	var b strings.Builder
	writeHelp(&b, "x", "X.", "", fs)
	out := b.String()
	assertNoSecret(t, "help", out, []string{"SECRET"})
	for _, want := range []string{"--token=xxxxx", "--viewer-token=T", "--nats-password=xxxxx", "--routes=nats://r:xxxxx@h:6222", "--http=0.0.0.0:8000"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "",
		"nats://127.0.0.1:4222":               "nats://127.0.0.1:4222",
		"./data":                              "./data",
		"nats://alice:pw@host:4222":           "nats://alice:xxxxx@host:4222",
		"nats://tok@host:4222":                "nats://xxxxx@host:4222",
		"tls://a:pw@h1:4222, nats://tok@h2":   "tls://a:xxxxx@h1:4222,nats://xxxxx@h2",
		"alice:pw@host:4222":                  "alice:xxxxx@host:4222",
		"tok@host:4222":                       "xxxxx@host:4222",
		"nats://a:p@ss@host:4222":             "nats://a:xxxxx@host:4222",
		"nats://a:p%zz@host:4222":             "nats://a:xxxxx@host:4222",
		"nats://host:4222/x@y":                "nats://host:4222/x@y",
		"nats://a:pw@h1,nats://h2,b:pw2@h3:1": "nats://a:xxxxx@h1,nats://h2,b:xxxxx@h3:1",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEnvironmentErrorHidesSecret: a bad LIFELINE_ value is echoed in the
// error, but a credential flag's never is.
func TestEnvironmentErrorHidesSecret(t *testing.T) {
	f := &flag.Flag{Name: "token"}
	if got := shown(f, "s3cr3t"); got != redacted {
		t.Errorf("shown(--token) = %q, want %q", got, redacted)
	}
	if got := shown(&flag.Flag{Name: "timeout"}, "5x"); got != "5x" {
		t.Errorf("shown(--timeout) = %q, want it as given", got)
	}
}
