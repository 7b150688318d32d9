package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyferry/keyferry/localtest/oidc"
)

func TestBinaryFromEnvMissing(t *testing.T) {
	t.Setenv(EnvBinary, filepath.Join(t.TempDir(), "no-such-vault"))
	_, err := Binary()
	if err == nil || !strings.Contains(err.Error(), MakeTarget) {
		t.Fatalf("Binary() with a missing %s: got %v, want an error naming %q", EnvBinary, err, MakeTarget)
	}
}

func TestBinaryFromEnvNotExecutable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vault")
	if err := os.WriteFile(p, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvBinary, p)
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Fatalf("Binary() with a non-executable file: got %v", err)
	}
}

func TestCachePathMatchesMakefile(t *testing.T) {
	// The Makefile keys the cache on `sha256sum localtest/vaultdev/go.sum | cut -c1-12`.
	data, err := os.ReadFile(filepath.Join("..", "vaultdev", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(home, ".cache", "keyferry", "vault-"+hex.EncodeToString(h[:])[:12])
	got, err := CachePath()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("CachePath() = %s, want %s", got, want)
	}
}

func TestStartFailsCleanlyWhenTheServerExits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// /bin/false exits at once: Start must report it, not hang until the deadline.
	_, err := Start(ctx, Options{Binary: "/bin/false", ReadyTimeout: 20 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("Start(/bin/false): got %v, want an early-exit error", err)
	}
}

// TestServer starts the real dev server, uses it, stops it and checks that the process is gone.
func TestServer(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err) // never skip: the make target builds it
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })

	if !strings.HasPrefix(s.Addr, "http://127.0.0.1:") {
		t.Errorf("Addr = %q, want a 127.0.0.1 address", s.Addr)
	}
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	// KV v2 is mounted at secret/ in dev mode.
	kv := c.KVv2("secret")
	if _, err := kv.Put(ctx, "localtest/a", map[string]any{"value": "one"}); err != nil {
		t.Fatalf("put secret/localtest/a: %v", err)
	}
	w, err := kv.Put(ctx, "localtest/a", map[string]any{"value": "two"})
	if err != nil {
		t.Fatal(err)
	}
	if w.VersionMetadata == nil || w.VersionMetadata.Version != 2 {
		t.Fatalf("second put: version %+v, want 2", w.VersionMetadata)
	}
	got, err := kv.Get(ctx, "localtest/a")
	if err != nil || got.Data["value"] != "two" {
		t.Fatalf("get secret/localtest/a: %v %v", got, err)
	}

	if err := s.EnableKV(ctx, "kv-extra"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVv2("kv-extra").Put(ctx, "x", map[string]any{"value": "y"}); err != nil {
		t.Fatalf("put into the new mount: %v", err)
	}

	// A wrong token is refused.
	bad, _ := s.Client()
	bad.SetToken("not-the-root-token")
	if _, err := bad.KVv2("secret").Get(ctx, "localtest/a"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("get with a bogus token: got %v, want a 403", err)
	}

	if logs := s.Logs(); !strings.Contains(logs, "Vault server started") {
		t.Errorf("Logs() does not hold the server's start banner:\n%s", tail(logs, 1024))
	}

	pid := s.PID()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Stop returned before the process was reaped")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process group %d still exists after Stop (kill 0: %v)", pid, err)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	if resp, err := hc.Get(s.Addr + "/v1/sys/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("the server still answers on %s after Stop", s.Addr)
	}
}

// TestJWTAuth: a jwt auth mount trusting a local HTTPS issuer logs in tokens that match a role's bound
// audience and subject, with only the role's policy; other tokens are refused.
func TestJWTAuth(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	iss, err := oidc.Start(oidc.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	if err := s.WritePolicy(ctx, "kv-only", `path "secret/*" { capabilities = ["create", "read", "update"] }`); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableJWT(ctx, "jwt-test", JWTAuth{JWKSURL: iss.JWKSURL(), JWKSCAPEM: string(iss.CA().CertPEM()), BoundIssuer: iss.Issuer(),
		Roles: map[string]JWTRole{"fn": {BoundAudiences: []string{"vault"}, BoundSubject: "fn-identity",
			BoundClaims: map[string]any{"tid": "t1"}, Policies: []string{"kv-only"}, TTL: time.Minute}}}); err != nil {
		t.Fatal(err)
	}
	login := func(claims map[string]any) (*api.Client, error) {
		tok, err := iss.Mint(claims)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := s.Client()
		c.ClearToken()
		sec, err := c.Logical().WriteWithContext(ctx, "auth/jwt-test/login", map[string]any{"role": "fn", "jwt": tok})
		if err != nil {
			return nil, err
		}
		c.SetToken(sec.Auth.ClientToken)
		if sec.Auth.LeaseDuration != 60 {
			t.Errorf("TTL %d, want 60", sec.Auth.LeaseDuration)
		}
		return c, nil
	}
	c, err := login(map[string]any{"aud": "vault", "sub": "fn-identity", "tid": "t1"})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := c.KVv2("secret").Put(ctx, "jwt/a", map[string]any{"value": "v"}); err != nil {
		t.Errorf("write under the policy: %v", err)
	}
	if _, err := c.Sys().ListPoliciesWithContext(ctx); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("listing policies (outside the policy): %v, want 403", err)
	}
	for name, claims := range map[string]map[string]any{
		"wrong audience": {"aud": "other", "sub": "fn-identity", "tid": "t1"},
		"wrong subject":  {"aud": "vault", "sub": "someone-else", "tid": "t1"},
		"wrong claim":    {"aud": "vault", "sub": "fn-identity", "tid": "t2"},
	} {
		if _, err := login(claims); err == nil || !strings.Contains(err.Error(), "400") && !strings.Contains(err.Error(), "403") {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	if err := s.EnableJWT(ctx, "jwt-none", JWTAuth{}); err == nil {
		t.Error("EnableJWT without an issuer or roles was accepted")
	}
}
