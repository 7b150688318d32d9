package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mapContext is a Context over a map, as `-c key=value` gives it.
func mapContext(m map[string]string) Context {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// fakeAsset is a directory holding a (fake) bootstrap binary.
func fakeAsset(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("not a real binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// exampleContext is the context `make infra-check-cdk` passes for testdata/keyferry.yaml.
func exampleContext(t *testing.T) map[string]string {
	return map[string]string{
		ctxConfig: "testdata/keyferry.yaml", ctxAssetDir: fakeAsset(t),
		ctxAccount: "123456789012", ctxRegion: "eu-west-1",
		ctxAzurePrincipalID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", ctxAzureAudience: "api://aws-federation",
		ctxGCPServiceAccountID: "112233445566778899001",
	}
}

func TestLoadSettingsExample(t *testing.T) {
	s, err := LoadSettings(mapContext(exampleContext(t)), ".")
	if err != nil {
		t.Fatal(err)
	}
	if s.Azure == nil || s.Azure.TenantID != "11111111-2222-3333-4444-555555555555" || s.Azure.Issuer() != "https://sts.windows.net/11111111-2222-3333-4444-555555555555/" {
		t.Errorf("Azure trust %+v: the tenant comes from the azure-keyvault store", s.Azure)
	}
	if s.GCP == nil || s.GCP.Audience != "sts.amazonaws.com" || s.GCP.OIDCProvider {
		t.Errorf("GCP trust %+v", s.GCP)
	}
	if s.LogRetentionDays != 30 || s.ReservedConcurrency != 10 || s.StackName != "Keyferry" || s.RenewSchedule != "rate(6 hours)" {
		t.Errorf("defaults: %+v", s)
	}
}

// TestLoadSettingsMissingContext: without the identities of the other clouds' functions the app stops with
// an error naming every missing value and how to pass it.
func TestLoadSettingsMissingContext(t *testing.T) {
	ctx := exampleContext(t)
	delete(ctx, ctxAzurePrincipalID)
	delete(ctx, ctxAzureAudience)
	delete(ctx, ctxGCPServiceAccountID)
	_, err := LoadSettings(mapContext(ctx), ".")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"azure-keyvault stores (azure-prod)", "azurePrincipalId (the object id of the Function App's managed identity",
		"azureAudience", "cdk deploy -c azureTenantId=", "-c azureTrust=false",
		"gcp-secretmanager stores (gcp-prod)", "gcpServiceAccountId is missing", "uniqueId", "-c gcpTrust=false",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
	t.Log(msg)

	// Turning the trusts off is explicit.
	ctx[ctxAzureTrust], ctx[ctxGCPTrust] = "false", "false"
	if s, err := LoadSettings(mapContext(ctx), "."); err != nil || s.Azure != nil || s.GCP != nil {
		t.Errorf("trusts off: %v, %+v", err, s)
	}
}

func TestLoadSettingsRefusals(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "local.yaml")
	if err := os.WriteFile(local, []byte("stores:\n  moto:\n    type: aws-secretsmanager\n    region: us-east-1\n    local: true\n    endpoint: http://127.0.0.1:5000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	localCert := filepath.Join(dir, "local-cert.yaml")
	if err := os.WriteFile(localCert, []byte(`stores:
  a: {type: aws-secretsmanager, region: us-east-1}
certificates:
  issuer: {builtin: {certificate: ca.pem, key: {aws_kms: {key_id: alias/ca, region: us-east-1, local: true, endpoint: "http://127.0.0.1:5000"}}}}
  policy: {allowed_domains: ["*.example.com"], max_ttl: 168h, key_types: [ec-p256]}
  specs:
    - {name: api, dns: [api.example.com], targets: [{acm: {region: us-east-1, local: true, endpoint: "http://127.0.0.1:5000"}}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("stores:\n  a: {type: aws-secretsmanager, region: us-east-1}\n# "+strings.Repeat("x", 4100)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ctx  map[string]string
		want string
	}{
		{map[string]string{ctxConfig: local}, "store moto is a store of the local cloud"},
		{map[string]string{ctxConfig: big}, "exceeds the 4096 bytes Lambda allows"},
		{map[string]string{ctxConfig: filepath.Join(dir, "none.yaml")}, "cannot read keyferry.yaml"},
		{map[string]string{ctxLogRetentionDays: "31"}, "logRetentionDays \"31\""},
		{map[string]string{ctxReservedConcurrency: "-1"}, "reservedConcurrency"},
		{map[string]string{ctxAzurePrincipalID: "someone@example.com"}, "azurePrincipalId \"someone@example.com\": the managed identity's object (principal) id is a GUID"},
		{map[string]string{ctxAzureTenantID: "contoso.onmicrosoft.com"}, "the tenant id is a GUID"},
		{map[string]string{ctxGCPServiceAccountID: "kf@p.iam.gserviceaccount.com"}, "a number (21 digits), not its email"},
		{map[string]string{ctxAzureAudience: "api://*"}, "without wildcards"},
		{map[string]string{ctxAccount: "12345"}, "12 digits"},
		{map[string]string{ctxAssetDir: dir}, "has no bootstrap binary"},
		{map[string]string{ctxConfig: localCert}, "the issuer's KMS key is a key of the local cloud"},
		{map[string]string{ctxConfig: localCert}, "certificate api: target acm:us-east-1 is a target of the local cloud"},
		{map[string]string{ctxRenewSchedule: "every 6 hours"}, "renewSchedule \"every 6 hours\": an EventBridge schedule expression"},
		{map[string]string{ctxRenewSchedule: "cron(0 3 * * *)"}, "six fields"},
	}
	for _, c := range cases {
		ctx := exampleContext(t)
		for k, v := range c.ctx {
			ctx[k] = v
		}
		_, err := LoadSettings(mapContext(ctx), ".")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to say %q", c.ctx, err, c.want)
		}
	}
}
