package cloud

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/moto"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// TestStartStop starts every part, checks that each listens on 127.0.0.1 only and that the generated
// configuration loads, then stops everything and checks that every process is gone.
func TestStartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Stop()
		}
	})

	for name, raw := range map[string]string{
		"moto": c.Moto.URL, "aws-proxy": c.AWSProxy.URL, "keyvault": c.KeyVault.URL(), "issuer": c.Issuer.URL(),
		"vault": c.Vault.Addr, "vault-proxy": c.VaultProxy.URL, "secretmanager": "grpc://" + c.SecretManager.Addr(),
		"pubsub": "http://" + c.PubSub.Host(),
	} {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() != "127.0.0.1" {
			t.Errorf("%s listens on %q, want 127.0.0.1", name, raw)
		}
	}

	cfg, err := config.Parse("local.yaml", []byte(c.Config()))
	if err != nil {
		t.Fatalf("generated configuration: %v\n%s", err, c.Config())
	}
	if len(cfg.Stores) != 6 {
		t.Fatalf("stores %d, want 6", len(cfg.Stores))
	}
	for _, sc := range cfg.Stores {
		if sc.Type != config.TypeFile && !sc.Local {
			t.Errorf("store %s is not marked local", sc.Name)
		}
	}
	env := c.Env()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "VAULT_TOKEN", "PUBSUB_EMULATOR_HOST"} {
		if env[k] == "" {
			t.Errorf("Env has no %s", k)
		}
	}

	pids := map[string]int{"moto": c.Moto.PID(), "vault": c.Vault.PID(), "pubsub (java)": c.PubSub.PID()}
	dir := c.Dir
	c.Stop()
	stopped = true
	c.Stop() // idempotent
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after Stop: %v", name, pid, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s left behind", dir)
	}
}

// TestStartFailureStopsEverything: a part that cannot start makes Start stop what it already started.
func TestStartFailureStopsEverything(t *testing.T) {
	t.Setenv("KEYFERRY_VAULT_BIN", "/nonexistent/vault")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	_, err := Start(ctx, Options{Parts: []string{AWS, Vault}, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "starting vault") || !strings.Contains(err.Error(), "make vault") {
		t.Fatalf("got %v, want a vault start error naming `make vault`", err)
	}
	// moto was started before or while vault failed: nothing of it may remain.
	if n := countProcesses("moto.server"); n != 0 {
		t.Errorf("%d moto processes left running", n)
	}
}

// countProcesses counts processes whose command line contains s and that are children of this test.
func countProcesses(s string) int {
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	n := 0
	for _, e := range entries {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), s) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Field 4 of /proc/PID/stat is the parent pid; field 2 may hold spaces, so split after ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			n++
		}
	}
	return n
}

