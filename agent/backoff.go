package agent

import "time"

// backoffDelay is how long to wait before starting the bot again after streak
// consecutive young exits (exits before the bot had run BackoffReset). The
// first young exit restarts at once; then the delay doubles from min up to
// max. A max of zero turns backoff off.
func backoffDelay(streak int, min, max time.Duration) time.Duration {
	if streak <= 1 || max <= 0 || min <= 0 {
		return 0
	}
	d := min
	for i := 2; i < streak; i++ {
		d *= 2
		if d >= max {
			return max
		}
	}
	if d > max {
		return max
	}
	return d
}

// nextStreak updates the young-exit streak after a process that ran for
// uptime exits: a bot that ran at least reset is healthy again, so its exit
// starts a new streak.
func nextStreak(streak int, uptime, reset time.Duration) int {
	if uptime >= reset {
		return 1
	}
	return streak + 1
}
