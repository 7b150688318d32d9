package certs

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/file"
	"github.com/keyferry/keyferry/core/store/vaultkv"
)

func newFileStore(t *testing.T) store.Store {
	t.Helper()
	st, err := file.New(file.Options{Name: "files", Dir: filepath.Join(t.TempDir(), "store")})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newVaultKV(t *testing.T) store.Store {
	t.Helper()
	srv := devVault(t)
	st, err := vaultkv.New(vaultkv.Options{Name: "vault", Config: vaultkv.ClientConfig{
		Address: srv.Addr, Auth: vaultkv.StaticToken(srv.RootToken), Timeout: time.Minute,
		Retry: vaultkv.Retry{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkStored reads the raw value back and checks it is the bundle JSON with the mark.
func checkStored(t *testing.T, st store.Store, name, spec string) {
	t.Helper()
	sec, err := st.Get(tctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]string
	if err := json.Unmarshal(sec.Value.Bytes(), &doc); err != nil {
		t.Fatal("the stored value is not JSON")
	}
	for _, k := range []string{"certificate", "private_key", "chain", "not_after"} {
		if doc[k] == "" {
			t.Errorf("stored JSON lacks %q", k)
		}
	}
	if !strings.Contains(doc["private_key"], "BEGIN PRIVATE KEY") || strings.Count(doc["certificate"], "BEGIN CERTIFICATE") != 1 ||
		strings.Count(doc["chain"], "BEGIN CERTIFICATE") != 2 {
		t.Error("stored JSON: want a PKCS#8 key, the leaf alone, and intermediate + root as chain")
	}
	if sec.Metadata.Tags[SecretMarkKey] != spec || sec.Metadata.Tags["env"] != "test" {
		t.Errorf("stored tags %v", sec.Metadata.Tags)
	}
	if sec.Metadata.ContentType != "" && sec.Metadata.ContentType != SecretContentType {
		t.Errorf("content type %q", sec.Metadata.ContentType)
	}
}

func TestSecretTargetFileStore(t *testing.T) {
	cs := &countingStore{Store: newFileStore(t)} // hides the file store's compare-and-swap: plain Put path
	tgt := NewSecretTarget(cs)
	r := runSuite(t, tgt, "web-tls", func() int64 { return cs.n.Load() })
	if r.first.ID != "web-tls" || r.renewed.ID != r.first.ID || r.renewed.Version == r.first.Version {
		t.Fatalf("metas: %+v then %+v", r.first, r.renewed)
	}
	checkStored(t, cs, "web-tls", "web-tls")
	foreignSecret(t, tgt, cs)
}

func TestSecretTargetVaultKV(t *testing.T) {
	kv := newVaultKV(t)
	cs := &casStore{countingStore: &countingStore{Store: kv}, cas: kv.(store.CompareAndSwapper)}
	tgt := NewSecretTarget(cs)
	tgt.SecretName = func(n string) string { return "certs/" + n }
	r := runSuite(t, tgt, "api-tls", func() int64 { return cs.n.Load() })
	if r.first.ID != "certs/api-tls" || r.renewed.ID != r.first.ID || r.renewed.Version == r.first.Version {
		t.Fatalf("metas: %+v then %+v", r.first, r.renewed)
	}
	checkStored(t, kv, "certs/api-tls", "api-tls")
	foreignSecret(t, tgt, cs)
}

// foreignSecret: a secret keyferry did not write is left alone: Put refuses, NeedsRenewal says not managed.
func foreignSecret(t *testing.T, tgt *SecretTarget, st store.Store) {
	t.Helper()
	kf, _ := cas(t)
	ctx := tctx(t)
	name := "legacy"
	if _, err := st.Put(ctx, tgt.secretName(name), store.Text("someone's password"), store.PutOptions{Tags: map[string]string{"owner": "ops"}}); err != nil {
		t.Fatal(err)
	}
	cert, meta, err := tgt.Current(ctx, name)
	if err != nil || cert != nil || meta.Managed {
		t.Fatalf("Current of a foreign secret: %v %+v %v", cert, meta, err)
	}
	due, why, err := NeedsRenewal(ctx, tgt, name, 0, time.Now())
	if err != nil || due || why != ReasonNotManaged {
		t.Fatalf("NeedsRenewal of a foreign secret: %v %q %v", due, why, err)
	}
	b := kf.issue(t, time.Hour, "legacy.svc.example.com")
	_, err = tgt.Put(ctx, name, b, nil)
	wantKind(t, "Put over a foreign secret", err, ErrRefused)
	if !strings.Contains(err.Error(), "not keyferry's") || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("refusal: %v", err)
	}
	sec, err := st.Get(ctx, tgt.secretName(name))
	if err != nil || string(sec.Value.Bytes()) != "someone's password" {
		t.Fatalf("the foreign secret changed: %v", err)
	}
	// Adopt takes it over; it is then keyferry's.
	tgt.Adopt = true
	defer func() { tgt.Adopt = false }()
	if _, err := tgt.Put(ctx, name, b, nil); err != nil {
		t.Fatal(err)
	}
	if _, meta, err := tgt.Current(ctx, name); err != nil || !meta.Managed {
		t.Fatalf("after adoption: %+v %v", meta, err)
	}
}

func TestSecretTargetStoreLimits(t *testing.T) {
	kf, _ := cas(t)
	cs := &countingStore{Store: newFileStore(t)}
	tgt := NewSecretTarget(cs)
	b := kf.issue(t, time.Hour, "x.svc.example.com")
	for _, tc := range []struct {
		name string
		tags map[string]string
	}{
		{"bad//name", nil},
		{"ok", map[string]string{"keyferry-source-store": "forged"}},
	} {
		_, err := tgt.Put(tctx(t), tc.name, b, tc.tags)
		wantKind(t, "store limits", err, ErrRefused)
	}
	if cs.n.Load() != 0 {
		t.Fatalf("%d calls for writes the store's limits refuse", cs.n.Load())
	}
}
