package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/pki"
)

// issueCA is a root and a name-constrained intermediate with a local key, as `keyferry ca` makes them.
func issueCA(b *testing.B) (*x509.Certificate, *x509.Certificate, crypto.Signer) {
	b.Helper()
	ctx := context.Background()
	rootPEM, rootKeyPEM, err := pki.InitRoot(ctx, pki.RootOptions{CommonName: "bench root", KeyType: pki.KeyECP256})
	if err != nil {
		b.Fatal(err)
	}
	root, err := pki.ParseCertificatePEM(rootPEM)
	if err != nil {
		b.Fatal(err)
	}
	rootKey, err := pki.ParsePrivateKeyPEM(rootKeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.KeyECP256)
	if err != nil {
		b.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "bench intermediate")
	if err != nil {
		b.Fatal(err)
	}
	interPEM, err := pki.SignIntermediate(ctx, root, rootKey, csr, pki.IntermediateOptions{PermittedDNSDomains: []string{"svc.example.com"}})
	if err != nil {
		b.Fatal(err)
	}
	inter, err := pki.ParseCertificatePEM(interPEM)
	if err != nil {
		b.Fatal(err)
	}
	return root, inter, key
}

// timeRounds runs each function once per round, alternating them so that a noisy machine slows both
// alike, and returns each one's median duration.
func timeRounds(b *testing.B, rounds int, fs ...func() error) []time.Duration {
	b.Helper()
	ds := make([][]time.Duration, len(fs))
	for r := 0; r < rounds; r++ {
		for i, f := range fs {
			t0 := time.Now()
			if err := f(); err != nil {
				b.Fatal(err)
			}
			ds[i] = append(ds[i], time.Since(t0))
		}
	}
	out := make([]time.Duration, len(fs))
	for i, d := range ds {
		sort.Slice(d, func(a, c int) bool { return d[a] < d[c] })
		out[i] = d[len(d)/2]
	}
	return out
}

// BenchmarkIssue compares the built-in CA's issuance with a local intermediate key (policy check, key
// generation, signing, verification of the leaf to the root under the intermediate's name constraints,
// PEM bundle) with the least any issuer must do: a raw loop of P-256 key generation and
// x509.CreateCertificate with the same names. It prints issuance rate ÷ raw rate (goal ≥ 0.85), then the
// same for RSA-2048 leaves with the share of the time spent generating the RSA key.
func BenchmarkIssue(b *testing.B) {
	root, inter, key := issueCA(b)
	policy := pki.Policy{AllowedDomains: []string{"*.svc.example.com"}, AllowedURIs: []string{"spiffe://prod.example/"},
		MaxTTL: 720 * time.Hour, AllowedKeyTypes: []string{pki.KeyECP256, pki.KeyRSA2048}}
	iss, err := pki.NewLocalIssuer(inter, []*x509.Certificate{root}, key, policy)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	spec := func(kt string) pki.Spec {
		return pki.Spec{Name: "api", CommonName: "api.svc.example.com", DNSNames: []string{"api.svc.example.com"},
			URIs: []string{"spiffe://prod.example/ns/app/sa/api"}, KeyType: kt, TTL: 72 * time.Hour}
	}
	uri, _ := url.Parse("spiffe://prod.example/ns/app/sa/api")
	raw := func(kt string) func() error {
		return func() error {
			k, err := pki.GenerateKey(kt)
			if err != nil {
				return err
			}
			serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
			if err != nil {
				return err
			}
			now := time.Now()
			tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "api.svc.example.com"},
				NotBefore: now, NotAfter: now.Add(72 * time.Hour), DNSNames: []string{"api.svc.example.com"},
				URIs: []*url.URL{uri}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				BasicConstraintsValid: true}
			_, err = x509.CreateCertificate(rand.Reader, tmpl, inter, k.Public(), key)
			return err
		}
	}
	issue := func(kt string) func() error {
		return func() error { _, err := iss.Issue(ctx, spec(kt)); return err }
	}
	keygen := func(kt string) func() error {
		return func() error { _, err := pki.GenerateKey(kt); return err }
	}
	for i := 0; i < b.N; i++ {
		d := timeRounds(b, 2000, raw(pki.KeyECP256), issue(pki.KeyECP256))
		fmt.Printf("P-256 leaf: built-in CA issuance %v, raw keygen + x509.CreateCertificate %v (medians of 2,000 alternating rounds)\n",
			d[1].Round(time.Microsecond), d[0].Round(time.Microsecond))
		fmt.Printf("P-256 issuance rate ÷ raw rate: %.2f (goal ≥ 0.85)\n", float64(d[0])/float64(d[1]))
		r := timeRounds(b, 40, raw(pki.KeyRSA2048), issue(pki.KeyRSA2048), keygen(pki.KeyRSA2048))
		fmt.Printf("RSA-2048 leaf: built-in CA issuance %v, raw %v, ratio %.2f; RSA-2048 key generation alone %v = %.0f%% of the issuance (medians of 40 rounds)\n",
			r[1].Round(time.Microsecond), r[0].Round(time.Microsecond), float64(r[0])/float64(r[1]), r[2].Round(time.Microsecond),
			100*float64(r[2])/float64(r[1]))
	}
}
