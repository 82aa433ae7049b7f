package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Token bounds: a token travels in a header, a cookie-deriving query and a
// URL printed on a terminal, so it must be printable and without spaces.
const (
	minTokenLen   = 16
	maxTokenLen   = 512
	tokenBytes    = 32
	sessionMaxAge = 30 * 24 * time.Hour
	// sessionIDBytes is the random part of a session cookie.
	sessionIDBytes = 16
)

func tokenPath(dataDir string) string { return filepath.Join(dataDir, TokenFile) }

// ensureDataDir creates dir and proves it can be written, so a read-only or
// foreign-owned directory is reported at start with what to do about it.
func ensureDataDir(dir string) error {
	notWritable := func(err error) error { return &DataDirError{Dir: dir, Err: err} }
	if err := os.MkdirAll(dir, 0o700); err != nil { // tokens, logins and history: private
		return notWritable(err)
	}
	f, err := os.CreateTemp(dir, ".lifeline-write-test-*")
	if err != nil {
		return notWritable(err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return notWritable(err)
	}
	return nil
}

// CheckToken refuses a given access token that would not be safe: not
// printable ASCII without spaces, or shorter than 16 characters (anyone who
// reaches the dashboard could guess it). The error is a *TokenError and
// never contains the token.
func CheckToken(t string) error {
	if err := checkGiven(t); err != nil {
		return &TokenError{Err: err}
	}
	return nil
}

// checkGiven is checkToken plus the minimum length a token given by a
// person must have (ErrTokenTooShort).
func checkGiven(t string) error {
	if err := checkToken(t); err != nil {
		return err
	}
	if len(t) < minTokenLen {
		return ErrTokenTooShort
	}
	return nil
}

// checkToken reports whether t can serve as an access token. The error never
// contains the token.
func checkToken(t string) error {
	if t == "" {
		return errors.New("token is empty")
	}
	if len(t) > maxTokenLen {
		return fmt.Errorf("token is longer than %d bytes", maxTokenLen)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return errors.New("token must be printable ASCII without spaces")
		}
	}
	return nil
}

// ViewerTokenFile is the name, inside DataDir, of the file holding the
// generated viewer token: it opens the page and every GET of the API, but
// no restart, stop or start.
const ViewerTokenFile = "dashboard.viewer.token"

func viewerTokenPath(dataDir string) string { return filepath.Join(dataDir, ViewerTokenFile) }

// settleToken returns the token in force and whether it lives in the token
// file: d.Token if set, else a sane token already in the file, else a fresh
// one written there with mode 0600.
func (d *Dashboard) settleToken() (token string, fromFile bool, err error) {
	return d.settleTokenIn(d.Token, tokenPath(d.DataDir), false)
}

// viewerAuth is the read-only token in force and what it takes to check
// it and the sessions it opened.
type viewerAuth struct {
	token string
	keys  sessionKeys
	where string // for the banner: the token file, or how it was given
}

// settleViewer settles the viewer token as settleToken does the operator's:
// d.ViewerToken if set, else DataDir/dashboard.viewer.token, else a fresh
// one written there (0600). It must differ from the operator token, or a
// viewer would be an operator.
func (d *Dashboard) settleViewer(operator string) (viewerAuth, error) {
	path := viewerTokenPath(d.DataDir)
	if d.ViewerToken != "" {
		if err := CheckViewerToken(d.ViewerToken, operator); err != nil {
			return viewerAuth{}, err
		}
	}
	token, fromFile, err := d.settleTokenIn(d.ViewerToken, path, true)
	if err != nil {
		return viewerAuth{}, err
	}
	if newSessionKeys(operator).tokenOK(token) {
		if fromFile {
			return viewerAuth{}, &TokenError{Viewer: true, Path: path, Err: ErrSameTokens}
		}
		return viewerAuth{}, &TokenError{Viewer: true, Err: ErrSameTokens}
	}
	where := "given with --viewer-token"
	if fromFile {
		where = path
	}
	return viewerAuth{token: token, keys: newViewerKeys(token), where: where}, nil
}

// CheckViewerToken refuses a given viewer token that would not be safe:
// not printable ASCII without spaces, shorter than 16 characters (a viewer
// token is handed to more people than the access token, and sees every
// bot), or equal to the access token operator (then every viewer would be
// an operator); operator "" skips that last check. The error is a
// *TokenError and never contains either token.
func CheckViewerToken(viewer, operator string) error {
	if err := checkGiven(viewer); err != nil {
		return &TokenError{Viewer: true, Err: err}
	}
	if operator != "" && newSessionKeys(operator).tokenOK(viewer) {
		return &TokenError{Viewer: true, Err: ErrSameTokens}
	}
	return nil
}

// ViewerAccessToken returns the viewer token in force, "" before Open: the
// ViewerToken field, or the one read from or written to the viewer token
// file.
func (d *Dashboard) ViewerAccessToken() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.viewer.token
}

// settleTokenIn returns given if set (after checking it), else a sane token
// already in path, else a fresh one written there with mode 0600. viewer
// says which token it is, for logs and errors; neither ever contains the
// token.
func (d *Dashboard) settleTokenIn(given, path string, viewer bool) (token string, fromFile bool, err error) {
	what := "access token"
	if viewer {
		what = "viewer token"
	}
	if given != "" {
		if err := checkGiven(given); err != nil {
			return "", false, &TokenError{Viewer: viewer, Err: err}
		}
		return given, false, nil
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		t := strings.TrimSpace(string(data))
		if cerr := checkToken(t); cerr == nil && len(t) >= minTokenLen {
			warnLoosePerms(d, path)
			return t, true, nil
		}
		d.log.Warn(what+" file unusable; writing a new one", "path", path)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return "", false, fmt.Errorf("read %s file: %w", what, err)
	}
	t, err := generateToken()
	if err != nil {
		return "", false, err
	}
	if err := writeFileAtomic(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s file: %w", what, err)
	}
	d.log.Info("generated "+what, "path", path)
	return t, true, nil
}

