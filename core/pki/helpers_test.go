package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"testing"
	"time"
)

// testCA is a root and a name-constrained intermediate.
type testCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

func newTestCA(t testing.TB, interKeyType string, o IntermediateOptions) *testCA {
	t.Helper()
	ctx := context.Background()
	rootPEM, rootKeyPEM, err := InitRoot(ctx, RootOptions{CommonName: "keyferry test root", Organization: "keyferry", KeyType: KeyECP256})
	if err != nil {
		t.Fatal(err)
	}
	root, err := ParseCertificatePEM(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	rootKey, err := ParsePrivateKeyPEM(rootKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	interKey, err := GenerateKey(interKeyType)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(interKey, "keyferry test intermediate")
	if err != nil {
		t.Fatal(err)
	}
	interPEM, err := SignIntermediate(ctx, root, rootKey, csr, o)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := ParseCertificatePEM(interPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{root: root, inter: inter, rootKey: rootKey, interKey: interKey}
}

func (ca *testCA) issuer(t testing.TB, p Policy) *LocalIssuer {
	t.Helper()
	li, err := NewLocalIssuer(ca.inter, []*x509.Certificate{ca.root}, ca.interKey, p)
	if err != nil {
		t.Fatal(err)
	}
	return li
}

func (ca *testCA) verify(leaf *x509.Certificate, dnsName string, at time.Time) ([][]*x509.Certificate, error) {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca.root)
	inters.AddCert(ca.inter)
	return leaf.Verify(x509.VerifyOptions{
		DNSName: dnsName, Roots: roots, Intermediates: inters, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
}

// openPolicy allows everything under example.com and prod.example SPIFFE IDs.
var openPolicy = Policy{
	AllowedDomains:  []string{"**.example.com", "example.com"},
	AllowedURIs:     []string{"spiffe://prod.example/"},
	MaxTTL:          30 * 24 * time.Hour,
	AllowedKeyTypes: KeyTypes,
	AllowWildcards:  true,
	AllowIPs:        true,
}

var exampleConstraints = IntermediateOptions{
	PermittedDNSDomains: []string{"svc.example.com"},
	ExcludedDNSDomains:  []string{"secret.svc.example.com"},
	PermittedURIDomains: []string{"prod.example"},
}
