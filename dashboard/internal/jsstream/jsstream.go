// Package jsstream opens the dashboard's JetStream streams (alerts,
// samples), making each the first time a dashboard needs it.
package jsstream

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Ensure returns the stream named cfg.Name, making it from cfg when it does
// not exist yet. Another dashboard may make it at the same moment; every
// dashboard makes it from the same definition, so either wins and the one
// that lost opens the winner's. The error is the bus's, for the caller to
// say which stream it wanted; ctx bounds all the requests.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, cfg.Name)
		}
	}
	return s, err
}
