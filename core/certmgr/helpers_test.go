package certmgr_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/logbuf"
)

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testCA is a root and an intermediate written to files, as `keyferry ca` leaves them.
type testCA struct {
	dir                        string
	rootFile, interFile, keyFn string
	root                       *x509.Certificate
}

func newCA(t *testing.T, dir string) *testCA {
	t.Helper()
	ctx := context.Background()
	rootPEM, rootKeyPEM, err := pki.InitRoot(ctx, pki.RootOptions{CommonName: "keyferry test root", KeyType: pki.KeyECP256})
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
	csr, err := pki.NewCSR(interKey, "keyferry test intermediate")
	if err != nil {
		t.Fatal(err)
	}
	interPEM, err := pki.SignIntermediate(ctx, root, rootKey, csr, pki.IntermediateOptions{PermittedDNSDomains: []string{"svc.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.MarshalPrivateKeyPEM(interKey)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: filepath.Join(dir, "ca"), root: root}
	if err := os.MkdirAll(ca.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca.rootFile, ca.interFile, ca.keyFn = filepath.Join(ca.dir, "root.pem"), filepath.Join(ca.dir, "intermediate.pem"), filepath.Join(ca.dir, "intermediate.key")
	for f, data := range map[string][]byte{ca.rootFile: rootPEM, ca.interFile: interPEM} {
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(ca.keyFn, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issuerYAML is the builtin issuer and the policy the tests use.
func (ca *testCA) issuerYAML() string {
	return fmt.Sprintf(`  issuer:
    builtin: {certificate: %s, chain: %s, key: {file: %s}}
  policy: {allowed_domains: ["*.svc.example.com"], allowed_uris: ["spiffe://prod.example/"], max_ttl: 720h, key_types: [ec-p256, ec-p384]}
`, ca.interFile, ca.rootFile, ca.keyFn)
}

// loadConfig writes y as dir/keyferry.yaml and loads it, with its stores opened.
func loadConfig(t *testing.T, dir, y string) (*config.Config, map[string]store.Store) {
	t.Helper()
	path := filepath.Join(dir, "keyferry.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sts, err := stores.OpenAll(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, sts
}

// clock is an adjustable time for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// alerts records the alerts sent.
type alerts struct {
	mu   sync.Mutex
	list []replicate.Alert
}

func (a *alerts) Notify(_ context.Context, al replicate.Alert) error {
	a.mu.Lock()
	a.list = append(a.list, al)
	a.mu.Unlock()
	return nil
}

func (a *alerts) kinds() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, al := range a.list {
		out = append(out, al.Kind+" "+al.Rule+" "+al.TargetStore)
	}
	return out
}

func (a *alerts) reset() {
	a.mu.Lock()
	a.list = nil
	a.mu.Unlock()
}

func (a *alerts) text() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, _ := json.Marshal(a.list)
	return string(b)
}

// logBuffer is a logger writing to a buffer, to scan what was logged.
func logBuffer() (*slog.Logger, *logbuf.Buffer) {
	b := &logbuf.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// bundleIn reads the bundle JSON a secret target wrote.
type bundleDoc struct {
	Certificate string `json:"certificate"`
	PrivateKey  string `json:"private_key"`
	Chain       string `json:"chain"`
	NotAfter    string `json:"not_after"`
}

func bundleIn(t *testing.T, st store.Store, name string) (bundleDoc, store.Metadata, *x509.Certificate) {
	t.Helper()
	sec, err := st.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	var d bundleDoc
	if err := json.Unmarshal(sec.Value.Bytes(), &d); err != nil {
		t.Fatalf("%s is not bundle JSON", name)
	}
	c, err := pki.ParseCertificatePEM([]byte(d.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Matches([]byte(d.Certificate), []byte(d.PrivateKey)); err != nil {
		t.Fatalf("%s: the key does not match the certificate: %v", name, err)
	}
	return d, sec.Metadata, c
}

// noKeyMaterial fails if text holds a private key or a line of one of the keys.
func noKeyMaterial(t *testing.T, what, text string, keys ...string) {
	t.Helper()
	if strings.Contains(text, "PRIVATE KEY") {
		t.Errorf("%s contains a private key block", what)
	}
	for _, k := range keys {
		for _, line := range strings.Split(k, "\n") {
			if len(line) >= 32 && !strings.HasPrefix(line, "-----") && strings.Contains(text, line) {
				t.Errorf("%s contains a line of a private key", what)
			}
		}
	}
}

// x509VerifyOptions verifies against the test root, with the chain found in a bundle.
func x509VerifyOptions(ca *testCA, chainPEM string) x509.VerifyOptions {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca.root)
	if cs, err := pki.ParseCertificatesPEM([]byte(chainPEM)); err == nil {
		for _, c := range cs {
			inters.AddCert(c)
		}
	}
	return x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
}

func chmod(path string, mode os.FileMode) error { return os.Chmod(path, mode) }

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
