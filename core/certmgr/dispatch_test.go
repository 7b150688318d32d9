package certmgr_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/event"
)

// TestDispatchRenewJob: the functions' scheduled "renew" job renews through the lazily built manager.
func TestDispatchRenewJob(t *testing.T) {
	ctx := tctx(t)
	dir := t.TempDir()
	ca := newCA(t, dir)
	cfg, sts := loadConfig(t, dir, fmt.Sprintf("stores:\n  local: {type: file, path: secrets}\ncertificates:\n%s  specs:\n    - {name: api, dns: [api.svc.example.com], targets: [local]}\n", ca.issuerYAML()))
	al := &alerts{}
	core, err := dispatch.New(ctx, cfg, dispatch.Options{Stores: sts, Notifier: al})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := core.Schedule(ctx, event.Schedule{Job: "renew"})
	if err != nil || rep.Written != 1 || !strings.Contains(rep.Summary, "api renewed") {
		t.Fatalf("first renew job: %+v %v", rep, err)
	}
	if _, _, leaf := bundleIn(t, sts["local"], "api"); leaf.DNSNames[0] != "api.svc.example.com" {
		t.Fatal("the job did not write the certificate")
	}
	rep, err = core.Schedule(ctx, event.Schedule{Job: "renew"})
	if err != nil || rep.Written != 0 || rep.Unchanged != 1 {
		t.Fatalf("second renew job: %+v %v", rep, err)
	}
	// A configuration without certificates acknowledges the job.
	cfg2, sts2 := loadConfig(t, t.TempDir(), "stores:\n  local: {type: file, path: secrets}\n")
	core2, err := dispatch.New(ctx, cfg2, dispatch.Options{Stores: sts2, Notifier: al})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := core2.Schedule(ctx, event.Schedule{Job: "renew"}); err != nil || !strings.Contains(rep.Summary, "no certificates") {
		t.Fatalf("renew without certificates: %+v %v", rep, err)
	}
	if _, err := core2.Schedule(ctx, event.Schedule{Job: "nope"}); err == nil || !strings.Contains(err.Error(), "renew") {
		t.Fatalf("unknown job: %v", err)
	}
}
