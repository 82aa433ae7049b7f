package bus

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// The logins a dashboard creates in its bus directory, one nkey seed file
// each (see EnsureDir). Their names are also their inbox names.
const (
	LoginOperator = "operator" // watch and command every bot
	LoginViewer   = "viewer"   // watch only
	LoginAgent    = "agent"    // supervise any bot and be it
	LoginBot      = "bot"      // be any bot: heartbeat, answer shutdown
)

// DirLogins lists the logins of a bus directory with their roles.
var dirLogins = []struct {
	name string
	role Role
	what string
}{
	{LoginOperator, RoleOperator, "watch and command every bot"},
	{LoginViewer, RoleViewer, "watch every bot, command none"},
	{LoginAgent, RoleAgent, "supervise any bot and be it"},
	{LoginBot, RoleBot, "be any bot: publish its heartbeats, answer its shutdown"},
}

// RouteSecretFile is the file in a bus directory holding the password
// clustered dashboards' servers present to each other on their routes.
const RouteSecretFile = "route.secret"

// DefaultDir is where clients look for the seed files of a dashboard started
// in the same directory with the default --data.
const DefaultDir = "data/bus"

// ErrNotPrivate refuses a credentials file or directory that other users may
// read or replace.
var ErrNotPrivate = errors.New("not private to its owner")

// SeedFile is the path of login's seed file in bus directory dir.
func SeedFile(dir, login string) string { return filepath.Join(dir, login+".nk") }

// EnsureDir creates bus directory dir (mode 0700) with a seed file (0600) for
// each of the operator, viewer, agent and bot logins and a route secret, or
// reuses the ones already there, so dashboards of one cluster share accounts
// by sharing the directory. It returns the users they define.
func EnsureDir(dir string) ([]User, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bus directory: %w", err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, err
	}
	var users []User
	for _, l := range dirLogins {
		path := SeedFile(dir, l.name)
		kp, err := readSeed(path)
		if errors.Is(err, fs.ErrNotExist) {
			kp, err = writeSeed(path, l.name, l.what)
		}
		if err != nil {
			return nil, err
		}
		pub, err := kp.PublicKey()
		kp.Wipe()
		if err != nil {
			return nil, fmt.Errorf("bus login %s: %w", l.name, err)
		}
		users = append(users, User{Name: l.name, NKey: pub, Role: l.role, Bot: "*"})
	}
	if _, err := ensureSecret(filepath.Join(dir, RouteSecretFile)); err != nil {
		return nil, err
	}
	return users, nil
}

