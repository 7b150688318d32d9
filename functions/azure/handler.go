// Command azure is keyferry's Azure Functions custom handler: the Functions host (Flex Consumption,
// Linux) forwards Event Grid events from each Key Vault's system topic (function KeyVaultEvents) and two
// timers (functions Reconcile and Renew) to this HTTP server on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
// Each request is the host's invocation document {"Data": {...}, "Metadata": {...}}; the response is
// {"Outputs": {}, "Logs": [...], "ReturnValue": ...}. A non-2xx response fails the invocation and Event Grid
// redelivers, so only transient failures answer 500; malformed or irrelevant events are acknowledged.
//
// Event Grid sends no delete event for Key Vault: deletions are found by the Reconcile sweep.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/event"
)

type invokeRequest struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

type invokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue,omitempty"`
}

type server struct {
	newCore func(context.Context) (dispatch.Core, error)
	log     *slog.Logger

	mu   sync.Mutex
	core dispatch.Core
}

func (s *server) getCore(ctx context.Context) (dispatch.Core, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.core == nil {
		c, err := s.newCore(ctx)
		if err != nil {
			return nil, err
		}
		s.core = c
	}
	return s.core, nil
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /KeyVaultEvents", s.keyVaultEvents)
	mux.HandleFunc("POST /Reconcile", s.timer("sweep"))
	mux.HandleFunc("POST /Renew", s.timer("renew"))
	return mux
}

func readInvocation(w http.ResponseWriter, r *http.Request) (invokeRequest, bool) {
	var req invokeRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, event.MaxEventBytes+1))
	if err == nil && len(body) > event.MaxEventBytes {
		err = errors.New("larger than 1 MiB")
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		// The host never sends this; acknowledge rather than have it retried forever.
		reply(w, http.StatusOK, []string{"malformed invocation acknowledged: not the Functions host's request document"})
		return req, false
	}
	return req, true
}

func reply(w http.ResponseWriter, status int, logs []string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(invokeResponse{Outputs: map[string]any{}, Logs: logs})
}

func (s *server) keyVaultEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	req, ok := readInvocation(w, r)
	if !ok {
		return
	}
	evs, err := event.SplitEventGrid(req.Data["event"])
	if err != nil {
		s.log.WarnContext(ctx, "malformed event acknowledged", "reason", err.Error())
		reply(w, http.StatusOK, []string{"malformed: " + err.Error()})
		return
	}
	var logs []string
	retry := false
	for _, raw := range evs {
		d, err := event.DecodeEventGrid(raw)
		var de *event.DecodeError
		var vr *event.ValidationRequest
		switch {
		case errors.As(err, &vr):
			// Answered by the host for eventGridTrigger; answered here too for direct webhook use.
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": vr.Code})
			return
		case errors.Is(err, event.ErrIgnored):
			logs = append(logs, err.Error())
			s.log.InfoContext(ctx, "event acknowledged", "reason", err.Error())
			continue
		case errors.As(err, &de):
			logs = append(logs, err.Error())
			s.log.WarnContext(ctx, "malformed event acknowledged", "reason", err.Error())
			continue
		}
		c, err := s.getCore(ctx)
		if err != nil {
			s.log.ErrorContext(ctx, "keyferry cannot start", "error", err.Error())
			reply(w, http.StatusInternalServerError, []string{"keyferry cannot start: " + err.Error()})
			return
		}
		rep, err := c.Change(ctx, *d.Change)
		s.log.InfoContext(ctx, "change", "event", d.Change.String(), "id", d.Change.ID, "result", rep.Summary)
		logs = append(logs, d.Change.String()+": "+rep.Summary)
		if err != nil {
			if dispatch.Retryable(err) {
				retry = true
				s.log.WarnContext(ctx, "transient failure: the event will be redelivered", "error", err.Error())
			} else {
				s.log.ErrorContext(ctx, "failed; not retried", "error", err.Error())
			}
		}
	}
	status := http.StatusOK
	if retry {
		status = http.StatusInternalServerError
	}
	reply(w, status, logs)
}

// timer answers a timer trigger by running the scheduled job: Reconcile runs "sweep" (which also rotates
// what is due), Renew runs "renew" (certificates inside their renewal window).
func (s *server) timer(job string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if _, ok := readInvocation(w, r); !ok {
			return
		}
		c, err := s.getCore(ctx)
		if err != nil {
			s.log.ErrorContext(ctx, "keyferry cannot start", "error", err.Error())
			reply(w, http.StatusInternalServerError, []string{"keyferry cannot start: " + err.Error()})
			return
		}
		rep, err := c.Schedule(ctx, event.Schedule{Job: job})
		s.log.InfoContext(ctx, "schedule", "job", job, "result", rep.Summary)
		status := http.StatusOK
		if err != nil {
			s.log.ErrorContext(ctx, job+" failed", "error", err.Error())
			if dispatch.Retryable(err) {
				status = http.StatusInternalServerError
			}
		}
		reply(w, status, []string{rep.Summary})
	}
}
