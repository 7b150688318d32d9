package event

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	evDelete = `{"version":"0","id":"x","detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","account":"1",
 "time":"2018-04-03T17:51:02Z","region":"us-east-2","resources":[],
 "detail":{"eventSource":"secretsmanager.amazonaws.com","eventName":"DeleteSecret","eventType":"AwsApiCall",
  "requestParameters":null,"responseElements":{"name":"MyDatabaseSecret","deletionDate":"May 3, 2018 5:51:02 PM",
  "aRN":"arn:aws:secretsmanager:us-east-2:123456789012:secret:MyDatabaseSecret-a1b2c3"}}}`
	evRotated = `{"version":"0","id":"dd5fd657","detail-type":"AWS Service Event via CloudTrail","source":"aws.secretsmanager",
 "account":"111122223333","time":"2021-08-13T19:17:16Z","region":"us-west-2","resources":[],
 "detail":{"eventVersion":"1.08","eventSource":"secretsmanager.amazonaws.com","eventName":"RotationSucceeded","awsRegion":"us-west-2",
  "requestParameters":null,"responseElements":null,
  "additionalEventData":{"SecretId":"arn:aws:secretsmanager:us-west-2:111122223333:secret:app/db-AbCdEf"},
  "eventType":"AwsServiceEvent"}}`
	evLabel = `{"version":"0","id":"6a7e","detail-type":"Secret Label Updated","source":"aws.secretsmanager",
 "account":"012345678901","time":"2024-02-06T16:43:48Z","region":"us-west-2",
 "resources":["arn:aws:secretsmanager:us-west-2:012345678901:secret:mySecret-a1b2c3"],
 "detail":{"name":"mySecret","labelUpdated":"AWSCURRENT","versionId":"a1b2c3d4"}}`
	evPut = `{"version":"0","id":"p1","detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","account":"1",
 "time":"2026-01-01T00:00:00Z","region":"eu-west-1","resources":[],
 "detail":{"eventSource":"secretsmanager.amazonaws.com","eventName":"PutSecretValue","eventType":"AwsApiCall","awsRegion":"eu-west-1",
  "requestParameters":{"secretId":"prod/db","clientRequestToken":"t"},"responseElements":{"arn":"arn:aws:secretsmanager:eu-west-1:1:secret:prod/db-Ab12Cd","versionId":"v2"}}}`
	evFailed = `{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","detail":{"eventName":"PutSecretValue","errorCode":"AccessDenied","requestParameters":{"secretId":"a"}}}`
	evTag    = `{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","detail":{"eventName":"TagResource","requestParameters":{"secretId":"a"}}}`
	evSSM    = `{"version":"0","id":"s1","detail-type":"Parameter Store Change","source":"aws.ssm","account":"1","time":"2026-01-01T00:00:00Z","region":"eu-west-1","resources":["arn:aws:ssm:eu-west-1:1:parameter/app/key"],"detail":{"operation":"Update","name":"/app/key","type":"SecureString"}}`
	evSched  = `{"version":"0","id":"c1","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"2026-01-01T00:00:00Z","region":"eu-west-1","resources":["arn:aws:events:eu-west-1:1:rule/keyferry-sweep"],"detail":{}}`
	evRotate = `{"Step":"create_secret","SecretId":"arn:aws:secretsmanager:us-east-1:1:secret:x-abcdef","ClientRequestToken":"tok","RotationToken":"rt"}`

	egSecret = `{"id":"00ec","topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv",
 "subject":"newsecret","eventType":"Microsoft.KeyVault.SecretNewVersionCreated","eventTime":"2019-07-25T01:08:33.1036736Z",
 "data":{"Id":"https://sample-kv.vault.azure.net/secrets/newsecret/ee05","VaultName":"sample-kv","ObjectType":"Secret","ObjectName":"newsecret",
  "Version":"ee05","NBF":1559081980,"EXP":"1559082102"},"dataVersion":"1","metadataVersion":"1"}`
	ceSecret = `{"id":"0a09","source":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1",
 "specversion":"1.0","type":"Microsoft.KeyVault.SecretNearExpiry","subject":"secret1","time":"2024-04-01T16:21:21.2932321Z",
 "data":{"Id":"https://kv1.vault.azure.net/secrets/secret1/0c77","VaultName":"kv1","ObjectType":"Secret","ObjectName":"secret1","Version":"0c77","NBF":null,"EXP":null}}`
	egValidate = `{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","subject":"","eventTime":"2026-01-01T00:00:00Z","data":{"validationCode":"512d38b6"}}`
)

