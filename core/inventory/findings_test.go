package inventory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFindingsTable(t *testing.T) {
	now := time.Now().Truncate(time.Second).UTC()
	ca := newLongCA(t, "findings CA", nil)
	rsaCA := newLongCA(t, "findings RSA CA", rsaKey(t, 2048))
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	in := func(d time.Duration) time.Time { return now.Add(d) }
	days := func(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

	sha1RSA := rsaCA.leaf(t, leafOpts{cn: "sha1.example.test", notAfter: in(days(200)), sigAlg: x509.SHA1WithRSA})
	// Go refuses to sign with MD5; an MD5 signature is crafted by rewriting the SHA-1 certificate's
	// signature algorithm OID (sha1WithRSAEncryption 1.2.840.113549.1.1.5 to md5WithRSAEncryption .4).
	md5DER := bytes.ReplaceAll(bytes.Clone(sha1RSA.Raw),
		[]byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05},
		[]byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04})
	md5RSA, err := x509.ParseCertificate(md5DER)
	if err != nil || md5RSA.SignatureAlgorithm != x509.MD5WithRSA {
		t.Fatalf("crafted MD5 certificate: %v, %v", err, md5RSA)
	}

	for _, tc := range []struct {
		name     string
		cert     *x509.Certificate
		want     []string
		daysLeft int
		keyType  string
		sigAlg   string
	}{
		{"expired", ca.leaf(t, leafOpts{cn: "expired.example.test", notAfter: in(-days(3))}), []string{KindExpired}, -3, "ec-p256", "ECDSA-SHA256"},
		{"expired a second ago", ca.leaf(t, leafOpts{cn: "just.example.test", notAfter: in(-time.Second)}), []string{KindExpired}, -1, "ec-p256", ""},
		{"expires now", ca.leaf(t, leafOpts{cn: "now.example.test", notAfter: now}), []string{KindExpired}, 0, "", ""},
		{"5 days", ca.leaf(t, leafOpts{cn: "five.example.test", notAfter: in(days(5))}), []string{KindExpiring7}, 5, "", ""},
		{"7 days exactly", ca.leaf(t, leafOpts{cn: "seven.example.test", notAfter: in(days(7))}), []string{KindExpiring7}, 7, "", ""},
		{"7 days and a second", ca.leaf(t, leafOpts{cn: "seven1.example.test", notAfter: in(days(7) + time.Second)}), []string{KindExpiring30}, 7, "", ""},
		{"20 days", ca.leaf(t, leafOpts{cn: "twenty.example.test", notAfter: in(days(20))}), []string{KindExpiring30}, 20, "", ""},
		{"45 days", ca.leaf(t, leafOpts{cn: "fortyfive.example.test", notAfter: in(days(45))}), []string{KindExpiring60}, 45, "", ""},
		{"80 days", ca.leaf(t, leafOpts{cn: "eighty.example.test", notAfter: in(days(80))}), []string{KindExpiring90}, 80, "", ""},
		{"100 days", ca.leaf(t, leafOpts{cn: "hundred.example.test", notAfter: in(days(100))}), []string{}, 100, "ec-p256", ""},
		{"RSA-1024 weak", ca.leaf(t, leafOpts{cn: "rsa1024.example.test", notAfter: in(days(100)), key: rsaKey(t, 1024)}), []string{KindWeakKey}, 100, "rsa-1024", ""},
		{"RSA-2048 fine", ca.leaf(t, leafOpts{cn: "rsa2048.example.test", notAfter: in(days(100)), key: rsaKey(t, 2048)}), []string{}, 100, "rsa-2048", ""},
		{"P-224 weak", ca.leaf(t, leafOpts{cn: "p224.example.test", notAfter: in(days(100)), key: ecKey(t, elliptic.P224())}), []string{KindWeakKey}, 100, "ec-p224", ""},
		{"P-384 fine", ca.leaf(t, leafOpts{cn: "p384.example.test", notAfter: in(days(100)), key: ecKey(t, elliptic.P384())}), []string{}, 100, "ec-p384", ""},
		{"Ed25519 fine", ca.leaf(t, leafOpts{cn: "ed.example.test", notAfter: in(days(100)), key: edKey}), []string{}, 100, "ed25519", ""},
		{"SHA1-RSA signature", sha1RSA, []string{KindWeakSignature}, 200, "ec-p256", "SHA1-RSA"},
		{"MD5-RSA signature", md5RSA, []string{KindWeakSignature}, 200, "", "MD5-RSA"},
		{"ECDSA-SHA1 signature, expiring, weak key", ca.leaf(t, leafOpts{cn: "all.example.test", notAfter: in(days(2)), sigAlg: x509.ECDSAWithSHA1, key: rsaKey(t, 1024)}),
			[]string{KindExpiring7, KindWeakKey, KindWeakSignature}, 2, "rsa-1024", "ECDSA-SHA1"},
		{"self-signed SHA1 root is not flagged", sha1Root(t), []string{}, 0, "rsa-2048", "SHA1-RSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Assess(FromCertificate(tc.cert, nil), Options{Now: now})
			if got := kinds(e); !slices.Equal(got, tc.want) {
				t.Fatalf("findings %v (%v), want %v", got, e.Findings, tc.want)
			}
			if tc.daysLeft != 0 && e.DaysLeft != tc.daysLeft {
				t.Errorf("days left %d, want %d", e.DaysLeft, tc.daysLeft)
			}
			if tc.keyType != "" && e.KeyType != tc.keyType {
				t.Errorf("key type %q, want %q", e.KeyType, tc.keyType)
			}
			if tc.sigAlg != "" && e.SignatureAlgorithm != tc.sigAlg {
				t.Errorf("signature algorithm %q, want %q", e.SignatureAlgorithm, tc.sigAlg)
			}
			for _, f := range e.Findings {
				if f.Detail == "" {
					t.Errorf("finding %s has no detail", f.Kind)
				}
			}
			wantStatus := StatusOK
			if len(tc.want) > 0 && isExpiryKind(tc.want[0]) {
				wantStatus = tc.want[0]
			}
			if e.Status() != wantStatus {
				t.Errorf("status %q, want %q", e.Status(), wantStatus)
			}
		})
	}
}

