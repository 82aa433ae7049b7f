package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDashboardShortTokenRefused: a --token (or LIFELINE_TOKEN) under 16
// characters is bad usage, refused before anything starts, not a warning;
// the message names --token and never shows the token.
func TestDashboardShortTokenRefused(t *testing.T) {
	clearEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		name, token string
		env         bool
	}{
		{"short", "s3cret", false},
		{"short from env", "s3cret", true},
		{"fifteen", "fifteen-chars-x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"dashboard", "--data", data, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}
			if tc.env {
				t.Setenv("LIFELINE_TOKEN", tc.token)
			} else {
				args = append(args, "--token", tc.token)
			}
			r := runCLI(t, args...)
			wantOneLine(t, tc.name, r, exitUsage, "--token", "shorter than 16 characters")
			if strings.Contains(r.stderr, tc.token) {
				t.Errorf("the message shows the token: %q", r.stderr)
			}
		})
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data dir was made by a refused command line: %v", err)
	}
}
