package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/event"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/lambdart"
)

type fakeCore struct {
	mu      sync.Mutex
	changes []event.Change
	err     error
}

func (f *fakeCore) Change(_ context.Context, ch event.Change) (dispatch.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, ch)
	return dispatch.Report{Summary: "ok"}, f.err
}

func (f *fakeCore) Schedule(context.Context, event.Schedule) (dispatch.Report, error) {
	return dispatch.Report{Summary: "swept"}, f.err
}

const putEvent = `{"version":"0","id":"p1","detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","account":"1",
 "time":"2026-01-01T00:00:00Z","region":"eu-west-1","resources":[],
 "detail":{"eventSource":"secretsmanager.amazonaws.com","eventName":"PutSecretValue","eventType":"AwsApiCall",
  "requestParameters":{"secretId":"prod/db"},"responseElements":{"arn":"arn:aws:secretsmanager:eu-west-1:1:secret:prod/db-Ab12Cd"}}}`

func TestHandlerInProcess(t *testing.T) {
	fc := &fakeCore{}
	builds := 0
	var logs strings.Builder
	h := newHandler()
	h.newCore = func(context.Context) (dispatch.Core, error) { builds++; return fc, nil }
	h.log = slogTo(&logs)
	inv := lambda.NewHandler(h.Handle)
	ctx := context.Background()
	for _, c := range []struct {
		name, payload string
		coreErr       error
		wantErr       bool
		want          string
	}{
		{"change", putEvent, nil, false, `"ok"`},
		{"duplicate", putEvent, nil, false, `"ok"`},
		{"malformed", `{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","detail":{"eventName":"PutSecretValue"}}`, nil, false, `"malformed"`},
		{"irrelevant", `{"detail-type":"Scheduled Event","source":"aws.ec2","detail":{}}`, nil, false, `"ignored"`},
		{"transient", putEvent, &store.Error{Kind: store.ErrThrottled}, true, ""},
		{"permanent", putEvent, errors.New("refused"), false, `"failed"`},
		{"rotation without rotation", `{"Step":"createSecret","SecretId":"x","ClientRequestToken":"t"}`, nil, true, ""},
	} {
		fc.err = nil
		if c.coreErr != nil {
			fc.err = c.coreErr
			if errors.Is(c.coreErr, store.ErrThrottled) {
				fc.err = errors.Join(dispatch.ErrRetryable, c.coreErr)
			}
		}
		out, err := inv.Invoke(ctx, []byte(c.payload))
		if (err != nil) != c.wantErr || !c.wantErr && string(out) != c.want {
			t.Errorf("%s: %s, %v", c.name, out, err)
		}
	}
	if builds != 1 {
		t.Errorf("the core was built %d times, want once (lazily, then reused)", builds)
	}
	if len(fc.changes) != 4 || fc.changes[0].Name != "prod/db" || fc.changes[0].Region != "eu-west-1" {
		t.Errorf("changes %+v", fc.changes)
	}
	if !strings.Contains(logs.String(), "malformed event acknowledged") {
		t.Errorf("no log line for the malformed event:\n%s", logs.String())
	}
}

func TestHandlerBuildsNothingForIgnoredEvents(t *testing.T) {
	h := newHandler()
	h.newCore = func(context.Context) (dispatch.Core, error) {
		t.Fatal("core built for an ignored event")
		return nil, nil
	}
	h.log = slogTo(&strings.Builder{})
	if _, err := h.Handle(context.Background(), json.RawMessage(`{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","detail":{"eventName":"TagResource"}}`)); err != nil {
		t.Fatal(err)
	}
}

// TestBinary runs the real bootstrap binary under a local Runtime API with a configuration of two file
// stores, and checks that a scheduled sweep copies a secret and a second sweep writes nothing.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := lambdart.Build(ctx, "github.com/keyferry/keyferry/functions/aws", dir)
	if err != nil {
		t.Fatal(err)
	}
	y := "stores:\n  a: {type: file, path: " + filepath.Join(dir, "a") + "}\n  b: {type: file, path: " + filepath.Join(dir, "b") + "}\n" +
		"replicate:\n  - {name: r, from: a, to: [b]}\n"
	cfg, err := config.Parse("k.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := stores.Open(ctx, cfg.Store("a"))
	if _, err := a.Put(ctx, "app/key", store.Text("canary-bin-1"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rt, err := lambdart.Start(lambdart.Options{Binary: bin, Env: map[string]string{dispatch.EnvConfigYAML: y}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Stop()
	sched := []byte(`{"version":"0","id":"c1","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"2026-01-01T00:00:00Z","region":"eu-west-1","resources":[],"detail":{}}`)
	for i, want := range []string{"1 create", "nothing to do"} {
		o, err := rt.Invoke(ctx, sched)
		if err != nil || o.Err || !strings.Contains(string(o.Payload), want) {
			t.Fatalf("sweep %d: %s err=%v %v\n%s", i, o.Payload, o.Err, err, rt.Logs())
		}
	}
	b, _ := stores.Open(ctx, cfg.Store("b"))
	sec, err := b.Get(ctx, "app/key")
	if err != nil || string(sec.Value.Bytes()) != "canary-bin-1" {
		t.Fatalf("target: %v", err)
	}
	if strings.Contains(rt.Logs(), "canary-bin") {
		t.Fatal("the function logged a secret value")
	}
}
