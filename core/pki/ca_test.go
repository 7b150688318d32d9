package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

var oidNameConstraints = asn1.ObjectIdentifier{2, 5, 29, 30}

func TestInitRoot(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		opts    RootOptions
		keyType string
		ttl     time.Duration
		wantErr string
	}{
		{name: "defaults", opts: RootOptions{CommonName: "Root A", Organization: "keyferry"}, keyType: KeyECP384, ttl: DefaultRootTTL},
		{name: "ec-p256 5y", opts: RootOptions{CommonName: "Root B", KeyType: KeyECP256, TTL: 5 * 365 * 24 * time.Hour}, keyType: KeyECP256, ttl: 5 * 365 * 24 * time.Hour},
		{name: "rsa-2048", opts: RootOptions{CommonName: "Root C", KeyType: KeyRSA2048}, keyType: KeyRSA2048, ttl: DefaultRootTTL},
		{name: "no CN", opts: RootOptions{}, wantErr: "CommonName is required"},
		{name: "bad key type", opts: RootOptions{CommonName: "x", KeyType: "ed25519"}, wantErr: `unknown key type "ed25519"`},
		{name: "negative TTL", opts: RootOptions{CommonName: "x", TTL: -time.Hour}, wantErr: "negative TTL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			certPEM, keyPEM, err := InitRoot(ctx, c.opts)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ParseCertificatePEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			key, err := ParsePrivateKeyPEM(keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if blk, _ := pem.Decode(keyPEM); blk.Type != "PRIVATE KEY" {
				t.Errorf("key PEM type %q, want PKCS#8 PRIVATE KEY", blk.Type)
			}
			if !publicKeysEqual(cert.PublicKey, key.Public()) {
				t.Fatal("key does not match certificate")
			}
			if kt, _ := KeyTypeOf(cert.PublicKey); kt != c.keyType {
				t.Errorf("key type %s, want %s", kt, c.keyType)
			}
			if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("root is not a CA: IsCA=%v KeyUsage=%b", cert.IsCA, cert.KeyUsage)
			}
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("root is not self-signed: %v", err)
			}
			if cert.Subject.CommonName != c.opts.CommonName {
				t.Errorf("CN %q", cert.Subject.CommonName)
			}
			if got := cert.NotAfter.Sub(start); got < c.ttl-time.Minute || got > c.ttl+time.Minute {
				t.Errorf("lifetime from now %s, want about %s", got, c.ttl)
			}
			if len(cert.SubjectKeyId) == 0 {
				t.Error("no SubjectKeyId")
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := InitRoot(cctx, RootOptions{CommonName: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled ctx: err = %v", err)
	}
}

func TestSignIntermediate(t *testing.T) {
	ctx := context.Background()
	rootPEM, rootKeyPEM, err := InitRoot(ctx, RootOptions{CommonName: "root", KeyType: KeyECP256, TTL: 2 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := ParseCertificatePEM(rootPEM)
	rootKey, _ := ParsePrivateKeyPEM(rootKeyPEM)
	interKey, _ := GenerateKey(KeyECP256)
	csr, err := NewCSR(interKey, "inter")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := GenerateKey(KeyECP256)

	// A CSR whose signature does not match its key: sign with one key, swap in another's public key.
	badCSR := func() []byte {
		blk, _ := pem.Decode(csr)
		der := append([]byte(nil), blk.Bytes...)
		der[len(der)-5] ^= 0xff // corrupt the signature
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}()

	cases := []struct {
		name    string
		rootKey any
		csr     []byte
		opts    IntermediateOptions
		check   func(t *testing.T, c *x509.Certificate)
		wantErr string
	}{
		{
			name: "defaults", csr: csr,
			check: func(t *testing.T, c *x509.Certificate) {
				if d := time.Until(c.NotAfter); d < DefaultIntermediateTTL-time.Minute || d > DefaultIntermediateTTL {
					t.Errorf("TTL %s, want 1y", d)
				}
				if hasExt(c, oidNameConstraints) {
					t.Error("unconstrained intermediate has a name constraints extension")
				}
			},
		},
		{
			name: "constrained", csr: csr, opts: exampleConstraints,
			check: func(t *testing.T, c *x509.Certificate) {
				if !c.PermittedDNSDomainsCritical || !extCritical(c, oidNameConstraints) {
					t.Error("name constraints are not critical")
				}
				if strings.Join(c.PermittedDNSDomains, ",") != "svc.example.com" ||
					strings.Join(c.ExcludedDNSDomains, ",") != "secret.svc.example.com" ||
					strings.Join(c.PermittedURIDomains, ",") != "prod.example" {
					t.Errorf("constraints %v %v %v", c.PermittedDNSDomains, c.ExcludedDNSDomains, c.PermittedURIDomains)
				}
			},
		},
		{
			name: "TTL cut to the root", csr: csr, opts: IntermediateOptions{TTL: 5 * 365 * 24 * time.Hour},
			check: func(t *testing.T, c *x509.Certificate) {
				if c.NotAfter.After(root.NotAfter) {
					t.Errorf("intermediate outlives the root: %s > %s", c.NotAfter, root.NotAfter)
				}
				if !c.NotAfter.Equal(root.NotAfter) {
					t.Errorf("NotAfter %s, want the root's %s", c.NotAfter, root.NotAfter)
				}
			},
		},
		{name: "bad CSR signature", csr: badCSR, wantErr: "bad self-signature"},
		{name: "not a CSR", csr: rootPEM, wantErr: `"CERTIFICATE" is not a certificate request`},
		{name: "garbage", csr: []byte("nope"), wantErr: "no PEM block"},
		{name: "wrong root key", rootKey: otherKey, csr: csr, wantErr: "does not belong to the root"},
		{name: "glob constraint", csr: csr, opts: IntermediateOptions{PermittedDNSDomains: []string{"*.example.com"}}, wantErr: "not a glob"},
		{name: "bad constraint", csr: csr, opts: IntermediateOptions{PermittedURIDomains: []string{"spiffe://x"}}, wantErr: "PermittedURIDomains"},
		{name: "negative path len", csr: csr, opts: IntermediateOptions{PathLen: -1}, wantErr: "negative PathLen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rk := rootKey
			if c.rootKey != nil {
				rk = otherKey
			}
			certPEM, err := SignIntermediate(ctx, root, rk, c.csr, c.opts)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ParseCertificatePEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.IsCA || !cert.BasicConstraintsValid || cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
				t.Errorf("IsCA=%v MaxPathLen=%d MaxPathLenZero=%v", cert.IsCA, cert.MaxPathLen, cert.MaxPathLenZero)
			}
			if err := cert.CheckSignatureFrom(root); err != nil {
				t.Error(err)
			}
			if !publicKeysEqual(cert.PublicKey, interKey.Public()) {
				t.Error("intermediate does not carry the CSR's key")
			}
			if string(cert.AuthorityKeyId) != string(root.SubjectKeyId) || len(cert.SubjectKeyId) != 20 {
				t.Errorf("AKID %x (root SKID %x), SKID %x", cert.AuthorityKeyId, root.SubjectKeyId, cert.SubjectKeyId)
			}
			if cert.Subject.CommonName != "inter" {
				t.Errorf("CN %q", cert.Subject.CommonName)
			}
			if c.check != nil {
				c.check(t, cert)
			}
		})
	}
}

// A leaf signed directly with the intermediate key — bypassing the issuer's own check — outside the
// intermediate's name constraints fails x509 verification; one inside passes.
func TestNameConstraintsEnforcedByX509(t *testing.T) {
	ca := newTestCA(t, KeyECP256, exampleConstraints)
	cases := []struct {
		name  string
		dns   []string
		uris  []string
		valid bool
	}{
		{"inside", []string{"api.svc.example.com"}, nil, true},
		{"apex of permitted", []string{"svc.example.com"}, nil, true},
		{"outside", []string{"api.other.example.com"}, nil, false},
		{"one of two outside", []string{"api.svc.example.com", "evil.com"}, nil, false},
		{"excluded subtree", []string{"db.secret.svc.example.com"}, nil, false},
		{"suffix trick", []string{"api.svc.example.com.evil.com"}, nil, false},
		{"spiffe inside", nil, []string{"spiffe://prod.example/ns/app/sa/api"}, true},
		{"spiffe other trust domain", nil, []string{"spiffe://staging.example/ns/app/sa/api"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leafKey, _ := GenerateKey(KeyECP256)
			var uris []*url.URL
			for _, u := range c.uris {
				pu, _ := url.Parse(u)
				uris = append(uris, pu)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(42),
				Subject:      pkix.Name{CommonName: "leaf"},
				NotBefore:    time.Now().Add(-time.Minute),
				NotAfter:     time.Now().Add(time.Hour),
				DNSNames:     c.dns,
				URIs:         uris,
				ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, leafKey.Public(), ca.interKey)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := x509.ParseCertificate(der)
			_, err = ca.verify(leaf, "", time.Now())
			if c.valid && err != nil {
				t.Fatalf("verify: %v", err)
			}
			if !c.valid {
				var ci x509.CertificateInvalidError
				if !errors.As(err, &ci) || ci.Reason != x509.CANotAuthorizedForThisName {
					t.Fatalf("verify err = %v, want CANotAuthorizedForThisName", err)
				}
			}
		})
	}
}

func TestNewCSR(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrPEM, err := NewCSR(key, "inter")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "inter" || !publicKeysEqual(csr.PublicKey, key.Public()) {
		t.Errorf("CSR %q", csr.Subject.CommonName)
	}
	if _, err := NewCSR(key, " "); err == nil {
		t.Error("empty CN accepted")
	}
	if _, err := NewCSR(nil, "x"); err == nil {
		t.Error("nil signer accepted")
	}
}

func hasExt(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

func extCritical(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e.Critical
		}
	}
	return false
}
