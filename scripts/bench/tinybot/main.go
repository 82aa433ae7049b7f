// Command tinybot is the bot every supervisor runs in `make bench`: a tiny
// static program that does nothing, so that lifeline, supervisord and PM2
// supervise exactly the same thing. It sends no heartbeats and writes
// nothing; the default SIGTERM action ends it at once.
//
// When $BENCH_SOCK names a unix datagram socket, it sends "NAME PID" there
// as soon as it runs: the harness times a start by that report's arrival,
// the same way whichever supervisor started it.
package main

import (
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	name := "tinybot"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	if sock := os.Getenv("BENCH_SOCK"); sock != "" {
		if c, err := net.Dial("unixgram", sock); err == nil {
			c.Write([]byte(name + " " + strconv.Itoa(os.Getpid())))
			c.Close()
		}
	}
	for {
		time.Sleep(time.Hour) // idle: a bare select{} would be a deadlock to the runtime
	}
}
