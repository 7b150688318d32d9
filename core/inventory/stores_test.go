package inventory

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/file"
)

func newFileStore(t *testing.T, name, dir string) *file.Store {
	t.Helper()
	s, err := file.New(file.Options{Name: name, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(t *testing.T, s store.Store, name string, v store.Value, tags map[string]string) {
	t.Helper()
	if _, err := s.Put(tctx(t), name, v, store.PutOptions{Tags: tags}); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func TestStoreSource(t *testing.T) {
	p := newTestPKI(t, "store")
	web := p.issue(t, "web.example.test", "ec-p256", 48*time.Hour)
	api := p.issue(t, "api.example.test", "rsa-2048", 40*24*time.Hour)
	k8s := p.issue(t, "k8s.example.test", "ec-p384", 100*24*time.Hour)
	der := p.issue(t, "der.example.test", "ec-p256", 100*24*time.Hour)
	webJSON, err := web.JSON()
	if err != nil {
		t.Fatal(err)
	}
	k8sJSON, _ := json.Marshal(map[string]any{"kind": "Secret", "data": map[string]string{
		"tls.crt": base64.StdEncoding.EncodeToString(append(bytes.Clone(k8s.CertPEM), k8s.ChainPEM...)),
		"tls.key": base64.StdEncoding.EncodeToString(k8s.KeyPEM),
	}})

	fs := newFileStore(t, "files", filepath.Join(t.TempDir(), "store"))
	put(t, fs, "bundles/web", store.Text(string(webJSON)), map[string]string{StoreManagedTag: "web", "team": "edge"})
	put(t, fs, "raw/api.pem", store.Text(string(api.KeyPEM)+string(api.CertPEM)+string(api.ChainPEM)), nil)
	put(t, fs, "plain/db-password", store.Text(canary), map[string]string{"team": "db"})
	put(t, fs, "json/no-cert", store.Text(`{"user":"admin","password":"`+canary+`"}`), nil)
	put(t, fs, "k8s/tls", store.Text(string(k8sJSON)), nil)
	put(t, fs, "bin/der", store.Binary(parsePEM(t, der.CertPEM).Raw), nil)
	put(t, fs, "trust/ca.pem", store.Text(pemOf(p.root)), nil)
	put(t, fs, "multi/two.pem", store.Text(string(web.CertPEM)+string(api.CertPEM)+string(api.ChainPEM)), nil)
	// A CERTIFICATE block whose base64 decodes (to the canary) but is no certificate.
	put(t, fs, "bad/block", store.Text("-----BEGIN CERTIFICATE-----\n"+base64.StdEncoding.EncodeToString([]byte(canary))+"\n-----END CERTIFICATE-----\n"), nil)

	now := time.Now()
	entries, err := Collect(tctx(t), Options{Roots: p.roots(), Now: now}, StoreSource{Store: fs})
	if err == nil || !strings.Contains(err.Error(), "source store files") || !strings.Contains(err.Error(), `"bad/block"`) {
		t.Fatalf("error %v, want one naming the store and bad/block", err)
	}
	got := byName(entries)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"bin/der", "bundles/web", "k8s/tls", "multi/two.pem#1", "multi/two.pem#2", "raw/api.pem", "trust/ca.pem"}
	if !slices.Equal(names, want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	for _, e := range entries {
		if e.Cloud != "local" || e.Store != "files" {
			t.Errorf("%s: cloud %q store %q", e.Name, e.Cloud, e.Store)
		}
		if e.Managed != (e.Name == "bundles/web") {
			t.Errorf("%s: managed %v", e.Name, e.Managed)
		}
	}
	check := func(name, subject, keyType string, findings ...string) {
		t.Helper()
		e := got[name]
		if e.Subject != subject || e.KeyType != keyType || !slices.Equal(kinds(e), append([]string{}, findings...)) {
			t.Errorf("%s: subject %q key %q findings %v, want %q %q %v", name, e.Subject, e.KeyType, e.Findings, subject, keyType, findings)
		}
	}
	check("bundles/web", "CN=web.example.test", "ec-p256", KindExpiring7)
	check("raw/api.pem", "CN=api.example.test", "rsa-2048", KindExpiring60)
	check("k8s/tls", "CN=k8s.example.test", "ec-p384")
	check("trust/ca.pem", "CN=store root", "ec-p256")
	check("bin/der", "CN=der.example.test", "ec-p256", KindUntrustedChain) // no chain beside it
	if a, b := got["multi/two.pem#1"], got["multi/two.pem#2"]; a.Subject == b.Subject || len(a.Findings) == 0 || slices.Contains(kinds(b), KindUntrustedChain) {
		t.Errorf("multi: %v %v", a, b)
	}
	webBundle := web
	if web := got["bundles/web"]; web.Serial != webBundle.Serial || web.Issuer != "CN=store intermediate" || !slices.Equal(web.SANs, []string{"web.example.test"}) ||
		!web.NotAfter.Equal(web.NotAfter.UTC()) || web.SignatureAlgorithm != "ECDSA-SHA256" || web.DaysLeft != 1 {
		t.Errorf("web entry %+v", web)
	}

	// The canary (a secret value that is no certificate) appears in no output and no error.
	assertNoCanary(t, entries, err, now)
}

func assertNoCanary(t *testing.T, entries []Entry, scanErr error, now time.Time) {
	t.Helper()
	var all bytes.Buffer
	for _, w := range []func() error{
		func() error { return WriteTable(&all, entries) },
		func() error { return WriteJSON(&all, entries) },
		func() error { return WriteCSV(&all, entries) },
		func() error { return WriteHTML(&all, entries, now) },
		func() error { return WriteEMF(&all, entries, "keyferry", now) },
		func() error { return WriteOpenMetrics(&all, entries, now) },
	} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	if scanErr != nil {
		all.WriteString(scanErr.Error())
	}
	for _, leak := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)), "PRIVATE KEY"} {
		if strings.Contains(all.String(), leak) {
			t.Fatalf("%q leaked into the output or an error", leak)
		}
	}
}

func TestStoreSourceFailureDoesNotStopOthers(t *testing.T) {
	p := newTestPKI(t, "fail")
	good := newFileStore(t, "good", filepath.Join(t.TempDir(), "good"))
	put(t, good, "tls/web", store.Text(string(p.issue(t, "web.example.test", "ec-p256", 24*time.Hour).CertPEM)), nil)
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte(canary), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := newFileStore(t, "broken", notADir)

	entries, err := Collect(tctx(t), Options{}, StoreSource{Store: broken}, StoreSource{Store: good, Location: "eu-west-1"}, StoreSource{})
	if len(entries) != 1 || entries[0].Name != "tls/web" || entries[0].Location != "eu-west-1" {
		t.Fatalf("entries %+v", entries)
	}
	var se *SourceError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "source store broken: list") || !strings.Contains(err.Error(), "source store: no store") {
		t.Fatalf("error %v", err)
	}
	assertNoCanary(t, entries, err, time.Now())
}

