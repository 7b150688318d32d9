package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keyferry/keyferry/core/rotate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/azkv"
	"github.com/keyferry/keyferry/localtest/cloud"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/gcp"
)

// rotationRules rotate secrets whose primary is Key Vault or Secret Manager, each replicated to the three
// other stores.
const rotationRules = `
replicate:
  - name: from-azure
    from: {store: azure, match: ["az-*"]}
    to: [aws, gcp, vault]
  - name: from-gcp
    from: {store: gcp, match: ["gc-*"]}
    to: [aws, azure, vault]
rotate:
  - {name: azure-daily, store: azure, match: ["az-*"], every: 1d, generate: {password: {length: 24}}}
  - {name: gcp-monthly, store: gcp, match: ["gc-*"], every: 30d, generate: {password: {length: 24}}}
`

var allStores = []string{"aws", "azure", "gcp", "vault"}

// startRotation starts the rig with rotationRules. The test process reaches Key Vault as the rig's own
// user-assigned identity: the managed-identity token cache is process-wide and keyed by identity, so a
// system-assigned token from an earlier test's identity provider would be refused by this rig's vault.
func startRotation(ctx context.Context, t *testing.T) *rig {
	t.Helper()
	r := startWith(ctx, t, rotationRules)
	kv, err := azkv.New(azkv.Options{Name: "azure", Client: r.keyVault})
	if err != nil {
		t.Fatal(err)
	}
	r.stores["azure"] = kv
	return r
}

// keyVault is an azsecrets client for the rig's vault, as the rig's identity.
func (r *rig) keyVault(context.Context) (*azsecrets.Client, error) {
	return azkv.ManagedIdentityClient(r.c.KeyVault.URL(), r.c.Issuer.ClientID(), &azkv.ClientOptions{Transport: r.c.KeyVault.HTTPClient()})
}

// seed writes a canary value to the primary (with its last rotation at last) and waits until every store
// holds it and the functions are quiet.
func (r *rig) seed(ctx context.Context, primary, name, val string, last time.Time) {
	r.t.Helper()
	tags := map[string]string{rotate.TagRotated: last.UTC().Format(time.RFC3339)}
	if primary == "gcp" { // labels: lower-case letters, digits, _ and -
		tags[rotate.TagRotated] = strings.ToLower(last.UTC().Format("20060102T150405Z"))
	}
	if _, err := r.stores[primary].Put(ctx, name, store.Text(val), store.PutOptions{Tags: tags}); err != nil {
		r.t.Fatalf("put %s/%s: %v", primary, name, err)
	}
	r.waitValue(ctx, name, val, allStores...)
	r.settle(ctx)
}

// versions counts each store's versions of name.
func (r *rig) versions(ctx context.Context, name string) map[string]int {
	r.t.Helper()
	out := map[string]int{}
	for _, st := range allStores {
		for _, err := range r.stores[st].(store.Versioned).Versions(ctx, name) {
			if err != nil {
				r.t.Fatalf("versions of %s/%s: %v", st, name, err)
			}
			out[st]++
		}
	}
	return out
}

