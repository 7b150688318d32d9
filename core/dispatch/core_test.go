package dispatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/event"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
)

func TestCoreSweepAndEvents(t *testing.T) {
	dir := t.TempDir()
	y := "stores:\n  a: {type: file, path: a}\n  b: {type: file, path: b}\nreplicate:\n  - {name: r, from: a, to: [b]}\n"
	cfgPath := filepath.Join(dir, "keyferry.yaml")
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfigFile, cfgPath)
	ctx := context.Background()
	c, err := FromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(cfgPath)
	a, _ := stores.Open(ctx, cfg.Store("a"))
	if _, err := a.Put(ctx, "k", store.Text("v"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Schedule(ctx, event.Schedule{Job: "sweep"})
	if err != nil || rep.Written != 1 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	rep, err = c.Schedule(ctx, event.Schedule{})
	if err != nil || rep.Written != 0 || !strings.Contains(rep.Summary, "1 skipped") {
		t.Fatalf("second sweep: %+v, %v", rep, err)
	}
	if _, err := c.Schedule(ctx, event.Schedule{Job: "nope"}); err == nil || Retryable(err) {
		t.Fatalf("unknown job: %v", err)
	}
	rep, err = c.Change(ctx, event.Change{Service: event.ServiceKeyVault, Vault: "x", Name: "k", Kind: event.KindWrite})
	if err != nil || !strings.Contains(rep.Summary, "no configured store") {
		t.Fatalf("unmatched change: %+v, %v", rep, err)
	}
}

func TestClassify(t *testing.T) {
	thr := &store.Error{Kind: store.ErrThrottled}
	if !Retryable(classify(thr)) || Retryable(classify(errors.New("bad"))) || classify(nil) != nil {
		t.Fatal("classify")
	}
}
