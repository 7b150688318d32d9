package inventory

import (
	"context"
	"encoding/base64"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keyferry/keyferry/localtest/azkv"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// mintCred hands out tokens minted by the local issuer for Key Vault.
type mintCred struct{ iss *oidc.Issuer }

func (c mintCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.iss.Mint(c.iss.ManagedIdentityClaims(azkv.Resource))
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func startKeyVault(t *testing.T) (*azkv.Server, *azcertificates.Client) {
	t.Helper()
	iss, err := oidc.Start(oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	srv, err := azkv.Start(azkv.Options{Issuer: iss})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c, err := azcertificates.NewClient(srv.URL(), mintCred{iss}, &azcertificates.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport: srv.HTTPClient(),
			Retry:     policy.RetryOptions{MaxRetries: 3, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func TestKeyVaultSource(t *testing.T) {
	srv, c := startKeyVault(t)
	p := newTestPKI(t, "kv")
	web := p.issue(t, "web.example.test", "ec-p256", 20*24*time.Hour)
	api := p.issue(t, "api.example.test", "rsa-2048", 150*24*time.Hour)

	// web: PEM (key and chain) with keyferry's tag; api: a PKCS#12 without tags.
	pemPolicy := &azcertificates.CertificatePolicy{SecretProperties: &azcertificates.SecretProperties{ContentType: to(azkv.ContentTypePEM)}}
	if _, err := c.ImportCertificate(tctx(t), "web", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: to(string(web.KeyPEM) + string(web.CertPEM) + string(web.ChainPEM)),
		CertificatePolicy:        pemPolicy, Tags: map[string]*string{ManagedTag: to("web")},
	}, nil); err != nil {
		t.Fatal(err)
	}
	pfx, err := api.PFX("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ImportCertificate(tctx(t), "api", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: to(base64.StdEncoding.EncodeToString(pfx)),
	}, nil); err != nil {
		t.Fatal(err)
	}

	u, _ := url.Parse(srv.URL())
	src := KeyVaultSource{Client: c}
	entries, err := Collect(tctx(t), Options{Roots: p.roots(), Intermediates: poolOf(p.inter)}, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d entries: %+v", len(entries), entries)
	}
	got := byName(entries)
	w, a := got["web"], got["api"]
	if w.Cloud != "azure" || w.Location != u.Host || !w.Managed || w.Subject != "CN=web.example.test" || w.KeyType != "ec-p256" ||
		w.Serial != web.Serial || !slices.Equal(kinds(w), []string{KindExpiring30}) || len(w.InUse) != 0 {
		t.Errorf("web: %+v", w)
	}
	if a.Managed || a.KeyType != "rsa-2048" || len(a.Findings) != 0 || a.Serial != api.Serial {
		t.Errorf("api: %+v", a)
	}
	// Key Vault keeps only the leaf in cer: without the intermediate configured the chain is untrusted.
	entries, _ = Collect(tctx(t), Options{Roots: p.roots()}, KeyVaultSource{Client: c, Vault: "kv1"})
	for _, e := range entries {
		if e.Location != "kv1" || !slices.Contains(kinds(e), KindUntrustedChain) {
			t.Errorf("%s: location %q findings %v", e.Name, e.Location, e.Findings)
		}
	}
}

func to[T any](v T) *T { return &v }
