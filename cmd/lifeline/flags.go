package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
)

// envPrefix starts the environment variable that can set any flag:
// --nats-url is also LIFELINE_NATS_URL.
const envPrefix = "LIFELINE_"

// envName returns the environment variable for flag name: "heartbeat-timeout"
// becomes LIFELINE_HEARTBEAT_TIMEOUT.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// lookupEnv returns the value of the environment variable key. An empty or
// blank value counts as unset, as it does for NATS_URL, so that
// `LIFELINE_TOKEN= lifeline dashboard` or a compose file's empty ${VAR} falls
// back to the default.
func lookupEnv(key string) (string, bool) {
	v := os.Getenv(key)
	if strings.TrimSpace(v) == "" {
		return "", false
	}
	return v, true
}

// newFlagSet returns an empty FlagSet for sub-command name. It prints
// nothing: errors and -h come back from Parse, so that main alone decides
// what the operator reads and the exit status.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("lifeline "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses args into fs, then sets every flag not given on the
// command line from its LIFELINE_<FLAG> environment variable, and returns the
// positional arguments. With interspersed, positional arguments may stand
// among the flags (`status mybot --json`); without, the first one ends the
// flags (`agent --name x python3 bot.py -v`). A "--" always ends the flags.
func parseArgs(fs *flag.FlagSet, args []string, interspersed bool) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); !interspersed || len(rest) == 0 || (n > 0 && args[n-1] == "--") {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return positional, setFromEnvironment(fs)
}

// setFromEnvironment sets each flag of fs that the command line did not set
// from its LIFELINE_<FLAG> variable, if any. It runs after fs.Parse so that
// fs.Visit tells which flags were given: an explicit flag always wins, even
// over a malformed variable. A bad value is an error naming the variable.
func setFromEnvironment(fs *flag.FlagSet) error {
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		key := envName(f.Name)
		v, ok := lookupEnv(key)
		if !ok || given[f.Name] || err != nil {
			return
		}
		if isBoolFlag(f) {
			// Also accept yes and no, as the command line used to.
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "yes":
				v = "true"
			case "no":
				v = "false"
			}
		}
		if fs.Set(f.Name, v) != nil {
			// The flag package's own reason is a bare "parse error".
			err = fmt.Errorf("%s=%q: want %s (for --%s)", key, shown(f, v), want(f), f.Name)
		}
	})
	return err
}

// isBoolFlag reports whether f is a switch that takes no value.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// isDuration reports whether f holds a time.Duration.
func isDuration(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(time.Duration)
	return ok
}

// want says what kind of value f takes, for error messages.
func want(f *flag.Flag) string {
	switch {
	case isBoolFlag(f):
		return "true or false"
	case isDuration(f):
		return "a duration such as 5s, 250ms or 1m30s"
	default:
		name, _ := flag.UnquoteUsage(f)
		return "a " + name
	}
}

// helpWidth is the width help text is wrapped to; helpIndent is where the
// flags' descriptions start.
const (
	helpWidth  = 80
	helpIndent = 28
)

// writeHelp prints a sub-command's help: the usage line, its summary, text
// (what it does, and examples), then its flags in the given order, each
// with its default and its environment variable. Flags missing from order
// follow in alphabetical order, so none is ever left out.
func writeHelp(w io.Writer, usage, summary, text string, fs *flag.FlagSet, order ...string) {
	fmt.Fprintf(w, "Usage: %s\n\n", usage)
	for _, line := range wrap(summary, helpWidth) {
		fmt.Fprintln(w, line)
	}
	if text != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(text, "\n"))
	}
	fmt.Fprintln(w, "\nFlags:")
	var flags []*flag.Flag
	listed := make(map[string]bool)
	for _, name := range order {
		if f := fs.Lookup(name); f != nil && !listed[name] {
			flags = append(flags, f)
			listed[name] = true
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] {
			flags = append(flags, f)
		}
	})
	for _, f := range flags {
		placeholder, usage := flag.UnquoteUsage(f)
		label := "  --" + f.Name
		switch {
		case isBoolFlag(f):
		case f.DefValue != "":
			label += "=" + defaultText(f)
		default:
			label += "=" + strings.ToUpper(placeholder)
		}
		writeItem(w, helpIndent, label, strings.TrimSuffix(usage, ".")+" ($"+envName(f.Name)+").")
	}
	writeItem(w, helpIndent, "  -h, --help", "Show this help.")
	if len(flags) == 0 {
		return
	}
	fmt.Fprint(w, `
A flag takes one dash or two, and its value after a space or "=" (--name x,
-name=x). A flag on the command line wins over its $LIFELINE_ variable; an
empty variable counts as unset.
`)
}

