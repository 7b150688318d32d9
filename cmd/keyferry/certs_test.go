package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/stores"
)

// TestCertificateCommands is the whole workflow from the command line: an offline root, an intermediate
// key and request, the intermediate signed by the root, a certificate issued into a file store, renewal
// finding nothing due, and the inventory listing the certificate. No output ever holds key material.
func TestCertificateCommands(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	var outputs []string
	cli := func(want int, args ...string) (string, string) {
		t.Helper()
		code, out, errs := runCLI(t, args...)
		outputs = append(outputs, out, errs)
		if code != want {
			t.Fatalf("keyferry %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
		}
		return out, errs
	}

	// ca init: root.pem and a 0600 root.key; the fingerprint printed is the certificate's.
	out, errs := cli(0, "ca", "init", "--out", caDir, "--cn", "Test Root")
	rootPEM, err := os.ReadFile(filepath.Join(caDir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := pki.ParseCertificatePEM(rootPEM)
	if err != nil || root.Subject.CommonName != "Test Root" || !root.IsCA {
		t.Fatalf("root %v %v", root, err)
	}
	sum := sha256.Sum256(root.Raw)
	if !strings.Contains(out, fmt.Sprintf("%02X:%02X:%02X", sum[0], sum[1], sum[2])) || !strings.Contains(out, "SHA-256 fingerprint") {
		t.Fatalf("ca init output lacks the fingerprint:\n%s", out)
	}
	if !strings.Contains(errs, "offline") {
		t.Fatalf("ca init does not warn to keep the root offline:\n%s", errs)
	}
	mode(t, filepath.Join(caDir, "root.key"), 0o600)
	// Never over an existing root.
	if _, errs = cli(1, "ca", "init", "--out", caDir); !strings.Contains(errs, "already exists") {
		t.Fatalf("second ca init: %s", errs)
	}

	// ca csr generates the intermediate key (0600) when missing.
	interKey, csr := filepath.Join(caDir, "intermediate.key"), filepath.Join(caDir, "intermediate.csr")
	if out, _ = cli(0, "ca", "csr", "--key", interKey, "--cn", "Test Intermediate", "--out", csr); !strings.Contains(out, "generated a new ec-p384 key") {
		t.Fatalf("ca csr: %s", out)
	}
	mode(t, interKey, 0o600)
	keyBefore, _ := os.ReadFile(interKey)
	// A second request reuses the key.
	if out, _ = cli(0, "ca", "csr", "--key", interKey, "--cn", "Test Intermediate", "--out", csr); strings.Contains(out, "generated") {
		t.Fatalf("the second ca csr generated a key: %s", out)
	}
	if keyAfter, _ := os.ReadFile(interKey); string(keyAfter) != string(keyBefore) {
		t.Fatal("the key changed")
	}

	// ca sign-intermediate: certificate only, with name constraints. A root key others can read is refused.
	interPEM := filepath.Join(caDir, "intermediate.pem")
	if err := os.Chmod(filepath.Join(caDir, "root.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs = cli(1, "ca", "sign-intermediate", "--root-cert", filepath.Join(caDir, "root.pem"), "--root-key", filepath.Join(caDir, "root.key"),
		"--csr", csr, "--out", interPEM); !strings.Contains(errs, "chmod 600") {
		t.Fatalf("an unprotected root key: %s", errs)
	}
	if err := os.Chmod(filepath.Join(caDir, "root.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ = cli(0, "ca", "sign-intermediate", "--root-cert", filepath.Join(caDir, "root.pem"), "--root-key", filepath.Join(caDir, "root.key"),
		"--csr", csr, "--ttl", "90d", "--permit-dns", "svc.example.com", "--out", interPEM)
	if !strings.Contains(out, "DNS svc.example.com") || !strings.Contains(out, "CN=Test Intermediate") {
		t.Fatalf("sign-intermediate output:\n%s", out)
	}
	interData, _ := os.ReadFile(interPEM)
	inters, err := pki.ParseCertificatesPEM(interData)
	if err != nil || len(inters) != 1 || inters[0].CheckSignatureFrom(root) != nil || len(inters[0].PermittedDNSDomains) != 1 {
		t.Fatalf("the intermediate file: %d certificates, %v", len(inters), err)
	}

	// certs issue into a file store.
	cfgPath := filepath.Join(dir, "keyferry.yaml")
	y := `stores:
  local: {type: file, path: secrets}
certificates:
  issuer:
    builtin: {certificate: ca/intermediate.pem, chain: ca/root.pem, key: {file: ca/intermediate.key}}
  policy: {allowed_domains: ["*.svc.example.com"], max_ttl: 168h, key_types: [ec-p256]}
  specs:
    - name: api
      dns: [api.svc.example.com]
      ttl: 72h
      targets: [{store: local, name: certs/api}]
`
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _ = cli(0, "certs", "issue", "-f", cfgPath, "--dry-run"); !strings.Contains(out, "would-write") || !strings.Contains(out, "nothing issued") {
		t.Fatalf("dry run:\n%s", out)
	}
	out, _ = cli(0, "certs", "issue", "-f", cfgPath)
	if !regexp.MustCompile(`(?m)^api\s+local\s+written\s+serial `).MatchString(out) || !strings.Contains(out, "1 issued") {
		t.Fatalf("certs issue:\n%s", out)
	}
	out, _ = cli(0, "certs", "renew", "-f", cfgPath, "--only", "api")
	if !regexp.MustCompile(`(?m)^api\s+local\s+not-due\s+valid until`).MatchString(out) || !strings.Contains(out, "0 issued") {
		t.Fatalf("certs renew:\n%s", out)
	}
	out, _ = cli(0, "certs", "renew", "-f", cfgPath, "--output", "json")
	var results []struct {
		Spec    string `json:"spec"`
		Targets []struct {
			Action string `json:"action"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 1 || results[0].Targets[0].Action != "not-due" {
		t.Fatalf("certs renew json: %v\n%s", err, out)
	}
	if _, errs = cli(1, "certs", "issue", "-f", cfgPath, "--only", "nope"); !strings.Contains(errs, `no certificate named "nope"`) {
		t.Fatalf("unknown certificate: %s", errs)
	}

	// inventory: the certificate, managed, trusted by the builtin root.
	out, _ = cli(0, "inventory", "-f", cfgPath, "--output", "json")
	var entries []struct {
		Cloud    string `json:"cloud"`
		Store    string `json:"store"`
		Name     string `json:"name"`
		SANs     []string
		Managed  bool `json:"managed"`
		Findings []struct {
			Kind string `json:"kind"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("inventory json: %v\n%s", err, out)
	}
	if len(entries) != 1 || entries[0].Name != "certs/api" || entries[0].Store != "local" || entries[0].Cloud != "local" || !entries[0].Managed ||
		len(entries[0].SANs) != 1 || entries[0].SANs[0] != "api.svc.example.com" {
		t.Fatalf("inventory entries %+v", entries)
	}
	for _, f := range entries[0].Findings {
		if f.Kind == "untrusted-chain" || f.Kind == "expired" {
			t.Fatalf("finding %s", f.Kind)
		}
	}
	if out, _ = cli(0, "inventory", "-f", cfgPath); !regexp.MustCompile(`(?m)^local\s+-\s+certs/api\s+.*\s+yes\s`).MatchString(out) {
		t.Fatalf("inventory table:\n%s", out)
	}
	report := filepath.Join(dir, "inventory.csv")
	cli(0, "inventory", "-f", cfgPath, "--output", "csv", "--out", report)
	if b, err := os.ReadFile(report); err != nil || !strings.HasPrefix(string(b), "cloud,location,store,name") || !strings.Contains(string(b), "certs/api") {
		t.Fatalf("inventory csv file: %v", err)
	}
	for _, f := range []string{"html", "openmetrics", "emf"} {
		if out, _ = cli(0, "inventory", "-f", cfgPath, "--output", f); !strings.Contains(out, "certs/api") {
			t.Fatalf("inventory %s:\n%s", f, out)
		}
	}
	if _, errs = cli(2, "inventory", "-f", cfgPath, "--output", "xml"); !strings.Contains(errs, "--output must be one of") {
		t.Fatalf("bad output: %s", errs)
	}

	// No key material anywhere in what the commands printed.
	keys := []string{string(keyBefore), issuedKey(t, cfgPath, "certs/api")}
	if b, err := os.ReadFile(filepath.Join(caDir, "root.key")); err == nil {
		keys = append(keys, string(b))
	}
	all := strings.Join(outputs, "\n")
	if strings.Contains(all, "PRIVATE KEY") {
		t.Fatal("a command printed a private key block")
	}
	for _, k := range keys {
		for _, line := range strings.Split(k, "\n") {
			if len(line) >= 32 && !strings.HasPrefix(line, "-----") && strings.Contains(all, line) {
				t.Fatal("a command printed a line of a private key")
			}
		}
	}
}

// issuedKey is the private key of the bundle a secret target holds.
func issuedKey(t *testing.T, cfgPath, name string) string {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stores.Open(context.Background(), cfg.Store("local"))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := st.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(sec.Value.Bytes(), &doc); err != nil || !strings.Contains(doc.PrivateKey, "PRIVATE KEY") {
		t.Fatalf("the secret holds no bundle: %v", err)
	}
	return doc.PrivateKey
}

func mode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Fatalf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
	}
}

func TestCertificateCommandUsage(t *testing.T) {
	for _, args := range [][]string{{"ca"}, {"ca", "frob"}, {"ca", "init"}, {"ca", "csr", "--key", "k"}, {"certs"}, {"certs", "frob"}} {
		if code, _, errs := runCLI(t, args...); code != 2 || !strings.Contains(errs, "usage") {
			t.Errorf("keyferry %s: exit %d\n%s", strings.Join(args, " "), code, errs)
		}
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "keyferry.yaml")
	if err := os.WriteFile(cfgPath, []byte("stores:\n  local: {type: file, path: s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "certs", "renew", "-f", cfgPath); code != 1 || !strings.Contains(errs, "no `certificates:` section") {
		t.Fatalf("renew without certificates: %d %s", code, errs)
	}
	// The inventory works without a certificates section: it scans the stores.
	if code, out, errs := runCLI(t, "inventory", "-f", cfgPath, "--output", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("inventory of an empty store: %d %q %s", code, out, errs)
	}
}
