package main

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestValidServiceNameMatchesRule: validServiceName (a loop, so that the
// binary compiles no regexp at start) accepts exactly the names of the
// rule it replaced, ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$.
func TestValidServiceNameMatchesRule(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$`)
	names := []string{
		"", "lifeline-agent", "lifeline-agent-bot.2", "_x", ".hidden", "-x", "a/b", "../etc/passwd",
		"a b", "a\nb", "ä", "x{{", strings.Repeat("a", 100), strings.Repeat("a", 101), "a-" + strings.Repeat(".", 98),
	}
	const alphabet = "aZ09_.-/ \n{}$ä"
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		var b strings.Builder
		for range rnd.IntN(104) {
			b.WriteByte(alphabet[rnd.IntN(len(alphabet))])
		}
		names = append(names, b.String())
	}
	for _, n := range names {
		if got, want := validServiceName(n), rule.MatchString(n); got != want {
			t.Errorf("validServiceName(%q) = %v, the rule says %v", n, got, want)
		}
	}
}
