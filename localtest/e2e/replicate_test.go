package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/rotate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/cloud"
	"github.com/keyferry/keyferry/localtest/deploy"
	"github.com/keyferry/keyferry/localtest/moto"
)

const canary = "e2e-canary"

const rules = `
replicate:
  - name: from-aws
    from: {store: aws, match: ["e2e-*"]}
    to: [azure, gcp, vault]
  - name: from-azure
    from: {store: azure, match: ["e2e-*"]}
    to: [aws, gcp, vault]
  - name: from-gcp
    from: {store: gcp, match: ["e2e-*"]}
    to: [aws, azure, vault]
  - name: guarded
    from: {store: aws, match: ["solo-*"]}
    to: [vault]
    on_conflict: alert
rotate:
  - {name: rot, store: aws, match: ["e2e-rot-*"], every: 1d, generate: {password: {length: 24}}}
`

// rig is the local cloud with the three functions deployed on it and an SQS queue subscribed to the
// alerts topic.
type rig struct {
	t      *testing.T
	c      *cloud.Cloud
	fn     *deploy.Functions
	stores map[string]store.Store
	sqs    *sqs.Client
	alerts string
}

func start(ctx context.Context, t *testing.T) *rig { t.Helper(); return startWith(ctx, t, rules) }

func startWith(ctx context.Context, t *testing.T, rules string) *rig {
	t.Helper()
	return startRig(ctx, t, rigOptions{rules: rules})
}

// rigOptions configure startRig.
type rigOptions struct {
	rules string
	// federation starts the federated cloud and gives each function its own cloud's identity only.
	federation bool
	// extraStoresFor returns more `stores:` entries (YAML indented by two spaces), after the cloud's.
	extraStoresFor func(*cloud.Cloud) string
}

func startRig(ctx context.Context, t *testing.T, o rigOptions) *rig {
	t.Helper()
	c, err := cloud.Start(ctx, cloud.Options{Logf: t.Logf, Federation: o.federation})
	if err != nil {
		t.Fatalf("local cloud: %v", err)
	}
	t.Cleanup(c.Stop)
	for k, v := range c.Env() {
		t.Setenv(k, v)
	}
	r := &rig{t: t, c: c}
	acfg := moto.Config(c.Moto.URL)
	snsc := sns.NewFromConfig(acfg, func(o *sns.Options) { o.BaseEndpoint = aws.String(c.Moto.URL) })
	r.sqs = sqs.NewFromConfig(acfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(c.Moto.URL) })
	q, err := r.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("ops-alerts")})
	if err != nil {
		t.Fatal(err)
	}
	r.alerts = *q.QueueUrl
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("keyferry-alerts")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint:   aws.String("arn:aws:sqs:" + moto.Region + ":123456789012:ops-alerts"),
		Attributes: map[string]string{"RawMessageDelivery": "true"}}); err != nil {
		t.Fatal(err)
	}
	extra := ""
	if o.extraStoresFor != nil {
		extra = o.extraStoresFor(c)
	}
	y := c.Config() + extra + o.rules + fmt.Sprintf("notify:\n  - {type: sns, topic: %q, local: true, endpoint: %q}\n", *topic.TopicArn, c.Moto.URL)
	cfg, err := config.Parse("keyferry.yaml", []byte(y))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	if r.stores, err = stores.OpenAll(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if r.fn, err = deploy.StartWith(ctx, c, y, deploy.Options{Federation: o.federation}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.fn.Stop)
	return r
}

func (r *rig) settle(ctx context.Context) map[string]int64 {
	r.t.Helper()
	w, err := r.fn.Settle(ctx)
	if err != nil {
		r.t.Fatalf("%v\n%s", err, r.fn.Logs())
	}
	return w
}

func (r *rig) value(ctx context.Context, st, name string) string {
	sec, err := r.stores[st].Get(ctx, name)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(sec.Value.Bytes())
}

