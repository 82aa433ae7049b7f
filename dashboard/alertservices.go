package dashboard

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/discord"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/slack"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/teams"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/telegram"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/email/smtp"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/gotify"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/ntfy"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/specialized/generic"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// alertServices names the notification services alerts go through: the ones
// the README and `lifeline dashboard --help` name. They are linked one by
// one instead of through shoutrrr's router (shoutrrr.CreateSender), which
// links all of its ~25 services: their package inits (zulip's and teams'
// regexps, ...) ran at every start of the one lifeline binary, each
// `lifeline status` and each respawned bot's agent included, for ~3.5 ms.
const alertServices = "generic, slack, telegram, discord, teams, smtp, ntfy, gotify"

// newAlertService returns the uninitialized shoutrrr service of a URL
// scheme's service part ("generic" of "generic+https"), as shoutrrr's
// router would; false for a service lifeline does not link.
func newAlertService(service string) (types.Service, bool) {
	switch strings.ToLower(service) {
	case "generic":
		return &generic.Service{}, true
	case "slack":
		return &slack.Service{}, true
	case "telegram":
		return &telegram.Service{}, true
	case "discord":
		return &discord.Service{}, true
	case "teams":
		return &teams.Service{}, true
	case "smtp":
		return &smtp.Service{}, true
	case "ntfy":
		return &ntfy.Service{}, true
	case "gotify":
		return &gotify.Service{}, true
	}
	return nil, false
}

// newAlertSender parses a notification URL and initializes its service,
// the way shoutrrr's router does: a scheme "SERVICE+PROTO" (generic+https)
// is a custom URL the service converts to its own form first. Errors may
// quote the URL: the caller redacts them.
func newAlertSender(raw string) (types.Service, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse URL: %w", err)
	}
	name, _, _ := strings.Cut(u.Scheme, "+")
	s, ok := newAlertService(name)
	if !ok {
		return nil, fmt.Errorf("unknown service %q (lifeline sends through %s)", name, alertServices)
	}
	if u.Scheme != name {
		c, ok := s.(types.CustomURLService)
		if !ok {
			return nil, fmt.Errorf("service %q takes no custom URL (%s)", name, u.Scheme)
		}
		if u, err = c.GetConfigURLFromCustom(u); err != nil {
			return nil, fmt.Errorf("convert custom URL: %w", err)
		}
	}
	// A nil logger is shoutrrr's discarding one: failures are returned and
	// logged by the dashboard, never written by the service.
	if err := s.Initialize(u, nil); err != nil {
		return nil, fmt.Errorf("initialize %s: %w", name, err)
	}
	return s, nil
}
