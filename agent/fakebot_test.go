package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
)

// fakeBot is the test binary acting as a bot that is not built on the SDK:
// it publishes heartbeats by hand, as SPEC says any program may. The agent
// passes NATS_URL and LIFELINE_NAME; LIFELINE_TEST_BOT picks a behaviour.
func fakeBot(mode string) int {
	if n, ok := notifyModes[mode]; ok {
		return n()
	}
	name := os.Getenv("LIFELINE_NAME")
	if mode == "crash" {
		return 1
	}
	if mode == "ignoreterm" {
		signal.Ignore(syscall.SIGTERM)
	}
	term := make(chan os.Signal, 1)
	if mode != "ignoreterm" {
		signal.Notify(term, syscall.SIGTERM)
	}
	if mode == "children" {
		child := exec.Command("sleep", "1000")
		if err := child.Start(); err != nil {
			return 4
		}
		os.WriteFile(os.Getenv("LIFELINE_TEST_CHILD_FILE"), []byte(strconv.Itoa(child.Process.Pid)), 0o644)
	}
	nc, err := nats.Connect(os.Getenv("NATS_URL"), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return 5
	}
	quit := make(chan struct{})
	if mode != "ignoreterm" {
		nc.Subscribe(bus.ShutdownSubject(name), func(m *nats.Msg) {
			m.Respond(bus.Encode(bus.Reply{OK: true, PID: os.Getpid()}))
			close(quit)
		})
	}
	started := time.Now()
	every := 20 * time.Millisecond
	if mode == "slowbeat" {
		every = 300 * time.Millisecond // most of the hang timeout (400 ms)
	}
	tick := time.NewTicker(every)
	for seq := uint64(1); ; seq++ {
		if mode != "silent" {
			hb, _ := json.Marshal(bus.Heartbeat{Name: name, PID: os.Getpid(), Host: "test", Seq: seq, Time: time.Now(), StartedAt: started})
			nc.Publish(bus.HeartbeatSubject(name), hb)
		}
		select {
		case <-quit:
			nc.Flush()
			return 0
		case <-term:
			return 0
		case <-tick.C:
		}
	}
}