// TestFederatedStores: in the federated cloud the operator's stores (this process, Env) work; each
// function's environment holds its own cloud's identity only; and every store refuses what federation
// does not yield (other AWS keys, another issuer's tokens, plaintext or unauthenticated gRPC, a jwt login
// for another function's mount).
func TestFederatedStores(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Parts: []string{AWS, Azure, GCP, Vault}, Federation: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	f := c.Federation
	for k, v := range c.Env() {
		t.Setenv(k, v)
	}
	cfg, err := config.Parse("local.yaml", []byte(c.Config()))
	if err != nil {
		t.Fatalf("generated configuration: %v\n%s", err, c.Config())
	}
	for _, sc := range cfg.Stores {
		if sc.Type != config.TypeFile && sc.Identity == nil {
			t.Errorf("store %s has no identity", sc.Name)
		}
	}
	sts, err := stores.OpenAll(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"aws", "azure", "gcp", "vault"} {
		if _, err := sts[name].Put(ctx, "federated-op", store.Text("operator-value"), store.PutOptions{}); err != nil {
			t.Errorf("the operator's %s store: %v", name, err)
		}
	}

	// Each function gets its own cloud's identity, and every other credential variable empty.
	own := map[string][]string{AWS: {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, Azure: {"IDENTITY_ENDPOINT", "IDENTITY_HEADER"},
		GCP: {"GCE_METADATA_HOST", "KEYFERRY_METADATA_HOST"}}
	for home := range own {
		env, err := c.FunctionEnv(home)
		if err != nil {
			t.Fatal(err)
		}
		if env["KEYFERRY_HOME"] != home || env["KEYFERRY_STS_ENDPOINT"] == "" || env["KEYFERRY_IDENTITY_CA_FILE"] == "" || env["VAULT_TOKEN"] != "" {
			t.Errorf("%s: KEYFERRY_HOME %q, STS %q, CA file %q, VAULT_TOKEN set %v", home, env["KEYFERRY_HOME"],
				env["KEYFERRY_STS_ENDPOINT"], env["KEYFERRY_IDENTITY_CA_FILE"], env["VAULT_TOKEN"] != "")
		}
		for other, theirs := range own {
			for _, k := range theirs {
				if set := env[k] != ""; set != (other == home) {
					t.Errorf("the %s function's %s is set: %v", home, k, set)
				}
			}
		}
	}
	if _, err := c.FunctionEnv("local"); err == nil {
		t.Error("FunctionEnv(local) succeeded")
	}

	// AWS: moto accepts any key, the credential check in front of it does not.
	sm := func(ak, sk string) error {
		cl := secretsmanager.New(secretsmanager.Options{Region: moto.Region, BaseEndpoint: aws.String(c.AWSProxy.URL), RetryMaxAttempts: 1,
			Credentials: awscreds.NewStaticCredentialsProvider(ak, sk, "")})
		_, err := cl.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
		return err
	}
	var api smithy.APIError
	if err := sm("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"); !errors.As(err, &api) || api.ErrorCode() != "UnrecognizedClientException" {
		t.Errorf("another key: %v, want UnrecognizedClientException", err)
	}
	if err := sm(moto.AccessKeyID, "not-the-secret"); !errors.As(err, &api) || api.ErrorCode() != "InvalidSignatureException" {
		t.Errorf("a wrong secret: %v, want InvalidSignatureException", err)
	}
	if err := sm(moto.AccessKeyID, moto.SecretAccessKey); err != nil {
		t.Errorf("the execution role: %v", err)
	}

	// Key Vault: a token of another issuer, even for the right audience, is refused.
	stranger, err := oidc.Start(oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	tok, err := stranger.Mint(stranger.ManagedIdentityClaims("https://vault.azure.net"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.KeyVault.URL()+"/secrets?api-version=7.6", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := c.KeyVault.HTTPClient().Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("Key Vault with another issuer's token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Secret Manager: plaintext, then TLS without a token or with a token nobody issued.
	for name, opts := range map[string][]option.ClientOption{
		"plaintext": c.SecretManager.ClientOptions(),
		"no token": {option.WithEndpoint(c.SecretManager.Addr()), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: f.CA.CertPool()})))},
		"a forged token": {option.WithEndpoint(c.SecretManager.Addr()), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "ya29.forged"})),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: f.CA.CertPool()})))},
	} {
		cl, err := secretmanager.NewClient(ctx, opts...)
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cl.GetSecret(cctx, &secretmanagerpb.GetSecretRequest{Name: "projects/" + Project + "/secrets/federated-op"})
		ccancel()
		_ = cl.Close()
		code := status.Code(err)
		if name == "plaintext" && code != codes.Unavailable && code != codes.DeadlineExceeded || name != "plaintext" && code != codes.Unauthenticated {
			t.Errorf("Secret Manager, %s: %v", name, err)
		}
	}

	// Vault: the GCP function's ID token logs in at its own mount, with the KV policy only; not at another.
	id, err := f.Google.Mint(map[string]any{"aud": VaultAudience, "sub": f.Metadata.ServiceAccountUniqueID(), "email": FunctionServiceAccount})
	if err != nil {
		t.Fatal(err)
	}
	vc, err := c.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	vc.ClearToken()
	if _, err := vc.Logical().WriteWithContext(ctx, "auth/"+VaultMounts[AWS]+"/login", map[string]any{"role": VaultRole, "jwt": id}); err == nil {
		t.Error("the GCP identity logged in at the AWS mount")
	}
	sec, err := vc.Logical().WriteWithContext(ctx, "auth/"+VaultMounts[GCP]+"/login", map[string]any{"role": VaultRole, "jwt": id})
	if err != nil {
		t.Fatalf("login at the GCP mount: %v", err)
	}
	vc.SetToken(sec.Auth.ClientToken)
	if _, err := vc.KVv2("secret").Get(ctx, "federated-op"); err != nil {
		t.Errorf("reading the KV mount: %v", err)
	}
	if _, err := vc.Sys().ListPoliciesWithContext(ctx); err == nil {
		t.Error("the function's token may list Vault's policies")
	}
}
