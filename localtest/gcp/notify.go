package gcp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
)

// Notifier publishes Secret Manager's change notifications to the real Pub/Sub emulator, as the service
// does for secrets with topics: attributes eventType, dataFormat (JSON_API_V1), secretId, versionId (for
// version events) and timestamp; data the Secret or SecretVersion in proto3 JSON — never a payload. Pass
// Interceptor in SecretManagerOptions.Interceptors.
type Notifier struct {
	client *pubsub.Client
	logf   func(string, ...any)

	front atomic.Pointer[frontServer] // the Secret Manager served, learnt from the first intercepted call

	mu   sync.Mutex
	pubs map[string]*pubsub.Publisher
	sent int
	errs []string
}

// NewNotifier connects to the Pub/Sub emulator at host (no call is made yet).
func NewNotifier(ctx context.Context, host, project string, logf func(string, ...any)) (*Notifier, error) {
	c, err := pubsub.NewClient(ctx, project, EndpointOptions(host)...)
	if err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Notifier{client: c, logf: logf, pubs: map[string]*pubsub.Publisher{}}, nil
}

var eventTypes = map[string]string{
	"CreateSecret": "SECRET_CREATE", "UpdateSecret": "SECRET_UPDATE", "DeleteSecret": "SECRET_DELETE",
	"AddSecretVersion": "SECRET_VERSION_ADD", "EnableSecretVersion": "SECRET_VERSION_ENABLE",
	"DisableSecretVersion": "SECRET_VERSION_DISABLE", "DestroySecretVersion": "SECRET_VERSION_DESTROY",
}

// Interceptor publishes a notification after each successful mutating call on a secret with topics.
func (n *Notifier) Interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	n.observe(info) // the Secret Manager whose rotation schedules PublishRotations runs
	resp, err := h(ctx, req)
	c := ChangeFrom(ctx)
	if err != nil || c == nil || c.Secret == nil || len(c.Secret.GetTopics()) == 0 {
		return resp, err
	}
	typ := eventTypes[c.Method]
	if typ == "" {
		return resp, err
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var msgs []*pubsub.Message
	if c.TopicsChanged {
		msgs = append(msgs, &pubsub.Message{Attributes: map[string]string{"eventType": "TOPIC_CONFIGURED"}}) // a test message: no data
	}
	attrs := map[string]string{"eventType": typ, "dataFormat": "JSON_API_V1", "secretId": c.Secret.GetName(), "timestamp": now}
	if typ == "SECRET_DELETE" {
		attrs["deleteType"] = "REQUESTED"
	}
	var data []byte
	if c.Version != nil {
		attrs["versionId"] = c.Version.GetName()
		data, _ = protojson.Marshal(c.Version)
	} else {
		data, _ = protojson.Marshal(c.Secret) // a Secret holds no payload
	}
	msgs = append(msgs, &pubsub.Message{Data: data, Attributes: attrs})
	topics := make([]string, 0, len(c.Secret.GetTopics()))
	for _, t := range c.Secret.GetTopics() {
		topics = append(topics, t.GetName())
	}
	// Publish synchronously, before the caller sees the answer: notifications follow the change, and a
	// test that waits for them needs no sleep.
	for _, topic := range topics {
		for _, m := range msgs {
			if err := n.publish(ctx, topic, m); err != nil {
				n.mu.Lock()
				n.errs = append(n.errs, err.Error())
				n.mu.Unlock()
				n.logf("notification %s to %s: %v", typ, topic, err)
			}
		}
	}
	return resp, err
}

func (n *Notifier) publish(ctx context.Context, topic string, m *pubsub.Message) error {
	n.mu.Lock()
	p := n.pubs[topic]
	if p == nil {
		p = n.client.Publisher(topic)
		n.pubs[topic] = p
	}
	n.mu.Unlock()
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := p.Publish(pctx, m).Get(pctx); err != nil {
		return err
	}
	n.mu.Lock()
	n.sent++
	n.mu.Unlock()
	return nil
}

// Sent is how many notifications were published; Errors what failed.
func (n *Notifier) Sent() (int, []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent, append([]string(nil), n.errs...)
}

// CreateTopic creates a topic (projects/P/topics/T) on the emulator.
func (n *Notifier) CreateTopic(ctx context.Context, topic string) error {
	_, err := n.client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic})
	if err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}

// PushTo creates a push subscription of topic delivering to a function served by the Functions
// Framework at base (http://127.0.0.1:PORT). The push path names the topic, so the framework can tell
// the CloudEvent's source.
func (n *Notifier) PushTo(ctx context.Context, topic, subscription, base string) error {
	_, err := n.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: subscription, Topic: topic, AckDeadlineSeconds: 60,
		PushConfig: &pubsubpb.PushConfig{PushEndpoint: strings.TrimSuffix(base, "/") + "/" + topic},
	})
	if err != nil {
		return fmt.Errorf("creating push subscription %s: %w", subscription, err)
	}
	return nil
}

// Close stops the publishers and the client.
func (n *Notifier) Close() error {
	n.mu.Lock()
	for _, p := range n.pubs {
		p.Stop()
	}
	n.mu.Unlock()
	return n.client.Close()
}
