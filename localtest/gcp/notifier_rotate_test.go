package gcp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keyferry/keyferry/core/event"
)

// TestPublishRotations: SECRET_ROTATE goes out for exactly the secrets whose next_rotation_time has been
// reached, to their topics, with the documented attributes and the Secret as data (which keyferry's decoder
// reads as a rotation request); the schedule advances by whole periods past the clock (a schedule without a
// period fires once), so a second scan at the same time announces nothing; no other call or notification
// happens.
func TestPublishRotations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := startNotifier(ctx, t)

	type push struct {
		Message event.PubSubMessage `json:"message"`
	}
	arrived := make(chan push, 32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p push
		if err := json.Unmarshal(b, &p); err != nil {
			t.Errorf("push body: %v", err)
		}
		arrived <- p
	}))
	t.Cleanup(srv.Close)
	const topic = "projects/kf-emu/topics/rotations"
	if err := n.CreateTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := n.PushTo(ctx, topic, "projects/kf-emu/subscriptions/rotations-push", srv.URL); err != nil {
		t.Fatal(err)
	}

	if names, err := n.PublishRotations(ctx, time.Now().Add(time.Hour)); len(names) != 0 || err != nil {
		t.Fatalf("before any Secret Manager call: %v, %v", names, err)
	}
	sm, c := startSM(t, SecretManagerOptions{Interceptors: []grpc.UnaryServerInterceptor{n.Interceptor}})
	now := time.Now().Truncate(time.Second)
	topics := []*secretmanagerpb.Topic{{Name: topic}}
	rot := func(next time.Duration, period time.Duration) *secretmanagerpb.Rotation {
		r := &secretmanagerpb.Rotation{NextRotationTime: timestamppb.New(now.Add(next))}
		if period > 0 {
			r.RotationPeriod = durationpb.New(period)
		}
		return r
	}
	for _, s := range []struct {
		id  string
		rot *secretmanagerpb.Rotation
	}{
		{"hourly", rot(10*time.Minute, time.Hour)},
		{"daily", rot(30*time.Hour, 24*time.Hour)},
		{"once", rot(20*time.Minute, 0)},
		{"none", nil},
	} {
		create(t, c, s.id, &secretmanagerpb.Secret{Topics: topics, Rotation: s.rot})
		addVersion(t, c, proj+"/secrets/"+s.id, []byte("rotate-secret-value"))
	}
	gone := create(t, c, "gone", &secretmanagerpb.Secret{Topics: topics, Rotation: rot(time.Minute, time.Hour)})
	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: gone.GetName()}); err != nil {
		t.Fatal(err)
	}
	drain := func() {
		for {
			select {
			case <-arrived:
			case <-time.After(500 * time.Millisecond):
				return
			}
		}
	}
	drain() // create, version and delete notifications
	sent, _ := n.Sent()
	calls := sm.Fault().Calls()

	for _, step := range []struct {
		name  string
		clock time.Time
		want  []string // secret ids announced
		next  map[string]time.Time
	}{
		{"not yet", now.Add(5 * time.Minute), nil, nil},
		{"reached", now.Add(25 * time.Minute), []string{"hourly", "once"},
			map[string]time.Time{"hourly": now.Add(70 * time.Minute), "once": {}, "daily": now.Add(30 * time.Hour)}},
		{"same time again", now.Add(25 * time.Minute), nil, nil},
		{"after a long pause: once", now.Add(31 * time.Hour), []string{"daily", "hourly"},
			map[string]time.Time{"hourly": now.Add(31*time.Hour + 10*time.Minute), "daily": now.Add(54 * time.Hour), "once": {}}},
	} {
		names, err := n.PublishRotations(ctx, step.clock)
		var want []string
		for _, id := range step.want {
			want = append(want, proj+"/secrets/"+id)
		}
		if err != nil || !slices.Equal(names, want) {
			t.Errorf("%s: announced %v (%v), want %v", step.name, names, err, want)
		}
		var got []string
		for range want {
			select {
			case p := <-arrived:
				a := p.Message.Attributes
				if a["eventType"] != "SECRET_ROTATE" || a["dataFormat"] != "JSON_API_V1" || a["timestamp"] == "" || len(a) != 4 {
					t.Errorf("%s: attributes %v", step.name, a)
				}
				if !json.Valid(p.Message.Data) {
					t.Errorf("%s: data %q", step.name, p.Message.Data)
				}
				var s secretmanagerpb.Secret
				if err := protojson.Unmarshal(p.Message.Data, &s); err != nil || s.GetName() != a["secretId"] {
					t.Errorf("%s: data is not the Secret %s: %v", step.name, a["secretId"], err)
				}
				d, err := event.DecodePubSub(p.Message)
				if err != nil || d.Change == nil || d.Change.Kind != event.KindRotate || d.Change.Project != "kf-emu" {
					t.Errorf("%s: keyferry decodes %v as %+v, %v", step.name, a, d.Change, err)
				}
				got = append(got, a["secretId"])
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: %d of %d notifications pushed", step.name, len(got), len(want))
			}
		}
		select {
		case p := <-arrived:
			t.Errorf("%s: an extra notification %v", step.name, p.Message.Attributes)
		case <-time.After(300 * time.Millisecond):
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: pushed for %v, want %v", step.name, got, want)
		}
		for id, at := range step.next {
			s, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: proj + "/secrets/" + id})
			if err != nil {
				t.Fatal(err)
			}
			var next time.Time
			if nt := s.GetRotation().GetNextRotationTime(); nt != nil {
				next = nt.AsTime()
			}
			if !next.Equal(at) {
				t.Errorf("%s: %s next_rotation_time %v, want %v", step.name, id, next, at)
			}
		}
	}
	for api, k := range sm.Fault().Calls() {
		if api != "secretmanager:GetSecret" && k != calls[api] {
			t.Errorf("scanning called %s", api)
		}
	}
	if total, errs := n.Sent(); total != sent+4 || len(errs) != 0 {
		t.Errorf("Sent() = %d, %v; want %d", total, errs, sent+4)
	}
}
