package gcp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// observe remembers the Secret Manager front server the notifier's interceptor runs in.
func (n *Notifier) observe(info *grpc.UnaryServerInfo) {
	if info == nil || n.front.Load() != nil {
		return
	}
	if f, ok := info.Server.(*frontServer); ok {
		n.front.CompareAndSwap(nil, f)
	}
}

// PublishRotations does what Secret Manager does when a secret's rotation.next_rotation_time is reached
// (Secret Manager only announces a rotation; it changes no value): for every secret with topics whose
// next_rotation_time is not after now, it publishes SECRET_ROTATE to each of the secret's topics —
// attributes eventType, dataFormat (JSON_API_V1), secretId and timestamp, data the Secret in proto3 JSON
// with its advanced schedule, never a payload — and advances next_rotation_time by rotation_period (by as
// many periods as it takes to pass now, so a long pause announces once), or clears it when the secret has
// no period. It returns the announced secrets' names, sorted.
//
// The service runs this on its own; here a test calls it, with the time it wants Secret Manager to believe
// it is. The schedule advances without an API call (no UpdateSecret, no SECRET_UPDATE notification, the
// etag unchanged). The notifier learns which Secret Manager it serves from the first call its Interceptor
// sees; before that there is nothing to scan.
func (n *Notifier) PublishRotations(ctx context.Context, now time.Time) ([]string, error) {
	f := n.front.Load()
	if f == nil {
		return nil, nil
	}
	type due struct {
		secret *secretmanagerpb.Secret
		topics []string
	}
	var dues []due
	f.mu.Lock()
	for name, x := range f.extra {
		r := x.rotation
		if r == nil || r.GetNextRotationTime() == nil || len(x.topics) == 0 || r.GetNextRotationTime().AsTime().After(now) {
			continue
		}
		cur, err := f.inner.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
		if err != nil {
			continue // deleted meanwhile
		}
		next := proto.Clone(r).(*secretmanagerpb.Rotation)
		if p := next.GetRotationPeriod().AsDuration(); p > 0 {
			t := next.GetNextRotationTime().AsTime()
			for !t.After(now) {
				t = t.Add(p)
			}
			next.NextRotationTime = timestamppb.New(t)
		} else {
			next.NextRotationTime = nil
		}
		x.rotation = next
		d := due{secret: f.decorate(cur)}
		for _, t := range x.topics {
			d.topics = append(d.topics, t.GetName())
		}
		dues = append(dues, d)
	}
	f.mu.Unlock()

	sort.Slice(dues, func(i, j int) bool { return dues[i].secret.GetName() < dues[j].secret.GetName() })
	var names []string
	var errs []error
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	for _, d := range dues {
		names = append(names, d.secret.GetName())
		data, err := protojson.Marshal(d.secret) // a Secret holds no payload
		if err != nil {
			errs = append(errs, err)
			continue
		}
		attrs := map[string]string{"eventType": "SECRET_ROTATE", "dataFormat": "JSON_API_V1",
			"secretId": d.secret.GetName(), "timestamp": stamp}
		for _, topic := range d.topics {
			if err := n.publish(ctx, topic, &pubsub.Message{Data: data, Attributes: attrs}); err != nil {
				err = fmt.Errorf("SECRET_ROTATE for %s to %s: %w", d.secret.GetName(), topic, err)
				n.mu.Lock()
				n.errs = append(n.errs, err.Error())
				n.mu.Unlock()
				n.logf("notification %v", err)
				errs = append(errs, err)
			}
		}
	}
	return names, errors.Join(errs...)
}
