package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
)

func startIssuer(t *testing.T, opts Options) *Issuer {
	t.Helper()
	iss, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	return iss
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDiscoveryAndJWKS(t *testing.T) {
	iss := startIssuer(t, Options{IssuerPath: "/tenant-x/"})
	if want := iss.URL() + "/tenant-x/"; iss.Issuer() != want {
		t.Fatalf("Issuer() = %q, want %q", iss.Issuer(), want)
	}
	c := iss.HTTPClient()
	resp, err := c.Get(iss.URL() + "/tenant-x/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["issuer"] != iss.Issuer() || doc["jwks_uri"] != iss.JWKSURL() {
		t.Fatalf("discovery document %v", doc)
	}
	resp2, err := c.Get(iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp2.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	if len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != iss.KeyID() || jwks.Keys[0]["kty"] != "RSA" || jwks.Keys[0]["d"] != nil {
		t.Fatalf("JWKS %v: want one public RSA key with kid %q", jwks.Keys, iss.KeyID())
	}
}

func TestVerifyAcceptsAGoodToken(t *testing.T) {
	iss := startIssuer(t, Options{})
	v := NewVerifier(iss.Issuer(), []string{"https://vault.azure.net"})
	tok, err := iss.Mint(iss.ManagedIdentityClaims("https://vault.azure.net"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(testCtx(t), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.ObjectID != iss.PrincipalID() || c.Subject != iss.PrincipalID() || c.TenantID != iss.TenantID() || c.AppID != iss.ClientID() {
		t.Fatalf("claims %+v", c)
	}
	if time.Until(c.Expires) < 50*time.Minute {
		t.Fatalf("expires %v, want about an hour from now", c.Expires)
	}
	if iss.Issued() != 1 {
		t.Fatalf("Issued() = %d, want 1", iss.Issued())
	}
}

func TestVerifyRejections(t *testing.T) {
	iss := startIssuer(t, Options{})
	// Same kid, different key: a forged signature.
	forger := startIssuer(t, Options{KeyID: iss.KeyID()})
	// Another issuer's key under another kid.
	stranger := startIssuer(t, Options{})
	const aud = "https://vault.azure.net"
	v := NewVerifier(iss.Issuer(), []string{aud})
	now := time.Now()

	mint := func(from *Issuer, claims map[string]any) string {
		t.Helper()
		base := map[string]any{"aud": aud, "iss": iss.Issuer(), "sub": "p"}
		for k, val := range claims {
			base[k] = val
		}
		tok, err := from.Mint(base)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": iss.Issuer(), "aud": aud, "exp": now.Add(time.Hour).Unix()})
	hs.Header["kid"] = iss.KeyID()
	hsTok, err := hs.SignedString([]byte("shared-secret-shared-secret-1234"))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		token string
		want  Reason
		found string
	}{
		{"empty", "", ReasonMissing, ""},
		{"garbage", "not.a.jwt", ReasonMalformed, ""},
		{"wrong audience", mint(iss, map[string]any{"aud": "https://management.azure.com/"}), ReasonAudience, "https://management.azure.com/"},
		{"wrong issuer", mint(iss, map[string]any{"iss": "https://sts.windows.net/other/"}), ReasonIssuer, "https://sts.windows.net/other/"},
		{"expired", mint(iss, map[string]any{"exp": now.Add(-10 * time.Minute), "nbf": now.Add(-time.Hour)}), ReasonExpired, ""},
		{"no exp", mint(iss, map[string]any{"exp": nil}), ReasonExpired, ""},
		{"not yet valid", mint(iss, map[string]any{"nbf": now.Add(10 * time.Minute)}), ReasonNotYetValid, ""},
		{"forged signature", mint(forger, nil), ReasonSignature, ""},
		{"unknown kid", mint(stranger, nil), ReasonUnknownKey, stranger.KeyID()},
		{"HS256", hsTok, ReasonAlgorithm, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(testCtx(t), tc.token)
			if got := ReasonOf(err); got != tc.want {
				t.Fatalf("Verify: reason %q (%v), want %q", got, err, tc.want)
			}
			if tc.found != "" && !strings.Contains(err.Error(), tc.found) {
				t.Fatalf("error %q does not say what was found (%q)", err, tc.found)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error message contains the token")
			}
		})
	}
	t.Run("leeway", func(t *testing.T) {
		tok := mint(iss, map[string]any{"exp": now.Add(-10 * time.Second)})
		if _, err := v.Verify(testCtx(t), tok); err != nil {
			t.Fatalf("a token expired 10s ago is within the default 30s leeway: %v", err)
		}
		strict := NewVerifier(iss.Issuer(), []string{aud}, WithLeeway(0))
		if _, err := strict.Verify(testCtx(t), tok); ReasonOf(err) != ReasonExpired {
			t.Fatalf("without leeway: %v, want expired", err)
		}
	})
}

func TestVerifierOverTLS(t *testing.T) {
	iss := startIssuer(t, Options{TLS: true})
	if !strings.HasPrefix(iss.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %q, want https on 127.0.0.1", iss.URL())
	}
	tok, err := iss.Mint(map[string]any{"aud": "api://x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(iss.Issuer(), []string{"api://x"}, WithHTTPClient(iss.HTTPClient())).Verify(testCtx(t), tok); err != nil {
		t.Fatalf("verify with the CA's client: %v", err)
	}
	// A client that does not trust the local CA cannot fetch the keys.
	_, err = NewVerifier(iss.Issuer(), []string{"api://x"}).Verify(testCtx(t), tok)
	if ReasonOf(err) != ReasonDiscovery {
		t.Fatalf("verify without the CA: %v, want a discovery failure", err)
	}
}

func TestManagedIdentityEndpointWithAzidentity(t *testing.T) {
	iss := startIssuer(t, Options{})
	for k, v := range iss.ManagedIdentityEnv() {
		t.Setenv(k, v)
	}
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(testCtx(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if time.Until(tok.ExpiresOn) < 50*time.Minute {
		t.Fatalf("ExpiresOn %v", tok.ExpiresOn)
	}
	c, err := NewVerifier(iss.Issuer(), []string{"https://vault.azure.net"}).Verify(testCtx(t), tok.Token)
	if err != nil {
		t.Fatalf("the managed-identity token does not verify: %v", err)
	}
	if c.Subject != iss.PrincipalID() || c.ObjectID != iss.PrincipalID() || c.TenantID != iss.TenantID() {
		t.Fatalf("claims %+v, want sub=oid=%s tid=%s", c, iss.PrincipalID(), iss.TenantID())
	}
	if iss.Issued() != 1 {
		t.Fatalf("Issued() = %d, want 1", iss.Issued())
	}
	if strings.Contains(iss.Logs(), tok.Token) || strings.Contains(iss.Logs(), iss.IdentityHeader()) {
		t.Fatal("the issuer logged a token or the identity header")
	}
	if !strings.Contains(iss.Logs(), "GET /msi/token 200") {
		t.Fatalf("request line missing from logs:\n%s", iss.Logs())
	}
}

func TestManagedIdentityEndpointChecksTheHeader(t *testing.T) {
	iss := startIssuer(t, Options{})
	get := func(header, query string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, iss.IdentityEndpoint()+query, nil)
		if header != "" {
			req.Header.Set("X-IDENTITY-HEADER", header)
		}
		resp, err := iss.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ok := "?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net"
	for _, tc := range []struct {
		name, header, query string
		want                int
	}{
		{"good", iss.IdentityHeader(), ok, 200},
		{"no header", "", ok, 401},
		{"wrong header", "nope", ok, 401},
		{"no resource", iss.IdentityHeader(), "?api-version=2019-08-01", 400},
		{"old api-version", iss.IdentityHeader(), "?api-version=2017-09-01&resource=x", 400},
		{"unknown client_id", iss.IdentityHeader(), ok + "&client_id=someone-else", 400},
	} {
		if got := get(tc.header, tc.query); got != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.want)
		}
	}
	if iss.Issued() != 1 {
		t.Fatalf("Issued() = %d, want 1 (only the good request mints)", iss.Issued())
	}
}
