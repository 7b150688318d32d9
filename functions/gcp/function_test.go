package gcpfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/event"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/lambdart"
)

type fakeCore struct {
	changes []event.Change
	sweeps  int
	err     error
}

func (f *fakeCore) Change(_ context.Context, ch event.Change) (dispatch.Report, error) {
	f.changes = append(f.changes, ch)
	return dispatch.Report{Summary: "ok"}, f.err
}

func (f *fakeCore) Schedule(context.Context, event.Schedule) (dispatch.Report, error) {
	f.sweeps++
	return dispatch.Report{Summary: "swept"}, f.err
}

func message(t *testing.T, attrs map[string]string, data string) cloudevents.Event {
	t.Helper()
	e := cloudevents.New()
	e.SetID("m1")
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/p/topics/secret-events")
	b, _ := json.Marshal(event.MessagePublished{Message: event.PubSubMessage{Data: []byte(data), Attributes: attrs, MessageID: "m1"}})
	if err := e.SetData("application/json", b); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSecretEvents(t *testing.T) {
	fc := &fakeCore{}
	var logs bytes.Buffer
	h := &Handler{NewCore: func(context.Context) (dispatch.Core, error) { return fc, nil }, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	ctx := context.Background()
	add := map[string]string{"eventType": "SECRET_VERSION_ADD", "secretId": "projects/p/secrets/db", "versionId": "projects/p/secrets/db/versions/3"}
	for _, c := range []struct {
		name    string
		ev      cloudevents.Event
		err     error
		wantErr bool
	}{
		{"version added", message(t, add, `{"name":"projects/p/secrets/db/versions/3"}`), nil, false},
		{"topic test", message(t, map[string]string{"eventType": "TOPIC_CONFIGURED"}, ""), nil, false},
		{"malformed", message(t, map[string]string{"eventType": "SECRET_VERSION_ADD"}, `{"name":7}`), nil, false},
		{"sweep", message(t, nil, `{"job":"sweep"}`), nil, false},
		{"transient", message(t, add, ""), errors.Join(dispatch.ErrRetryable, errors.New("throttled")), true},
		{"permanent", message(t, add, ""), errors.New("refused"), false},
	} {
		fc.err = c.err
		if err := h.SecretEvents(ctx, c.ev); (err != nil) != c.wantErr {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if len(fc.changes) != 3 || fc.changes[0].Name != "db" || fc.changes[0].Project != "p" || fc.sweeps != 1 {
		t.Errorf("changes %+v, sweeps %d", fc.changes, fc.sweeps)
	}
	if !strings.Contains(logs.String(), "malformed event acknowledged") {
		t.Error("no log line for the malformed message")
	}
}

// TestBinary serves the function with the Functions Framework and sends it a Pub/Sub push request, as
// the Pub/Sub emulator's push subscription does: the framework turns it into the CloudEvent.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := lambdart.Build(ctx, "github.com/keyferry/keyferry/functions/gcp/cmd/function", dir)
	if err != nil {
		t.Fatal(err)
	}
	y := "stores:\n  a: {type: file, path: " + filepath.Join(dir, "a") + "}\n  b: {type: file, path: " + filepath.Join(dir, "b") + "}\n" +
		"replicate:\n  - {name: r, from: a, to: [b]}\n"
	cfg, _ := config.Parse("k.yaml", []byte(y))
	a, _ := stores.Open(ctx, cfg.Store("a"))
	if _, err := a.Put(ctx, "k", store.Text("canary-gcp-1"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var out bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), dispatch.EnvConfigYAML+"="+y)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _, _ = cmd.Process.Wait() }()
	push, _ := json.Marshal(map[string]any{"message": map[string]any{"data": []byte(`{"job":"sweep"}`), "messageId": "1",
		"publishTime": time.Now().UTC().Format(time.RFC3339)}, "subscription": "projects/p/subscriptions/s"})
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/projects/p/topics/keyferry-events"
	var resp *http.Response
	for range 200 {
		resp, err = http.Post(url, "application/json", bytes.NewReader(push))
		if err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("function not reachable: %v\n%s", err, out.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push answered %d\n%s", resp.StatusCode, out.String())
	}
	b, _ := stores.Open(ctx, cfg.Store("b"))
	if sec, err := b.Get(ctx, "k"); err != nil || string(sec.Value.Bytes()) != "canary-gcp-1" {
		t.Fatalf("target: %v\n%s", err, out.String())
	}
}
