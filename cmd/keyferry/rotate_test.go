package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/rotate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
)

func TestRotateCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "keyferry.yaml")
	y := "stores:\n  a: {type: file, path: a}\n  b: {type: file, path: b}\nreplicate:\n  - {name: copy, from: a, to: [b]}\n" +
		"rotate:\n  - {name: db, store: a, match: \"db/*\", every: 1d, generate: {password: {length: 24}}}\n"
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, _ := config.Load(cfgPath)
	a, _ := stores.Open(ctx, cfg.Store("a"))
	b, _ := stores.Open(ctx, cfg.Store("b"))
	old := time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)
	if _, err := a.Put(ctx, "db/old", store.Text("canary-rotate-old"), store.PutOptions{Tags: map[string]string{rotate.TagRotated: old}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "db/fresh", store.Text("canary-rotate-fresh"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "validate", "-f", cfgPath, "--live")
	if code != 0 || !strings.Contains(out, "older than policy db: a/db/old") || strings.Contains(out, "db/fresh") {
		t.Fatalf("validate --live: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "rotate", "-f", cfgPath, "--dry-run")
	if code != 0 || !strings.Contains(out, "a/db/old") || !strings.Contains(out, "1 due; nothing changed") {
		t.Fatalf("rotate --dry-run: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "rotate", "-f", cfgPath, "--dry-run", "db/fresh")
	if code != 0 || !strings.Contains(out, "would rotate a/db/fresh under policy db") || !strings.Contains(out, "replica b/db/fresh") {
		t.Fatalf("rotate --dry-run NAME: %d\n%s\n%s", code, out, errs)
	}
	if sec, _ := a.Get(ctx, "db/old"); string(sec.Value.Bytes()) != "canary-rotate-old" {
		t.Fatal("a dry run changed a value")
	}
	code, out, errs = runCLI(t, "rotate", "-f", cfgPath)
	if code != 0 || !strings.Contains(out, "a/db/old") || strings.Contains(out, "db/fresh") {
		t.Fatalf("rotate: %d\n%s\n%s", code, out, errs)
	}
	na, _ := a.Get(ctx, "db/old")
	nb, _ := b.Get(ctx, "db/old")
	if string(na.Value.Bytes()) == "canary-rotate-old" || !na.Value.Equal(nb.Value) || na.Value.Len() != 24 {
		t.Fatal("db/old was not rotated into both stores")
	}
	code, _, errs = runCLI(t, "rotate", "-f", cfgPath, "nothing/here")
	if code != 1 || !strings.Contains(errs, "no rotate: policy matches") {
		t.Fatalf("unknown name: %d %s", code, errs)
	}
	if strings.Contains(out+errs, "canary") {
		t.Fatal("a value was printed")
	}
}
