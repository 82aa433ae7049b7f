//go:build lifeline_pprof

package dashboard

import (
	"net/http"
	_ "net/http/pprof" // the handlers this build is for
	"os"
)

// A profiling build (go build -tags lifeline_pprof) serves net/http/pprof on
// $LIFELINE_PPROF (default 127.0.0.1:6062), so that a dashboard under a
// benchmark's load can be profiled as it runs. Release builds have none of it.
func init() {
	addr := os.Getenv("LIFELINE_PPROF")
	if addr == "" {
		addr = "127.0.0.1:6062"
	}
	go http.ListenAndServe(addr, nil) //nolint:errcheck // best effort, profiling only
}
