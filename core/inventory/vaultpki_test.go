package inventory

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/localtest/vault"
)

func TestVaultPKISource(t *testing.T) {
	bin, err := vault.Binary()
	if err != nil {
		t.Fatal(err) // never skip: `make vault` builds it
	}
	srv, err := vault.Start(tctx(t), vault.Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := tctx(t)
	if err := c.Sys().MountWithContext(ctx, "pki", &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "8760h"}}); err != nil {
		t.Fatal(err)
	}
	write := func(path string, data map[string]any) *api.Secret {
		t.Helper()
		s, err := c.Logical().WriteWithContext(ctx, path, data)
		if err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		return s
	}
	rootSec := write("pki/root/generate/internal", map[string]any{"common_name": "vault test root", "ttl": "8760h", "key_type": "ec", "key_bits": 256})
	root := parsePEM(t, []byte(rootSec.Data["certificate"].(string)))
	write("pki/roles/web", map[string]any{"allowed_domains": "example.test", "allow_subdomains": true, "max_ttl": "2400h", "key_type": "ec", "key_bits": 256})
	issue := func(cn, ttl string) string {
		s := write("pki/issue/web", map[string]any{"common_name": cn, "ttl": ttl})
		return s.Data["serial_number"].(string)
	}
	webSerial := issue("web.example.test", "1000h")  // ~41 days
	soonSerial := issue("soon.example.test", "100h") // ~4 days
	goneSerial := issue("gone.example.test", "1000h")
	write("pki/revoke", map[string]any{"serial_number": goneSerial})

	src := VaultPKISource{Client: c, Mount: "pki"}
	host := strings.TrimPrefix(srv.Addr, "http://")
	if src.Name() != "vault-pki "+host+"/pki" {
		t.Fatalf("name %q", src.Name())
	}
	entries, err := Collect(tctx(t), Options{Roots: poolOf(root)}, src)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Entry{}
	for _, e := range entries {
		got[e.Subject] = e
		if e.Cloud != "vault" || e.Location != host || e.Store != "pki" || e.Managed {
			t.Errorf("%s: %+v", e.Name, e)
		}
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries, want the root and two leaves (the revoked one skipped): %v", len(entries), got)
	}
	w, s, r := got["CN=web.example.test"], got["CN=soon.example.test"], got["CN=vault test root"]
	if !sameSerial(w.Name, webSerial) || w.KeyType != "ec-p256" || !slices.Equal(kinds(w), []string{KindExpiring60}) {
		t.Errorf("web: %+v", w)
	}
	if !sameSerial(s.Name, soonSerial) || !slices.Equal(kinds(s), []string{KindExpiring7}) {
		t.Errorf("soon: %+v", s)
	}
	if r.Serial != pki.FormatSerial(root.SerialNumber) || len(r.Findings) != 0 {
		t.Errorf("root: %+v", r)
	}

	// Against another root, the leaves are untrusted; with revoked certificates included there are four.
	other := newTestPKI(t, "not vault")
	entries, err = Collect(tctx(t), Options{Roots: other.roots()}, VaultPKISource{Client: c, Mount: "/pki/", IncludeRevoked: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("%d entries with revoked ones", len(entries))
	}
	for _, e := range entries {
		if !slices.Contains(kinds(e), KindUntrustedChain) {
			t.Errorf("%s: %v", e.Subject, e.Findings)
		}
	}

	// An empty PKI mount has no certificates and no error.
	if err := c.Sys().MountWithContext(ctx, "empty-pki", &api.MountInput{Type: "pki"}); err != nil {
		t.Fatal(err)
	}
	if entries, err := Collect(tctx(t), Options{}, VaultPKISource{Client: c, Mount: "empty-pki"}); len(entries) != 0 || err != nil {
		t.Fatalf("empty mount: %d entries, %v", len(entries), err)
	}

	// A mount that does not exist is an error of that source only.
	entries, err = Collect(tctx(t), Options{}, VaultPKISource{Client: c, Mount: "nope"}, src)
	if len(entries) != 3 || err == nil || !strings.Contains(err.Error(), "source vault-pki "+host+"/nope") {
		t.Fatalf("entries %d, error %v", len(entries), err)
	}
}

// sameSerial compares Vault serials written with colons or hyphens.
func sameSerial(a, b string) bool {
	return strings.ReplaceAll(a, "-", ":") == strings.ReplaceAll(b, "-", ":")
}
