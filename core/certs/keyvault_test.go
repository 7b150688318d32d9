package certs

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyferry/keyferry/localtest/azkv"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// mintCred hands out Key Vault tokens minted by the local issuer.
type mintCred struct{ iss *oidc.Issuer }

func (c mintCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.iss.Mint(c.iss.ManagedIdentityClaims(azkv.Resource))
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type kvEnv struct {
	srv   *azkv.Server
	certs *azcertificates.Client
	secs  *azsecrets.Client
}

func newKV(t *testing.T) *kvEnv {
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
	co := policy.ClientOptions{Transport: srv.HTTPClient(),
		Retry: policy.RetryOptions{MaxRetries: 3, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}}
	cc, err := azcertificates.NewClient(srv.URL(), mintCred{iss}, &azcertificates.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := azsecrets.NewClient(srv.URL(), mintCred{iss}, &azsecrets.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	return &kvEnv{srv: srv, certs: cc, secs: sc}
}

func TestKeyVaultTarget(t *testing.T) {
	for _, format := range []KeyVaultFormat{KeyVaultPFX, KeyVaultPEM} {
		t.Run(map[KeyVaultFormat]string{KeyVaultPFX: "pfx", KeyVaultPEM: "pem"}[format], func(t *testing.T) {
			env := newKV(t)
			tgt := NewKeyVaultTarget("azure", env.certs)
			tgt.Format = format
			r := runSuite(t, tgt, "portal-tls", func() int64 { return env.srv.Faults().Count("keyvault:*") })
			first, renewed := azcertificates.ID(r.first.ID), azcertificates.ID(r.renewed.ID)
			if first.Name() != "portal-tls" || renewed.Name() != "portal-tls" || first.Version() == renewed.Version() ||
				r.first.Version != first.Version() {
				t.Fatalf("ids: %s then %s", r.first.ID, r.renewed.ID)
			}
			got, err := env.certs.GetCertificate(tctx(t), "portal-tls", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tagOf(got.Tags, TagKey) != "portal-tls" || got.Attributes.Expires == nil {
				t.Fatalf("tags %v", got.Tags)
			}
			wantCT := map[KeyVaultFormat]string{KeyVaultPFX: ContentTypePKCS12, KeyVaultPEM: ContentTypePEM}[format]
			if ct := got.Policy.SecretProperties.ContentType; ct == nil || *ct != wantCT {
				t.Fatalf("content type %v, want %s", ct, wantCT)
			}
			// The backing secret holds the newest leaf with its own key and the chain.
			sec, err := env.secs.GetSecret(tctx(t), "portal-tls", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			cur, _, err := tgt.Current(tctx(t), "portal-tls")
			if err != nil {
				t.Fatal(err)
			}
			if format == KeyVaultPFX {
				raw, err := base64.StdEncoding.DecodeString(*sec.Value)
				if err != nil {
					t.Fatal(err)
				}
				key, leaf, chain, err := pkcs12.DecodeChain(raw, "")
				if err != nil {
					t.Fatal(err)
				}
				if !leaf.Equal(cur) || len(chain) != 2 || !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.(crypto.Signer).Public()) {
					t.Fatal("the backing PKCS#12 is not the current leaf with its key and chain")
				}
			} else if !strings.Contains(*sec.Value, "BEGIN PRIVATE KEY") || strings.Count(*sec.Value, "BEGIN CERTIFICATE") != 3 {
				t.Fatal("the backing PEM lacks the key or the chain")
			}
			// Renewal with more tags: the new version carries them all (Key Vault tags are per version).
			kf, _ := cas(t)
			b := kf.issue(t, 100*time.Hour, "portal.svc.example.com")
			m, err := tgt.Put(tctx(t), "portal-tls", b, map[string]string{"team": "web"})
			if err != nil {
				t.Fatal(err)
			}
			got, err = env.certs.GetCertificate(tctx(t), "portal-tls", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.CER, leafOf(t, b).Raw) || tagOf(got.Tags, "team") != "web" || tagOf(got.Tags, TagKey) != "portal-tls" ||
				idName(m.ID) != "portal-tls" {
				t.Fatalf("after a tagged renewal: tags %v id %s", got.Tags, m.ID)
			}
		})
	}
}

func TestKeyVaultForeign(t *testing.T) {
	env := newKV(t)
	kf, other := cas(t)
	ob := other.issue(t, 24*time.Hour, "legacy.example.com")
	pfx, err := ob.PFX("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.certs.ImportCertificate(tctx(t), "legacy", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: ptr(base64.StdEncoding.EncodeToString(pfx))}, nil); err != nil {
		t.Fatal(err)
	}
	tgt := NewKeyVaultTarget("azure", env.certs)
	cert, meta, err := tgt.Current(tctx(t), "legacy")
	if err != nil || meta.Managed || !cert.Equal(leafOf(t, ob)) {
		t.Fatalf("Current of a foreign certificate: %+v %v", meta, err)
	}
	if due, why, err := NeedsRenewal(tctx(t), tgt, "legacy", 0, time.Now()); err != nil || due || why != ReasonNotManaged {
		t.Fatalf("NeedsRenewal: %v %q %v", due, why, err)
	}
	imports := env.srv.Faults().Count("keyvault:POST Certificate import")
	if imports == 0 { // the foreign import (twice: the bearer challenge, then with the token)
		t.Fatal("the counter does not see imports")
	}
	e := &errs{}
	_, err = tgt.Put(tctx(t), "legacy", kf.issue(t, time.Hour, "legacy.example.com"), nil)
	wantKind(t, "Put over a foreign certificate", e.add(err), ErrRefused)
	if env.srv.Faults().Count("keyvault:POST Certificate import") != imports {
		t.Fatal("imported over a foreign certificate")
	}
	// Names and tags Key Vault cannot hold are refused before any call.
	calls := env.srv.Faults().Count("keyvault:*")
	_, err = tgt.Put(tctx(t), "no_underscores", kf.issue(t, time.Hour, "x.svc.example.com"), nil)
	wantKind(t, "bad name", e.add(err), ErrRefused)
	many := map[string]string{}
	for i := range 15 {
		many[string(rune('a'+i))] = "v"
	}
	_, err = tgt.Put(tctx(t), "ok", kf.issue(t, time.Hour, "x.svc.example.com"), many)
	wantKind(t, "16 tags", e.add(err), ErrRefused)
	if env.srv.Faults().Count("keyvault:*") != calls {
		t.Fatal("calls made for a name or tags Key Vault cannot hold")
	}
	// The name held by a plain secret: Key Vault refuses the import (409), reported as refused.
	if _, err := env.secs.SetSecret(tctx(t), "plain", azsecrets.SetSecretParameters{Value: ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = tgt.Put(tctx(t), "plain", kf.issue(t, time.Hour, "x.svc.example.com"), nil)
	wantKind(t, "name held by a secret", e.add(err), ErrRefused)
	e.checkNoKeys(t)
}

func idName(id string) string {
	i := azcertificates.ID(id)
	return i.Name()
}
