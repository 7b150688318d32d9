package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
)

func TestReplicationCommands(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "keyferry.yaml")
	y := "stores:\n  a: {type: file, path: a}\n  b: {type: file, path: b}\nreplicate:\n  - {name: copy, from: a, to: [b]}\n"
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, _ := config.Load(cfgPath)
	a, _ := stores.Open(ctx, cfg.Store("a"))
	for _, n := range []string{"app/one", "app/two"} {
		if _, err := a.Put(ctx, n, store.Text("canary-cli-"+n), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runCLI(t, "plan", "-f", cfgPath)
	if code != 0 || !strings.Contains(out, "a/app/one") || !strings.Contains(out, "plan: 2 create") {
		t.Fatalf("plan: %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "plan", "-f", cfgPath, "--output", "json", "--only", "app/two")
	var p struct {
		Counts map[string]int `json:"counts"`
		Items  []struct {
			Action string                `json:"action"`
			Target struct{ Name string } `json:"target"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil || code != 0 || len(p.Items) != 1 || p.Items[0].Target.Name != "app/two" || p.Counts["create"] != 1 {
		t.Fatalf("plan json: %d %v\n%s", code, err, out)
	}
	if code, out, errs = runCLI(t, "sync", "-f", cfgPath); code != 0 || !strings.Contains(out, "2 create") {
		t.Fatalf("sync: %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ = runCLI(t, "sync", "-f", cfgPath); code != 0 || !strings.Contains(out, "2 sources already replicated") {
		t.Fatalf("second sync: %d\n%s", code, out)
	}
	b, _ := stores.Open(ctx, cfg.Store("b"))
	if _, err := b.Put(ctx, "app/one", store.Text("foreign"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "status", "-f", cfgPath)
	if code != 0 || !strings.Contains(out, "1 in-sync, 1 conflict") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	if strings.Contains(out+errs, "canary-cli") {
		t.Fatal("a value was printed")
	}
	// validate refuses a collision it can see from the configuration alone.
	bad := filepath.Join(dir, "collide.yaml")
	y = "stores:\n  a: {type: file, path: a}\n  b: {type: azure-keyvault, vault: https://kf-prod.vault.azure.net}\nreplicate:\n" +
		"  - {name: one, from: {store: a, match: [db/pass]}, to: [b]}\n  - {name: two, from: {store: a, match: [db-pass]}, to: [b]}\n"
	if err := os.WriteFile(bad, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs = runCLI(t, "validate", "-f", bad); code != 1 || !strings.Contains(errs, "both map to b/db-pass") {
		t.Fatalf("validate collision: %d %q", code, errs)
	}
}
