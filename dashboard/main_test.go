package dashboard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/lifeline-dev/lifeline/bus"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	if addr := os.Getenv("LIFELINE_TEST_NATS_SERVER"); addr != "" {
		os.Exit(runExternalServer(bus.ServerConfig{Listen: addr, Name: "external",
			StoreDir: os.Getenv("LIFELINE_TEST_NATS_STORE"),
			TLSCert:  os.Getenv("LIFELINE_TEST_NATS_TLS_CERT"), TLSKey: os.Getenv("LIFELINE_TEST_NATS_TLS_KEY")}))
	}
	if dir := os.Getenv("LIFELINE_TEST_DASHBOARD_DATA"); dir != "" {
		os.Exit(runDashboardProcess(dir, os.Getenv("LIFELINE_TEST_CLUSTER"), os.Getenv("LIFELINE_TEST_ROUTES")))
	}
	code := m.Run()
	// Keep-alive connections of the tests' own HTTP client are the tests',
	// not a dashboard's: closing them ends both sides before the count.
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(
			// fasthttp's Date header ticker starts with the first server and
			// lives as long as the process; nothing can stop it.
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
			// Each server's idle-worker cleaner sees the stop only when its
			// sleep ends (up to 10 s after Run has returned), and nothing
			// outside fasthttp can wait for it.
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// runExternalServer is the test binary playing "an existing NATS": a server
// in a process of its own, as a company's deployment would be.
func runExternalServer(cfg bus.ServerConfig) int {
	s, err := bus.StartServer(cfg)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	s.Close()
	return 0
}

// runDashboardProcess is the test binary playing a clustered dashboard in a
// process of its own, so that a test can kill it -9.
func runDashboardProcess(dir, cluster, routes string) int {
	d, err := Open(context.Background(), Config{
		HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", DataDir: dir,
		ClusterListen: cluster, ClusterName: "t", Routes: strings.Split(routes, ","),
		Logger: slog.New(slog.DiscardHandler), Out: io.Discard,
	})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := d.Run(ctx); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}
