package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestIssueVerifiesThroughIntermediate(t *testing.T) {
	cases := []struct {
		name         string
		interKeyType string
		spec         Spec
		dnsName      string
		wantKU       x509.KeyUsage
		wantEKU      []x509.ExtKeyUsage
	}{
		{"ec-p256 default", KeyECP256, Spec{Name: "api", CommonName: "api.svc.example.com", DNSNames: []string{"api.svc.example.com"}},
			"api.svc.example.com", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"ec-p384 under rsa intermediate", KeyRSA2048, Spec{DNSNames: []string{"db.svc.example.com"}, KeyType: KeyECP384, TTL: 24 * time.Hour},
			"db.svc.example.com", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"rsa-2048", KeyECP384, Spec{DNSNames: []string{"web.svc.example.com"}, KeyType: KeyRSA2048},
			"web.svc.example.com", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"rsa-3072 wildcard", KeyECP256, Spec{DNSNames: []string{"*.web.svc.example.com"}, KeyType: KeyRSA3072},
			"anything.web.svc.example.com", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"rsa-4096 mTLS with SPIFFE ID and IP", KeyECP256, Spec{
			DNSNames: []string{"api.svc.example.com"}, IPAddresses: []net.IP{net.ParseIP("10.1.2.3")},
			URIs: []string{"spiffe://prod.example/ns/app/sa/api"}, KeyType: KeyRSA4096,
			KeyUsage: []string{"digital-signature"}, ExtKeyUsage: []string{"server-auth", "client-auth"},
		}, "10.1.2.3", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{"SPIFFE only", KeyECP256, Spec{URIs: []string{"spiffe://prod.example/ns/app/sa/worker"}, ExtKeyUsage: []string{"client-auth"}},
			"", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ca := newTestCA(t, c.interKeyType, exampleConstraints)
			li := ca.issuer(t, openPolicy)
			start := time.Now()
			b, err := li.Issue(context.Background(), c.spec)
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := ParseCertificatePEM(b.CertPEM)
			if err != nil {
				t.Fatal(err)
			}
			chains, err := ca.verify(leaf, c.dnsName, time.Now())
			if err != nil {
				t.Fatalf("leaf does not verify to the root: %v", err)
			}
			if len(chains) != 1 || len(chains[0]) != 3 || !chains[0][1].Equal(ca.inter) || !chains[0][2].Equal(ca.root) {
				t.Errorf("chain is not leaf → intermediate → root: %v", chains)
			}
			// The bundle's own chain is the intermediate then the root.
			chain, err := ParseCertificatesPEM(b.ChainPEM)
			if err != nil || len(chain) != 2 || !chain[0].Equal(ca.inter) || !chain[1].Equal(ca.root) {
				t.Errorf("ChainPEM: %v, %d certificates", err, len(chain))
			}
			if err := Matches(b.CertPEM, b.KeyPEM); err != nil {
				t.Errorf("Matches: %v", err)
			}
			wantKT := c.spec.KeyType
			if wantKT == "" {
				wantKT = KeyECP256
			}
			if kt, err := KeyTypeOf(leaf.PublicKey); kt != wantKT {
				t.Errorf("leaf key %s (%v), want %s", kt, err, wantKT)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Error("leaf is a CA")
			}
			if leaf.KeyUsage != c.wantKU {
				t.Errorf("KeyUsage %b, want %b", leaf.KeyUsage, c.wantKU)
			}
			if len(leaf.ExtKeyUsage) != len(c.wantEKU) {
				t.Errorf("ExtKeyUsage %v, want %v", leaf.ExtKeyUsage, c.wantEKU)
			}
			for i := range c.wantEKU {
				if i < len(leaf.ExtKeyUsage) && leaf.ExtKeyUsage[i] != c.wantEKU[i] {
					t.Errorf("ExtKeyUsage %v, want %v", leaf.ExtKeyUsage, c.wantEKU)
				}
			}
			ttl := c.spec.TTL
			if ttl == 0 {
				ttl = DefaultLeafTTL
			}
			if d := start.Sub(leaf.NotBefore); d < time.Minute-time.Second || d > time.Minute+5*time.Second {
				t.Errorf("NotBefore is %s before issuance, want 1m", d)
			}
			if d := leaf.NotAfter.Sub(start); d < ttl-time.Second || d > ttl+5*time.Second {
				t.Errorf("NotAfter is %s after issuance, want %s", d, ttl)
			}
			if !b.NotAfter.Equal(leaf.NotAfter) || !b.NotBefore.Equal(leaf.NotBefore) {
				t.Error("bundle times differ from the certificate's")
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %x is not a random 128-bit number", leaf.SerialNumber)
			}
			if b.Serial != FormatSerial(leaf.SerialNumber) || !regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2})*$`).MatchString(b.Serial) {
				t.Errorf("Serial %q", b.Serial)
			}
			if len(leaf.SubjectKeyId) != 20 || !bytes.Equal(leaf.AuthorityKeyId, ca.inter.SubjectKeyId) {
				t.Errorf("SKID %x, AKID %x (intermediate SKID %x)", leaf.SubjectKeyId, leaf.AuthorityKeyId, ca.inter.SubjectKeyId)
			}
			if leaf.Subject.CommonName != c.spec.CommonName {
				t.Errorf("CN %q", leaf.Subject.CommonName)
			}
			if len(c.spec.URIs) > 0 && (len(leaf.URIs) != len(c.spec.URIs) || leaf.URIs[0].String() != c.spec.URIs[0]) {
				t.Errorf("URIs %v", leaf.URIs)
			}
		})
	}
}

func TestIssueFreshKeyAndSerialPerLeaf(t *testing.T) {
	ca := newTestCA(t, KeyECP256, exampleConstraints)
	li := ca.issuer(t, openPolicy)
	s := Spec{DNSNames: []string{"api.svc.example.com"}}
	a, err := li.Issue(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := li.Issue(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.KeyPEM, b.KeyPEM) || a.Serial == b.Serial {
		t.Error("two issuances share a key or a serial")
	}
}

func TestIssueRefusals(t *testing.T) {
	ca := newTestCA(t, KeyECP256, exampleConstraints)
	ctx := context.Background()
	cases := []struct {
		name    string
		policy  Policy
		spec    Spec
		wantErr string
		policyE bool
	}{
		{"zero policy", Policy{}, Spec{DNSNames: []string{"api.svc.example.com"}}, "denied by policy (3 violations)", true},
		{"outside policy", Policy{AllowedDomains: []string{"*.svc.example.com"}, MaxTTL: time.Hour, AllowedKeyTypes: []string{KeyECP256}},
			Spec{DNSNames: []string{"api.other.example.com"}, TTL: time.Hour}, "matches no AllowedDomains", true},
		// The policy allows it but the intermediate's name constraints do not: x509.Verify catches it.
		{"outside name constraints", openPolicy, Spec{DNSNames: []string{"api.other.example.com"}}, "does not verify to the root", false},
		{"excluded by name constraints", openPolicy, Spec{DNSNames: []string{"db.secret.svc.example.com"}}, "does not verify to the root", false},
		// A wildcard that could cover an excluded subtree is refused by x509 name-constraint checking.
		{"wildcard overlapping an excluded subtree", openPolicy, Spec{DNSNames: []string{"*.svc.example.com"}}, "is excluded by constraint", false},
		{"URI outside name constraints", Policy{AllowedURIs: []string{"spiffe://"}, MaxTTL: time.Hour, AllowedKeyTypes: []string{KeyECP256}},
			Spec{URIs: []string{"spiffe://staging.example/ns/app/sa/api"}, TTL: time.Hour}, "does not verify to the root", false},
		{"beyond the intermediate", Policy{AllowedDomains: []string{"**.example.com"}, MaxTTL: 10 * 365 * 24 * time.Hour, AllowedKeyTypes: []string{KeyECP256}},
			Spec{DNSNames: []string{"api.svc.example.com"}, TTL: 2 * 365 * 24 * time.Hour}, "rotate the intermediate", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := ca.issuer(t, c.policy).Issue(ctx, c.spec)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			if b != nil {
				t.Error("a bundle came back with the error")
			}
			var pe *PolicyError
			if errors.As(err, &pe) != c.policyE {
				t.Errorf("PolicyError = %v, want %v", !c.policyE, c.policyE)
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ca.issuer(t, openPolicy).Issue(cctx, Spec{DNSNames: []string{"api.svc.example.com"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled ctx: %v", err)
	}
}

func TestNewLocalIssuerChecks(t *testing.T) {
	ca := newTestCA(t, KeyECP256, IntermediateOptions{})
	other := newTestCA(t, KeyECP256, IntermediateOptions{})
	cases := []struct {
		name    string
		inter   *x509.Certificate
		chain   []*x509.Certificate
		key     crypto.Signer
		policy  Policy
		wantErr string
	}{
		{"ok", ca.inter, []*x509.Certificate{ca.root}, ca.interKey, openPolicy, ""},
		{"root issues directly", ca.root, nil, ca.rootKey, openPolicy, ""},
		{"key of another intermediate", ca.inter, []*x509.Certificate{ca.root}, other.interKey, openPolicy, "does not belong to the intermediate"},
		{"no root", ca.inter, nil, ca.interKey, openPolicy, "no root"},
		{"wrong root", ca.inter, []*x509.Certificate{other.root}, ca.interKey, openPolicy, "chain broken"},
		{"leaf as intermediate", nil, nil, nil, openPolicy, "required"},
		{"invalid policy", ca.inter, []*x509.Certificate{ca.root}, ca.interKey, Policy{AllowedDomains: []string{"a*"}}, "invalid policy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewLocalIssuer(c.inter, c.chain, c.key, c.policy)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestRenewAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(90 * time.Hour)}
	cases := []struct {
		name        string
		cert        *x509.Certificate
		renewBefore time.Duration
		want        time.Time
	}{
		{"two thirds by default", cert, 0, nb.Add(60 * time.Hour)},
		{"negative means default", cert, -time.Hour, nb.Add(60 * time.Hour)},
		{"renew before", cert, 10 * time.Hour, nb.Add(80 * time.Hour)},
		{"renew before the whole life", cert, 100 * time.Hour, nb},
		{"inverted validity", &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(-time.Hour)}, 0, nb},
		{"nil", nil, 0, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := RenewAt(c.cert, c.renewBefore); !got.Equal(c.want) {
				t.Errorf("RenewAt = %s, want %s", got, c.want)
			}
		})
	}
	dues := []struct {
		at   time.Time
		rb   time.Duration
		want bool
	}{
		{nb.Add(59 * time.Hour), 0, false},
		{nb.Add(60 * time.Hour), 0, true},
		{nb.Add(79 * time.Hour), 10 * time.Hour, false},
		{nb.Add(80 * time.Hour), 10 * time.Hour, true},
		{nb.Add(100 * time.Hour), 0, true},
	}
	for _, d := range dues {
		if got := Due(cert, d.rb, d.at); got != d.want {
			t.Errorf("Due(at %s, renewBefore %s) = %v, want %v", d.at.Sub(nb), d.rb, got, d.want)
		}
	}
	if !Due(nil, 0, nb) {
		t.Error("a missing certificate is not due")
	}

	// On an issued 72h leaf (backdated a minute) the default renewal falls two thirds in.
	ca := newTestCA(t, KeyECP256, exampleConstraints)
	b, err := ca.issuer(t, openPolicy).Issue(context.Background(), Spec{DNSNames: []string{"api.svc.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ParseCertificatePEM(b.CertPEM)
	want := leaf.NotBefore.Add((72*time.Hour + time.Minute) * 2 / 3)
	if got := RenewAt(leaf, 0); got.Sub(want).Abs() > time.Second {
		t.Errorf("RenewAt = %s, want %s", got, want)
	}
	if Due(leaf, 0, time.Now()) || !Due(leaf, 0, time.Now().Add(49*time.Hour)) {
		t.Error("Due is wrong for a fresh 72h leaf")
	}
}

func TestFormatSerial(t *testing.T) {
	for _, c := range []struct {
		n    *big.Int
		want string
	}{
		{big.NewInt(0), "00"},
		{big.NewInt(0xa), "0a"},
		{new(big.Int).SetBytes([]byte{0xde, 0xad, 0x01}), "de:ad:01"},
		{nil, ""},
	} {
		if got := FormatSerial(c.n); got != c.want {
			t.Errorf("FormatSerial(%v) = %q, want %q", c.n, got, c.want)
		}
	}
}

// TestVerifiedShapes: the issuer fully verifies the first leaf of each shape and only the validity of
// later leaves of that shape; a leaf of another shape — a name outside the constraints among them — is
// still verified and refused, however many leaves came before it, and every bundle verifies to the root.
func TestVerifiedShapes(t *testing.T) {
	ca := newTestCA(t, KeyECP256, exampleConstraints)
	li := ca.issuer(t, openPolicy)
	ctx := context.Background()
	roots := x509.NewCertPool()
	roots.AddCert(ca.root)
	inters := x509.NewCertPool()
	inters.AddCert(ca.inter)
	steps := []struct {
		dns     string
		eku     []string
		wantErr string
	}{
		{"api.svc.example.com", nil, ""},
		{"api.svc.example.com", nil, ""},
		{"api.other.example.com", nil, "does not verify to the root"},
		{"db.secret.svc.example.com", nil, "does not verify to the root"},
		{"api.svc.example.com", []string{"client-auth"}, ""},
		{"api.svc.example.com", nil, ""},
		{"api.other.example.com", nil, "does not verify to the root"},
	}
	for i, st := range steps {
		b, err := li.Issue(ctx, Spec{DNSNames: []string{st.dns}, ExtKeyUsage: st.eku})
		if st.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), st.wantErr) {
				t.Fatalf("step %d (%s): err = %v, want %q", i, st.dns, err, st.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, st.dns, err)
		}
		leaf, err := ParseCertificatePEM(b.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("step %d: the bundle does not verify: %v", i, err)
		}
		if !leaf.NotAfter.Equal(b.NotAfter) || !leaf.NotBefore.Equal(b.NotBefore) || FormatSerial(leaf.SerialNumber) != b.Serial {
			t.Fatalf("step %d: bundle says %s–%s serial %s, certificate %s–%s serial %s", i, b.NotBefore, b.NotAfter, b.Serial,
				leaf.NotBefore, leaf.NotAfter, FormatSerial(leaf.SerialNumber))
		}
	}
	if n := len(li.verified); n != 2 {
		t.Errorf("%d verified shapes, want 2 (server-auth and client-auth leaves of api.svc.example.com)", n)
	}
}
