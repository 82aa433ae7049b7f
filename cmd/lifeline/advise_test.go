package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lifeline-dev/lifeline/dashboard"
)

// TestCLIAdviceOncePerError: every error gets advice, even one whose text
// holds "; ", and never two pieces: advice chosen closer to the cause stays.
func TestCLIAdviceOncePerError(t *testing.T) {
	semicolon := errors.New("is a symbolic link; refusing to follow it")
	if got := advise(semicolon, "do this").Error(); got != "is a symbolic link; refusing to follow it; do this" {
		t.Errorf("advice on an error holding \"; \": %q", got)
	}
	inner := &advice{err: errors.New("port taken"), todo: "choose another"}
	got := advise(fmt.Errorf("start: %w", inner), "generic")
	if strings.Contains(got.Error(), "generic") || !strings.HasSuffix(got.Error(), "; choose another") {
		t.Errorf("advice on advice: %q", got)
	}
	if advise(nil, "x") != nil {
		t.Error("advice on nil")
	}
}

// TestCLITokenFlagErr: the dashboard's token errors name no flag; cmd names
// the flag that gave the token, with the same words as ever.
func TestCLITokenFlagErr(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{dashboard.CheckToken("short"), "check --token: it is shorter than 16 characters (openssl rand -hex 32 makes a good one)"},
		{dashboard.CheckViewerToken("short", ""), "check --viewer-token: it is shorter than 16 characters (openssl rand -hex 32 makes a good one)"},
		{dashboard.CheckViewerToken("0123456789abcdef", "0123456789abcdef"), "check --viewer-token: it must differ from the access token"},
		{dashboard.CheckToken("has space 0123456789"), "check --token: token must be printable ASCII without spaces"},
	} {
		err := tokenFlagErr(tc.err)
		if err == nil || err.Error() != tc.want {
			t.Errorf("tokenFlagErr(%v) = %v, want %q", tc.err, err, tc.want)
		}
		if !errors.Is(err, errors.Unwrap(tc.err)) {
			t.Errorf("tokenFlagErr(%v) lost the cause", tc.err)
		}
	}
}
