package inventory

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/pki"
)

// canary is a secret value that is not a certificate: it must never appear in any output or error.
const canary = "kf-canary-3b9d1f7e-never-print-me"

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testPKI is a keyferry root, an intermediate and a local issuer, made with core/pki.
type testPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	issuer            *pki.LocalIssuer
}

func newTestPKI(t *testing.T, cn string) *testPKI {
	t.Helper()
	ctx := context.Background()
	rootPEM, rootKeyPEM, err := pki.InitRoot(ctx, pki.RootOptions{CommonName: cn + " root", KeyType: pki.KeyECP256})
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.ParseCertificatePEM(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	rootKey, err := pki.ParsePrivateKeyPEM(rootKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	interKey, err := pki.GenerateKey(pki.KeyECP256)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(interKey, cn+" intermediate")
	if err != nil {
		t.Fatal(err)
	}
	interPEM, err := pki.SignIntermediate(ctx, root, rootKey, csr, pki.IntermediateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := pki.ParseCertificatePEM(interPEM)
	if err != nil {
		t.Fatal(err)
	}
	li, err := pki.NewLocalIssuer(inter, []*x509.Certificate{root}, interKey, pki.Policy{
		AllowedDomains: []string{"**.example.test"}, MaxTTL: 200 * 24 * time.Hour, AllowedKeyTypes: pki.KeyTypes,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{root: root, inter: inter, rootKey: rootKey, interKey: interKey, issuer: li}
}

func (p *testPKI) issue(t *testing.T, cn, keyType string, ttl time.Duration) *pki.Bundle {
	t.Helper()
	b, err := p.issuer.Issue(context.Background(), pki.Spec{Name: cn, CommonName: cn, DNSNames: []string{cn}, KeyType: keyType, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *testPKI) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.root)
	return pool
}

func parsePEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertificatePEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(certs ...*x509.Certificate) string {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String()
}

// longCA is a CA valid for years around now, for certificates with arbitrary validity (expired ones
// included): core/pki issues only from now on.
type longCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serial int64 = 1000

func nextSerial() *big.Int {
	serial++
	return big.NewInt(serial)
}

func newLongCA(t *testing.T, cn string, key crypto.Signer) *longCA {
	t.Helper()
	if key == nil {
		key = ecKey(t, elliptic.P256())
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-5 * 365 * 24 * time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &longCA{cert: c, key: key}
}

type leafOpts struct {
	cn                  string
	notBefore, notAfter time.Time
	key                 crypto.Signer // nil: a new P-256 key
	sigAlg              x509.SignatureAlgorithm
}

func (ca *longCA) leaf(t *testing.T, o leafOpts) *x509.Certificate {
	t.Helper()
	key := o.key
	if key == nil {
		key = ecKey(t, elliptic.P256())
	}
	if o.notBefore.IsZero() {
		o.notBefore = o.notAfter.Add(-365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: o.cn}, DNSNames: []string{o.cn},
		NotBefore: o.notBefore, NotAfter: o.notAfter, SignatureAlgorithm: o.sigAlg,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatalf("create %s: %v", o.cn, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ecKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func kinds(e Entry) []string {
	out := []string{}
	for _, f := range e.Findings {
		out = append(out, f.Kind)
	}
	return out
}

func byName(entries []Entry) map[string]Entry {
	m := map[string]Entry{}
	for _, e := range entries {
		m[e.Name] = e
	}
	return m
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