func warnLoosePerms(d *Dashboard, path string) {
	if runtime.GOOS == "windows" {
		return // mode bits say nothing about ACLs there
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		d.log.Warn("token file is readable by others; run chmod 600 on it", "path", path, "mode", fi.Mode().Perm().String())
	}
}

func generateToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// writeFileAtomic writes data to a temp file in path's directory and renames
// it over path, so a crash never leaves a half-written token behind.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil && runtime.GOOS != "windows" {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// sessionKeys derives everything a browser session needs from the token, so
// sessions survive a dashboard restart and die when the token changes, and
// the cookie never carries the token itself.
type sessionKeys struct {
	tokenSum [sha256.Size]byte // compared in constant time, length-independent
	mac      []byte            // HMAC key for session cookies and CSRF tokens
	label    string            // signed into every session: "session" or "viewer session"
}

// newSessionKeys derives the operator's keys from the access token.
func newSessionKeys(token string) sessionKeys {
	mac := sha256.Sum256([]byte("lifeline session key\x00" + token))
	return sessionKeys{tokenSum: sha256.Sum256([]byte(token)), mac: mac[:], label: "session"}
}

// newViewerKeys derives a viewer's keys from the viewer token. Both the key
// and the signed label differ from the operator's, so a viewer session can
// never pass for an operator session, even were the two tokens equal.
func newViewerKeys(token string) sessionKeys {
	mac := sha256.Sum256([]byte("lifeline viewer session key\x00" + token))
	return sessionKeys{tokenSum: sha256.Sum256([]byte(token)), mac: mac[:], label: "viewer session"}
}

// tokenOK compares a presented token with the real one in constant time.
func (k sessionKeys) tokenOK(presented string) bool {
	sum := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(sum[:], k.tokenSum[:]) == 1
}

func (k sessionKeys) sign(parts ...string) string {
	h := hmac.New(sha256.New, k.mac)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// newSession returns a cookie value "v2.<id>.<unix issued>.<mac>". The
// random id lets one session be ended (logout) without ending the others.
func (k sessionKeys) newSession(now time.Time) string {
	id := randomHex(sessionIDBytes)
	ts := strconv.FormatInt(now.Unix(), 10)
	return "v2." + id + "." + ts + "." + k.sign(k.label, id, ts)
}

// parseSession checks a cookie value's MAC and age and returns its id and
// when it was issued (unix seconds). Whether it was ended since is the
// session table's to say.
func (k sessionKeys) parseSession(v string, now time.Time) (id string, issued int64, ok bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 4 || parts[0] != "v2" || len(parts[1]) != 2*sessionIDBytes {
		return "", 0, false
	}
	id, ts, mac := parts[1], parts[2], parts[3]
	want := k.sign(k.label, id, ts)
	if subtle.ConstantTimeCompare([]byte(mac), []byte(want)) != 1 {
		return "", 0, false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", 0, false
	}
	age := now.Sub(time.Unix(sec, 0))
	if age < -time.Minute || age >= sessionMaxAge {
		return "", 0, false
	}
	return id, sec, true
}

// sessionOK checks a cookie value's MAC and age.
func (k sessionKeys) sessionOK(v string, now time.Time) bool {
	_, _, ok := k.parseSession(v, now)
	return ok
}

// logoutToken is what a session must show to end itself: logging a browser
// out is a write, so it needs a token another site cannot know. It differs
// from the CSRF token, which a viewer never gets.
func (k sessionKeys) logoutToken(session string) string { return k.sign("logout", session) }

func (k sessionKeys) logoutOK(session, presented string) bool {
	return presented != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(k.logoutToken(session))) == 1
}

// csrf is the CSRF token that goes with a session cookie value.
func (k sessionKeys) csrf(session string) string { return k.sign("csrf", session) }

func (k sessionKeys) csrfOK(session, presented string) bool {
	return presented != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(k.csrf(session))) == 1
}

// limiter slows down token guessing on /login: after a few wrong tokens from
// one address, further attempts are refused for a doubling wait.
type limiter struct {
	mu    sync.Mutex
	fails map[string]*failures
}

type failures struct {
	n    int
	last time.Time
}

const (
	freeFailures  = 5
	maxLockout    = time.Minute
	forgetAfter   = 15 * time.Minute
	maxTrackedIPs = 10000
)

func newLimiter() *limiter { return &limiter{fails: make(map[string]*failures)} }

// wait returns how long ip must still wait before its next attempt.
func (l *limiter) wait(ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[ip]
	if f == nil || f.n < freeFailures {
		return 0
	}
	if left := f.last.Add(lockout(f.n)).Sub(now); left > 0 {
		return left
	}
	return 0
}

func lockout(n int) time.Duration {
	d := time.Second << min(n-freeFailures, 6)
	return min(d, maxLockout)
}

func (l *limiter) fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= maxTrackedIPs {
		for k, f := range l.fails {
			if now.Sub(f.last) > forgetAfter {
				delete(l.fails, k)
			}
		}
		if len(l.fails) >= maxTrackedIPs {
			clear(l.fails) // under a flood, forgetting beats growing without bound
		}
	}
	f := l.fails[ip]
	if f == nil || now.Sub(f.last) > forgetAfter {
		f = &failures{}
		l.fails[ip] = f
	}
	f.n++
	f.last = now
}

func (l *limiter) succeed(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, ip)
}

// randomHex returns n random bytes in hex. crypto/rand does not fail on the
// platforms Go supports (it crashes the program instead).
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
