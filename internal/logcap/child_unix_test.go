//go:build unix

package logcap

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// runAgent holds a Capture on named pipes, starts a paced bot in its own
// session, prints its PID, and waits to be killed.
func runAgent() {
	c, err := New(Config{Path: os.Getenv("LOGCAP_LOG"), FIFODir: os.Getenv("LOGCAP_FIFO")})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	cmd := botCmd("paced")
	cmd.Stdout, cmd.Stderr = c.Stdout(), c.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(cmd.Process.Pid)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	<-ch
}
