package gcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
)

// TestNotifierPushesSecretManagerNotifications: a secret with a topic, created and given a version through
// the Secret Manager emulator, produces TOPIC_CONFIGURED, SECRET_CREATE and SECRET_VERSION_ADD on the real
// Pub/Sub emulator, pushed to an HTTP endpoint in the push wrapper format, with the documented attributes
// and never the payload.
func TestNotifierPushesSecretManagerNotifications(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := startNotifier(ctx, t)

	type push struct {
		Message struct {
			Data       string            `json:"data"`
			Attributes map[string]string `json:"attributes"`
		} `json:"message"`
		Subscription string `json:"subscription"`
	}
	var mu sync.Mutex
	var got []push
	var paths []string
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p push
		if err := json.Unmarshal(b, &p); err != nil {
			t.Errorf("push body is not the push wrapper: %v", err)
		}
		mu.Lock()
		got = append(got, p)
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		arrived <- struct{}{}
	}))
	t.Cleanup(srv.Close)

	const topic = "projects/kf-emu/topics/secret-events"
	if err := n.CreateTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateTopic(ctx, topic); err != nil {
		t.Fatalf("creating an existing topic again: %v", err)
	}
	if err := n.PushTo(ctx, topic, "projects/kf-emu/subscriptions/fn-push", srv.URL); err != nil {
		t.Fatal(err)
	}
	_, c := startSM(t, SecretManagerOptions{Interceptors: []grpc.UnaryServerInterceptor{n.Interceptor}})
	s := create(t, c, "db", &secretmanagerpb.Secret{Topics: []*secretmanagerpb.Topic{{Name: topic}}})
	addVersion(t, c, s.GetName(), []byte("notify-secret-value"))
	create(t, c, "quiet", &secretmanagerpb.Secret{}) // no topics: no notification

	for i := 0; i < 3; i++ {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatalf("only %d of 3 notifications pushed", i)
		}
	}
	time.Sleep(200 * time.Millisecond) // anything extra would arrive now
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d pushes, want 3", len(got))
	}
	types := map[string]push{}
	for i, p := range got {
		types[p.Message.Attributes["eventType"]] = p
		if paths[i] != "/"+topic {
			t.Errorf("pushed to %s, want /%s", paths[i], topic)
		}
		data, _ := base64.StdEncoding.DecodeString(p.Message.Data)
		if strings.Contains(string(data), "notify-secret-value") || strings.Contains(p.Message.Data, base64.StdEncoding.EncodeToString([]byte("notify-secret-value"))) {
			t.Errorf("a notification carries the payload")
		}
	}
	if tc, ok := types["TOPIC_CONFIGURED"]; !ok || tc.Message.Data != "" || len(tc.Message.Attributes) != 1 {
		t.Errorf("TOPIC_CONFIGURED %+v, want only the eventType attribute and no data", tc)
	}
	cr := types["SECRET_CREATE"]
	if cr.Message.Attributes["secretId"] != s.GetName() || cr.Message.Attributes["dataFormat"] != "JSON_API_V1" || cr.Message.Attributes["timestamp"] == "" {
		t.Errorf("SECRET_CREATE attributes %v", cr.Message.Attributes)
	}
	add := types["SECRET_VERSION_ADD"]
	if add.Message.Attributes["versionId"] != s.GetName()+"/versions/1" {
		t.Errorf("SECRET_VERSION_ADD attributes %v", add.Message.Attributes)
	}
	data, _ := base64.StdEncoding.DecodeString(add.Message.Data)
	if !strings.Contains(string(data), `"createTime"`) {
		t.Errorf("SECRET_VERSION_ADD data %s is not the proto3 JSON of the version", data)
	}
	if sent, errs := n.Sent(); sent != 3 || len(errs) != 0 {
		t.Errorf("Sent() = %d, %v", sent, errs)
	}
}

// startNotifier starts the Pub/Sub emulator and a Notifier for project kf-emu on it, both stopped with the
// test.
func startNotifier(ctx context.Context, t *testing.T) *Notifier {
	t.Helper()
	ps, err := StartPubSub(ctx, PubSubOptions{})
	if err != nil {
		t.Fatalf("start the Pub/Sub emulator: %v", err)
	}
	t.Cleanup(ps.Stop)
	n, err := NewNotifier(ctx, ps.Host(), "kf-emu", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}
