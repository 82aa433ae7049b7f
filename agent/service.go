package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/lifeline-dev/lifeline/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// responder speaks the NATS micro protocol (discovery on $SRV.PING, INFO
// and STATS, and each bot's endpoints) for every bot of a Fleet, so that each
// bot is its own lifeline-agent service, exactly as a micro.Service would
// make it. It differs in cost only: a micro.Service runs a goroutine for each
// of its 13 subscriptions, 13 per bot; here every subscription feeds one
// channel, read by one goroutine, and discovery takes 5 subscriptions in all.
// Every handler it calls must return at once.
type responder struct {
	nc   *nats.Conn
	log  *slog.Logger
	msgs chan *nats.Msg
	done chan struct{}

	mu       sync.Mutex
	services map[string]*botService // by service ID
	routes   map[string]func(*nats.Msg)
	shared   []*nats.Subscription
}

// The responder's queue holds the messages waiting for its goroutine, per
// bot (a dashboard asks each for status and INFO at once; heartbeats go to
// each bot's loop directly), within bounds; beyond it the connection drops
// them and reports a slow consumer.
const (
	responderQueuePerBot = 32
	responderQueueMin    = 256
	responderQueueMax    = 16384
)

func newResponder(nc *nats.Conn, log *slog.Logger, bots int) (*responder, error) {
	r := &responder{
		nc: nc, log: log,
		msgs:     make(chan *nats.Msg, min(max(responderQueueMin, bots*responderQueuePerBot), responderQueueMax)),
		done:     make(chan struct{}),
		services: map[string]*botService{},
		routes:   map[string]func(*nats.Msg){},
	}
	for _, subj := range []string{"$SRV.PING", "$SRV.INFO", "$SRV.STATS",
		"$SRV.*." + bus.AgentService, "$SRV.*." + bus.AgentService + ".*"} {
		sub, err := nc.ChanSubscribe(subj, r.msgs)
		if err != nil {
			r.stop()
			return nil, fmt.Errorf("subscribe to %s: %w", subj, err)
		}
		r.shared = append(r.shared, sub)
	}
	go r.run()
	return r, nil
}

// stop ends the responder; the bots' services must be stopped first.
func (r *responder) stop() {
	for _, s := range r.shared {
		_ = s.Unsubscribe()
	}
	select {
	case <-r.done:
	default:
		close(r.done)
	}
}

func (r *responder) run() {
	for {
		select {
		case <-r.done:
			return
		case m := <-r.msgs:
			r.dispatch(m)
		}
	}
}

func (r *responder) dispatch(m *nats.Msg) {
	if rest, ok := strings.CutPrefix(m.Subject, "$SRV."); ok {
		verb, rest, _ := strings.Cut(rest, ".")
		name, id, _ := strings.Cut(rest, ".")
		if name == "" || name == bus.AgentService {
			r.discover(m, verb, id)
		}
		return
	}
	r.mu.Lock()
	h := r.routes[m.Subject]
	r.mu.Unlock()
	if h != nil {
		h(m)
	}
}

// discover answers a PING, INFO or STATS request once for each service it
// addresses.
func (r *responder) discover(m *nats.Msg, verb, id string) {
	if m.Reply == "" {
		return
	}
	r.mu.Lock()
	var svcs []*botService
	for sid, s := range r.services {
		if id == "" || id == sid {
			svcs = append(svcs, s)
		}
	}
	r.mu.Unlock()
	for _, s := range svcs {
		var data []byte
		switch verb {
		case "PING":
			data = s.ping
		case "INFO":
			data = s.infoJSON
		case "STATS":
			var err error
			if data, err = json.Marshal(s.Stats()); err != nil {
				continue
			}
		default:
			return
		}
		if err := m.Respond(data); err != nil {
			r.log.Debug("answer discovery", "err", err)
		}
	}
}

// botService is one bot's lifeline-agent service on a responder.
type botService struct {
	r         *responder
	id        string
	version   string
	desc      string
	metadata  map[string]string
	started   time.Time
	endpoints []*botEndpoint
	subs      []*nats.Subscription
	// The answers to PING and INFO never change: made once, as the
	// dashboard asks for INFO every few seconds.
	ping, infoJSON []byte

	mu sync.Mutex // guards the endpoints' counts
}

type botEndpoint struct {
	name, subject string
	metadata      map[string]string
	requests      int
	errors        int
	lastError     string
}

// endpointQueue is micro's default queue group: agents that both answer a
// subject (a moment of rivalry) share its requests.
const endpointQueue = "q"

