package dashboard

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/lifeline-dev/lifeline/dashboard/internal/atomicfile"
	"github.com/lifeline-dev/lifeline/dashboard/session"
)

// Token bounds: a token travels in a header, a cookie-deriving query and a
// URL printed on a terminal, so it must be printable and without spaces.
const (
	minTokenLen = 16
	maxTokenLen = 512
	tokenBytes  = 32
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
// file: d.cfg.Token if set, else a sane token already in the file, else a fresh
// one written there with mode 0600.
func (d *Dashboard) settleToken() (token string, fromFile bool, err error) {
	return d.settleTokenIn(d.cfg.Token, tokenPath(d.cfg.DataDir), false)
}

// viewerAuth is the read-only token in force and what it takes to check
// it and the sessions it opened.
type viewerAuth struct {
	token string
	keys  session.Keys
	where string // for the banner: the token file, or how it was given
}

// settleViewer settles the viewer token as settleToken does the operator's:
// d.cfg.ViewerToken if set, else DataDir/dashboard.viewer.token, else a fresh
// one written there (0600). It must differ from the operator token, or a
// viewer would be an operator.
func (d *Dashboard) settleViewer(operator string) (viewerAuth, error) {
	path := viewerTokenPath(d.cfg.DataDir)
	if d.cfg.ViewerToken != "" {
		if err := CheckViewerToken(d.cfg.ViewerToken, operator); err != nil {
			return viewerAuth{}, err
		}
	}
	token, fromFile, err := d.settleTokenIn(d.cfg.ViewerToken, path, true)
	if err != nil {
		return viewerAuth{}, err
	}
	if session.NewKeys(operator).TokenOK(token) {
		if fromFile {
			return viewerAuth{}, &TokenError{Viewer: true, Path: path, Err: ErrSameTokens}
		}
		return viewerAuth{}, &TokenError{Viewer: true, Err: ErrSameTokens}
	}
	where := "given with --viewer-token"
	if fromFile {
		where = path
	}
	return viewerAuth{token: token, keys: session.NewViewerKeys(token), where: where}, nil
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
	if operator != "" && session.NewKeys(operator).TokenOK(viewer) {
		return &TokenError{Viewer: true, Err: ErrSameTokens}
	}
	return nil
}

// ViewerAccessToken returns the viewer token in force: Config.ViewerToken,
// or the one read from or written to the viewer token file.
func (d *Dashboard) ViewerAccessToken() string {
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
	if err := atomicfile.Write(path, []byte(t+"\n"), 0o600); err != nil {
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

// randomHex returns n random bytes in hex. crypto/rand does not fail on the
// platforms Go supports (it crashes the program instead).
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
