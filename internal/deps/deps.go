// Package deps pins module dependencies while the packages that use them are written. Delete when they all exist.
package deps

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/gofiber/fiber/v3"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/micro"
	_ "github.com/shirou/gopsutil/v4/process"
	_ "go.uber.org/goleak"
	_ "golang.org/x/sys/unix"
)