// waitValue polls until every store holds want under name.
func (r *rig) waitValue(ctx context.Context, name, want string, sts ...string) {
	r.t.Helper()
	for {
		var missing []string
		for _, s := range sts {
			if r.value(ctx, s, name) != want {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("%s never reached %v\n%s", name, missing, r.fn.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *rig) put(ctx context.Context, st, name, value string) {
	r.t.Helper()
	if _, err := r.stores[st].Put(ctx, name, store.Text(value), store.PutOptions{}); err != nil {
		r.t.Fatalf("put %s/%s: %v", st, name, err)
	}
}

func diff(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// TestReplicationThroughTheFunctions: a write in each cloud reaches the others through that cloud's
// function and its real event path; each change costs one write (plus keyferry's marks) per peer, then
// everything goes quiet; duplicate and reordered deliveries write nothing; a foreign write to a replica is
// alerted through SNS and left alone; no value appears in any function's log or alert.
func TestReplicationThroughTheFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local cloud and builds the functions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r := start(ctx, t)
	all := []string{"aws", "azure", "gcp", "vault"}

	for i, from := range []string{"aws", "azure", "gcp"} {
		name := "e2e-from-" + from
		val := fmt.Sprintf("%s-%d-%s", canary, i, from)
		r.settle(ctx)
		before := deploy.WriteCalls(r.c)
		t0 := time.Now()
		r.put(ctx, from, name, val)
		r.waitValue(ctx, name, val, all...)
		t.Logf("a write in %s reached every peer in %s", from, time.Since(t0).Round(time.Millisecond))
		r.settle(ctx)
		d := diff(before, deploy.WriteCalls(r.c))
		// The user's write; per peer one value write (GCP: create + add version) and at most one metadata
		// call; one mark on the source. Anything more is a loop or a double copy.
		var total int64
		for _, n := range d {
			total += n
		}
		if total > 1+3*2+1+2 {
			t.Errorf("%s: %d mutating calls after one write (%v): a loop or a double copy", from, total, d)
			for _, l := range strings.Split(r.fn.Logs(), "\n") {
				if strings.Contains(l, name) && !strings.Contains(l, "nothing to do") {
					t.Log(l)
				}
			}
		}
		for _, st := range all {
			if st == from {
				continue
			}
			md, err := r.stores[st].Describe(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if p := md.Provenance; p == nil || p.SourceStore != from || p.SourceName != name {
				t.Errorf("%s/%s provenance %+v, want from %s", st, name, p, from)
			}
			if (st == "gcp" || st == "vault") && md.Version != "1" {
				t.Errorf("%s/%s is at version %s: an extra version was written", st, name, md.Version)
			}
		}
	}

	// Duplicates and reordering: every event delivered so far, again, newest first.
	before := r.settle(ctx)
	awsEvs, kvEvs := r.fn.Events()
	if len(awsEvs) == 0 || len(kvEvs) == 0 {
		t.Fatalf("events seen: AWS %d, Azure %d", len(awsEvs), len(kvEvs))
	}
	reverse := func(evs [][]byte) [][]byte {
		out := make([][]byte, len(evs))
		for i, e := range evs {
			out[len(evs)-1-i] = e
		}
		return out
	}
	if err := r.fn.Redeliver(ctx, reverse(awsEvs), reverse(kvEvs)); err != nil {
		t.Fatal(err)
	}
	if d := diff(before, r.settle(ctx)); len(d) != 0 {
		t.Errorf("replaying %d AWS and %d Azure events wrote %v", len(awsEvs), len(kvEvs), d)
	}

	// A foreign write to a replica, then a new source version: alerted, not overwritten.
	r.put(ctx, "aws", "solo-db", canary+"-solo-1")
	r.waitValue(ctx, "solo-db", canary+"-solo-1", "vault")
	r.settle(ctx)
	r.put(ctx, "vault", "solo-db", canary+"-foreign")
	r.put(ctx, "aws", "solo-db", canary+"-solo-2")
	var alert string
	for alert == "" {
		out, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.alerts), WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("no alert: %v\n%s", err, r.fn.Logs())
		}
		for _, m := range out.Messages {
			alert = *m.Body
		}
	}
	var a struct {
		Kind        string `json:"kind"`
		Rule        string `json:"rule"`
		TargetStore string `json:"target_store"`
		TargetName  string `json:"target_name"`
	}
	if err := json.Unmarshal([]byte(alert), &a); err != nil || a.Kind != "replication.conflict" || a.Rule != "guarded" ||
		a.TargetStore != "vault" || a.TargetName != "solo-db" {
		t.Errorf("alert %s (%v)", alert, err)
	}
	r.settle(ctx)
	if n := strings.Count(r.fn.Logs(), `"msg":"alert"`); n != 1 {
		t.Errorf("%d alerts for one foreign write (two events: CloudTrail and Secret Label Updated), want 1", n)
	}
	if got := r.value(ctx, "vault", "solo-db"); got != canary+"-foreign" {
		t.Errorf("the foreign write was overwritten: vault holds %q", got)
	}

	// A lost EventBridge delivery: nothing replicates until the scheduled sweep finds the change.
	r.c.Trail.Pause(true)
	r.put(ctx, "aws", "e2e-lost", canary+"-lost")
	r.settle(ctx)
	r.c.Trail.Pause(false)
	if got := r.value(ctx, "azure", "e2e-lost"); !strings.Contains(got, "not found") {
		t.Fatalf("azure holds %q before any event or sweep", got)
	}
	sched := []byte(`{"version":"0","id":"sweep-1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}`)
	if o, err := r.fn.Lambda.Invoke(ctx, sched); err != nil || o.Err {
		t.Fatalf("scheduled sweep: %s %v\n%s", o.Payload, err, r.fn.Logs())
	}
	r.waitValue(ctx, "e2e-lost", canary+"-lost", all...)

	// Rotation in the mesh: the AWS function's timer rotates a secret last rotated three days ago; the new
	// value lands in every peer as one new version each, and nothing is copied back and forth afterwards.
	old := time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)
	if _, err := r.stores["aws"].Put(ctx, "e2e-rot-1", store.Text(canary+"-rot"), store.PutOptions{Tags: map[string]string{rotate.TagRotated: old}}); err != nil {
		t.Fatal(err)
	}
	r.waitValue(ctx, "e2e-rot-1", canary+"-rot", all...)
	before = r.settle(ctx)
	if o, err := r.fn.Lambda.Invoke(ctx, sched); err != nil || o.Err || !strings.Contains(string(o.Payload), "1 rotated") {
		t.Fatalf("timer: %s %v\n%s", o.Payload, err, r.fn.Logs())
	}
	d := diff(before, r.settle(ctx))
	primary, err := r.stores["aws"].Get(ctx, "e2e-rot-1")
	if err != nil || string(primary.Value.Bytes()) == canary+"-rot" {
		t.Fatalf("the primary was not rotated: %v", err)
	}
	for _, st := range all {
		sec, err := r.stores[st].Get(ctx, "e2e-rot-1")
		if err != nil || !sec.Value.Equal(primary.Value) {
			t.Errorf("%s does not hold the rotated value: %v", st, err)
		}
		if (st == "gcp" || st == "vault") && sec.Metadata.Version != "2" {
			t.Errorf("%s/e2e-rot-1 at version %s after one rotation (want 2: no copying back and forth)", st, sec.Metadata.Version)
		}
	}
	t.Logf("rotation: mutating calls per store %v", d)

	if strings.Contains(r.fn.Logs()+r.c.Logs()+alert, canary) {
		t.Error("a secret value appears in a function's log or an alert")
	}
	if d, f := r.fn.Azure.Counts(); f != 0 || d == 0 {
		t.Errorf("Azure deliveries: %d delivered, %d failed", d, f)
	}
	n, errs := r.c.Notifier.Sent()
	t.Logf("events: AWS %d, Azure %d, Secret Manager notifications %d (errors %v)", len(awsEvs), len(kvEvs), n, errs)
}
