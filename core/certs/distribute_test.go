package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/store"
)

// fakeTarget answers from fields and counts Puts.
type fakeTarget struct {
	name   string
	puts   atomic.Int64
	putErr error
	cur    *x509.Certificate
	meta   Meta
	curErr error
}

func (f *fakeTarget) Name() string { return f.name }
func (f *fakeTarget) Current(context.Context, string) (*x509.Certificate, Meta, error) {
	return f.cur, f.meta, f.curErr
}
func (f *fakeTarget) Put(_ context.Context, name string, b *pki.Bundle, _ map[string]string) (Meta, error) {
	f.puts.Add(1)
	if f.putErr != nil {
		return Meta{}, f.putErr
	}
	return Meta{ID: name, Managed: true, NotAfter: b.NotAfter}, nil
}

func TestDistribute(t *testing.T) {
	kf, other := cas(t)
	ctx := tctx(t)
	good := NewSecretTarget(newFileStore(t))
	foreignStore := &countingStore{Store: newFileStore(t)}
	if _, err := foreignStore.Put(ctx, "shop", store.Text("not a certificate"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := NewSecretTarget(foreignStore)
	b := kf.issue(t, 24*time.Hour, "shop.svc.example.com")
	// An outside implementation failing with an error that quotes a private key.
	leaky := &fakeTarget{name: "leaky", putErr: fmt.Errorf("backend said: bad request body %q", b.KeyPEM)}
	slow := &fakeTarget{name: "ok-fake"}

	res := Distribute(ctx, b, "shop", []Target{good, foreign, leaky, nil, slow})
	want := []Status{StatusOK, StatusRefused, StatusFailed, StatusFailed, StatusOK}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("result %d (%s): %s (%v), want %s", i, r.Target, r.Status, r.Err, want[i])
		}
		if r.Err != nil && strings.Contains(r.Err.Error(), "PRIVATE KEY") {
			t.Errorf("result %d leaks the key: %v", i, r.Err)
		}
		if (r.Status == StatusOK) != (r.Err == nil) {
			t.Errorf("result %d: status %s with error %v", i, r.Status, r.Err)
		}
	}
	if res[0].Target != "files" || res[2].Target != "leaky" || !res[0].Meta.NotAfter.Equal(b.NotAfter) || !res[0].Meta.Managed {
		t.Fatalf("results: %+v", res)
	}
	if !errors.Is(res[1].Err, ErrRefused) || !strings.Contains(res[1].Err.Error(), "not keyferry's") {
		t.Fatalf("foreign: %v", res[1].Err)
	}
	if cert, _, err := good.Current(ctx, "shop"); err != nil || !cert.Equal(leafOf(t, b)) {
		t.Fatalf("the good target does not hold the bundle: %v", err)
	}

	// An invalid bundle is refused for every target and no target is called.
	for _, bad := range []*pki.Bundle{
		mismatched(b, kf.issue(t, time.Hour, "shop.svc.example.com")),
		brokenChain(b, other.issue(t, time.Hour, "shop.example.com")),
		nil,
	} {
		before := foreignStore.n.Load()
		res := Distribute(ctx, bad, "shop", []Target{good, foreign, slow})
		for i, r := range res {
			if r.Status != StatusRefused || !errors.Is(r.Err, ErrRefused) || strings.Contains(r.Err.Error(), "PRIVATE KEY") {
				t.Fatalf("invalid bundle, result %d: %s %v", i, r.Status, r.Err)
			}
		}
		if foreignStore.n.Load() != before || slow.puts.Load() != 1 {
			t.Fatal("a target was called with an invalid bundle")
		}
	}
	if cert, _, err := good.Current(ctx, "shop"); err != nil || !cert.Equal(leafOf(t, b)) {
		t.Fatalf("an invalid bundle changed the target: %v", err)
	}
}

func TestNeedsRenewal(t *testing.T) {
	kf, _ := cas(t)
	ctx := tctx(t)
	b := kf.issue(t, 30*time.Hour, "r.svc.example.com")
	leaf := leafOf(t, b)
	f := &fakeTarget{name: "f", cur: leaf, meta: Meta{Managed: true, NotAfter: leaf.NotAfter}}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	for _, tc := range []struct {
		what        string
		renewBefore time.Duration
		now         time.Time
		due         bool
		reason      string
	}{
		{"fresh, default window", 0, leaf.NotBefore.Add(life / 2), false, "valid until"},
		{"two thirds of its life", 0, leaf.NotBefore.Add(life*2/3 + time.Second), true, "renewal window"},
		{"outside renewBefore", 6 * time.Hour, leaf.NotAfter.Add(-7 * time.Hour), false, "renewal due at"},
		{"inside renewBefore", 6 * time.Hour, leaf.NotAfter.Add(-5 * time.Hour), true, "renewal window"},
		{"expired", time.Hour, leaf.NotAfter, true, "expired"},
	} {
		due, why, err := NeedsRenewal(ctx, f, "r", tc.renewBefore, tc.now)
		if err != nil || due != tc.due || !strings.Contains(why, tc.reason) {
			t.Errorf("%s: %v %q %v", tc.what, due, why, err)
		}
	}
	f.meta.Managed = false
	if due, why, err := NeedsRenewal(ctx, f, "r", 0, leaf.NotAfter.Add(time.Hour)); err != nil || due || why != ReasonNotManaged {
		t.Errorf("foreign, even expired: %v %q %v", due, why, err)
	}
	f.cur, f.meta = nil, Meta{Managed: true}
	if due, _, err := NeedsRenewal(ctx, f, "r", 0, time.Now()); err != nil || !due {
		t.Errorf("managed without a certificate: %v %v", due, err)
	}
	f.curErr = &Error{Kind: ErrNotFound, Target: "f"}
	if due, why, err := NeedsRenewal(ctx, f, "r", 0, time.Now()); err != nil || !due || why != ReasonMissing {
		t.Errorf("missing: %v %q %v", due, why, err)
	}
	boom := errors.New("throttled")
	f.curErr = boom
	if due, _, err := NeedsRenewal(ctx, f, "r", 0, time.Now()); due || !errors.Is(err, boom) {
		t.Errorf("read error: %v %v", due, err)
	}
}

