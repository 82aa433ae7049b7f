//go:build !ngrok

package main

import (
	"log/slog"

	"github.com/lifeline-dev/lifeline/dashboard"
)

// The default build links no ngrok SDK (see ngrok_on.go for why): --ngrok
// exists, and says how to get a build that has it.

const ngrokUsage = "Also serve the page and API on a public ngrok URL (printed at start; the same tokens guard it), for operators outside the network. Needs an ngrok authtoken in $NGROK_AUTHTOKEN, and a lifeline built with ngrok: make build TAGS=ngrok (this one was not)."

// newNgrokRemote refuses --ngrok in a build without ngrok.
func newNgrokRemote(string, *slog.Logger) (dashboard.RemoteListener, error) {
	return nil, errNgrokNotBuilt
}
