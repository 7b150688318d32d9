package pki

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

func issueTest(t *testing.T, ca *testCA, s Spec) *Bundle {
	t.Helper()
	b, err := ca.issuer(t, openPolicy).Issue(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBundleJSON(t *testing.T) {
	ca := newTestCA(t, KeyECP256, exampleConstraints)
	b := issueTest(t, ca, Spec{DNSNames: []string{"api.svc.example.com"}})
	data, err := b.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || m["certificate"] != string(b.CertPEM) || m["private_key"] != string(b.KeyPEM) || m["chain"] != string(b.ChainPEM) {
		t.Errorf("JSON fields: %v", keys(m))
	}
	na, err := time.Parse(time.RFC3339, m["not_after"])
	if err != nil || !na.Equal(b.NotAfter.Truncate(time.Second)) {
		t.Errorf("not_after %q (%v), want %s", m["not_after"], err, b.NotAfter)
	}
	if _, err := (*Bundle)(nil).JSON(); err == nil {
		t.Error("nil bundle encoded")
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBundlePFXRoundTrip(t *testing.T) {
	ca := newTestCA(t, KeyECP256, exampleConstraints)
	for _, kt := range []string{KeyECP256, KeyRSA2048} {
		for _, pw := range []string{"correct horse battery staple", ""} {
			t.Run(kt+"/password="+pw, func(t *testing.T) {
				b := issueTest(t, ca, Spec{DNSNames: []string{"api.svc.example.com"}, KeyType: kt})
				pfx, err := b.PFX(pw)
				if err != nil {
					t.Fatal(err)
				}
				key, cert, caCerts, err := pkcs12.DecodeChain(pfx, pw)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				leaf, _ := ParseCertificatePEM(b.CertPEM)
				if !cert.Equal(leaf) {
					t.Error("PFX certificate differs")
				}
				if signer, ok := key.(crypto.Signer); !ok || !publicKeysEqual(leaf.PublicKey, signer.Public()) {
					t.Error("PFX key does not match the certificate")
				}
				if len(caCerts) != 2 || !caCerts[0].Equal(ca.inter) || !caCerts[1].Equal(ca.root) {
					t.Errorf("PFX chain has %d certificates", len(caCerts))
				}
				if pw != "" {
					if _, _, _, err := pkcs12.DecodeChain(pfx, "wrong"); err == nil {
						t.Error("wrong password decoded")
					}
				}
			})
		}
	}
}

func TestMatchesAndParseBundle(t *testing.T) {
	ca := newTestCA(t, KeyECP256, exampleConstraints)
	a := issueTest(t, ca, Spec{DNSNames: []string{"a.svc.example.com"}})
	b := issueTest(t, ca, Spec{DNSNames: []string{"b.svc.example.com"}, KeyType: KeyRSA2048})
	other := newTestCA(t, KeyECP256, exampleConstraints)
	fullChain := append(append([]byte{}, a.CertPEM...), a.ChainPEM...)
	wrongChain := append(append([]byte{}, a.CertPEM...), other.chainPEM()...)

	cases := []struct {
		name    string
		cert    []byte
		key     []byte
		chain   []byte
		wantErr string
	}{
		{"pair", a.CertPEM, a.KeyPEM, nil, ""},
		{"pair with chain", a.CertPEM, a.KeyPEM, a.ChainPEM, ""},
		{"full chain file", fullChain, a.KeyPEM, nil, ""},
		{"mismatched pair", a.CertPEM, b.KeyPEM, nil, "the private key (rsa-2048) does not match the certificate"},
		{"mismatched pair, same key type", b.CertPEM, issueTest(t, ca, Spec{DNSNames: []string{"c.svc.example.com"}, KeyType: KeyRSA2048}).KeyPEM, nil, "refusing the mismatched pair"},
		{"chain of another CA", a.CertPEM, a.KeyPEM, other.chainPEM(), "chain broken at certificate 1"},
		{"full chain of another CA", wrongChain, a.KeyPEM, nil, "chain broken"},
		{"chain in the wrong order", a.CertPEM, a.KeyPEM, append(pemCert(ca.root.Raw), pemCert(ca.inter.Raw)...), "chain broken"},
		{"key in the certificate field", a.KeyPEM, a.KeyPEM, nil, `PEM block 1 is "PRIVATE KEY", want CERTIFICATE`},
		{"certificate in the key field", a.CertPEM, a.CertPEM, nil, `"CERTIFICATE" is not a private key`},
		{"no certificate", nil, a.KeyPEM, nil, "no certificate"},
		{"no key", a.CertPEM, nil, nil, "no PEM block"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pb, err := ParseBundle(c.cert, c.key, c.chain)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if pb.Leaf == nil || pb.Key == nil {
					t.Fatal("incomplete parse")
				}
				if c.chain == nil && bytes.Equal(c.cert, a.CertPEM) {
					if err := Matches(c.cert, c.key); err != nil {
						t.Errorf("Matches: %v", err)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			assertNoKeyMaterial(t, err, a.KeyPEM)
			assertNoKeyMaterial(t, err, b.KeyPEM)
			assertNoKeyMaterial(t, err, c.key)
		})
	}
	if err := Matches(a.CertPEM, b.KeyPEM); err == nil {
		t.Error("Matches accepted a mismatched pair")
	}
	// A bundle with a swapped key is never packaged as PFX.
	bad := *a
	bad.KeyPEM = b.KeyPEM
	if _, err := bad.PFX("x"); err == nil || !strings.Contains(err.Error(), "mismatched pair") {
		t.Errorf("PFX of a mismatched pair: %v", err)
	}
	var nilB *Bundle
	if _, err := nilB.PFX("x"); err == nil {
		t.Error("nil bundle packaged")
	}
}

func (ca *testCA) chainPEM() []byte {
	return append(pemCert(ca.inter.Raw), pemCert(ca.root.Raw)...)
}