func TestDecodeAWS(t *testing.T) {
	for _, c := range []struct {
		name, in            string
		service, sname, ver string
		kind                Kind
	}{
		{"delete with legacy aRN", evDelete, ServiceSecretsManager, "MyDatabaseSecret", "", KindDelete},
		{"service event", evRotated, ServiceSecretsManager, "app/db", "", KindWrite},
		{"label AWSCURRENT", evLabel, ServiceSecretsManager, "mySecret", "a1b2c3d4", KindWrite},
		{"put", evPut, ServiceSecretsManager, "prod/db", "", KindWrite},
		{"ssm", evSSM, ServiceSSM, "/app/key", "", KindWrite},
	} {
		d, err := DecodeAWS([]byte(c.in))
		if err != nil || d.Change == nil {
			t.Errorf("%s: %+v, %v", c.name, d, err)
			continue
		}
		ch := d.Change
		if ch.Service != c.service || ch.Name != c.sname || ch.Version != c.ver || ch.Kind != c.kind || ch.Region == "" {
			t.Errorf("%s: %+v", c.name, *ch)
		}
	}
	d, err := DecodeAWS([]byte(evSched))
	if err != nil || d.Schedule == nil || d.Schedule.Job != "sweep" {
		t.Errorf("schedule: %+v %v", d, err)
	}
	d, err = DecodeAWS([]byte(`{"job":"deep-sweep","scheduledTime":"2026-01-01T00:00:00Z"}`))
	if err != nil || d.Schedule == nil || d.Schedule.Job != "deep-sweep" || d.Schedule.Time.IsZero() {
		t.Errorf("scheduler input: %+v %v", d, err)
	}
	d, err = DecodeAWS([]byte(evRotate))
	if err != nil || d.Rotation == nil || d.Rotation.Step != StepCreate || d.Rotation.ClientRequestToken != "tok" {
		t.Errorf("rotation: %+v %v", d, err)
	}
	for _, in := range []string{evFailed, evTag, strings.Replace(evLabel, "AWSCURRENT", "AWSPENDING", 1),
		`{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}`} {
		if _, err := DecodeAWS([]byte(in)); !errors.Is(err, ErrIgnored) {
			t.Errorf("want ignored, got %v for %.60s", err, in)
		}
	}
	for _, in := range []string{``, `[]`, `{"a":1}`, `{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","detail":{"eventName":"PutSecretValue"}}`,
		`{"Step":"explode","SecretId":"x","ClientRequestToken":"t"}`, `{"detail-type":1}`} {
		var de *DecodeError
		if _, err := DecodeAWS([]byte(in)); !errors.As(err, &de) {
			t.Errorf("want a DecodeError, got %v for %q", err, in)
		}
	}
}

