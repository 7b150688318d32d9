package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/keyferry/keyferry/infra/opslist"
)

// awsExtras are the actions the stack grants the functions although no SDK operation of keyferry's names
// them: services and the Lambda runtime act with the function's role on its behalf.
var awsExtras = []opslist.Extra{
	{Permission: "kms:Decrypt", Why: "Secrets Manager and Parameter Store decrypt with the caller's permissions (kms:ViaService or the store's key)"},
	{Permission: "kms:Encrypt", Why: "Parameter Store encrypts SecureString parameters with the caller's permissions"},
	{Permission: "kms:GenerateDataKey", Why: "Secrets Manager encrypts secret versions with the caller's permissions"},
	{Permission: "logs:CreateLogStream", Why: "the Lambda runtime writes the function's logs with its role"},
	{Permission: "logs:PutLogEvents", Why: "the Lambda runtime writes the function's logs with its role"},
	{Permission: "sqs:SendMessage", Why: "Lambda sends failed asynchronous invocations to the dead-letter queue with the function's role"},
}

var (
	scanOnce  sync.Once
	awsNeeds  opslist.Needs
	awsOps    []opslist.Op
	errAWSOps error
)

// neededActions are the IAM actions the AWS operations of the functions' code need (infra/opslist scans
// keyferry's module, two directories up).
func neededActions(t *testing.T) opslist.Needs {
	t.Helper()
	scanOnce.Do(func() {
		res, err := opslist.Scan(context.Background(), "../..")
		if err != nil {
			errAWSOps = err
			return
		}
		awsOps = res.ByCloud(opslist.AWS)
		awsNeeds, errAWSOps = opslist.Permissions(opslist.AWS, res.Ops)
	})
	if errAWSOps != nil {
		t.Fatal(errAWSOps)
	}
	return awsNeeds
}

// grantedActions are the actions the template's identity policies (managed policies and the roles'
// inline policies) allow, with the statements that allow them.
func grantedActions(full map[string]any) map[string][]string {
	out := map[string][]string{}
	for _, typ := range []string{"AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"} {
		for id, props := range resources(full, typ) {
			sts, _ := get(props, "PolicyDocument", "Statement").([]any)
			for i, st := range sts {
				if get(st, "Effect") != "Allow" {
					continue
				}
				where := fmt.Sprintf("%s/Statement[%d]", id, i)
				if sid, ok := get(st, "Sid").(string); ok {
					where = id + "/" + sid
				}
				for _, a := range rendered(get(st, "Action")) {
					out[a] = append(out[a], where)
				}
			}
		}
	}
	return out
}

// TestGrantsMatchTheCode is the least-privilege check against the code: the stack built from
// testdata/keyferry.yaml (every AWS store type, rotation, certificates into a store and two ACM regions with a
// KMS-held CA key, SNS and EventBridge alerts) grants the functions every IAM action the AWS SDK operations of
// keyferry's code need, and nothing else but awsExtras.
func TestGrantsMatchTheCode(t *testing.T) {
	needs := neededActions(t)
	_, full := synth(t, exampleContext(t))
	check := func(t *testing.T, granted map[string][]string) {
		d := opslist.Compare(needs, granted, awsExtras)
		if !d.OK() {
			t.Errorf("grants and code disagree:\n%s", d)
		}
		t.Logf("%d AWS operations in the code need %d actions; the template grants %d (%d deliberate extras)",
			len(awsOps), len(needs), len(granted), len(awsExtras))
	}
	t.Run("InProcess", func(t *testing.T) { check(t, grantedActions(full)) })
	t.Run("CLISynth", func(t *testing.T) {
		path := os.Getenv("KEYFERRY_CDK_TEMPLATE")
		if path == "" {
			t.Skip("KEYFERRY_CDK_TEMPLATE is not set (make infra-check-cdk sets it to the template cdk synth wrote)")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var tmpl map[string]any
		if err := json.Unmarshal(data, &tmpl); err != nil {
			t.Fatal(err)
		}
		check(t, grantedActions(tmpl))
	})
}

// TestGrantsCheckCatchesDrift shows the check failing on the same template with one used action removed
// from every statement and one action no code calls added.
func TestGrantsCheckCatchesDrift(t *testing.T) {
	needs := neededActions(t)
	_, full := synth(t, exampleContext(t))
	const removed, added = "secretsmanager:UpdateSecretVersionStage", "secretsmanager:GetResourcePolicy"
	granted := grantedActions(full)
	if _, ok := granted[removed]; !ok {
		t.Fatalf("%s is not granted in the first place", removed)
	}
	delete(granted, removed)
	granted[added] = []string{"StoreAccess/Injected"}

	d := opslist.Compare(needs, granted, awsExtras)
	t.Logf("reported:\n%s", d)
	if len(d.Missing) != 1 || !strings.HasPrefix(d.Missing[0], removed+": needed by secretsmanager UpdateSecretVersionStage (core/store/awssm/") {
		t.Errorf("missing %q, want exactly %s with the call site", d.Missing, removed)
	}
	if len(d.Unused) != 1 || d.Unused[0] != added+": granted by StoreAccess/Injected" {
		t.Errorf("unused %q, want exactly %s", d.Unused, added)
	}
	// A deliberate extra that nothing grants any more is reported too, so the list stays true.
	delete(granted, "sqs:SendMessage")
	if d := opslist.Compare(needs, granted, awsExtras); len(d.Stale) != 1 || !strings.HasPrefix(d.Stale[0], "sqs:SendMessage") {
		t.Errorf("stale extras %q, want sqs:SendMessage", d.Stale)
	}
}

// TestNeededActionsCoverTheStores pins a few operations the scan must find, each from its own kind of call:
// a client method (awssm), an interface mirroring the client (certs.ACMClient, kmssigner), a notifier, and
// the outbound federation.
func TestNeededActionsCoverTheStores(t *testing.T) {
	needs := neededActions(t)
	for action, site := range map[string]string{
		"secretsmanager:PutSecretValue": "core/store/awssm/",
		"ssm:PutParameter":              "core/store/awsssm/",
		"acm:ImportCertificate":         "core/certs/acm.go",
		"acm:AddTagsToCertificate":      "core/certs/acm.go",
		"kms:Sign":                      "core/pki/kmssigner/aws.go",
		"sns:Publish":                   "core/notify/aws.go",
		"events:PutEvents":              "core/notify/aws.go",
		"sts:GetWebIdentityToken":       "core/identity/",
	} {
		if ops := needs[action]; len(ops) == 0 || !strings.Contains(strings.Join(ops, " "), site) {
			t.Errorf("%s: needed by %q, want a call in %s", action, ops, site)
		}
	}
	// The inventory (keyferry inventory, the CLI) is not the functions': its DescribeCertificate is not needed.
	if ops, ok := needs["acm:DescribeCertificate"]; ok {
		t.Errorf("acm:DescribeCertificate needed by %v: the inventory's calls must not count", ops)
	}
	names := make([]string, 0, len(needs))
	for a := range needs {
		names = append(names, a)
	}
	sort.Strings(names)
	t.Logf("actions the code needs: %s", strings.Join(names, " "))
}
