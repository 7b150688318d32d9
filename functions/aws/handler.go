// Command aws is keyferry's AWS Lambda function (provided.al2023): it receives EventBridge events for
// Secrets Manager and Parameter Store changes, EventBridge schedules, and Secrets Manager rotation steps,
// decodes them with core/event and hands them to the core (core/dispatch). It is thin on purpose: all
// decisions are the core's.
//
// Return values follow what the platform does with them: a malformed or irrelevant event is logged and
// acknowledged (nil error) so that it is not redelivered; a transient failure (throttling, an unreachable
// store) is returned as an error so that EventBridge/Lambda retry the event.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"

	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/event"
)

// Rotator is implemented by a Core that runs Secrets Manager's rotation protocol.
type Rotator interface {
	RotationStep(ctx context.Context, step event.RotationStep) error
}

// handler holds the lazily built core: nothing is loaded before the first event needs it.
type handler struct {
	newCore func(context.Context) (dispatch.Core, error)
	log     *slog.Logger

	mu   sync.Mutex
	core dispatch.Core
}

func newHandler() *handler {
	return &handler{newCore: dispatch.FromEnv, log: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
}

func (h *handler) getCore(ctx context.Context) (dispatch.Core, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.core != nil {
		return h.core, nil
	}
	c, err := h.newCore(ctx)
	if err != nil {
		return nil, err
	}
	h.core = c
	return c, nil
}

// Handle is the Lambda handler.
func (h *handler) Handle(ctx context.Context, raw json.RawMessage) (string, error) {
	d, err := event.DecodeAWS(raw)
	if err != nil {
		var de *event.DecodeError
		switch {
		case errors.Is(err, event.ErrIgnored):
			h.log.InfoContext(ctx, "event acknowledged", "reason", err.Error())
			return "ignored", nil
		case errors.As(err, &de):
			h.log.WarnContext(ctx, "malformed event acknowledged", "reason", err.Error())
			return "malformed", nil
		}
		return "", err
	}
	c, err := h.getCore(ctx)
	if err != nil {
		// A configuration that does not load will not load on a retry either.
		h.log.ErrorContext(ctx, "keyferry cannot start", "error", err.Error())
		return "", err
	}
	var rep dispatch.Report
	switch {
	case d.Change != nil:
		rep, err = c.Change(ctx, *d.Change)
		h.log.InfoContext(ctx, "change", "event", d.Change.String(), "id", d.Change.ID, "result", rep.Summary)
	case d.Schedule != nil:
		rep, err = c.Schedule(ctx, *d.Schedule)
		h.log.InfoContext(ctx, "schedule", "job", d.Schedule.Job, "result", rep.Summary)
	case d.Rotation != nil:
		r, ok := c.(Rotator)
		if !ok {
			err = errors.New("rotation step received but keyferry's rotation is not configured for this function")
			h.log.ErrorContext(ctx, "rotation", "step", d.Rotation.Step, "error", err.Error())
			return "", err // Secrets Manager must see the step fail
		}
		if err = r.RotationStep(ctx, *d.Rotation); err != nil {
			h.log.ErrorContext(ctx, "rotation", "step", d.Rotation.Step, "error", err.Error())
			return "", err
		}
		return "ok", nil
	}
	if err != nil {
		if dispatch.Retryable(err) {
			h.log.WarnContext(ctx, "transient failure: the event will be redelivered", "error", err.Error())
			return "", err
		}
		h.log.ErrorContext(ctx, "failed; not retried", "error", err.Error())
		return "failed", nil
	}
	return rep.Summary, nil
}
