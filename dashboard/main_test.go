package dashboard

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's Date header ticker starts with the first server and
		// lives as long as the process; nothing can stop it.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// Each server's idle-worker cleaner sees the stop only when its
		// sleep ends (up to 10 s after Run has returned), and nothing
		// outside fasthttp can wait for it.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}
