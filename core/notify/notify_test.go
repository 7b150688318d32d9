package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/localtest/gcp"
	"github.com/keyferry/keyferry/localtest/moto"
	"github.com/keyferry/keyferry/localtest/oidc"
)

func alert(kind string) replicate.Alert {
	return replicate.Alert{Kind: kind, Time: time.Unix(1_800_000_000, 0).UTC(), Rule: "prod-dr", SourceStore: "aws",
		SourceName: "prod/db", SourceVersion: "v1", TargetStore: "vault", TargetName: "prod/db", TargetVersion: "7",
		Reason: "the replica's current version 7 was not written by keyferry"}
}

// TestRoutes publishes alerts through every route type to the real emulators (SNS and EventBridge on moto,
// delivered to SQS; Pub/Sub on its emulator) and a local Event Grid topic that checks the managed-identity
// token, and checks kinds filtering, the log line, and that a failing route does not stop the others.
func TestRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	m, err := moto.Start(ctx, moto.Options{})
	if err != nil {
		t.Fatalf("moto: %v", err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	ps, err := gcp.StartPubSub(ctx, gcp.PubSubOptions{})
	if err != nil {
		t.Fatalf("Pub/Sub emulator: %v", err)
	}
	t.Cleanup(ps.Stop)
	iss, err := oidc.Start(oidc.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	for k, v := range iss.ManagedIdentityEnv() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", moto.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", moto.SecretAccessKey)
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, iss.CA().CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}

	// AWS: a topic and a bus rule, both delivering to SQS queues.
	cfg := moto.Config(m.URL)
	snsc := sns.NewFromConfig(cfg, func(o *sns.Options) { o.BaseEndpoint = aws.String(m.URL) })
	sqsc := sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(m.URL) })
	ebc := eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(m.URL) })
	queue := func(name string) (string, string) {
		q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return *q.QueueUrl, "arn:aws:sqs:" + moto.Region + ":123456789012:" + name
	}
	snsQ, snsQARN := queue("alerts-sns")
	ebQ, ebQARN := queue("alerts-eb")
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("keyferry-alerts")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(snsQARN),
		Attributes: map[string]string{"RawMessageDelivery": "true"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ebc.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("keyferry-alerts"), EventPattern: aws.String(`{"source":["keyferry"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ebc.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("keyferry-alerts"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(ebQARN)}}}); err != nil {
		t.Fatal(err)
	}

	// GCP: a topic with a pull subscription.
	psc, err := pubsub.NewClient(ctx, "kf-alerts", ps.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = psc.Close() })
	const psTopic = "projects/kf-alerts/topics/keyferry-alerts"
	if _, err := psc.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: psTopic}); err != nil {
		t.Fatal(err)
	}
	if _, err := psc.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: "projects/kf-alerts/subscriptions/ops", Topic: psTopic}); err != nil {
		t.Fatal(err)
	}

	// Azure: an Event Grid custom topic that wants a bearer token for Event Grid's audience.
	var egMu sync.Mutex
	var egBodies [][]byte
	iss.Handle("/api/events", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		parts := strings.Split(tok, ".")
		var claims struct {
			Aud string `json:"aud"`
		}
		if len(parts) == 3 {
			b, _ := base64.RawURLEncoding.DecodeString(parts[1])
			_ = json.Unmarshal(b, &claims)
		}
		if !strings.HasPrefix(claims.Aud, "https://eventgrid.azure.net") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"Unauthorized","message":"wrong audience"}}`)
			return
		}
		b, _ := io.ReadAll(r.Body)
		egMu.Lock()
		egBodies = append(egBodies, b)
		egMu.Unlock()
	}))

	var logs bytes.Buffer
	n, err := New([]config.NotifyRoute{
		{Type: config.NotifySNS, Topic: *topic.TopicArn, Local: true, Endpoint: m.URL, Kinds: []string{"replication.conflict"}},
		{Type: config.NotifyEventBridge, Region: moto.Region, Local: true, Endpoint: m.URL},
		{Type: config.NotifyPubSub, Topic: psTopic, Local: true, Endpoint: "http://" + ps.Host()},
		{Type: config.NotifyEventGrid, Topic: iss.URL() + "/api/events", Local: true, CAFile: caFile},
		{Type: config.NotifyLog},
	}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if err := n.Notify(ctx, alert("replication.conflict")); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, alert("replication.refused")); err != nil { // not for the SNS route
		t.Fatal(err)
	}

	receive := func(url string, want int) []string {
		var out []string
		for i := 0; i < 20 && len(out) < want; i++ {
			r, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range r.Messages {
				out = append(out, *msg.Body)
			}
		}
		return out
	}
	if got := receive(snsQ, 1); len(got) != 1 || !strings.Contains(got[0], `"kind":"replication.conflict"`) || !strings.Contains(got[0], `"target_version":"7"`) {
		t.Errorf("SNS delivered %v, want the conflict alert only", got)
	}
	if got := receive(ebQ, 2); len(got) != 2 || !strings.Contains(strings.ReplaceAll(got[0], " ", ""), `"source":"keyferry"`) ||
		!strings.Contains(strings.ReplaceAll(got[0], " ", ""), `"detail-type":"replication.`) {
		t.Errorf("EventBridge delivered %v, want both alerts", got)
	}
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	var psMu sync.Mutex
	var psGot []*pubsub.Message
	_ = psc.Subscriber("projects/kf-alerts/subscriptions/ops").Receive(rctx, func(_ context.Context, msg *pubsub.Message) {
		msg.Ack()
		psMu.Lock()
		psGot = append(psGot, msg)
		if len(psGot) == 2 {
			rcancel()
		}
		psMu.Unlock()
	})
	rcancel()
	if len(psGot) != 2 || psGot[0].Attributes["source"] != Source || !strings.HasPrefix(psGot[0].Attributes["kind"], "replication.") {
		t.Errorf("Pub/Sub delivered %d messages", len(psGot))
	}
	egMu.Lock()
	if len(egBodies) != 2 || !strings.Contains(string(egBodies[0]), `"eventType":"keyferry.replication.conflict"`) ||
		!strings.Contains(string(egBodies[0]), `"subject":"keyferry/prod-dr/prod/db"`) {
		t.Errorf("Event Grid received %s", egBodies)
	}
	egMu.Unlock()
	if c := strings.Count(logs.String(), `"msg":"alert"`); c != 2 {
		t.Errorf("%d alert log lines, want 2:\n%s", c, logs.String())
	}

	// A route that fails is reported by name; the others still publish.
	bad, err := New([]config.NotifyRoute{
		{Type: config.NotifySNS, Topic: "arn:aws:sns:" + moto.Region + ":123456789012:missing", Local: true, Endpoint: m.URL},
		{Type: config.NotifyEventBridge, Region: moto.Region, Local: true, Endpoint: m.URL},
	}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Notify(ctx, alert("replication.conflict"))
	if err == nil || !strings.Contains(err.Error(), "sns arn:aws:sns:"+moto.Region+":123456789012:missing") {
		t.Errorf("failed route: %v", err)
	}
	if got := receive(ebQ, 1); len(got) != 1 {
		t.Errorf("the EventBridge route after a failed SNS route delivered %d", len(got))
	}
}

func TestUnknownRouteType(t *testing.T) {
	if _, err := New([]config.NotifyRoute{{Type: "smtp", Line: 9}}, nil); err == nil || !strings.Contains(err.Error(), "line 9") {
		t.Fatalf("err %v", err)
	}
}