func TestCertificatesIn(t *testing.T) {
	p := newTestPKI(t, "scan")
	b := p.issue(t, "scan.example.test", "ec-p256", time.Hour)
	leaf := parsePEM(t, b.CertPEM)
	nested, _ := json.Marshal(map[string]any{"a": []any{map[string]any{"deep": map[string]string{"pem": string(b.CertPEM)}}}, "n": 1})
	for _, tc := range []struct {
		name  string
		value string
		n     int
		bad   int
	}{
		{"raw PEM with key and chain", string(b.KeyPEM) + string(b.CertPEM) + string(b.ChainPEM), 3, 0},
		{"PEM without trailing newline", strings.TrimSuffix(string(b.CertPEM), "\n"), 1, 0},
		{"CRLF line endings", strings.ReplaceAll(string(b.CertPEM), "\n", "\r\n"), 1, 0},
		{"nested JSON", string(nested), 1, 0},
		{"base64 PEM", base64.StdEncoding.EncodeToString(b.CertPEM), 1, 0},
		{"DER", string(leaf.Raw), 1, 0},
		{"same certificate twice", string(b.CertPEM) + string(b.CertPEM), 1, 0},
		{"no certificate", canary, 0, 0},
		{"a key only", string(b.KeyPEM), 0, 0},
		{"header without end", "-----BEGIN CERTIFICATE-----\nMIIB", 0, 0},
		{"a key inside a broken certificate block", "-----BEGIN CERTIFICATE-----\nxx\n" + string(b.KeyPEM) + "-----END CERTIFICATE-----\n", 0, 1},
		{"not a certificate inside", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, bad := certificatesIn([]byte(tc.value))
			if len(certs) != tc.n || bad != tc.bad {
				t.Fatalf("%d certificates, %d bad; want %d, %d", len(certs), bad, tc.n, tc.bad)
			}
		})
	}
	// Grouping: the leaf is the entry; the intermediate and root are its chain.
	certs, _ := certificatesIn(append(append(bytes.Clone(b.ChainPEM), b.CertPEM...), b.KeyPEM...))
	if leaves := group(certs); len(leaves) != 1 || !leaves[0].Equal(leaf) {
		t.Fatalf("group: %d leaves", len(leaves))
	}
	if leaves := group([]*x509.Certificate{p.root}); len(leaves) != 1 {
		t.Fatal("a lone root is an entry")
	}
}