// sha1Root is a self-signed root signed with SHA-1: nobody checks a trust anchor's own signature.
func sha1Root(t *testing.T) *x509.Certificate {
	t.Helper()
	key := rsaKey(t, 2048)
	tmpl := &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "old root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(1000 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SignatureAlgorithm: x509.SHA1WithRSA}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An entry not built from a certificate (e.g. read back from JSON) gets its expiry findings again and
// keeps its other findings.
func TestAssessWithoutCertificate(t *testing.T) {
	now := time.Now()
	e := Entry{NotAfter: now.Add(10 * 24 * time.Hour), Findings: []Finding{{KindExpiring90, "old"}, {KindWeakKey, "RSA key of 1024 bits"}}}
	got := Assess(e, Options{Now: now})
	if k := kinds(got); !slices.Equal(k, []string{KindExpiring30, KindWeakKey}) {
		t.Fatalf("findings %v", k)
	}
}

func TestUntrustedChain(t *testing.T) {
	p := newTestPKI(t, "trusted")
	other := newTestPKI(t, "other")
	b := p.issue(t, "web.example.test", "ec-p256", 24*time.Hour)
	leaf := parsePEM(t, b.CertPEM)
	strange := parsePEM(t, other.issue(t, "strange.example.test", "ec-p256", 24*time.Hour).CertPEM)
	interPool := x509.NewCertPool()
	interPool.AddCert(p.inter)

	long := newLongCA(t, "long CA", nil)
	expired := long.leaf(t, leafOpts{cn: "old.example.test", notAfter: time.Now().Add(-48 * time.Hour)})
	longRoots := x509.NewCertPool()
	longRoots.AddCert(long.cert)

	for _, tc := range []struct {
		name  string
		entry Entry
		opts  Options
		want  []string
	}{
		{"chain found beside the leaf", FromCertificate(leaf, []*x509.Certificate{p.inter, p.root}), Options{Roots: p.roots()}, []string{KindExpiring7}},
		{"intermediate missing", FromCertificate(leaf, nil), Options{Roots: p.roots()}, []string{KindExpiring7, KindUntrustedChain}},
		{"intermediate configured", FromCertificate(leaf, nil), Options{Roots: p.roots(), Intermediates: interPool}, []string{KindExpiring7}},
		{"another root", FromCertificate(strange, []*x509.Certificate{other.inter}), Options{Roots: p.roots()}, []string{KindExpiring7, KindUntrustedChain}},
		{"no roots configured: not checked", FromCertificate(strange, nil), Options{}, []string{KindExpiring7}},
		{"the root itself", FromCertificate(p.root, nil), Options{Roots: p.roots()}, []string{}},
		{"expired leaf judged on its chain", FromCertificate(expired, nil), Options{Roots: longRoots}, []string{KindExpired}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Assess(tc.entry, tc.opts)
			if k := kinds(got); !slices.Equal(k, tc.want) {
				t.Fatalf("findings %v (%v), want %v", k, got.Findings, tc.want)
			}
		})
	}
	// The caller's intermediates pool is not changed.
	e := Assess(FromCertificate(strange, []*x509.Certificate{other.inter}), Options{Roots: p.roots(), Intermediates: interPool})
	if _, err := strange.Verify(x509.VerifyOptions{Roots: other.roots(), Intermediates: interPool}); err == nil {
		t.Fatalf("Assess added the entry's chain to the caller's pool (%v)", e.Findings)
	}
}

