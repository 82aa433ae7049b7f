package main

import (
	"sync/atomic"
	"testing"
	"time"
)

// A burst of starts gets one collection, after it, and the collection is
// not run beside the starts; one still pending when the agent stops is
// dropped.
func TestMemoryReleaserCoalescesBurst(t *testing.T) {
	var calls atomic.Int32
	m := &memoryReleaser{free: func() { calls.Add(1) }}
	for range 10 {
		m.release()
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("collections right after the starts: %d, want 0 (it must wait for %s without starts)", n, memoryQuiet)
	}
	deadline := time.Now().Add(memoryQuiet + 10*time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("collections after a burst of 10 starts: %d, want 1", n)
	}
	m.release()
	m.wait()
	time.Sleep(memoryQuiet + 200*time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("collections after wait: %d, want still 1 (the pending one dropped)", n)
	}
	m.release() // after wait: nothing starts
	time.Sleep(memoryQuiet + 200*time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("collections after a release past wait: %d, want still 1", n)
	}
}
