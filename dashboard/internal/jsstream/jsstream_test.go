package jsstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/lifeline-dev/lifeline/bus/bustest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEnsure: dashboards starting together all get the one stream, made
// once; later calls open it as it is, not as the caller would make it.
func TestEnsure(t *testing.T) {
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", Name: t.Name(), StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start bus: %v", err)
	}
	t.Cleanup(srv.Close)
	js, err := jetstream.New(bustest.MustConnect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: "TEST", Subjects: []string{"test.>"}, MaxMsgs: 10, Storage: jetstream.MemoryStorage}

	var wg sync.WaitGroup
	created := make(chan time.Time, 8)
	for range cap(created) {
		wg.Go(func() {
			s, err := Ensure(ctx, js, cfg)
			if err != nil {
				t.Errorf("Ensure, racing: %v", err)
				return
			}
			created <- s.CachedInfo().Created
		})
	}
	wg.Wait()
	close(created)
	var first time.Time
	for c := range created {
		if first.IsZero() {
			first = c
		} else if !c.Equal(first) {
			t.Errorf("racing calls got streams created at %s and %s, want the one stream", first, c)
		}
	}

	other := cfg
	other.MaxMsgs = 99
	s, err := Ensure(ctx, js, other)
	if err != nil {
		t.Fatalf("Ensure an existing stream: %v", err)
	}
	if got := s.CachedInfo().Config.MaxMsgs; got != cfg.MaxMsgs {
		t.Errorf("existing stream has MaxMsgs %d, want %d as made: Ensure must not redefine it", got, cfg.MaxMsgs)
	}
	if names := js.StreamNames(ctx); names.Err() != nil {
		t.Fatal(names.Err())
	} else {
		n := 0
		for range names.Name() {
			n++
		}
		if n != 1 {
			t.Errorf("%d streams, want 1", n)
		}
	}

	// A stream that cannot be made (its subjects overlap TEST's) is an
	// error, not a nil stream.
	if s, err := Ensure(ctx, js, jetstream.StreamConfig{Name: "CLASH", Subjects: []string{"test.a"}, Storage: jetstream.MemoryStorage}); err == nil {
		t.Errorf("Ensure of a clashing stream returned %v and no error", s)
	}
}
