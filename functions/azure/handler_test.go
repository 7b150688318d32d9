package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/event"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/funchost"
	"github.com/keyferry/keyferry/localtest/lambdart"
)

type fakeCore struct {
	mu      sync.Mutex
	changes []event.Change
	err     error
	sweeps  int
	jobs    []string
}

func (f *fakeCore) Change(_ context.Context, ch event.Change) (dispatch.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, ch)
	return dispatch.Report{Summary: "ok"}, f.err
}

func (f *fakeCore) Schedule(_ context.Context, s event.Schedule) (dispatch.Report, error) {
	f.sweeps++
	f.jobs = append(f.jobs, s.Job)
	return dispatch.Report{Summary: "swept"}, f.err
}

const kvEvent = `{"id":"00ec","topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kf-prod",
 "subject":"db-password","eventType":"Microsoft.KeyVault.SecretNewVersionCreated","eventTime":"2026-07-25T01:08:33Z",
 "data":{"Id":"https://kf-prod.vault.azure.net/secrets/db-password/ee05","VaultName":"kf-prod","ObjectType":"Secret","ObjectName":"db-password",
  "Version":"ee05","NBF":null,"EXP":"1790000017"},"dataVersion":"1","metadataVersion":"1"}`

func post(t *testing.T, srv *httptest.Server, fn string, data string) (int, invokeResponse) {
	t.Helper()
	body := `{"Data":{"event":` + data + `},"Metadata":{"sys":{"MethodName":"` + fn + `","UtcNow":"2026-01-01T00:00:00Z","RandGuid":"g"}}}`
	resp, err := http.Post(srv.URL+"/"+fn, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out invokeResponse
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestHandler(t *testing.T) {
	fc := &fakeCore{}
	var logs bytes.Buffer
	s := &server{newCore: func(context.Context) (dispatch.Core, error) { return fc, nil }, log: slog.New(slog.NewJSONHandler(&logs, nil))}
	srv := httptest.NewServer(s.routes())
	defer srv.Close()
	asString, _ := json.Marshal(kvEvent)
	for _, c := range []struct {
		name, data string
		err        error
		status     int
		changes    int
	}{
		{"object", kvEvent, nil, 200, 1},
		{"json string", string(asString), nil, 200, 1},
		{"array", "[" + kvEvent + "," + kvEvent + "]", nil, 200, 2},
		{"malformed", `{"eventType":"Microsoft.KeyVault.SecretNewVersionCreated","data":{"NBF":"soon"}}`, nil, 200, 0},
		{"not an event", `42`, nil, 200, 0},
		{"certificate event", strings.Replace(kvEvent, "SecretNewVersionCreated", "CertificateNewVersionCreated", 1), nil, 200, 0},
		{"transient", kvEvent, errors.Join(dispatch.ErrRetryable, &store.Error{Kind: store.ErrThrottled}), 500, 1},
		{"permanent", kvEvent, errors.New("refused"), 200, 1},
	} {
		fc.err = c.err
		before := len(fc.changes)
		status, _ := post(t, srv, "KeyVaultEvents", c.data)
		if status != c.status || len(fc.changes)-before != c.changes {
			t.Errorf("%s: status %d, %d changes; want %d, %d", c.name, status, len(fc.changes)-before, c.status, c.changes)
		}
	}
	ch := fc.changes[0]
	if ch.Vault != "kf-prod" || ch.Name != "db-password" || ch.Version != "ee05" || ch.Service != event.ServiceKeyVault {
		t.Errorf("change %+v", ch)
	}
	fc.err = nil
	if status, out := post(t, srv, "Reconcile", `null`); status != 200 || fc.sweeps != 1 || len(out.Logs) == 0 {
		t.Errorf("timer: %d %+v", status, out)
	}
	if status, _ := post(t, srv, "Renew", `null`); status != 200 || strings.Join(fc.jobs, ",") != "sweep,renew" {
		t.Errorf("renew timer: %d, jobs %v; want sweep then renew", status, fc.jobs)
	}
	status, _ := post(t, srv, "KeyVaultEvents", `{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-01-01T00:00:00Z","data":{"validationCode":"abc"}}`)
	if status != 200 {
		t.Errorf("validation: %d", status)
	}
	if !strings.Contains(logs.String(), "malformed event acknowledged") {
		t.Error("no log line for the malformed event")
	}
}

// TestBinary runs the real handler under the local Functions host stand-in: a timer sweep copies a
// secret between two file stores.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the handler")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := lambdart.Build(ctx, "github.com/keyferry/keyferry/functions/azure", dir)
	if err != nil {
		t.Fatal(err)
	}
	y := "stores:\n  a: {type: file, path: " + filepath.Join(dir, "a") + "}\n  b: {type: file, path: " + filepath.Join(dir, "b") + "}\n" +
		"replicate:\n  - {name: r, from: a, to: [b]}\n"
	cfg, _ := config.Parse("k.yaml", []byte(y))
	a, _ := stores.Open(ctx, cfg.Store("a"))
	if _, err := a.Put(ctx, "k", store.Text("canary-az-1"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := funchost.Start(ctx, bin, map[string]string{dispatch.EnvConfigYAML: y})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	status, out, err := h.Timer(ctx, "Reconcile")
	if err != nil || status != 200 {
		t.Fatalf("timer: %d %v %v\n%s", status, out, err, h.Logs())
	}
	b, _ := stores.Open(ctx, cfg.Store("b"))
	if sec, err := b.Get(ctx, "k"); err != nil || string(sec.Value.Bytes()) != "canary-az-1" {
		t.Fatalf("target: %v", err)
	}
	if strings.Contains(h.Logs(), "canary-az") {
		t.Fatal("a value was logged")
	}
}
