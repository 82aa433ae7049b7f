package sdnotify

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in    string
		want  Message
		known bool
	}{
		{"READY=1", Message{Ready: true}, true},
		{"READY=0", Message{}, false},
		{"STOPPING=1", Message{Stopping: true}, true},
		{"WATCHDOG=1", Message{Watchdog: true}, true},
		{"WATCHDOG=trigger", Message{WatchdogTrigger: true}, true},
		{"WATCHDOG=2", Message{}, false},
		{"STATUS=processed 3 items", Message{Status: "processed 3 items", HasStatus: true}, true},
		{"STATUS=", Message{HasStatus: true}, true},
		{"STATUS=a=b", Message{Status: "a=b", HasStatus: true}, true},
		{"MAINPID=4242", Message{MainPID: 4242}, true},
		{"MAINPID=-1", Message{}, false},
		{"MAINPID=12x", Message{}, false},
		{"FDSTORE=1\nERRNO=2\nBUSERROR=x", Message{}, false},
		{"", Message{}, false},
		{"garbage without equals", Message{}, false},
		{"READY=1\nSTATUS=up\nWATCHDOG=1\nMAINPID=7\n", Message{Ready: true, Watchdog: true, Status: "up", HasStatus: true, MainPID: 7}, true},
	}
	for _, tt := range tests {
		got, known := parse([]byte(tt.in))
		if got != tt.want || known != tt.known {
			t.Errorf("parse(%q) = %+v, %v; want %+v, %v", tt.in, got, known, tt.want, tt.known)
		}
	}
}

func TestCleanStatus(t *testing.T) {
	if got := cleanStatus("ok\x1b[2J\x07\xff done"); got != "ok [2J \uFFFD done" {
		t.Errorf("control characters kept: %q", got)
	}
	long := strings.Repeat("é", MaxStatus) // 2 bytes each
	got := cleanStatus(long)
	if len(got) > MaxStatus || !strings.HasPrefix(long, got) || len(got) < MaxStatus-1 {
		t.Errorf("cut to %d bytes, want <= %d on a rune boundary", len(got), MaxStatus)
	}
}

func TestWatchdogEnv(t *testing.T) {
	if got := WatchdogEnv(0); got != nil {
		t.Errorf("WatchdogEnv(0) = %q, want nothing", got)
	}
	if got := WatchdogEnv(30 * time.Second); !slices.Equal(got, []string{"WATCHDOG_USEC=30000000"}) {
		t.Errorf("WatchdogEnv(30s) = %q", got)
	}
}

func TestChildEnvWithoutSocket(t *testing.T) {
	base := []string{"PATH=/bin", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1", "WATCHDOG_PID=1", "HOME=/root"}
	if got := ChildEnv(base, nil, time.Second); !slices.Equal(got, []string{"PATH=/bin", "HOME=/root"}) {
		t.Errorf("ChildEnv = %q: the agent's own systemd variables must not reach the bot", got)
	}
}
