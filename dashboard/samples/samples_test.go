package samples

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestTenThousandBotsPerInterval: one sampling round of 10,000 bots is
// stored well within the interval on a real JetStream, each bot under its
// own subject, and a bot's series reads back in order.
func TestTenThousandBotsPerInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 bots: not with -short")
	}
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "samples-test", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start bus: %v", err)
	}
	t.Cleanup(srv.Close)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	const bots = 10000
	var rounds atomic.Int64
	s := New(nc, Config{
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Interval: 2 * time.Second,
		Source: func(now time.Time) []Point {
			rounds.Add(1)
			out := make([]Point, bots)
			for i := range out {
				out[i] = Point{Name: fmt.Sprintf("bot-%05d", i), Sample: Sample{T: now.UnixMilli(), CPU: float64(i % 100), RSS: uint64(i)}}
			}
			return out
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Every bot gets its sample; how fast is BenchmarkSampleRound's business,
	// as this machine is shared.
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		st, err := js.Stream(ctx, StreamName)
		if err == nil {
			info, err := st.Info(ctx)
			if err == nil && info.State.NumSubjects >= bots {
				t.Logf("%d samples of %d bots stored in %s (round %d)", info.State.Msgs, info.State.NumSubjects, time.Since(start).Round(time.Millisecond), rounds.Load())
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every one of 10,000 bots has a sample within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var got []Sample
	for time.Now().Before(deadline) {
		if got, err = s.Samples(ctx, "bot-04242"); err == nil && len(got) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) < 2 || got[0].RSS != 4242 || got[0].CPU != 42 || got[1].T <= got[0].T {
		t.Fatalf("bot-04242's series: %+v (err %v), want two samples in order", got, err)
	}
}

// BenchmarkSampleRound measures one sampling round of 10,000 bots, from the
// source's call to the last ack; it must stay well under DefaultInterval.
func BenchmarkSampleRound(b *testing.B) {
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: "samples-bench", StoreDir: b.TempDir()})
	if err != nil {
		b.Fatalf("start bus: %v", err)
	}
	defer srv.Close()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	const bots = 10000
	s := New(nc, Config{
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Interval: DefaultInterval,
		Source: func(now time.Time) []Point {
			out := make([]Point, bots)
			for i := range out {
				out[i] = Point{Name: fmt.Sprintf("bot-%05d", i), Sample: Sample{T: now.UnixMilli(), RSS: uint64(i)}}
			}
			return out
		},
	})
	ctx := context.Background()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(pendingMax))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.ensureStream(ctx, js); err != nil {
		b.Fatal(err)
	}
	// Each round gets its own slot, so no message is a duplicate.
	now := time.Now()
	b.ResetTimer()
	for b.Loop() {
		now = now.Add(DefaultInterval)
		s.sample(ctx, js, now)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/round")
}
