package identity

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/keyferry/keyferry/localtest/idp"
	"github.com/keyferry/keyferry/localtest/oidc"
	vaultdev "github.com/keyferry/keyferry/localtest/vault"
)

var realHome, _ = os.UserHomeDir()

const (
	vaultAudGCP   = "vault.keyferry"
	vaultAudAzure = "api://vault-federation"
)

// startVault runs the real Vault dev server (localtest/vault) with jwt auth mounts trusting the world's
// issuers through their JWKS (served over HTTPS from the world's CA).
func startVault(t *testing.T, w *world) (*vaultdev.Server, *vault.Client) {
	t.Helper()
	isolated := os.Getenv("HOME")
	t.Setenv("HOME", realHome) // the binary is cached under the real home
	bin, err := vaultdev.Binary()
	t.Setenv("HOME", isolated)
	if err != nil {
		t.Skipf("no Vault dev server binary: %v", err)
	}
	srv, err := vaultdev.Start(tctx(t), vaultdev.Options{Binary: bin})
	if err != nil {
		t.Fatalf("start Vault: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	root, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ca := string(w.ca.CertPEM())
	mount := func(path string, iss *oidc.Issuer, boundIssuer string, roles map[string]map[string]any) {
		t.Helper()
		if err := root.Sys().EnableAuthWithOptionsWithContext(tctx(t), path, &vault.EnableAuthOptions{Type: "jwt"}); err != nil {
			t.Fatalf("enable jwt auth at %s: %v", path, err)
		}
		if _, err := root.Logical().WriteWithContext(tctx(t), "auth/"+path+"/config", map[string]any{
			"jwks_url": iss.JWKSURL(), "jwks_ca_pem": ca, "bound_issuer": boundIssuer}); err != nil {
			t.Fatalf("configure %s: %v", path, err)
		}
		for name, r := range roles {
			r["role_type"], r["user_claim"], r["token_policies"] = "jwt", "sub", []string{"default"}
			if _, err := root.Logical().WriteWithContext(tctx(t), "auth/"+path+"/role/"+name, r); err != nil {
				t.Fatalf("role %s/%s: %v", path, name, err)
			}
		}
	}
	mount("jwt", w.google, w.google.Issuer(), map[string]map[string]any{
		"keyferry":       {"bound_audiences": []string{vaultAudGCP}, "bound_subject": w.saID, "token_ttl": "60s", "token_max_ttl": "60s"},
		"other-sa":       {"bound_audiences": []string{vaultAudGCP}, "bound_subject": "100000000000000000099"},
		"keyferry-email": {"bound_audiences": []string{vaultAudGCP}, "bound_claims": map[string]any{"email": "keyferry-fn@keyferry-test.iam.gserviceaccount.com"}},
	})
	mount("jwt-google-real", w.google, "https://accounts.google.com", map[string]map[string]any{
		"keyferry": {"bound_audiences": []string{vaultAudGCP}, "bound_subject": w.saID},
	})
	mount("jwt-azure", w.mi, w.mi.Issuer(), map[string]map[string]any{
		"keyferry": {"bound_audiences": []string{vaultAudAzure}, "bound_subject": w.mi.PrincipalID(), "bound_claims": map[string]any{"tid": w.mi.TenantID()}},
	})
	mount("jwt-aws", w.outbound, w.outbound.Issuer(), map[string]map[string]any{
		"keyferry": {"bound_audiences": []string{vaultAudGCP}, "bound_subject": lambdaRole,
			"bound_claims": map[string]any{"/https:~1~1sts.amazonaws.com~1/aws_account": testAccount}},
	})
	return srv, root
}

func vaultClient(t *testing.T, addr string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address, cfg.MaxRetries = addr, 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestVaultJWTLogin runs every home's login against a real Vault dev server's jwt auth.
func TestVaultJWTLogin(t *testing.T) {
	w := newWorld(t)
	srv, root := startVault(t, w)

	t.Run("gcp: login, cached, re-login before the TTL ends", func(t *testing.T) {
		md := w.metadata(nil)
		va, err := Vault(tctx(t), HomeGCP, Peer{VaultRole: "keyferry", VaultAudience: vaultAudGCP}, w.endpoints(nil, nil, nil, md), vaultClient(t, srv.Addr))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		va.now = func() time.Time { return now }
		c, err := va.Ensure(tctx(t))
		if err != nil {
			t.Fatalf("Ensure: %v", err)
		}
		tok1 := c.Token()
		self, err := c.Auth().Token().LookupSelfWithContext(tctx(t))
		if err != nil {
			t.Fatalf("the token does not work: %v", err)
		}
		if md, _ := self.Data["meta"].(map[string]any); md["role"] != "keyferry" {
			t.Errorf("token meta %v", self.Data["meta"])
		}
		now = now.Add(30 * time.Second) // half the 60s TTL: still good
		if c, err = va.Ensure(tctx(t)); err != nil || c.Token() != tok1 {
			t.Fatalf("second Ensure: %v (new token: %v)", err, c.Token() != tok1)
		}
		if ok, _ := md.Counts(idp.OpMetadataIdentity); ok != 1 {
			t.Errorf("%d ID tokens, want 1", ok)
		}
		now = now.Add(11 * time.Second) // 41s of 60s: past two thirds
		if c, err = va.Ensure(tctx(t)); err != nil || c.Token() == tok1 {
			t.Fatalf("Ensure near expiry: %v (same token: %v)", err, c.Token() == tok1)
		}
		if _, err := c.Auth().Token().LookupSelfWithContext(tctx(t)); err != nil {
			t.Fatalf("the new token does not work: %v", err)
		}
		if ok, _ := md.Counts(idp.OpMetadataIdentity); ok != 2 {
			t.Errorf("%d ID tokens, want 2", ok)
		}
		// As a vault.AuthMethod.
		c2 := vaultClient(t, srv.Addr)
		if sec, err := c2.Auth().Login(tctx(t), va); err != nil || c2.Token() == "" || sec.Auth.LeaseDuration != 60 {
			t.Fatalf("client.Auth().Login: %v", err)
		}
	})

	t.Run("gcp: bound claims", func(t *testing.T) {
		va, err := Vault(tctx(t), HomeGCP, Peer{VaultRole: "keyferry-email", VaultAudience: vaultAudGCP}, w.endpoints(nil, nil, nil, w.metadata(nil)), vaultClient(t, srv.Addr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := va.Ensure(tctx(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("azure", func(t *testing.T) {
		va, err := Vault(tctx(t), HomeAzure, Peer{VaultRole: "keyferry", VaultMount: "jwt-azure", VaultAudience: vaultAudAzure,
			AzureManagedIdentityClientID: w.mi.ClientID()}, w.endpoints(nil, nil, nil, nil), vaultClient(t, srv.Addr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := va.Ensure(tctx(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("aws", func(t *testing.T) {
		a := w.aws(nil, nil)
		a.lambdaEnv(t)
		va, err := Vault(tctx(t), HomeAWS, Peer{VaultRole: "keyferry", VaultMount: "jwt-aws", VaultAudience: vaultAudGCP}, w.endpoints(a, nil, nil, nil), vaultClient(t, srv.Addr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := va.Ensure(tctx(t)); err != nil {
			t.Fatal(err)
		}
		if a.gwitOK.Load() != 1 {
			t.Errorf("%d GetWebIdentityToken calls", a.gwitOK.Load())
		}
	})

	iss := w.google.Issuer()
	for _, tc := range []struct {
		name     string
		peer     Peer
		mdNow    func() time.Time
		status   int
		mentions []string
	}{
		{name: "wrong audience", peer: Peer{VaultRole: "keyferry", VaultAudience: "not-vault"}, status: 400,
			mentions: []string{"invalid audience (aud) claim", presentedJWT(iss, w.saID, "not-vault")}},
		{name: "wrong subject", peer: Peer{VaultRole: "other-sa", VaultAudience: vaultAudGCP}, status: 400,
			mentions: []string{"invalid subject (sub) claim", presentedJWT(iss, w.saID, vaultAudGCP)}},
		{name: "wrong issuer", peer: Peer{VaultRole: "keyferry", VaultMount: "jwt-google-real", VaultAudience: vaultAudGCP}, status: 400,
			mentions: []string{"invalid issuer (iss) claim", presentedJWT(iss, w.saID, vaultAudGCP)}},
		{name: "expired token", peer: Peer{VaultRole: "keyferry", VaultAudience: vaultAudGCP}, mdNow: shifted(-2 * time.Hour), status: 400,
			mentions: []string{"token is expired", presentedJWT(iss, w.saID, vaultAudGCP)}},
		{name: "unknown role", peer: Peer{VaultRole: "nope", VaultAudience: vaultAudGCP}, status: 400,
			mentions: []string{`role "nope" could not be found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := vaultClient(t, srv.Addr)
			va, err := Vault(tctx(t), HomeGCP, tc.peer, w.endpoints(nil, nil, nil, w.metadata(tc.mdNow)), c)
			if err != nil {
				t.Fatal(err)
			}
			_, err = va.Ensure(tctx(t))
			mount := orDefault(tc.peer.VaultMount, "jwt")
			wantRefusal(t, err, "gcp → vault", tc.status, "", append(tc.mentions, "Vault login at "+srv.Addr+"/v1/auth/"+mount+"/login as role \""+tc.peer.VaultRole+"\"")...)
			if c.Token() != "" {
				t.Error("the client holds a token after a refused login")
			}
		})
	}
	_ = root
}

// TestVaultFake covers the login against an httptest fake of PUT /v1/auth/jwt/login (which runs
// without the Vault binary), the local home and the settings checks.
func TestVaultFake(t *testing.T) {
	w := newWorld(t)
	var logins atomic.Int64
	fake := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var body struct{ Role, JWT string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		rw.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPut && r.Method != http.MethodPost || r.URL.Path != "/v1/auth/jwt/login" || r.Header.Get("X-Vault-Token") != "" {
			rw.WriteHeader(400)
			_, _ = rw.Write([]byte(`{"errors":["unexpected request"]}`))
			return
		}
		if p := presentJWT(body.JWT); body.Role != "keyferry" || p.Audience[0] != vaultAudGCP {
			rw.WriteHeader(400)
			_, _ = rw.Write([]byte(`{"errors":["error validating token: invalid audience (aud) claim: audience claim does not match any expected audience"]}`))
			return
		}
		n := logins.Add(1)
		_, _ = rw.Write([]byte(`{"auth":{"client_token":"hvs.fake-token-number-` + string(rune('0'+n)) + `-xxxxxxxxxxxx","lease_duration":30,"renewable":true}}`))
	}))
	t.Cleanup(fake.Close)
	md := w.metadata(nil)
	e := w.endpoints(nil, nil, nil, md)
	e.VaultAddress = fake.URL
	va, err := Vault(tctx(t), HomeGCP, Peer{VaultRole: "keyferry", VaultAudience: vaultAudGCP}, e, nil) // client from VAULT_* + e.VaultAddress
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	va.now = func() time.Time { return now }
	c, err := va.Ensure(tctx(t))
	if err != nil || !strings.HasPrefix(c.Token(), "hvs.fake-token-number-1") {
		t.Fatalf("Ensure: %v", err)
	}
	now = now.Add(19 * time.Second)
	_, _ = va.Ensure(tctx(t))
	now = now.Add(2 * time.Second) // 21s of 30s
	if c, err = va.Ensure(tctx(t)); err != nil || !strings.HasPrefix(c.Token(), "hvs.fake-token-number-2") || logins.Load() != 2 {
		t.Fatalf("re-login: %v, %d logins", err, logins.Load())
	}

	bad, err := Vault(tctx(t), HomeGCP, Peer{VaultRole: "keyferry", VaultAudience: "wrong"}, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Ensure(tctx(t))
	wantRefusal(t, err, "gcp → vault", 400, "", "invalid audience (aud) claim", presentedJWT(w.google.Issuer(), w.saID, "wrong"))

	// Local: the ambient token only.
	t.Setenv("VAULT_TOKEN", "")
	local, err := Vault(tctx(t), HomeLocal, Peer{}, Endpoints{VaultAddress: fake.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Ensure(tctx(t)); err == nil || !strings.Contains(err.Error(), "local → vault: ambient Vault token") {
		t.Errorf("local without VAULT_TOKEN: %v", err)
	}
	local.Client().SetToken("hvs.ambient-ambient-ambient-ambient")
	if _, err := local.Ensure(tctx(t)); err != nil {
		t.Errorf("local with a token: %v", err)
	}
	if _, err := Vault(tctx(t), HomeGCP, Peer{VaultRole: "r"}, e, nil); err == nil || !strings.Contains(err.Error(), "Peer.VaultAudience must be set") {
		t.Errorf("missing audience: %v", err)
	}
}
