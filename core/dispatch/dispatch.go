// Package dispatch is what the functions call: it turns a decoded event into work for the core
// (replication now; rotation and renewal as they land) and says whether a failure should be redelivered.
// Handlers in functions/ stay thin: decode with core/event, call a Core, report.
package dispatch

import (
	"context"
	"errors"

	"github.com/keyferry/keyferry/core/event"
)

// Core is the work behind every handler.
type Core interface {
	// Change handles one decoded change event: the secret it names is re-read and replicated (or its
	// deletion propagated) per the configuration. Events for secrets no rule covers are acknowledged.
	Change(ctx context.Context, ch event.Change) (Report, error)
	// Schedule runs a timer job ("sweep" reconciles every replication).
	Schedule(ctx context.Context, s event.Schedule) (Report, error)
}

// Report says what a call did, for the handler's log line. It never holds a value.
type Report struct {
	Summary                                                 string // one line, e.g. "aws/prod/db: 3 written, 1 unchanged"
	Written, Unchanged, Skipped, Refused, Conflicts, Failed int
}

// ErrRetryable marks a failure the platform should redeliver (throttling, an unreachable store).
var ErrRetryable = errors.New("retryable")

// Retryable reports whether err should make the platform redeliver the event. Malformed events,
// refusals and conflicts are not retryable: redelivery would end the same way.
func Retryable(err error) bool { return errors.Is(err, ErrRetryable) }
