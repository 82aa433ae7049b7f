package session

import (
	"sync"
	"time"
)

// Limiter slows down token guessing on /login: after a few wrong tokens from
// one address, further attempts are refused for a doubling wait.
type Limiter struct {
	mu    sync.Mutex
	fails map[string]*failures
}

type failures struct {
	n    int
	last time.Time
}

const (
	// FreeFailures is how many wrong tokens an address may send before it
	// has to wait.
	FreeFailures  = 5
	maxLockout    = time.Minute
	forgetAfter   = 15 * time.Minute
	maxTrackedIPs = 10000
)

// NewLimiter returns a Limiter that remembers no failure yet.
func NewLimiter() *Limiter { return &Limiter{fails: make(map[string]*failures)} }

// Wait returns how long ip must still wait before its next attempt.
func (l *Limiter) Wait(ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[ip]
	if f == nil || f.n < FreeFailures {
		return 0
	}
	if left := f.last.Add(lockout(f.n)).Sub(now); left > 0 {
		return left
	}
	return 0
}

func lockout(n int) time.Duration {
	d := time.Second << min(n-FreeFailures, 6)
	return min(d, maxLockout)
}

// Fail counts a wrong token from ip.
func (l *Limiter) Fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= maxTrackedIPs {
		for k, f := range l.fails {
			if now.Sub(f.last) > forgetAfter {
				delete(l.fails, k)
			}
		}
		if len(l.fails) >= maxTrackedIPs {
			clear(l.fails) // under a flood, forgetting beats growing without bound
		}
	}
	f := l.fails[ip]
	if f == nil || now.Sub(f.last) > forgetAfter {
		f = &failures{}
		l.fails[ip] = f
	}
	f.n++
	f.last = now
}

// Succeed forgets ip's failures.
func (l *Limiter) Succeed(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, ip)
}