// RouteSecret reads the route password of bus directory dir, or "" when it
// has none.
func RouteSecret(dir string) (string, error) {
	b, err := readPrivate(filepath.Join(dir, RouteSecretFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func ensureSecret(path string) (string, error) {
	if s, err := RouteSecret(filepath.Dir(path)); err != nil || s != "" {
		return s, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("route secret: %w", err)
	}
	s := hex.EncodeToString(b)
	if err := writePrivate(path, []byte(s+"\n")); err != nil {
		return "", err
	}
	return s, nil
}

func writeSeed(path, login, what string) (nkeys.KeyPair, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("bus login %s: %w", login, err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("bus login %s: %w", login, err)
	}
	// The comment names the login, which is also its inbox name; nats.go and
	// the stock NATS CLI skip it and read the seed line.
	var b bytes.Buffer
	fmt.Fprintf(&b, "# lifeline login: %s (%s)\n", login, what)
	fmt.Fprintf(&b, "# stock NATS CLI: nats --nkey %s --inbox-prefix %s ...\n", path, InboxPrefix(login))
	b.Write(seed)
	b.WriteByte('\n')
	if err := writePrivate(path, b.Bytes()); err != nil {
		return nil, err
	}
	return kp, nil
}

// writePrivate creates path with mode 0600, refusing to follow a symlink or
// to replace a file that exists.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readPrivate reads a credentials file, refusing a symlink and a file that
// other users may read or write.
func readPrivate(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 && !isWindows {
		return nil, fmt.Errorf("read %s: mode %04o: %w (chmod 600 %s)", path, st.Mode().Perm(), ErrNotPrivate, path)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b.Bytes(), nil
}

// unwrapPath keeps the cause of a *PathError (the caller names the path).
func unwrapPath(err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func checkPrivateDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("bus directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("bus directory %s: not a directory", dir)
	}
	if st.Mode().Perm()&0o077 != 0 && !isWindows {
		return fmt.Errorf("bus directory %s: mode %04o: %w (chmod 700 %s)", dir, st.Mode().Perm(), ErrNotPrivate, dir)
	}
	return nil
}

func readSeed(path string) (nkeys.KeyPair, error) {
	b, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	defer wipe(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("read %s: %w", path, ErrNotUserSeed)
	}
	return kp, nil
}

// ErrNotUserSeed refuses a seed file that holds no NATS user seed ("SU...").
var ErrNotUserSeed = errors.New("not a NATS user nkey seed")

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// loginName returns the login a seed file names in its "# lifeline login:"
// comment, or "" when it names none (a seed made with `nk -gen user`).
func loginName(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "# lifeline login:")
		if !ok {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 && validToken(f[0], 64) {
			return f[0]
		}
	}
	return ""
}

// InboxPrefix is where login receives its replies. Each login may subscribe
// only below its own prefix, so no login reads another's replies.
func InboxPrefix(login string) string { return "_INBOX." + login }

// Login is how a client proves who it is: an nkey seed, else the user and
// password in the URL, else nothing (a bus that takes anyone).
type Login struct {
	// NkeyFile is the seed file the login came from, if any, for messages.
	NkeyFile string
	// Name is the login's name on the bus and so its inbox name: the
	// seed's "# lifeline login:" name, else its public key; or the URL's
	// user.
	Name string
	// seed is held in memory from the start, so a login outlives its file
	// (a data directory deleted under a running agent).
	seed string
}

// EnvSeed carries a seed to a child process, as an agent hands its bot its
// login: in the environment, which only the same user can read, never in
// argv.
const EnvSeed = "LIFELINE_NATS_SEED"

// Seed returns the login's nkey seed (with its "# lifeline login:" line),
// or "" for a password login; it is for handing to a child in EnvSeed, never
// for printing.
func (l Login) Seed() string { return l.seed }

// Options returns the nats.go options that log in as l and receive replies
// in l's own inbox.
func (l Login) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if l.seed != "" {
		kp, err := nkeys.ParseDecoratedNKey([]byte(l.seed))
		if err != nil {
			return nil, fmt.Errorf("bus login: %w", err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("bus login: %w", err)
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	if l.Name != "" {
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(l.Name)))
	}
	return opts, nil
}

// LoginFromSeed is the login of seed, as handed on in EnvSeed.
func LoginFromSeed(seed string) (Login, error) {
	return parseLogin([]byte(seed), EnvSeed)
}

// ResolveLogin settles how a client logs in to urls: with nkeyFile when
// given; else with the URL's user when it has one; else, when every URL is
// on loopback and the default bus directory beside us holds login's seed
// (the dashboard was started in this directory), with that file. login ""
// looks for no default.
func ResolveLogin(urls, nkeyFile, login string) (Login, error) {
	if nkeyFile == "" {
		if user := urlUser(urls); user != "" {
			return Login{Name: user}, nil
		}
		if login == "" || !allLoopback(urls) {
			return Login{}, nil
		}
		path := SeedFile(DefaultDir, login)
		if _, err := os.Lstat(path); err != nil {
			return Login{}, nil
		}
		nkeyFile = path
	}
	b, err := readPrivate(nkeyFile)
	if err != nil {
		return Login{}, fmt.Errorf("bus login: %w", err)
	}
	defer wipe(b)
	l, err := parseLogin(b, nkeyFile)
	l.NkeyFile = nkeyFile
	return l, err
}

func parseLogin(b []byte, from string) (Login, error) {
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return Login{}, fmt.Errorf("bus login: read %s: %w", from, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return Login{}, fmt.Errorf("bus login: read %s: %w", from, ErrNotUserSeed)
	}
	name := loginName(b)
	if name == "" {
		name = pub
	}
	seed, err := kp.Seed()
	if err != nil {
		return Login{}, fmt.Errorf("bus login: read %s: %w", from, err)
	}
	return Login{Name: name, seed: "# lifeline login: " + name + "\n" + string(seed) + "\n"}, nil
}

// urlUser returns the user of the first URL in the list that has one.
func urlUser(urls string) string {
	for _, p := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(p))
		if err == nil && u.User != nil && u.User.Username() != "" {
			return u.User.Username()
		}
	}
	return ""
}

func allLoopback(urls string) bool {
	for _, p := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			return false
		}
		host := u.Hostname()
		if u.Host == "" {
			// "127.0.0.1:4222" without a scheme.
			h, _, err := net.SplitHostPort(strings.TrimSpace(p))
			if err != nil {
				return false
			}
			host = h
		}
		if !isLoopback(host) {
			return false
		}
	}
	return true
}

// DashboardLogin is the inbox name of the dashboards' own logins, so that
// agents can tell a command from a dashboard's page from one sent on the
// bus. A users file may not take it.
const DashboardLogin = "dashboard"

// LoginFromInbox returns the login whose inbox reply is (see InboxPrefix),
// or "" when the reply subject names none (a client with the default
// inbox). The bus lets each login receive replies only in its own inbox, so
// a requester that names another login's inbox never hears the answer; only
// logins that may send the request at all can do that.
func LoginFromInbox(reply string) string {
	rest, ok := strings.CutPrefix(reply, "_INBOX.")
	if !ok {
		return ""
	}
	t := strings.Split(rest, ".")
	// "_INBOX.LOGIN.NUID[.TOKEN]"; a default inbox is "_INBOX.NUID[.TOKEN]",
	// whose second token, if any, is a short request token, not a NUID.
	if len(t) < 2 || len(t[1]) != nuidLen || !validToken(t[0], 64) {
		return ""
	}
	return t[0]
}

// nuidLen is the length of the NUIDs nats.go ends its inbox names with.
const nuidLen = 22

// Attribute says who asked, for events and logs: the login the bus
// vouches for, with what the requester said of itself beside it.
func Attribute(login, said string) string {
	switch {
	case login == "" && said == "":
		return "bus"
	case login == "":
		return "unknown login (" + said + ")"
	case said == "":
		return login
	}
	return login + " (" + said + ")"
}
