// Package gcpfn is keyferry's Cloud Functions (gen2) function: SecretEvents receives, as a
// google.cloud.pubsub.topic.v1.messagePublished CloudEvent, the Secret Manager notifications of the
// managed secrets' topic and the Cloud Scheduler messages ({"job": "sweep"}) published to it, decodes them
// with core/event and hands them to the core. Returning an error makes Pub/Sub redeliver (with retries
// enabled on the trigger), so only transient failures return one; malformed or irrelevant messages are
// logged and acknowledged.
package gcpfn

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/event"
)

// FunctionName is the entry point to deploy (--entry-point / FUNCTION_TARGET).
const FunctionName = "SecretEvents"

func init() {
	functions.CloudEvent(FunctionName, defaultHandler.SecretEvents)
}

var defaultHandler = &Handler{NewCore: dispatch.FromEnv, Log: slog.New(slog.NewJSONHandler(os.Stdout, nil))}

// Handler builds the core on first use.
type Handler struct {
	NewCore func(context.Context) (dispatch.Core, error)
	Log     *slog.Logger

	mu   sync.Mutex
	core dispatch.Core
}

func (h *Handler) getCore(ctx context.Context) (dispatch.Core, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.core == nil {
		c, err := h.NewCore(ctx)
		if err != nil {
			return nil, err
		}
		h.core = c
	}
	return h.core, nil
}

// SecretEvents handles one CloudEvent.
func (h *Handler) SecretEvents(ctx context.Context, e cloudevents.Event) error {
	d, err := event.DecodeMessagePublished(e.Data())
	var de *event.DecodeError
	switch {
	case errors.Is(err, event.ErrIgnored):
		h.Log.InfoContext(ctx, "event acknowledged", "id", e.ID(), "reason", err.Error())
		return nil
	case errors.As(err, &de):
		h.Log.WarnContext(ctx, "malformed event acknowledged", "id", e.ID(), "reason", err.Error())
		return nil
	case err != nil:
		h.Log.WarnContext(ctx, "event acknowledged", "id", e.ID(), "reason", err.Error())
		return nil
	}
	c, err := h.getCore(ctx)
	if err != nil {
		h.Log.ErrorContext(ctx, "keyferry cannot start", "error", err.Error())
		return err
	}
	var rep dispatch.Report
	if d.Change != nil {
		rep, err = c.Change(ctx, *d.Change)
		h.Log.InfoContext(ctx, "change", "event", d.Change.String(), "id", d.Change.ID, "result", rep.Summary)
	} else {
		rep, err = c.Schedule(ctx, *d.Schedule)
		h.Log.InfoContext(ctx, "schedule", "job", d.Schedule.Job, "result", rep.Summary)
	}
	if err != nil {
		if dispatch.Retryable(err) {
			h.Log.WarnContext(ctx, "transient failure: the message will be redelivered", "error", err.Error())
			return err
		}
		h.Log.ErrorContext(ctx, "failed; not retried", "error", err.Error())
	}
	return nil
}
