package gcp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

// TestPubSubEmulator starts the emulator, checks that the process held is the JVM, creates a topic and a
// pull subscription, publishes one message and receives it, then stops the emulator and checks that no
// process of it is left.
func TestPubSubEmulator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ps, err := StartPubSub(ctx, PubSubOptions{})
	if err != nil {
		t.Fatalf("start the Pub/Sub emulator (needs %s): %v", PubSubProvider, err)
	}
	t.Cleanup(ps.Stop)
	pid := ps.PID()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || filepath.Base(exe) != "java" {
		t.Fatalf("the process held (pid %d) is %q (%v), want the java process", pid, exe, err)
	}
	if !strings.HasPrefix(ps.Host(), "127.0.0.1:") {
		t.Fatalf("Host %q does not bind 127.0.0.1", ps.Host())
	}

	c, err := pubsub.NewClient(ctx, "kf-emu", ps.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/kf-emu/topics/secret-events"})
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	sub, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/kf-emu/subscriptions/secret-events-pull", Topic: topic.GetName(), AckDeadlineSeconds: 10})
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	pub := c.Publisher(topic.GetName())
	id, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(`{"name":"projects/kf-emu/secrets/db"}`),
		Attributes: map[string]string{"eventType": "SECRET_VERSION_ADD"}}).Get(ctx)
	pub.Stop()
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}

	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	var mu sync.Mutex
	var got []*pubsub.Message
	err = c.Subscriber(sub.GetName()).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		rcancel()
	})
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	mu.Lock()
	if len(got) != 1 || got[0].ID != id || string(got[0].Data) != `{"name":"projects/kf-emu/secrets/db"}` ||
		got[0].Attributes["eventType"] != "SECRET_VERSION_ADD" {
		t.Fatalf("received %d messages: %+v, want the one published (id %s)", len(got), got, id)
	}
	mu.Unlock()
	if err := c.Close(); err != nil {
		t.Errorf("close client: %v", err)
	}
	port := ps.Host()[strings.LastIndex(ps.Host(), ":")+1:]
	if !strings.Contains(ps.Logs(), port) {
		t.Errorf("emulator output does not mention its port %s:\n%s", port, ps.Logs())
	}

	ps.Stop()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Fatalf("java (pid %d) still running after Stop", pid)
	}
	if left := GroupMembers(pid); len(left) != 0 {
		t.Fatalf("processes %v of the emulator's group are left after Stop", left)
	}
}
