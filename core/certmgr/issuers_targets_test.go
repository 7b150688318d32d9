package certmgr_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	vault "github.com/hashicorp/vault/api"

	"github.com/keyferry/keyferry/core/certmgr"
	"github.com/keyferry/keyferry/core/certs"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/pki"
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

// TestKeyVaultTarget writes to the Key Vault emulator under the configured certificate name and format,
// renews onto a new version of the same certificate, and lists it in the inventory.
func TestKeyVaultTarget(t *testing.T) {
	ctx := tctx(t)
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
	dir := t.TempDir()
	ca := newCA(t, dir)
	cfg, sts := loadConfig(t, dir, fmt.Sprintf(`stores:
  local: {type: file, path: secrets}
certificates:
%s  specs:
    - name: portal
      dns: [portal.svc.example.com]
      ttl: 72h
      targets: [{keyvault: {vault: "%s", local: true, name: portal-tls, format: pem}}]
  inventory: {stores: []}
`, ca.issuerYAML(), srv.URL()))
	now := &clock{t: time.Now()}
	var kv *azcertificates.Client
	m, err := certmgr.New(cfg, sts, certmgr.Options{Now: now.Now, Clients: certmgr.Clients{
		KeyVault: func(_ context.Context, t *config.KeyVaultTarget) (*azcertificates.Client, error) {
			c, err := azcertificates.NewClient(t.Vault, mintCred{iss}, &azcertificates.ClientOptions{
				ClientOptions:                        policy.ClientOptions{Transport: srv.HTTPClient()},
				DisableChallengeResourceVerification: true})
			kv = c
			return c, err
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Renew(ctx)
	if err != nil || res[0].Targets[0].Action != certmgr.ActWritten || res[0].Targets[0].Target != "keyvault:127.0.0.1:"+strings.Split(srv.URL(), ":")[2] {
		t.Fatalf("first renewal: %v %+v", err, res)
	}
	first := azcertificates.ID(res[0].Targets[0].ID)
	got, err := kv.GetCertificate(ctx, "portal-tls", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tags[certs.TagKey] == nil || *got.Tags[certs.TagKey] != "portal" || got.Policy == nil || got.Policy.SecretProperties == nil ||
		*got.Policy.SecretProperties.ContentType != certs.ContentTypePEM {
		t.Fatalf("the Key Vault certificate: tags %v", got.Tags)
	}
	now.Set(time.Now().Add(60 * time.Hour))
	res, err = m.Renew(ctx)
	second := azcertificates.ID(res[0].Targets[0].ID)
	if err != nil || !res[0].Issued || second.Name() != "portal-tls" || second.Version() == first.Version() {
		t.Fatalf("renewal: %v %+v", err, res)
	}
	now.Set(time.Now())
	entries, errs := m.Inventory(ctx)
	if len(errs) > 0 || len(entries) != 1 || entries[0].Cloud != "azure" || entries[0].Name != "portal-tls" || !entries[0].Managed ||
		entries[0].Serial != res[0].Serial {
		t.Fatalf("inventory %v %+v", errs, entries)
	}
}

// fakeVaultPKI answers PUT /v1/<mount>/sign/<role> as Vault's PKI engine does, signing the request's
// key with the test intermediate.
func fakeVaultPKI(t *testing.T, ca *testCA, mount, role string, calls *atomic.Int64) *httptest.Server {
	t.Helper()
	interData, _ := os.ReadFile(ca.interFile)
	rootData, _ := os.ReadFile(ca.rootFile)
	inter, err := pki.ParseCertificatePEM(interData)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.LoadFileSigner(ca.keyFn)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/v1/"+mount+"/sign/"+role || (r.Method != http.MethodPut && r.Method != http.MethodPost) {
			http.Error(w, `{"errors":["no handler for route"]}`, http.StatusNotFound)
			return
		}
		var req struct {
			CSR string `json:"csr"`
			TTL string `json:"ttl"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"errors":["bad body"]}`, http.StatusBadRequest)
			return
		}
		csr, err := pki.ParseCSR([]byte(req.CSR))
		if err != nil {
			http.Error(w, `{"errors":["bad csr"]}`, http.StatusBadRequest)
			return
		}
		ttl, _ := time.ParseDuration(req.TTL)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: csr.Subject, DNSNames: csr.DNSNames, URIs: csr.URIs,
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(ttl),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}, inter, csr.PublicKey, key)
		if err != nil {
			http.Error(w, `{"errors":["sign failed"]}`, http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			"issuing_ca":  string(interData),
			"ca_chain":    []string{string(interData), string(rootData)},
		}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestVaultIssuer issues through the vault issuer (sign mode: only a CSR goes to Vault), reached with the
// vault-kv store's address.
func TestVaultIssuer(t *testing.T) {
	ctx := tctx(t)
	dir := t.TempDir()
	ca := newCA(t, dir)
	var calls atomic.Int64
	srv := fakeVaultPKI(t, ca, "pki_int", "svc", &calls)
	cfg, sts := loadConfig(t, dir, fmt.Sprintf(`stores:
  local: {type: file, path: secrets}
  vault: {type: vault-kv, address: "%s", local: true}
certificates:
  issuer: {vault: {store: vault, mount: pki_int, role: svc}}
  policy: {allowed_domains: ["*.svc.example.com"], max_ttl: 72h, key_types: [ec-p256]}
  specs:
    - {name: api, dns: [api.svc.example.com], ttl: 24h, targets: [local]}
`, srv.URL))
	var addr string
	m, err := certmgr.New(cfg, sts, certmgr.Options{Clients: certmgr.Clients{
		Vault: func(_ context.Context, sc *config.StoreConfig) (*vault.Client, error) {
			addr = sc.VaultKV.Address
			c, err := vault.NewClient(&vault.Config{Address: sc.VaultKV.Address})
			if err == nil {
				c.SetToken("test-token")
			}
			return c, err
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.IssueAll(ctx)
	if err != nil || !res[0].Issued || res[0].Targets[0].Action != certmgr.ActWritten || calls.Load() != 1 || addr != srv.URL {
		t.Fatalf("issue through Vault: %v %+v (%d calls to %s)", err, res, calls.Load(), addr)
	}
	doc, _, leaf := bundleIn(t, sts["local"], "api")
	if leaf.DNSNames[0] != "api.svc.example.com" || leaf.NotAfter.Sub(leaf.NotBefore) != 24*time.Hour+time.Minute || !strings.Contains(doc.Chain, "CERTIFICATE") {
		t.Fatalf("the Vault-issued bundle: %v, %s", leaf.DNSNames, leaf.NotAfter.Sub(leaf.NotBefore))
	}
	if kt, _ := pki.KeyTypeOf(leaf.PublicKey); kt != pki.KeyECP256 {
		t.Fatalf("key type %s", kt)
	}
}
