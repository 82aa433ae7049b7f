package dashboard

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"reflect"
	"syscall"
)

// The errors below say what went wrong in the Dashboard's own terms, its
// fields and listeners, never in a command line's: the program that filled
// the fields (cmd/lifeline) knows which flag set them and turns these into
// advice with errors.Is and errors.As.

var (
	// ErrTokenTooShort: a given token is shorter than 16 characters, so
	// anyone who reaches the page could guess it. Returned in a TokenError.
	ErrTokenTooShort = fmt.Errorf("it is shorter than %d characters", minTokenLen)
	// ErrSameTokens: the viewer token is the access token, which would make
	// every viewer an operator. Returned in a TokenError.
	ErrSameTokens = errors.New("it must differ from the access token")
	// ErrCAWithoutExternalNATS: NATSCA is set without ExternalNATS, where it
	// means nothing: the dashboard reaches its embedded bus in-process.
	ErrCAWithoutExternalNATS = errors.New("a CA for the bus is only for an existing NATS: the dashboard reaches its embedded bus in-process")
	// ErrBusCA wraps why the NATSCA file cannot be read.
	ErrBusCA = errors.New("read the bus CA")
	// ErrNoCACert: the NATSCA file holds no PEM certificate.
	ErrNoCACert = errors.New("holds no PEM certificate")
	// ErrHTTPSCert wraps why TLSCert and TLSKey cannot be loaded.
	ErrHTTPSCert = errors.New("load HTTPS certificate")
)

// TokenError is a token Open cannot use. It never contains the token.
type TokenError struct {
	Viewer bool   // the viewer token; else the access token
	Path   string // the token file it was read from; "" when given in a field
	Err    error  // ErrTokenTooShort, ErrSameTokens, or what is wrong with its characters
}

func (e *TokenError) Error() string {
	what := "access token"
	if e.Viewer {
		what = "viewer token"
	}
	if e.Path != "" {
		what += " in " + e.Path
	}
	return what + ": " + e.Err.Error()
}

func (e *TokenError) Unwrap() error { return e.Err }

// DataDirError is a DataDir that cannot be created or written.
type DataDirError struct {
	Dir string
	Err error
}

func (e *DataDirError) Error() string {
	return fmt.Sprintf("data dir %s is not writable: %v", e.Dir, e.Err)
}

func (e *DataDirError) Unwrap() error { return e.Err }

// ListenError is a listener Open could not start: What is "http" for the
// page and API on HTTPAddr, or "bus" for the embedded bus on NATSListen
// (its port, its TLS or its store). A port in use wraps syscall.EADDRINUSE
// (windows.WSAEADDRINUSE on Windows).
type ListenError struct {
	What string // "http" or "bus"
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	if e.What == "http" {
		return fmt.Sprintf("listen for HTTP on %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("start bus: %v", e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// UnreachableError is an existing NATS (ExternalNATS) that Run could not
// reach. URL has its passwords redacted.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	if e.UnknownCA() {
		return fmt.Sprintf("cannot reach the bus at %s: its TLS certificate is signed by an unknown CA (%v)", e.URL, e.Err)
	}
	return fmt.Sprintf("cannot reach the bus at %s: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// UnknownCA reports whether the bus's TLS certificate is signed by a CA
// this dashboard does not trust (NATSCA would name it).
func (e *UnreachableError) UnknownCA() bool { return unknownCA(e.Err) }

func unknownCA(err error) bool {
	var e x509.UnknownAuthorityError
	return errors.As(err, &e)
}

// sameCause reports whether two failures to reach the bus have one cause,
// so a failure that repeats on every reconnect is logged once although the
// client makes a new error value each attempt. The cause is the system's
// error number for a refused or unreachable address, the name and reason of
// a failed lookup, an unknown CA, or else the innermost error: one value
// (a sentinel such as nats.ErrAuthorization), or one type when it is not a
// pointer (a TLS record error, a hostname mismatch).
func sameCause(a, b error) bool {
	if ca, cb := unknownCA(a), unknownCA(b); ca || cb {
		return ca && cb
	}
	var ea, eb syscall.Errno
	if oka, okb := errors.As(a, &ea), errors.As(b, &eb); oka || okb {
		return oka && okb && ea == eb
	}
	var da, db *net.DNSError
	if oka, okb := errors.As(a, &da), errors.As(b, &db); oka || okb {
		return oka && okb && da.Name == db.Name && da.Err == db.Err
	}
	ra, rb := innermost(a), innermost(b)
	ta := reflect.TypeOf(ra)
	if ta != reflect.TypeOf(rb) {
		return false
	}
	if ta.Kind() != reflect.Pointer {
		return true
	}
	return ra == rb
}

// innermost unwraps err down to the error it started from.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