// waitRotated polls (for at most two minutes) until every store holds one value other than old, and the
// primary's lease is gone; it returns that value.
func (r *rig) waitRotated(ctx context.Context, primary, name, old string) string {
	r.t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		v := r.value(ctx, primary, name)
		var differ []string
		for _, st := range allStores {
			switch got := r.value(ctx, st, name); {
			case got == old:
				differ = append(differ, st+": the old value")
			case got != v:
				differ = append(differ, st+": another value")
			}
		}
		md, err := r.stores[primary].Describe(ctx, name)
		if err != nil || md.Tags[rotate.TagRotation] != "" {
			differ = append(differ, fmt.Sprintf("%s: lease %q (%v)", primary, md.Tags[rotate.TagRotation], err))
		}
		if len(differ) == 0 && !strings.HasPrefix(v, "<") {
			return v
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("%s was never rotated everywhere: %s\n%s", name, strings.Join(differ, "; "), r.fn.Logs())
		case <-deadline:
			r.t.Fatalf("%s was not rotated everywhere within two minutes: %s\n%s", name, strings.Join(differ, "; "), r.fn.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkRotated asserts that every store holds the primary's new value as current, no pending sibling or
// lease is left, each store gained exactly one version (no copying back and forth), and neither value
// appears in any log.
func (r *rig) checkRotated(ctx context.Context, primary, name, old string, before map[string]int) string {
	r.t.Helper()
	v := r.waitRotated(ctx, primary, name, old)
	r.settle(ctx)
	for _, st := range allStores {
		if got := r.value(ctx, st, name); got != v {
			r.t.Errorf("%s/%s does not hold the rotated value after the functions went quiet", st, name)
		}
		if got := r.value(ctx, st, name+rotate.PendingSuffix); !strings.Contains(got, "not found") {
			r.t.Errorf("%s: the pending sibling of %s is left behind", st, name)
		}
	}
	md, err := r.stores[primary].Describe(ctx, name)
	if err != nil || md.Tags[rotate.TagRotation] != "" || md.Tags[rotate.TagRotated] == "" {
		r.t.Errorf("%s/%s after rotation: lease %q, rotated %q (%v)", primary, name, md.Tags[rotate.TagRotation], md.Tags[rotate.TagRotated], err)
	}
	after := r.versions(ctx, name)
	extra := false
	for _, st := range allStores {
		if after[st] != before[st]+1 {
			extra = true
			r.t.Errorf("%s/%s has %d versions, %d before the rotation: want exactly one new one", st, name, after[st], before[st])
		}
	}
	if extra {
		for _, l := range strings.Split(r.fn.Logs(), "\n") {
			if strings.Contains(l, name) && (strings.Contains(l, `"msg":"replicated"`) || strings.Contains(l, "rotated")) {
				r.t.Log(l)
			}
		}
	}
	for vi, err := range r.stores["aws"].(store.Versioned).Versions(ctx, name) {
		if err == nil && slices.Contains(vi.Stages, "AWSPENDING") && !slices.Contains(vi.Stages, "AWSCURRENT") {
			r.t.Errorf("aws/%s: AWSPENDING is left on version %s, which is not current", name, vi.Version)
		}
	}
	if logs := r.fn.Logs() + r.c.Logs(); strings.Contains(logs, old) || strings.Contains(logs, v) {
		r.t.Error("a secret value appears in a function's or an emulator's log")
	}
	return v
}

// read is one read of a store during a rotation: the current value or the pending sibling's.
type read struct {
	store      string
	sibling    bool
	start, end time.Time
	value      string // the value, or "<error>" for a failed read and "" for a missing sibling
}

// watcher reads the current value of a secret in every store, and the pending sibling in the stores that
// keep one, round after round, while a rotation runs. The values stay in memory; only verdicts are reported.
type watcher struct {
	mu     sync.Mutex
	rounds [][]read
	stop   chan struct{}
	done   chan struct{}
}

func (r *rig) watch(ctx context.Context, primary, name string) *watcher {
	w := &watcher{stop: make(chan struct{}), done: make(chan struct{})}
	order := []string{primary}
	for _, st := range allStores {
		if st != primary {
			order = append(order, st)
		}
	}
	get := func(st, n string, sibling bool) read {
		rd := read{store: st, sibling: sibling, start: time.Now()}
		sec, err := r.stores[st].Get(ctx, n)
		rd.end = time.Now()
		switch {
		case err == nil:
			rd.value = string(sec.Value.Bytes())
		case sibling && errors.Is(err, store.ErrNotFound):
		default:
			rd.value = "<error>"
		}
		return rd
	}
	go func() {
		defer close(w.done)
		for {
			var round []read
			for _, st := range order {
				round = append(round, get(st, name, false))
			}
			for _, st := range order {
				if st != "aws" { // Secrets Manager keeps the pending value as a staged version
					round = append(round, get(st, name+rotate.PendingSuffix, true))
				}
			}
			w.mu.Lock()
			w.rounds = append(w.rounds, round)
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

// check stops the watcher and asserts what every reader saw: each store's current value was old until it
// became next, and never anything else; with next set, the pending value was seen in some sibling while
// every store still read old as current, and no replica showed next before the primary did.
func (w *watcher) check(t *testing.T, primary, old, next string) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	seenNew := map[string]bool{}
	var primaryOldFrom time.Time // the start of the last read of the primary showing old
	firstNewEnd := map[string]time.Time{}
	pendingWhileOld := false
	for i, round := range w.rounds {
		allOld := true
		sibNew := false
		for _, rd := range round {
			if rd.sibling {
				sibNew = sibNew || (next != "" && rd.value == next)
				continue
			}
			switch {
			case rd.value == old:
				if seenNew[rd.store] {
					t.Errorf("round %d: %s went back to the old value after showing the new one", i, rd.store)
				}
				if rd.store == primary {
					primaryOldFrom = rd.start
				}
			case next != "" && rd.value == next:
				allOld = false
				if !seenNew[rd.store] {
					seenNew[rd.store], firstNewEnd[rd.store] = true, rd.end
				}
			default:
				allOld = false
				t.Errorf("round %d: a reader of %s saw neither the old nor the new value as current (%s)", i, rd.store,
					map[bool]string{true: "a failed read", false: "another value"}[rd.value == "<error>"])
			}
		}
		pendingWhileOld = pendingWhileOld || (allOld && sibNew)
	}
	t.Logf("watched %d rounds of reads", len(w.rounds))
	if next == "" {
		return
	}
	if !pendingWhileOld {
		t.Error("the new value was never seen pending while every store still read the old one: not two-phase")
	}
	for st, end := range firstNewEnd {
		if st != primary && end.Before(primaryOldFrom) {
			t.Errorf("%s showed the new value as current before the primary did", st)
		}
	}
}

// slowVault makes every Vault write take a second, so the phases of a rotation last long enough for the
// watcher to see each.
func (r *rig) slowVault() (restore func()) {
	r.c.VaultFault.SetRules(fault.Rule{API: "vault:kv-write", Latency: time.Second})
	return func() { r.c.VaultFault.SetRules() }
}

// TestAzureRotationThroughTheFunction: a secret whose primary is Key Vault, replicated to AWS, GCP and
// Vault, is rotated by the Azure function's timer once it is due, and another one at once when Key Vault
// announces SecretNearExpiry for it; readers see the old value until promotion, the primary first; each
// store gains one version; no value reaches a log.
func TestAzureRotationThroughTheFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local cloud and builds the functions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r := startRotation(ctx, t)

	// (a) The timer: due (last rotated three days ago under a daily policy).
	old := canary + "-az-timer"
	r.seed(ctx, "azure", "az-timer", old, time.Now().Add(-72*time.Hour))
	r.seed(ctx, "azure", "az-near", canary+"-az-near", time.Now()) // not due
	before := r.versions(ctx, "az-timer")
	restore := r.slowVault()
	w := r.watch(ctx, "azure", "az-timer")
	status, out, err := r.fn.Azure.Timer(ctx, "Reconcile")
	if err != nil || status != 200 || !strings.Contains(fmt.Sprint(out["Logs"]), "; 1 rotated") {
		t.Fatalf("Reconcile timer: %d %v %v\n%s", status, out, err, r.fn.Logs())
	}
	restore()
	next := r.checkRotated(ctx, "azure", "az-timer", old, before)
	w.check(t, "azure", old, next)
	if got := r.value(ctx, "azure", "az-near"); got != canary+"-az-near" {
		t.Error("the timer rotated a secret that was not due")
	}

	// (b) SecretNearExpiry: the current version expires in ten days; Key Vault's expiry job announces it
	// and the Azure function rotates the secret at once, whatever the schedule says.
	kv, err := r.keyVault(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md, err := r.stores["azure"].Describe(ctx, "az-near")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(10 * 24 * time.Hour)
	if _, err := kv.UpdateSecretProperties(ctx, "az-near", md.Version, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil); err != nil {
		t.Fatal(err)
	}
	old = canary + "-az-near"
	before = r.versions(ctx, "az-near")
	if n := r.c.KeyVault.PublishExpiryEvents(time.Now().Add(-30 * 24 * time.Hour)); n != 0 {
		t.Fatalf("%d expiry events 40 days before expiry", n)
	}
	restore = r.slowVault()
	w = r.watch(ctx, "azure", "az-near")
	if n := r.c.KeyVault.PublishExpiryEvents(time.Now()); n != 1 {
		t.Fatalf("%d expiry events published, want 1 (SecretNearExpiry for az-near)", n)
	}
	v := r.waitRotated(ctx, "azure", "az-near", old)
	restore()
	next = r.checkRotated(ctx, "azure", "az-near", old, before)
	w.check(t, "azure", old, next)
	if v != next {
		t.Error("the value changed again after the rotation completed")
	}
	if n := r.c.KeyVault.PublishExpiryEvents(time.Now()); n != 0 {
		t.Errorf("%d expiry events after the rotation: the new version has no expiry", n)
	}
	if d, f := r.fn.Azure.Counts(); f != 0 || d == 0 {
		t.Errorf("Azure deliveries: %d delivered, %d failed", d, f)
	}
}

// TestGCPRotationThroughTheFunction: a secret whose primary is Secret Manager has a rotation schedule;
// when next_rotation_time comes, Secret Manager publishes SECRET_ROTATE to its topic, and the GCP function
// rotates it: the new value lands in AWS, Key Vault and Vault, readers see the old value until promotion,
// each store gains one version, the schedule advances by its period, and no value reaches a log.
func TestGCPRotationThroughTheFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local cloud and builds the functions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r := startRotation(ctx, t)
	old := canary + "-gc"
	r.seed(ctx, "gcp", "gc-db", old, time.Now()) // not due by the policy: only the schedule rotates it

	sm, err := secretmanager.NewClient(ctx, gcp.EndpointOptions(r.c.SecretManager.Addr())...)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	path := "projects/" + cloud.Project + "/secrets/gc-db"
	nextAt := time.Now().Add(10 * time.Minute).Truncate(time.Second) // the service's minimum is 5 minutes ahead
	period := 30 * 24 * time.Hour
	if _, err := sm.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret: &secretmanagerpb.Secret{Name: path, Rotation: &secretmanagerpb.Rotation{
			NextRotationTime: timestamppb.New(nextAt), RotationPeriod: durationpb.New(period)}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rotation"}}}); err != nil {
		t.Fatal(err)
	}
	r.settle(ctx)
	if names, err := r.c.Notifier.PublishRotations(ctx, time.Now()); len(names) != 0 || err != nil {
		t.Fatalf("SECRET_ROTATE before next_rotation_time: %v %v", names, err)
	}
	before := r.versions(ctx, "gc-db")
	restore := r.slowVault()
	w := r.watch(ctx, "gcp", "gc-db")
	names, err := r.c.Notifier.PublishRotations(ctx, nextAt.Add(time.Minute))
	if err != nil || !slices.Equal(names, []string{path}) {
		t.Fatalf("SECRET_ROTATE published for %v (%v), want %s", names, err, path)
	}
	r.waitRotated(ctx, "gcp", "gc-db", old)
	restore()
	next := r.checkRotated(ctx, "gcp", "gc-db", old, before)
	w.check(t, "gcp", old, next)

	s, err := sm.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: path})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.GetRotation().GetNextRotationTime().AsTime(); !got.Equal(nextAt.Add(period)) {
		t.Errorf("next_rotation_time %s, want %s (advanced by the period)", got, nextAt.Add(period))
	}
	if !strings.Contains(r.fn.Logs(), "SECRET_ROTATE") {
		t.Error("the GCP function's log does not show the SECRET_ROTATE it handled")
	}
}

// TestUnfinishedRotationThroughTheFunction: a rotation the Azure function cannot complete leaves every store
// with a working current value, and the next timer completes it. First Vault refuses every write for the
// whole run, so the pending value cannot land everywhere: the rotation rolls back, every reader keeps the
// old value, nothing pending is left. Then Vault refuses only deletes, so the rotation is promoted
// everywhere but cannot clean up: every store holds the new value, and the next timer finishes the
// rotation (rolls it forward) without generating another value.
func TestUnfinishedRotationThroughTheFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local cloud and builds the functions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r := startRotation(ctx, t)
	old := canary + "-az-unfinished"
	r.seed(ctx, "azure", "az-unfinished", old, time.Now().Add(-72*time.Hour))
	timer := func(want string) {
		t.Helper()
		status, out, err := r.fn.Azure.Timer(ctx, "Reconcile")
		if err != nil || !strings.Contains(fmt.Sprint(out["Logs"]), want) {
			t.Fatalf("Reconcile timer: %d %v %v (want %q)\n%s", status, out, err, want, r.fn.Logs())
		}
	}

	// Before promotion: Vault fails every write for the whole run.
	r.c.VaultFault.SetRules(fault.Rule{API: "vault:kv-write", ServerError: 1})
	w := r.watch(ctx, "azure", "az-unfinished")
	timer("; 0 rotated")
	r.c.VaultFault.SetRules()
	r.settle(ctx)
	w.check(t, "azure", old, "")
	for _, st := range allStores {
		if got := r.value(ctx, st, "az-unfinished"); got != old {
			t.Errorf("%s lost its working value after the failed rotation", st)
		}
		if got := r.value(ctx, st, "az-unfinished"+rotate.PendingSuffix); !strings.Contains(got, "not found") {
			t.Errorf("%s: the failed rotation left its pending value behind", st)
		}
	}
	if md, err := r.stores["azure"].Describe(ctx, "az-unfinished"); err != nil || md.Tags[rotate.TagRotation] != "" {
		t.Errorf("the rolled-back rotation kept its lease: %q %v", md.Tags[rotate.TagRotation], err)
	}
	if strings.Contains(r.fn.Logs(), old) {
		t.Error("the failure logged the value")
	}

	// During promotion: Vault cannot delete the pending sibling, so the rotation stops after promoting.
	before := r.versions(ctx, "az-unfinished")
	r.c.VaultFault.SetRules(fault.Rule{API: "vault:kv-metadata-delete", ServerError: 1},
		fault.Rule{API: "vault:kv-write", Latency: time.Second})
	w = r.watch(ctx, "azure", "az-unfinished")
	timer("; 0 rotated")
	r.c.VaultFault.SetRules()
	r.settle(ctx)
	next := r.value(ctx, "azure", "az-unfinished")
	if next == old || strings.HasPrefix(next, "<") {
		t.Fatalf("the primary was not promoted before the cleanup failed\n%s", r.fn.Logs())
	}
	for _, st := range allStores {
		if got := r.value(ctx, st, "az-unfinished"); got != next {
			t.Errorf("%s does not hold the promoted value after the interrupted cleanup", st)
		}
	}
	md, err := r.stores["azure"].Describe(ctx, "az-unfinished")
	if err != nil || !strings.Contains(md.Tags[rotate.TagRotation], rotate.PhasePromoting) {
		t.Fatalf("the interrupted promotion left lease %q (%v), want an expired promoting one", md.Tags[rotate.TagRotation], err)
	}
	// The next timer finishes it: the same value, the siblings gone, the lease released.
	timer("; 1 rotated")
	if got := r.checkRotated(ctx, "azure", "az-unfinished", old, before); got != next {
		t.Error("finishing the interrupted rotation generated another value")
	}
	w.check(t, "azure", old, next)
}
