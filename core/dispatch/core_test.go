package dispatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/event"
	"github.com/keyferry/keyferry/core/rotate"
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

// TestScheduledSweepRotatesWhatIsDue: with a rotate: policy, the timer's sweep also rotates the secrets
// that are due (here: last rotated two days ago, every 1 day), landing the new value in the replica too;
// a rotation step without a policy fails clearly.
func TestScheduledSweepRotatesWhatIsDue(t *testing.T) {
	dir := t.TempDir()
	y := "stores:\n  a: {type: file, path: " + filepath.Join(dir, "a") + "}\n  b: {type: file, path: " + filepath.Join(dir, "b") + "}\n" +
		"replicate:\n  - {name: r, from: a, to: [b]}\n" +
		"rotate:\n  - {name: db, store: a, match: db, every: 1d, generate: {random: {length: 24}}}\n"
	cfg, err := config.Parse("k.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := New(ctx, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := stores.Open(ctx, cfg.Store("a"))
	b, _ := stores.Open(ctx, cfg.Store("b"))
	old := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	if _, err := a.Put(ctx, "db", store.Text("rotation-canary"), store.PutOptions{Tags: map[string]string{rotate.TagRotated: old}}); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Schedule(ctx, event.Schedule{Job: "sweep"})
	if err != nil || !strings.Contains(rep.Summary, "1 rotated") {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	va, _ := a.Get(ctx, "db")
	vb, _ := b.Get(ctx, "db")
	if string(va.Value.Bytes()) == "rotation-canary" || !va.Value.Equal(vb.Value) || va.Value.Len() != 24 {
		t.Fatalf("after the rotation: a=%d bytes, equal to b: %v", va.Value.Len(), va.Value.Equal(vb.Value))
	}
	rep, err = c.Schedule(ctx, event.Schedule{Job: "sweep"})
	if err != nil || !strings.Contains(rep.Summary, "0 rotated") || rep.Written != 0 {
		t.Fatalf("second sweep: %+v, %v", rep, err)
	}
	plain, _ := New(ctx, mustParse(t, "stores:\n  a: {type: file, path: "+filepath.Join(dir, "a")+"}\n"), Options{})
	if err := plain.(interface {
		RotationStep(context.Context, event.RotationStep) error
	}).RotationStep(ctx, event.RotationStep{Step: "createSecret", SecretID: "db"}); err == nil || !strings.Contains(err.Error(), "no rotate: policy") {
		t.Fatalf("rotation step without a policy: %v", err)
	}
}

func mustParse(t *testing.T, y string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("k.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
