package events

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/keyferry/keyferry/core/event"
	"github.com/keyferry/keyferry/localtest/moto"
)

const canary = "trail-canary-value"

// TestTrailEmitsWhatEventBridgeDelivers drives Secrets Manager and SSM through the trail with the official
// SDK and checks every event: its shape, that keyferry's decoder reads it as the change that happened, that
// failed calls carry errorCode and are ignored, that reads emit nothing and that no value appears.
func TestTrailEmitsWhatEventBridgeDelivers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := moto.Start(ctx, moto.Options{})
	if err != nil {
		t.Fatalf("start moto: %v", err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	var mu sync.Mutex
	var got [][]byte
	tr, err := StartTrail(m.URL, func(b []byte) { mu.Lock(); got = append(got, b); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	cfg := moto.Config(tr.URL)
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(tr.URL) })
	ps := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(tr.URL) })

	take := func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}
	type want struct {
		detailType, reason string
		kind               event.Kind
		ignored            bool
	}
	check := func(step string, wants ...want) {
		t.Helper()
		evs := take()
		if len(evs) != len(wants) {
			t.Fatalf("%s: %d events, want %d: %s", step, len(evs), len(wants), evs)
		}
		for i, b := range evs {
			if strings.Contains(string(b), canary) || strings.Contains(string(b), "secretString") {
				t.Fatalf("%s: an event carries the value: %s", step, b)
			}
			var env struct {
				DetailType string `json:"detail-type"`
				Region     string `json:"region"`
				Account    string `json:"account"`
			}
			_ = json.Unmarshal(b, &env)
			if env.DetailType != wants[i].detailType || env.Region != moto.Region || env.Account != Account {
				t.Fatalf("%s: event %d: %s", step, i, b)
			}
			d, err := event.DecodeAWS(b)
			if wants[i].ignored {
				if !errors.Is(err, event.ErrIgnored) {
					t.Fatalf("%s: event %d decoded (%v), want ignored: %s", step, i, err, b)
				}
				continue
			}
			if err != nil || d.Change == nil {
				t.Fatalf("%s: event %d: %v: %s", step, i, err, b)
			}
			if d.Change.Name != "app/db" && d.Change.Name != "/app/param" || d.Change.Kind != wants[i].kind ||
				d.Change.Region != moto.Region || d.Change.Reason != wants[i].reason {
				t.Fatalf("%s: event %d decoded as %+v", step, i, *d.Change)
			}
		}
	}
	const ct, label, psc = "AWS API Call via CloudTrail", "Secret Label Updated", "Parameter Store Change"

	cr, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"), SecretString: aws.String(canary)})
	if err != nil {
		t.Fatal(err)
	}
	check("CreateSecret", want{ct, "CreateSecret", event.KindWrite, false}, want{label, "Secret Label Updated", event.KindWrite, false})
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")}); err != nil {
		t.Fatal(err)
	}
	check("GetSecretValue")
	pv, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/db"), SecretString: aws.String(canary + "2")})
	if err != nil {
		t.Fatal(err)
	}
	check("PutSecretValue", want{ct, "PutSecretValue", event.KindWrite, false}, want{label, "Secret Label Updated", event.KindWrite, false})
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/db"),
		SecretString: aws.String(canary + "3"), VersionStages: []string{"AWSPENDING"}}); err != nil {
		t.Fatal(err)
	}
	check("PutSecretValue AWSPENDING", want{ct, "PutSecretValue", event.KindWrite, false})
	if _, err := sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("app/db"),
		VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: cr.VersionId, RemoveFromVersionId: pv.VersionId}); err != nil {
		t.Fatal(err)
	}
	check("UpdateSecretVersionStage", want{ct, "UpdateSecretVersionStage", event.KindWrite, false}, want{label, "Secret Label Updated", event.KindWrite, false})
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("app/missing"), SecretString: aws.String(canary)}); err == nil {
		t.Fatal("PutSecretValue on a missing secret succeeded")
	}
	check("failed PutSecretValue", want{ct, "", "", true})
	if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("app/db"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	check("DeleteSecret", want{ct, "DeleteSecret", event.KindDelete, false})

	for i, op := range []string{"Parameter Store Create", "Parameter Store Update"} {
		if _, err := ps.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/param"), Value: aws.String(canary),
			Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(i > 0)}); err != nil {
			t.Fatal(err)
		}
		check(op, want{psc, op, event.KindWrite, false})
	}
	if _, err := ps.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/app/param")}); err != nil {
		t.Fatal(err)
	}
	check("DeleteParameter", want{psc, "Parameter Store Delete", event.KindDelete, false})

	tr.Pause(true)
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/lost"), SecretString: aws.String(canary)}); err != nil {
		t.Fatal(err)
	}
	check("paused")
	tr.Pause(false)
	if n := tr.Emitted(); n != 12 {
		t.Errorf("Emitted() = %d, want 12", n)
	}
}
