package stores

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/identity"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/localtest/gcp"
	"github.com/keyferry/keyferry/localtest/idp"
	"github.com/keyferry/keyferry/localtest/moto"
	"github.com/keyferry/keyferry/localtest/oidc"
)

func TestHome(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want identity.Home
	}{
		{map[string]string{}, identity.HomeLocal},
		{map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "keyferry"}, identity.HomeAWS},
		{map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "7071"}, identity.HomeAzure},
		{map[string]string{"K_SERVICE": "keyferry"}, identity.HomeGCP},
		{map[string]string{"K_SERVICE": "keyferry", EnvHome: "local"}, identity.HomeLocal},
	} {
		for _, k := range []string{EnvHome, "AWS_LAMBDA_FUNCTION_NAME", "FUNCTIONS_CUSTOMHANDLER_PORT", "WEBSITE_SITE_NAME", "K_SERVICE", "FUNCTION_TARGET"} {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		if got := Home(); got != c.want {
			t.Errorf("%v: %s, want %s", c.env, got, c.want)
		}
	}
}

// TestFederatedAWSStoreFromGCP: a function in GCP opens an AWS store that has `identity:`; its writes go
// out with credentials from AssumeRoleWithWebIdentity on the metadata server's ID token (no key anywhere),
// and a role whose trust does not match fails closed, naming the direction.
func TestFederatedAWSStoreFromGCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "GCE_METADATA_HOST"} {
		t.Setenv(k, "")
		_ = os.Unsetenv(k)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "c"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "k"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	m, err := moto.Start(ctx, moto.Options{})
	if err != nil {
		t.Fatalf("moto: %v", err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	google, err := oidc.Start(oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = google.Close() })
	const saID = "100000000000000000007"
	md, err := idp.StartMetadata(idp.MetadataConfig{Issuer: google, ServiceAccountUniqueID: saID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = md.Close() })
	const role = "arn:aws:iam::123456789012:role/keyferry-from-gcp"
	sts, err := idp.StartAWSSTS(idp.AWSSTSConfig{Roles: []idp.AWSRole{
		{RoleArn: role, Provider: google.Issuer(), Audience: "sts.amazonaws.com", Subject: saID}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sts.Close() })
	t.Setenv(EnvHome, "gcp")
	t.Setenv(EnvSTSEndpoint, sts.URL)
	t.Setenv(EnvMetadataHost, md.Host())

	open := func(roleARN string) store.Store {
		y := "stores:\n  aws:\n    type: aws-secretsmanager\n    region: us-east-1\n    local: true\n    endpoint: " + m.URL +
			"\n    identity: {role_arn: " + roleARN + ", gcp: {audience: sts.amazonaws.com}}\n"
		cfg, err := config.Parse("k.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		st, err := Open(ctx, cfg.Store("aws"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open(role)
	if _, err := st.Put(ctx, "federated/db", store.Text("federation-canary"), store.PutOptions{}); err != nil {
		t.Fatalf("Put through federation: %v", err)
	}
	if ok, _ := sts.Counts(idp.OpAssumeRoleWithWebIdentity); ok != 1 {
		t.Errorf("%d accepted exchanges, want 1", ok)
	}
	bad := open("arn:aws:iam::123456789012:role/someone-else")
	_, err = bad.Put(ctx, "federated/db", store.Text("federation-canary"), store.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "gcp → aws") || strings.Contains(err.Error(), "canary") {
		t.Errorf("a role that does not trust the function: %v", err)
	}
}

// TestFederatedGCPStoreOverTLS: a local Secret Manager written as an https:// endpoint is reached over
// TLS (trusting ca_file) with the same credentials as the service: from a Lambda, the federated token
// Google STS issued for the role's signed GetCallerIdentity; with keys AWS never issued it fails closed,
// naming the direction.
func TestFederatedGCPStoreOverTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "GCE_METADATA_HOST", "GOOGLE_APPLICATION_CREDENTIALS"} {
		t.Setenv(k, "")
		_ = os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "c"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "k"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	const (
		account  = "123456789012"
		provider = "//iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/keyferry/providers/from-aws"
	)
	lambda := idp.AWSSession{AccessKeyID: "ASIALAMBDAROLEKEY001", SecretAccessKey: "lambda-role-secret-key", RoleArn: "arn:aws:iam::" + account + ":role/fn",
		AssumedRoleArn: "arn:aws:sts::" + account + ":assumed-role/fn/keyferry"}
	sts, err := idp.StartAWSSTS(idp.AWSSTSConfig{Sessions: []idp.AWSSession{lambda}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sts.Close() })
	google, err := idp.StartGoogleSTS(idp.GoogleSTSConfig{Providers: []idp.WorkloadIdentityProvider{
		{Audience: provider, AWSAccountID: account, AWSVerifyURL: sts.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = google.Close() })
	ca, err := oidc.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	sm, err := gcp.StartSecretManager(gcp.SecretManagerOptions{TLS: tc, Authenticate: func(_ context.Context, tok string) (string, error) {
		if t, ok := google.LookupAccessToken(tok); ok {
			return t.Principal, nil
		}
		return "", errors.New("not issued by the Google STS fake")
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sm.Stop)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvHome, "aws")
	t.Setenv(EnvGoogleSTS, google.TokenURL())
	t.Setenv("AWS_REGION", "us-east-1")
	y := "stores:\n  gcp:\n    type: gcp-secretmanager\n    project: kf-test\n    local: true\n    endpoint: https://" + sm.Addr() +
		"\n    ca_file: " + caFile + "\n    identity: {audience: \"" + provider + "\"}\n"
	cfg, err := config.Parse("k.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, key, secret string
		ok                bool
	}{
		{"the Lambda's role", lambda.AccessKeyID, lambda.SecretAccessKey, true},
		{"keys AWS never issued", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", false},
	} {
		t.Setenv("AWS_ACCESS_KEY_ID", c.key)
		t.Setenv("AWS_SECRET_ACCESS_KEY", c.secret)
		st, err := Open(ctx, cfg.Store("gcp"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Put(ctx, "federated-db", store.Text("federation-canary"), store.PutOptions{})
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "aws → gcp") || strings.Contains(err.Error(), c.secret)):
			t.Errorf("%s: %v, want a refusal naming aws → gcp", c.name, err)
		}
	}
	if ok, no := google.CountsFor(idp.OpGoogleSTSToken, provider); ok != 1 || no == 0 {
		t.Errorf("Google STS accepted %d and refused %d exchanges, want 1 and at least 1", ok, no)
	}
	if callers, refused := sm.Callers(); len(callers) != 1 || refused != 0 {
		t.Errorf("Secret Manager callers %v, refused %d", callers, refused)
	}
}
