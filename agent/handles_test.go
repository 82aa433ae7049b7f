package agent

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// The handle bookkeeping of the Windows watcher (handleGuard), checked here
// on Linux with a counter standing in for the handles.

// guarded returns a guard whose release counts its calls and marks the
// handles closed; a release while a wait uses them is an error.
func guarded(t *testing.T) (g *handleGuard, released *atomic.Int32, open *atomic.Bool) {
	g = &handleGuard{}
	released, open = new(atomic.Int32), new(atomic.Bool)
	open.Store(true)
	g.release = func() {
		if g.waiting {
			t.Error("handles released while a wait uses them")
		}
		released.Add(1)
		open.Store(false)
	}
	return g, released, open
}

// Closed while idle: the handles are released at once, and only once; no
// use reaches them afterwards, nor can a wait begin on them.
func TestHandleGuardCloseWhileIdle(t *testing.T) {
	g, released, _ := guarded(t)
	if err := g.use(func() error { return nil }); err != nil {
		t.Fatalf("use before close = %v", err)
	}
	woken := 0
	g.close(func() { woken++ })
	g.close(func() { woken++ })
	if released.Load() != 1 || woken != 1 {
		t.Fatalf("released %d times, woken %d times; want 1, 1", released.Load(), woken)
	}
	ran := false
	if err := g.use(func() error { ran = true; return nil }); !errors.Is(err, errWatcherClosed) || ran {
		t.Errorf("use after close = %v (ran %v), want errWatcherClosed, not run", err, ran)
	}
	if g.beginWait() {
		t.Error("a wait began on closed handles")
	}
}

// Closed during a wait: the wait is woken, and the handles are released
// only once it has returned; what it saw does not count.
func TestHandleGuardCloseDuringWait(t *testing.T) {
	g, released, _ := guarded(t)
	if !g.beginWait() {
		t.Fatal("beginWait on an open guard = false")
	}
	if g.beginWait() {
		t.Fatal("a second wait began while one runs")
	}
	wake := make(chan struct{})
	g.close(func() { close(wake) })
	<-wake
	if released.Load() != 0 {
		t.Fatal("handles released while the wait uses them")
	}
	if !g.endWait() {
		t.Error("endWait after close = false, want closed")
	}
	if released.Load() != 1 {
		t.Errorf("released %d times after the wait, want 1", released.Load())
	}
}

// A wait that ends on its own leaves the handles open for reap; close
// releases them later.
func TestHandleGuardWaitThenClose(t *testing.T) {
	g, released, _ := guarded(t)
	g.beginWait()
	if g.endWait() {
		t.Fatal("endWait without close = true")
	}
	if err := g.use(func() error { return nil }); err != nil || released.Load() != 0 {
		t.Fatalf("use after the wait = %v, released %d; want nil, 0", err, released.Load())
	}
	g.close(nil)
	if released.Load() != 1 {
		t.Errorf("released %d times, want 1", released.Load())
	}
}

// Under load: uses and a wait race a close. No use runs on released
// handles, and they are released exactly once, after the wait.
func TestHandleGuardCloseRacesUses(t *testing.T) {
	for range 50 {
		g, released, open := guarded(t)
		wake := make(chan struct{})
		var wg sync.WaitGroup
		if !g.beginWait() {
			t.Fatal("beginWait on an open guard = false")
		}
		wg.Go(func() {
			<-wake
			g.endWait()
		})
		for range 4 {
			wg.Go(func() {
				for range 100 {
					_ = g.use(func() error {
						if !open.Load() {
							t.Error("a use ran on released handles")
						}
						return nil
					})
				}
			})
		}
		g.close(func() { close(wake) })
		wg.Wait()
		if released.Load() != 1 {
			t.Fatalf("released %d times, want 1", released.Load())
		}
	}
}