// writeItem prints label and its description wrapped beside it from column
// indent, or below it when the label is too wide.
func writeItem(w io.Writer, indent int, label, description string) {
	if len(label) > indent-2 {
		fmt.Fprintln(w, label)
		label = ""
	}
	for _, line := range wrap(description, helpWidth-indent) {
		fmt.Fprintf(w, "%-*s%s\n", indent, label, line)
		label = ""
	}
}

// defaultText prints f's default the way a person writes it: 60s rather
// than time.Duration's 1m0s. A default can come from the environment
// (--nats-url's from $NATS_URL), and help is pasted into issues and chats, so
// it never shows a secret: see shown.
func defaultText(f *flag.Flag) string {
	s := shown(f, f.DefValue)
	if isDuration(f) {
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
	}
	return s
}

// redacted stands for a secret in help and messages, as bus.Redact writes a
// password.
const redacted = "xxxxx"

// isSecretFlag reports whether the flag called name holds a credential
// itself (--token, --viewer-token): its value is never printed. By name,
// so that a credential flag added later is covered without a list to update.
func isSecretFlag(name string) bool {
	for _, word := range []string{"token", "password", "secret"} {
		if strings.Contains(name, word) {
			return true
		}
	}
	return false
}

// shown returns value v of flag f as it may be printed: a credential flag's
// value hidden whole, and in any other value the credentials of every URL
// hidden (URL flags take comma lists, and any string flag may be given one).
func shown(f *flag.Flag, v string) string {
	if v != "" && isSecretFlag(f.Name) {
		return redacted
	}
	return redactURLs(v)
}

// redactURLs hides the credentials in a comma-separated URL list:
// "nats://alice:secret@host" becomes "nats://alice:xxxxx@host" (bus.Redact),
// and a user without a password, which NATS takes as a token
// ("nats://s3cr3t@host"), becomes "nats://xxxxx@host". nats.go also takes a
// URL without its scheme ("alice:secret@host:4222"), which url.Parse reads
// as something else: a part with an "@" that is not a full URL is redacted
// as text, up to its last "@".
func redactURLs(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	parts := strings.Split(bus.Redact(s), ",")
	for i, p := range parts {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		u, err := url.Parse(strings.TrimSpace(p))
		if err == nil && u.Host != "" && strings.Contains(p, "://") {
			if u.User != nil && !hasPassword(u.User) {
				u.User = url.User(redacted)
				parts[i] = u.String()
			}
			continue // the "@" is in the path, or bus.Redact hid the password
		}
		start := 0
		if j := strings.Index(p, "://"); j >= 0 && j < at {
			start = j + len("://")
		}
		user, _, hasColon := strings.Cut(p[start:at], ":")
		if !hasColon {
			user = ""
		}
		if user != "" {
			user += ":"
		}
		parts[i] = p[:start] + user + redacted + p[at:]
	}
	return strings.Join(parts, ",")
}

// hasPassword reports whether u carries a password.
func hasPassword(u *url.Userinfo) bool {
	_, ok := u.Password()
	return ok
}

// wrap splits s into lines of at most width bytes, breaking between words.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) > width:
			lines = append(lines, line)
			line = word
		default:
			line += " " + word
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
