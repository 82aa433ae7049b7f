package agent

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		streak   int
		min, max time.Duration
		want     time.Duration
	}{
		{0, 100 * ms, time.Second, 0},
		{1, 100 * ms, time.Second, 0}, // first quick exit: respawn at once
		{2, 100 * ms, time.Second, 100 * ms},
		{3, 100 * ms, time.Second, 200 * ms},
		{5, 100 * ms, time.Second, 800 * ms},
		{6, 100 * ms, time.Second, time.Second}, // capped
		{1000, 100 * ms, time.Second, time.Second},
		{5, 100 * ms, 0, 0}, // max 0 turns backoff off
	} {
		if got := backoffDelay(tc.streak, tc.min, tc.max); got != tc.want {
			t.Errorf("backoffDelay(%d, %s, %s) = %s, want %s", tc.streak, tc.min, tc.max, got, tc.want)
		}
	}
}

func TestNextStreakResetsAfterHealthyRun(t *testing.T) {
	if got := nextStreak(5, 61*time.Second, time.Minute); got != 1 {
		t.Errorf("after a long run: %d, want 1", got)
	}
	if got := nextStreak(5, time.Second, time.Minute); got != 6 {
		t.Errorf("after a short run: %d, want 6", got)
	}
}
