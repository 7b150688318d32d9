// Package notify publishes keyferry's alerts (a foreign write to a replica, a refused replication) to the
// routes of `notify:` — SNS, EventBridge, Event Grid, Pub/Sub or the log — so operators can route them
// like any other cloud event. An alert names secrets, stores and versions, never a value.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/replicate"
)

// Source is the source (EventBridge), event type prefix (Event Grid) and attribute value (Pub/Sub, SNS)
// keyferry's notifications carry.
const Source = "keyferry"

// publisher sends one encoded alert over one route.
type publisher interface {
	publish(ctx context.Context, kind string, body []byte) error
	close() error
}

type route struct {
	cfg   config.NotifyRoute
	open  func(ctx context.Context) (publisher, error)
	once  sync.Mutex
	pub   publisher
	kinds []string
}

func (r *route) wants(kind string) bool { return len(r.kinds) == 0 || slices.Contains(r.kinds, kind) }

func (r *route) publisher(ctx context.Context) (publisher, error) {
	r.once.Lock()
	defer r.once.Unlock()
	if r.pub != nil {
		return r.pub, nil
	}
	p, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	r.pub = p
	return p, nil
}

func (r *route) String() string {
	switch r.cfg.Type {
	case config.NotifyEventBridge:
		bus := r.cfg.Bus
		if bus == "" {
			bus = "default"
		}
		return "eventbridge " + bus
	case config.NotifyLog:
		return "log"
	}
	return r.cfg.Type + " " + r.cfg.Topic
}

// Notifier publishes each alert to every route that takes its kind and writes it to the log. It
// implements replicate.Notifier. Clients are created on first use: a function that never alerts never
// loads a cloud's SDK configuration.
type Notifier struct {
	routes []*route
	log    *slog.Logger
}

// New returns the Notifier for the configured routes (none: log only). It makes no call.
func New(routes []config.NotifyRoute, logger *slog.Logger) (*Notifier, error) {
	if logger == nil {
		logger = slog.Default()
	}
	n := &Notifier{log: logger}
	for _, rc := range routes {
		r := &route{cfg: rc, kinds: rc.Kinds}
		switch rc.Type {
		case config.NotifySNS:
			r.open = func(ctx context.Context) (publisher, error) { return newSNS(ctx, rc) }
		case config.NotifyEventBridge:
			r.open = func(ctx context.Context) (publisher, error) { return newEventBridge(ctx, rc) }
		case config.NotifyEventGrid:
			r.open = func(ctx context.Context) (publisher, error) { return newEventGrid(rc) }
		case config.NotifyPubSub:
			r.open = func(ctx context.Context) (publisher, error) { return newPubSub(ctx, rc) }
		case config.NotifyLog:
			r.open = func(context.Context) (publisher, error) { return logPublisher{}, nil }
		default:
			return nil, fmt.Errorf("notify: route type %q (line %d) is not one of %s", rc.Type, rc.Line,
				strings.Join(config.NotifyTypes, ", "))
		}
		n.routes = append(n.routes, r)
	}
	return n, nil
}

// Notify logs the alert and publishes it to every route that takes its kind. A route that fails does not
// stop the others; the error names each failed route.
func (n *Notifier) Notify(ctx context.Context, a replicate.Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("notify: encoding the alert: %w", err)
	}
	n.log.WarnContext(ctx, "alert", "kind", a.Kind, "rule", a.Rule, "source", a.SourceStore+"/"+a.SourceName,
		"target", a.TargetStore+"/"+a.TargetName, "reason", a.Reason)
	var errs []error
	for _, r := range n.routes {
		if !r.wants(a.Kind) || r.cfg.Type == config.NotifyLog {
			continue
		}
		p, err := r.publisher(ctx)
		if err == nil {
			err = p.publish(ctx, a.Kind, body)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("notify %s: %s: %w", a.Kind, r, err))
		}
	}
	return errors.Join(errs...)
}

// Close releases the clients created so far.
func (n *Notifier) Close() error {
	var errs []error
	for _, r := range n.routes {
		r.once.Lock()
		if r.pub != nil {
			errs = append(errs, r.pub.close())
			r.pub = nil
		}
		r.once.Unlock()
	}
	return errors.Join(errs...)
}

type logPublisher struct{}

func (logPublisher) publish(context.Context, string, []byte) error { return nil }
func (logPublisher) close() error                                  { return nil }

// dedupID is a FIFO deduplication id: the same alert sent twice within five minutes is delivered once.
func dedupID(body []byte) string {
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}