// fakeSource yields fixed entries and errors, or panics.
type fakeSource struct {
	name    string
	entries []Entry
	errs    []error
	panics  bool
}

func (f fakeSource) Name() string { return f.name }
func (f fakeSource) Scan(context.Context) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if f.panics {
			panic("boom")
		}
		for _, e := range f.entries {
			if !yield(e, nil) {
				return
			}
		}
		for _, err := range f.errs {
			if !yield(Entry{}, err) {
				return
			}
		}
	}
}

func TestCollectOneFailingSourceDoesNotStopOthers(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ca := newLongCA(t, "collect CA", nil)
	mk := func(cloud, name string, d time.Duration) Entry {
		e := FromCertificate(ca.leaf(t, leafOpts{cn: name + ".example.test", notAfter: now.Add(d)}), nil)
		e.Cloud, e.Name = cloud, name
		return e
	}
	entries, err := Collect(context.Background(), Options{Now: now},
		fakeSource{name: "good-a", entries: []Entry{mk("aws", "late", 300*24*time.Hour), mk("aws", "soon", 3*24*time.Hour)}},
		fakeSource{name: "broken-b", errs: []error{errors.New("access denied")}},
		fakeSource{name: "half-c", entries: []Entry{mk("gcp", "mid", 50*24*time.Hour)}, errs: []error{errors.New("page 2 failed")}},
		fakeSource{name: "panicky-d", panics: true},
	)
	if got := len(entries); got != 3 {
		t.Fatalf("%d entries, want 3", got)
	}
	if entries[0].Name != "soon" || entries[1].Name != "mid" || entries[2].Name != "late" {
		t.Fatalf("not sorted by expiry: %s, %s, %s", entries[0].Name, entries[1].Name, entries[2].Name)
	}
	if entries[0].Status() != KindExpiring7 || entries[1].Status() != KindExpiring60 {
		t.Fatalf("entries not assessed: %v %v", entries[0].Findings, entries[1].Findings)
	}
	for _, want := range []string{"source broken-b: access denied", "source half-c: page 2 failed", "source panicky-d: panic: boom"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	var se *SourceError
	if !errors.As(err, &se) || se.Source == "" {
		t.Fatalf("errors are not *SourceError: %v", err)
	}
}
