//go:build !ngrok

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNgrokNotBuilt: the default build has --ngrok, refuses it before
// anything starts, and says how to get a build that has it.
func TestNgrokNotBuilt(t *testing.T) {
	clearEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	for _, token := range []string{"", "an-ngrok-authtoken-0123456789"} {
		t.Setenv("NGROK_AUTHTOKEN", token)
		r := runCLI(t, "dashboard", "--ngrok", "--data", data)
		wantOneLine(t, "--ngrok", r, exitFailure, "built without ngrok", "make build TAGS=ngrok")
		if token != "" && strings.Contains(r.stderr, token) {
			t.Errorf("the message shows the authtoken: %q", r.stderr)
		}
	}
	t.Setenv("LIFELINE_NGROK", "true")
	wantOneLine(t, "LIFELINE_NGROK", runCLI(t, "dashboard", "--data", data), exitFailure, "make build TAGS=ngrok")
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data dir was made: %v", err)
	}
	if r := runCLI(t, "dashboard", "--help"); !strings.Contains(r.stdout, "TAGS=ngrok") {
		t.Errorf("dashboard --help does not say how to build with ngrok:\n%s", r.stdout)
	}
}
