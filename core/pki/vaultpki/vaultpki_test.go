package vaultpki

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/keyferry/keyferry/core/pki"
	vaultdev "github.com/keyferry/keyferry/localtest/vault"
)

// One Vault dev server, with a root CA at pki/ and an intermediate at pki_int/, serves every test.
var (
	devOnce sync.Once
	dev     *devPKI
	devErr  error
)

type devPKI struct {
	srv    *vaultdev.Server
	client *vault.Client
	root   *x509.Certificate
	inter  *x509.Certificate
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dev != nil {
		if err := dev.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// devServer starts the dev server and sets up the PKI on first use. A missing binary fails the test (the
// error names `make vault`); it never skips.
func devServer(t *testing.T) *devPKI {
	t.Helper()
	devOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv, err := vaultdev.Start(ctx, vaultdev.Options{})
		if err != nil {
			devErr = err
			return
		}
		dev = &devPKI{srv: srv}
		devErr = dev.setup(ctx)
	})
	if devErr != nil {
		t.Fatal(devErr)
	}
	return dev
}

func (d *devPKI) setup(ctx context.Context) error {
	c, err := d.srv.Client()
	if err != nil {
		return err
	}
	d.client = c
	sys := c.Sys()
	if err := sys.MountWithContext(ctx, "pki", &vault.MountInput{Type: "pki", Config: vault.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		return fmt.Errorf("mount pki: %w", err)
	}
	if err := sys.MountWithContext(ctx, "pki_int", &vault.MountInput{Type: "pki", Config: vault.MountConfigInput{MaxLeaseTTL: "8760h"}}); err != nil {
		return fmt.Errorf("mount pki_int: %w", err)
	}
	w := func(path string, data map[string]any) (map[string]any, error) {
		s, err := c.Logical().WriteWithContext(ctx, path, data)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		if s == nil {
			return nil, nil
		}
		return s.Data, nil
	}
	rootData, err := w("pki/root/generate/internal", map[string]any{
		"common_name": "keyferry vault test root", "ttl": "87600h", "key_type": "ec", "key_bits": 256})
	if err != nil {
		return err
	}
	if d.root, err = pki.ParseCertificatePEM([]byte(rootData["certificate"].(string))); err != nil {
		return err
	}
	csrData, err := w("pki_int/intermediate/generate/internal", map[string]any{
		"common_name": "keyferry vault test intermediate", "key_type": "ec", "key_bits": 256})
	if err != nil {
		return err
	}
	signed, err := w("pki/root/sign-intermediate", map[string]any{
		"csr": csrData["csr"], "format": "pem", "ttl": "8760h", "common_name": "keyferry vault test intermediate"})
	if err != nil {
		return err
	}
	interPEM := signed["certificate"].(string)
	if d.inter, err = pki.ParseCertificatePEM([]byte(interPEM)); err != nil {
		return err
	}
	if _, err := w("pki_int/intermediate/set-signed", map[string]any{
		"certificate": interPEM + "\n" + rootData["certificate"].(string)}); err != nil {
		return err
	}
	common := map[string]any{
		"allowed_domains": "svc.example.com", "allow_subdomains": true, "max_ttl": "72h",
		"allow_ip_sans": true, "allowed_uri_sans": "spiffe://prod.example/*",
	}
	roles := map[string]map[string]any{
		"pki_int/roles/svc":     {"key_type": "ec", "key_bits": 256},
		"pki_int/roles/svc-any": {"key_type": "any"},
		"pki/roles/direct":      {"key_type": "ec", "key_bits": 256},
	}
	for path, extra := range roles {
		data := map[string]any{}
		for k, v := range common {
			data[k] = v
		}
		for k, v := range extra {
			data[k] = v
		}
		if _, err := w(path, data); err != nil {
			return err
		}
	}
	return nil
}

// verify checks the bundle end to end: pair, links, and x509.Verify to the Vault root for dnsName.
func (d *devPKI) verify(t *testing.T, b *pki.Bundle, dnsName string, wantChain int) *x509.Certificate {
	t.Helper()
	if err := pki.Matches(b.CertPEM, b.KeyPEM); err != nil {
		t.Fatalf("pair: %v", err)
	}
	pb, err := b.Parse()
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	if len(pb.Chain) != wantChain {
		t.Fatalf("chain has %d certificates, want %d", len(pb.Chain), wantChain)
	}
	if !bytes.Contains(b.KeyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatal("the key is not PKCS#8 PEM")
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(d.root)
	for _, c := range pb.Chain {
		inters.AddCert(c)
	}
	chains, err := pb.Leaf.Verify(x509.VerifyOptions{DNSName: dnsName, Roots: roots, Intermediates: inters,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Fatalf("x509 verify: %v", err)
	}
	if got := chains[0][len(chains[0])-1]; !got.Equal(d.root) {
		t.Fatalf("verified to %q, not the Vault root", got.Subject.CommonName)
	}
	if !b.NotAfter.Equal(pb.Leaf.NotAfter) || !b.NotBefore.Equal(pb.Leaf.NotBefore) || b.Serial != pki.FormatSerial(pb.Leaf.SerialNumber) {
		t.Fatalf("bundle fields disagree with the leaf: %v %v %s", b.NotBefore, b.NotAfter, b.Serial)
	}
	return pb.Leaf
}

func noKeyMaterial(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("error contains key material: %v", err)
	}
}

func newIssuer(t *testing.T, mount, role string, mode Mode) pki.Issuer {
	t.Helper()
	is, err := New(devServer(t).client, mount, role, mode)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func TestIssueMode(t *testing.T) {
	d := devServer(t)
	is := newIssuer(t, "pki_int", "svc", Issue)
	spec := pki.Spec{
		Name: "api", CommonName: "api.svc.example.com",
		DNSNames:    []string{"api.svc.example.com", "www.svc.example.com"},
		IPAddresses: []net.IP{net.ParseIP("10.0.0.7")},
		URIs:        []string{"spiffe://prod.example/ns/prod/sa/api"},
		TTL:         2 * time.Hour,
	}
	start := time.Now()
	b, err := is.Issue(tctx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	leaf := d.verify(t, b, "www.svc.example.com", 2)
	if leaf.Subject.CommonName != "api.svc.example.com" || len(leaf.IPAddresses) != 1 || len(leaf.URIs) != 1 ||
		leaf.URIs[0].String() != spec.URIs[0] {
		t.Fatalf("leaf subject/SANs: %q %v %v", leaf.Subject.CommonName, leaf.IPAddresses, leaf.URIs)
	}
	if d := leaf.NotAfter.Sub(start); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Fatalf("leaf lifetime %s, want about 2h", d)
	}
	if kt, _ := pki.KeyTypeOf(leaf.PublicKey); kt != pki.KeyECP256 {
		t.Fatalf("key type %s", kt)
	}
	if pb, _ := b.Parse(); !pb.Chain[0].Equal(d.inter) || !pb.Chain[1].Equal(d.root) {
		t.Fatal("chain is not intermediate then root")
	}
}

func TestSignMode(t *testing.T) {
	d := devServer(t)
	for _, kt := range []string{pki.KeyECP256, pki.KeyRSA2048, ""} {
		t.Run("key="+kt, func(t *testing.T) {
			is := newIssuer(t, "pki_int", "svc-any", Sign)
			b, err := is.Issue(tctx(t), pki.Spec{Name: "web", DNSNames: []string{"web.svc.example.com"}, KeyType: kt, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			leaf := d.verify(t, b, "web.svc.example.com", 2)
			want := kt
			if want == "" {
				want = pki.KeyECP256
			}
			if got, _ := pki.KeyTypeOf(leaf.PublicKey); got != want {
				t.Fatalf("key type %s, want %s", got, want)
			}
			if leaf.Subject.CommonName != "web.svc.example.com" {
				t.Fatalf("CN %q: the first DNS name should stand in", leaf.Subject.CommonName)
			}
		})
	}
}

func TestDirectFromRoot(t *testing.T) {
	d := devServer(t)
	for _, mode := range []Mode{Issue, Sign} {
		b, err := newIssuer(t, "pki", "direct", mode).Issue(tctx(t), pki.Spec{CommonName: "db.svc.example.com", DNSNames: []string{"db.svc.example.com"}})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		leaf := d.verify(t, b, "db.svc.example.com", 1)
		if life := leaf.NotAfter.Sub(leaf.NotBefore); life < pki.DefaultLeafTTL-2*time.Minute || life > pki.DefaultLeafTTL+2*time.Minute {
			t.Fatalf("%s: a zero TTL gave a %s lifetime, want the default %s", mode, life, pki.DefaultLeafTTL)
		}
	}
}

func TestDenied(t *testing.T) {
	for _, mode := range []Mode{Issue, Sign} {
		t.Run(mode.String(), func(t *testing.T) {
			is := newIssuer(t, "pki_int", "svc", mode)
			_, err := is.Issue(tctx(t), pki.Spec{Name: "evil", CommonName: "evil.example.org", DNSNames: []string{"evil.example.org"}})
			if err == nil {
				t.Fatal("a domain outside the role was issued")
			}
			noKeyMaterial(t, err)
			var ve *Error
			if !errors.As(err, &ve) || ve.StatusCode != 400 {
				t.Fatalf("got %v, want a Vault 400 *Error", err)
			}
			var re *vault.ResponseError
			if !errors.As(err, &re) {
				t.Fatal("the Vault response error is not wrapped")
			}
			msg := err.Error()
			if !strings.Contains(msg, "evil.example.org") || !strings.Contains(msg, "not allowed by this role") ||
				!strings.Contains(msg, `"evil"`) || !strings.Contains(msg, "pki_int/"+mode.String()+"/svc") {
				t.Fatalf("error does not carry Vault's message and the context: %v", err)
			}
			t.Log(msg)
		})
	}
	// A SAN outside the role, with an allowed CN.
	_, err := newIssuer(t, "pki_int", "svc", Issue).Issue(tctx(t), pki.Spec{CommonName: "ok.svc.example.com",
		DNSNames: []string{"ok.svc.example.com", "other.example.net"}})
	if err == nil || !strings.Contains(err.Error(), "other.example.net") {
		t.Fatalf("SAN outside the role: %v", err)
	}
	noKeyMaterial(t, err)
}

func TestKeyTypeRefusals(t *testing.T) {
	// Issue mode cannot choose the key type: the role's ec-p256 is not the rsa-2048 asked for.
	_, err := newIssuer(t, "pki_int", "svc", Issue).Issue(tctx(t), pki.Spec{DNSNames: []string{"k.svc.example.com"}, KeyType: pki.KeyRSA2048})
	if err == nil || !strings.Contains(err.Error(), "Sign mode") {
		t.Fatalf("issue with a key type the role does not issue: %v", err)
	}
	noKeyMaterial(t, err)
	// Sign mode: Vault refuses an RSA CSR on an EC role, with its own message.
	_, err = newIssuer(t, "pki_int", "svc", Sign).Issue(tctx(t), pki.Spec{DNSNames: []string{"k.svc.example.com"}, KeyType: pki.KeyRSA2048})
	var ve *Error
	if !errors.As(err, &ve) || len(ve.Messages) == 0 || !strings.Contains(err.Error(), "ec") {
		t.Fatalf("sign with an RSA key on an EC role: %v", err)
	}
	noKeyMaterial(t, err)
	t.Log(err)
	// The role caps the TTL; a spec over it is shortened by Vault (documented).
	b, err := newIssuer(t, "pki_int", "svc", Sign).Issue(tctx(t), pki.Spec{DNSNames: []string{"k.svc.example.com"}, TTL: 500 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if life := b.NotAfter.Sub(b.NotBefore); life > 73*time.Hour {
		t.Fatalf("lifetime %s beyond the role's max_ttl", life)
	}
}

func TestNewValidates(t *testing.T) {
	c := devServer(t).client
	for _, tc := range []struct {
		c           *vault.Client
		mount, role string
		mode        Mode
	}{
		{nil, "pki", "r", Issue}, {c, "", "r", Issue}, {c, "pki", "", Sign}, {c, "pki", "a/b", Sign}, {c, "pki", "r", Mode(9)},
	} {
		if _, err := New(tc.c, tc.mount, tc.role, tc.mode); err == nil {
			t.Errorf("New(%v, %q, %q, %v) accepted", tc.c != nil, tc.mount, tc.role, tc.mode)
		}
	}
	is, err := New(c, "/pki_int/", "svc", Sign)
	if err != nil || is.Path() != "pki_int/sign/svc" {
		t.Fatalf("path %q, %v", is.Path(), err)
	}
	if _, err := is.Issue(tctx(t), pki.Spec{}); err == nil {
		t.Fatal("a spec without any name was sent")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := is.Issue(ctx, pki.Spec{DNSNames: []string{"x.svc.example.com"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}
