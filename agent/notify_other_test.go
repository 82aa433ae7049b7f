//go:build !linux

package agent

// notifyModes are the fake bots that speak sd_notify: none off Linux, where
// the agent opens no notify socket (see internal/sdnotify).
var notifyModes = map[string]func() int{}
