package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/store"
)

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testCA is a root and an intermediate, and a LocalIssuer signing with the intermediate.
type testCA struct {
	root   *x509.Certificate
	issuer *pki.LocalIssuer
}

var testPolicy = pki.Policy{
	AllowedDomains:  []string{"**.example.com", "example.com"},
	MaxTTL:          30 * 24 * time.Hour,
	AllowedKeyTypes: pki.KeyTypes,
}

func newCA(t testing.TB, cn string) *testCA {
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
	interPEM, err := pki.SignIntermediate(ctx, root, rootKey, csr, pki.IntermediateOptions{PermittedDNSDomains: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := pki.ParseCertificatePEM(interPEM)
	if err != nil {
		t.Fatal(err)
	}
	li, err := pki.NewLocalIssuer(inter, []*x509.Certificate{root}, interKey, testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{root: root, issuer: li}
}

// shared CAs: keyferry's, and another one.
var (
	caOnce          sync.Once
	kfCA, foreignCA *testCA
)

func cas(t testing.TB) (*testCA, *testCA) {
	caOnce.Do(func() {
		kfCA = newCA(t, "keyferry test")
		foreignCA = newCA(t, "someone else")
	})
	return kfCA, foreignCA
}

func (ca *testCA) issue(t testing.TB, ttl time.Duration, dns ...string) *pki.Bundle {
	t.Helper()
	b, err := ca.issuer.Issue(context.Background(), pki.Spec{Name: "test", CommonName: dns[0], DNSNames: dns, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func leafOf(t testing.TB, b *pki.Bundle) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertificatePEM(b.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mismatched pairs the certificate of a with the key of b.
func mismatched(a, b *pki.Bundle) *pki.Bundle {
	return &pki.Bundle{CertPEM: a.CertPEM, KeyPEM: b.KeyPEM, ChainPEM: a.ChainPEM, NotBefore: a.NotBefore, NotAfter: a.NotAfter, Serial: a.Serial}
}

// brokenChain gives a's leaf and key the chain of another CA, which does not link.
func brokenChain(a, other *pki.Bundle) *pki.Bundle {
	return &pki.Bundle{CertPEM: a.CertPEM, KeyPEM: a.KeyPEM, ChainPEM: other.ChainPEM, NotBefore: a.NotBefore, NotAfter: a.NotAfter, Serial: a.Serial}
}

// noChain drops the chain of a (its issuer is then missing).
func noChain(a *pki.Bundle) *pki.Bundle {
	return &pki.Bundle{CertPEM: a.CertPEM, KeyPEM: a.KeyPEM, NotBefore: a.NotBefore, NotAfter: a.NotAfter, Serial: a.Serial}
}

// errs collects every error a test saw, to scan them for key material.
type errs struct {
	mu   sync.Mutex
	list []error
}

func (e *errs) add(err error) error {
	if err != nil {
		e.mu.Lock()
		e.list = append(e.list, err)
		e.mu.Unlock()
	}
	return err
}

func (e *errs) checkNoKeys(t *testing.T, keys ...*pki.Bundle) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, err := range e.list {
		msg := err.Error()
		if strings.Contains(msg, "PRIVATE KEY") {
			t.Errorf("error contains key material: %s", msg)
		}
		for _, b := range keys {
			if b == nil {
				continue
			}
			for _, line := range strings.Split(string(b.KeyPEM), "\n") {
				if len(line) >= 32 && strings.Contains(msg, line) {
					t.Errorf("error contains a line of a private key: %s", msg)
				}
			}
		}
	}
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got %v, want %v", what, err, kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %T is not a *certs.Error", what, err)
	}
}

// suiteResult is what runSuite saw, for target-specific checks.
type suiteResult struct {
	first, renewed Meta
	b1, b2         *pki.Bundle
	errs           *errs
}

// runSuite is the contract every target passes: missing → put → current → renew in place → refusals
// before any call (calls counts the calls the target's backend saw) → no key material in errors.
func runSuite(t *testing.T, tgt Target, name string, calls func() int64) *suiteResult {
	t.Helper()
	kf, other := cas(t)
	e := &errs{}
	ctx := tctx(t)

	_, _, err := tgt.Current(ctx, name)
	wantKind(t, "Current before any put", e.add(err), ErrNotFound)
	due, why, err := NeedsRenewal(ctx, tgt, name, 0, time.Now())
	if err != nil || !due || why != ReasonMissing {
		t.Fatalf("NeedsRenewal of a missing certificate: %v %q %v", due, why, err)
	}

	b1 := kf.issue(t, 48*time.Hour, "app.svc.example.com", "www.svc.example.com")
	m1, err := tgt.Put(ctx, name, b1, map[string]string{"env": "test"})
	if err != nil {
		t.Fatalf("first Put: %v", e.add(err))
	}
	if !m1.Managed || m1.ID == "" || !m1.NotAfter.Equal(b1.NotAfter) {
		t.Fatalf("first Put meta %+v", m1)
	}
	cert, cm, err := tgt.Current(ctx, name)
	if err != nil {
		t.Fatalf("Current: %v", e.add(err))
	}
	if !cert.Equal(leafOf(t, b1)) || !cm.Managed || !cm.NotAfter.Equal(b1.NotAfter) {
		t.Fatalf("Current after the first Put: cert %v, meta %+v", cert.Subject, cm)
	}
	now := time.Now()
	if due, why, err := NeedsRenewal(ctx, tgt, name, 0, now); err != nil || due {
		t.Fatalf("a fresh certificate is due: %v %q %v", due, why, err)
	}
	if due, why, err := NeedsRenewal(ctx, tgt, name, 12*time.Hour, b1.NotAfter.Add(-time.Hour)); err != nil || !due ||
		!strings.Contains(why, "renewal window") {
		t.Fatalf("inside the renewal window: %v %q %v", due, why, err)
	}
	if due, why, err := NeedsRenewal(ctx, tgt, name, 0, b1.NotAfter.Add(time.Minute)); err != nil || !due || !strings.Contains(why, "expired") {
		t.Fatalf("expired: %v %q %v", due, why, err)
	}

	// Renewal: a new bundle (new key, later NotAfter) onto the same object.
	b2 := kf.issue(t, 72*time.Hour, "app.svc.example.com", "www.svc.example.com")
	m2, err := tgt.Put(ctx, name, b2, map[string]string{"env": "test"})
	if err != nil {
		t.Fatalf("renewal Put: %v", e.add(err))
	}
	if !m2.Managed || !m2.NotAfter.Equal(b2.NotAfter) || !m2.NotAfter.After(m1.NotAfter) {
		t.Fatalf("renewal meta %+v (first %+v)", m2, m1)
	}
	cert, cm, err = tgt.Current(ctx, name)
	if err != nil {
		t.Fatalf("Current after renewal: %v", e.add(err))
	}
	if !cert.Equal(leafOf(t, b2)) || !cm.NotAfter.Equal(b2.NotAfter) || !cm.Managed {
		t.Fatalf("Current after renewal: serial %s, meta %+v", pki.FormatSerial(cert.SerialNumber), cm)
	}

	// Refusals before any call.
	b3 := kf.issue(t, 24*time.Hour, "app.svc.example.com")
	bo := other.issue(t, 24*time.Hour, "app.svc.example.com")
	before := calls()
	for _, tc := range []struct {
		what string
		b    *pki.Bundle
		tags map[string]string
	}{
		{"mismatched pair (cert of one bundle, key of another)", mismatched(b3, b2), nil},
		{"mismatched pair across CAs", mismatched(b3, bo), nil},
		{"chain that does not link", brokenChain(b3, bo), nil},
		{"no chain", noChain(b3), nil},
		{"nil bundle", nil, nil},
		{"mark overridden by a user tag", b3, map[string]string{TagKey: "someone-else"}},
	} {
		_, err := tgt.Put(ctx, name, tc.b, tc.tags)
		wantKind(t, tc.what, e.add(err), ErrRefused)
	}
	res := Distribute(ctx, mismatched(b3, b2), name, []Target{tgt})
	if res[0].Status != StatusRefused || res[0].Target != tgt.Name() {
		t.Fatalf("Distribute of a mismatched pair: %+v", res[0])
	}
	e.add(res[0].Err)
	if got := calls(); got != before {
		t.Fatalf("refused bundles made %d calls to the target", got-before)
	}
	// Nothing changed.
	cert, _, err = tgt.Current(ctx, name)
	if err != nil || !cert.Equal(leafOf(t, b2)) {
		t.Fatalf("the target changed after refusals: %v", e.add(err))
	}
	// Distribute of a good bundle.
	res = Distribute(ctx, b3, name, []Target{tgt})
	if res[0].Status != StatusOK || !res[0].Meta.NotAfter.Equal(b3.NotAfter) {
		t.Fatalf("Distribute: %+v", res[0])
	}
	if cert, _, err := tgt.Current(ctx, name); err != nil || !cert.Equal(leafOf(t, b3)) {
		t.Fatalf("Current after Distribute: %v", e.add(err))
	}
	t.Cleanup(func() { e.checkNoKeys(t, b1, b2, b3, bo) })
	return &suiteResult{first: m1, renewed: m2, b1: b1, b2: b2, errs: e}
}

// countingStore counts the calls that reach a store.
type countingStore struct {
	store.Store
	n atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, name string) (store.Secret, error) {
	c.n.Add(1)
	return c.Store.Get(ctx, name)
}

func (c *countingStore) Put(ctx context.Context, name string, v store.Value, o store.PutOptions) (store.Metadata, error) {
	c.n.Add(1)
	return c.Store.Put(ctx, name, v, o)
}

func (c *countingStore) Describe(ctx context.Context, name string) (store.Metadata, error) {
	c.n.Add(1)
	return c.Store.Describe(ctx, name)
}

func (c *countingStore) List(ctx context.Context, o store.ListOptions) iter.Seq2[store.Metadata, error] {
	c.n.Add(1)
	return c.Store.List(ctx, o)
}

func (c *countingStore) Delete(ctx context.Context, name string, o store.DeleteOptions) error {
	c.n.Add(1)
	return c.Store.Delete(ctx, name, o)
}

// casStore is a countingStore that keeps the compare-and-swap of the store below.
type casStore struct {
	*countingStore
	cas store.CompareAndSwapper
}

func (c *casStore) PutIf(ctx context.Context, name string, v store.Value, o store.PutOptions, ifVersion string) (store.Metadata, error) {
	c.n.Add(1)
	return c.cas.PutIf(ctx, name, v, o, ifVersion)
}