func TestCheck(t *testing.T) {
	kf, _ := cas(t)
	b := kf.issue(t, time.Hour, "c.svc.example.com")
	p, err := Check(b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Chain) != 2 || !p.Bundle.NotAfter.Equal(b.NotAfter) || strings.Count(string(p.FullChainPEM()), "BEGIN CERTIFICATE") != 3 {
		t.Fatal("prepared bundle")
	}
	// A full-chain CertPEM with an empty ChainPEM is the same bundle.
	full := &pki.Bundle{CertPEM: append(append([]byte{}, b.CertPEM...), b.ChainPEM...), KeyPEM: b.KeyPEM, NotAfter: b.NotAfter}
	if p2, err := Check(full, time.Now()); err != nil || len(p2.Chain) != 2 || string(p2.LeafPEM) != string(p.LeafPEM) {
		t.Fatalf("full chain in CertPEM: %v", err)
	}
	for _, tc := range []struct {
		what string
		b    *pki.Bundle
		now  time.Time
		want string
	}{
		{"expired", b, b.NotAfter.Add(time.Second), "expired"},
		{"NotAfter disagrees", &pki.Bundle{CertPEM: b.CertPEM, KeyPEM: b.KeyPEM, ChainPEM: b.ChainPEM, NotAfter: b.NotAfter.Add(time.Hour)}, time.Now(), "disagrees"},
		{"no chain", noChain(b), time.Now(), "no chain"},
		{"no key", &pki.Bundle{CertPEM: b.CertPEM, ChainPEM: b.ChainPEM}, time.Now(), "key"},
		{"key in the chain", &pki.Bundle{CertPEM: b.CertPEM, KeyPEM: b.KeyPEM, ChainPEM: b.KeyPEM}, time.Now(), "want CERTIFICATE"},
	} {
		_, err := Check(tc.b, tc.now)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("%s: %v", tc.what, err)
		}
	}
	// A self-signed certificate (which pki.ParseBundle accepts only as a CA) needs no chain.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "self"}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.MarshalPrivateKeyPEM(key)
	if _, err := Check(&pki.Bundle{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: keyPEM}, time.Now()); err != nil {
		t.Fatalf("self-signed: %v", err)
	}
}

func TestErrorsRedact(t *testing.T) {
	kf, _ := cas(t)
	b := kf.issue(t, time.Hour, "e.svc.example.com")
	pfx, err := b.PFX("pw")
	if err != nil {
		t.Fatal(err)
	}
	cause := fmt.Errorf("service echoed: %s / %s / %q / %s", b.KeyPEM, base64.StdEncoding.EncodeToString(b.KeyPEM),
		string(b.KeyPEM), base64.StdEncoding.EncodeToString(pfx))
	e := &Error{Kind: ErrFailed, Target: "t", Op: "put", Name: "n", Detail: "import", Err: cause}
	msg := e.Error()
	if strings.Contains(msg, "PRIVATE KEY") || strings.Contains(msg, "LS0tLS1CRUdJTi") || !strings.Contains(msg, "[redacted") {
		t.Fatalf("not redacted: %s", msg)
	}
	for _, line := range strings.Split(string(b.KeyPEM), "\n") {
		if len(line) > 20 && strings.Contains(msg, line) {
			t.Fatalf("a key line survived: %s", msg)
		}
	}
	if !errors.Is(e, ErrFailed) || !errors.Is(e, cause) || !strings.HasPrefix(msg, `certs: t: put "n": failed: import: service echoed`) {
		t.Fatalf("error: %s", msg)
	}
	// Ordinary messages are untouched.
	plain := "certs: acm: put \"x\": refused: arn:aws:acm:us-east-1:123456789012:certificate/0b0f2b8e-1111-2222-3333-444455556666"
	if Redact(plain) != plain {
		t.Fatalf("Redact changed %q", plain)
	}
	if StatusRefused.String() != "refused" || StatusOK.String() != "ok" || StatusFailed.String() != "failed" {
		t.Fatal("status names")
	}
}