func TestSecretName(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:secretsmanager:us-east-2:123456789012:secret:MyDatabaseSecret-a1b2c3": "MyDatabaseSecret",
		"arn:aws:secretsmanager:us-east-2:123456789012:secret:a/b-c-a1b2c3":            "a/b-c",
		"prod/db-a1b2c3": "prod/db-a1b2c3", // a name, not an ARN: kept whole
		"plain":          "plain",
	} {
		if got := SecretName(in); got != want {
			t.Errorf("SecretName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeEventGrid(t *testing.T) {
	d, err := DecodeEventGrid([]byte(egSecret))
	if err != nil || d.Change == nil || d.Change.Vault != "sample-kv" || d.Change.Name != "newsecret" || d.Change.Version != "ee05" || d.Change.Kind != KindWrite {
		t.Fatalf("event grid schema: %+v %v", d.Change, err)
	}
	d, err = DecodeEventGrid([]byte(ceSecret))
	if err != nil || d.Change == nil || d.Change.Vault != "kv1" || d.Change.Kind != KindRotate {
		t.Fatalf("cloudevents schema: %+v %v", d.Change, err)
	}
	var vr *ValidationRequest
	if _, err := DecodeEventGrid([]byte(egValidate)); !errors.As(err, &vr) || vr.Code != "512d38b6" {
		t.Fatalf("validation: %v", err)
	}
	// Binding values: an object, an array, or either inside a JSON string.
	str, _ := json.Marshal(egSecret)
	for _, in := range []string{egSecret, "[" + egSecret + "," + ceSecret + "]", string(str)} {
		evs, err := SplitEventGrid([]byte(in))
		if err != nil || len(evs) == 0 {
			t.Fatalf("split %.40s: %v", in, err)
		}
		if _, err := DecodeEventGrid(evs[0]); err != nil {
			t.Fatalf("decode after split: %v", err)
		}
	}
	bad := strings.Replace(egSecret, `"NBF":1559081980`, `"NBF":"soon"`, 1)
	var de *DecodeError
	if _, err := DecodeEventGrid([]byte(bad)); !errors.As(err, &de) {
		t.Errorf("bad NBF: %v", err)
	}
	if _, err := DecodeEventGrid([]byte(strings.Replace(egSecret, "SecretNewVersionCreated", "KeyNewVersionCreated", 1))); !errors.Is(err, ErrIgnored) {
		t.Errorf("key event: %v", err)
	}
}

func pubsub(t *testing.T, attrs map[string]string, data string) []byte {
	t.Helper()
	b, _ := json.Marshal(MessagePublished{Message: PubSubMessage{Data: []byte(data), Attributes: attrs, MessageID: "m1"},
		Subscription: "projects/p/subscriptions/s"})
	return b
}

func TestDecodePubSub(t *testing.T) {
	add := pubsub(t, map[string]string{"eventType": "SECRET_VERSION_ADD", "dataFormat": "JSON_API_V1",
		"secretId": "projects/123/secrets/db", "versionId": "projects/123/secrets/db/versions/4", "timestamp": "2021-01-20T11:17:45.081104-08:00"},
		`{"name":"projects/123/secrets/db/versions/4","createTime":"2021-01-20T19:17:45Z","state":"ENABLED","unknownField":1}`)
	d, err := DecodeMessagePublished(add)
	if err != nil || d.Change == nil || d.Change.Project != "123" || d.Change.Name != "db" || d.Change.Version != "4" || d.Change.Kind != KindWrite || d.Change.Time.IsZero() {
		t.Fatalf("version add: %+v %v", d.Change, err)
	}
	del := pubsub(t, map[string]string{"eventType": "SECRET_DELETE", "secretId": "projects/p/secrets/x"}, `{"name":"projects/p/secrets/x"}`)
	if d, err := DecodeMessagePublished(del); err != nil || d.Change.Kind != KindDelete || d.Change.Name != "x" {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if _, err := DecodeMessagePublished(pubsub(t, map[string]string{"eventType": "TOPIC_CONFIGURED"}, "")); !errors.Is(err, ErrIgnored) {
		t.Fatalf("topic configured: %v", err)
	}
	if d, err := DecodeMessagePublished(pubsub(t, nil, `{"job":"sweep"}`)); err != nil || d.Schedule == nil {
		t.Fatalf("scheduler: %+v %v", d, err)
	}
	var de *DecodeError
	if _, err := DecodeMessagePublished(pubsub(t, map[string]string{"eventType": "SECRET_VERSION_ADD"}, `{"name":5}`)); !errors.As(err, &de) {
		t.Fatalf("bad data: %v", err)
	}
	// The data field is base64 in JSON.
	var raw map[string]map[string]any
	_ = json.Unmarshal(add, &raw)
	if _, err := base64.StdEncoding.DecodeString(raw["message"]["data"].(string)); err != nil {
		t.Fatal("test payload is not base64")
	}
}

// checkDecodeResult is what every fuzzer asserts: a decoder returns a result, an ignorable event, a
// validation request or a DecodeError — never a panic, never anything else.
func checkDecodeResult(t *testing.T, d Decoded, err error) {
	var de *DecodeError
	var vr *ValidationRequest
	switch {
	case err == nil:
		n := 0
		for _, set := range []bool{d.Change != nil, d.Schedule != nil, d.Rotation != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("a successful decode set %d results", n)
		}
		if d.Change != nil && (d.Change.Name == "" || d.Change.Service == "" || d.Change.Kind == "") {
			t.Fatalf("incomplete change %+v", *d.Change)
		}
	case errors.Is(err, ErrIgnored), errors.As(err, &de), errors.As(err, &vr):
	default:
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
}

func FuzzDecodeAWS(f *testing.F) {
	for _, s := range []string{evDelete, evRotated, evLabel, evPut, evFailed, evTag, evSSM, evSched, evRotate, `{"job":"x"}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeAWS(b)
		checkDecodeResult(t, d, err)
	})
}

func FuzzDecodeEventGrid(f *testing.F) {
	for _, s := range []string{egSecret, ceSecret, egValidate, "[" + egSecret + "]", `"{}"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := SplitEventGrid(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("split: %T", err)
			}
			return
		}
		for _, ev := range evs {
			d, err := DecodeEventGrid(ev)
			checkDecodeResult(t, d, err)
		}
	})
}

func FuzzDecodePubSub(f *testing.F) {
	f.Add([]byte(`{"message":{"data":"eyJuYW1lIjoicHJvamVjdHMvcC9zZWNyZXRzL3gifQ==","attributes":{"eventType":"SECRET_DELETE","secretId":"projects/p/secrets/x"}}}`))
	f.Add([]byte(`{"message":{"data":"","attributes":{"eventType":"SECRET_VERSION_ADD","versionId":"projects/p/secrets/x/versions/1"}}}`))
	f.Add([]byte(`{"message":{"data":"eyJqb2IiOiJzd2VlcCJ9"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeMessagePublished(b)
		checkDecodeResult(t, d, err)
	})
}