// addService registers a service and its endpoints (op → subject, handler)
// and subscribes them.
func (r *responder) addService(version, desc string, metadata map[string]string, eps []serviceEndpoint) (*botService, error) {
	id := make([]byte, 11)
	_, _ = rand.Read(id)
	s := &botService{r: r, id: hex.EncodeToString(id), version: version, desc: desc, metadata: metadata, started: time.Now().UTC()}
	for _, ep := range eps {
		e := &botEndpoint{name: ep.name, subject: ep.subject, metadata: ep.metadata}
		sub, err := r.nc.ChanQueueSubscribe(ep.subject, endpointQueue, r.msgs)
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("register %s endpoint: %w", ep.name, err)
		}
		s.subs = append(s.subs, sub)
		s.endpoints = append(s.endpoints, e)
		h := ep.handler
		r.mu.Lock()
		r.routes[ep.subject] = func(m *nats.Msg) {
			s.mu.Lock()
			e.requests++
			s.mu.Unlock()
			h(&msgRequest{m: m, s: s, e: e})
		}
		r.mu.Unlock()
	}
	var err error
	if s.ping, err = json.Marshal(micro.Ping{ServiceIdentity: s.identity(), Type: micro.PingResponseType}); err == nil {
		s.infoJSON, err = json.Marshal(s.info())
	}
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("describe service: %w", err)
	}
	r.mu.Lock()
	r.services[s.id] = s
	r.mu.Unlock()
	return s, nil
}

type serviceEndpoint struct {
	name, subject string
	metadata      map[string]string
	handler       func(micro.Request)
}

// Stop unsubscribes the service and takes it out of discovery.
func (s *botService) Stop() error {
	var errs []error
	for _, sub := range s.subs {
		errs = append(errs, sub.Unsubscribe())
	}
	s.r.mu.Lock()
	delete(s.r.services, s.id)
	for _, e := range s.endpoints {
		delete(s.r.routes, e.subject)
	}
	s.r.mu.Unlock()
	return errors.Join(errs...)
}

func (s *botService) identity() micro.ServiceIdentity {
	return micro.ServiceIdentity{Name: bus.AgentService, ID: s.id, Version: s.version, Metadata: s.metadata}
}

func (s *botService) info() micro.Info {
	in := micro.Info{ServiceIdentity: s.identity(), Type: micro.InfoResponseType, Description: s.desc}
	for _, e := range s.endpoints {
		in.Endpoints = append(in.Endpoints, micro.EndpointInfo{Name: e.name, Subject: e.subject, QueueGroup: endpointQueue, Metadata: e.metadata})
	}
	return in
}

// Stats is the service's micro STATS answer.
func (s *botService) Stats() micro.Stats {
	st := micro.Stats{ServiceIdentity: s.identity(), Type: micro.StatsResponseType, Started: s.started}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.endpoints {
		st.Endpoints = append(st.Endpoints, &micro.EndpointStats{Name: e.name, Subject: e.subject, QueueGroup: endpointQueue,
			NumRequests: e.requests, NumErrors: e.errors, LastError: e.lastError})
	}
	return st
}

// msgRequest is a micro.Request over a message the responder received.
type msgRequest struct {
	m *nats.Msg
	s *botService
	e *botEndpoint
}

func (q *msgRequest) Respond(data []byte, opts ...micro.RespondOpt) error {
	resp := &nats.Msg{Data: data}
	for _, o := range opts {
		o(resp)
	}
	return q.m.RespondMsg(resp)
}

func (q *msgRequest) RespondJSON(v any, opts ...micro.RespondOpt) error {
	data, err := json.Marshal(v)
	if err != nil {
		return micro.ErrMarshalResponse
	}
	return q.Respond(data, opts...)
}

func (q *msgRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	resp := &nats.Msg{Header: nats.Header{micro.ErrorHeader: {description}, micro.ErrorCodeHeader: {code}}, Data: data}
	for _, o := range opts {
		o(resp)
	}
	q.s.mu.Lock()
	q.e.errors++
	q.e.lastError = code + ":" + description
	q.s.mu.Unlock()
	return q.m.RespondMsg(resp)
}

func (q *msgRequest) Data() []byte           { return q.m.Data }
func (q *msgRequest) Headers() micro.Headers { return micro.Headers(q.m.Header) }
func (q *msgRequest) Subject() string        { return q.m.Subject }
func (q *msgRequest) Reply() string          { return q.m.Reply }
