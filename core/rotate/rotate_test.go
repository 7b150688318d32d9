package rotate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
)

const oldValue = "old-canary-7f3e"

// fileWorld is a primary file store "a" replicated to "b", "c" and "d" (d declares Key Vault's rules, so
// the replica there is "app-db"), with the secret app/db written and replicated.
func fileWorld(t *testing.T, settle time.Duration) *world {
	w := newWorld(t)
	for _, n := range []string{"a", "b", "c"} {
		w.add(fileStore(t, n), nil)
	}
	az := azureLike
	w.add(fileStore(t, "d"), &az)
	w.rules = []replicate.Rule{rule("r", "a", replicate.Target{Store: "b"}, replicate.Target{Store: "c"}, replicate.Target{Store: "d"})}
	w.build([]Policy{{Name: "db", Store: "a", Match: []string{"app/*"}, Every: 24 * time.Hour, Generate: randomSpec(),
		Test: "check", LeaseTTL: 10 * time.Minute}}, settle)
	w.write("a", "app/db", oldValue)
	if n := w.sync("a", "app/db"); n != 3 {
		t.Fatalf("replication wrote %d replicas, want 3", n)
	}
	return w
}

// where the secret and its pending sibling are in each store of fileWorld.
var fileWorldNames = []struct{ store, name, sibling string }{
	{"a", "app/db", "app/db" + PendingSuffix},
	{"b", "app/db", "app/db" + PendingSuffix},
	{"c", "app/db", "app/db" + PendingSuffix},
	{"d", "app-db", "app-db" + PendingSuffix},
}

func TestRotateEverywhere(t *testing.T) {
	w := fileWorld(t, -1)
	hookRan := false
	w.setHook(func(ctx context.Context, name string, v store.Value) error {
		hookRan = true
		// Between pending and promotion: readers of current see the old value everywhere; the pending
		// value is in every sibling; the lease says pending.
		for _, s := range fileWorldNames {
			if got := w.value(s.store, s.name); got != oldValue {
				t.Errorf("%s/%s: readers see %d bytes during the test hook, want the old value", s.store, s.name, len(got))
			}
			if got := w.value(s.store, s.sibling); got != string(v.Bytes()) {
				t.Errorf("%s/%s does not hold the pending value", s.store, s.sibling)
			}
			md := w.describe(s.store, s.sibling)
			if p := md.Provenance; !p.Origin() || p.SourceStore != "a" || p.SourceName != "app/db" || p.SourceVersion == "" {
				t.Errorf("%s/%s provenance %+v does not name the primary and the pending version", s.store, s.sibling, p)
			}
		}
		if l := w.leaseTag("a", "app/db"); !strings.Contains(l, " "+PhasePending+" ") {
			t.Errorf("lease during the test: %q", l)
		}
		return nil
	})
	res, err := w.eng.Rotate(ctx, "db", "app/db")
	if w.seen(err) != nil {
		t.Fatal(err)
	}
	if !hookRan {
		t.Fatal("the test hook did not run")
	}
	gens := w.generated()
	if len(gens) != 1 {
		t.Fatalf("%d values generated, want 1", len(gens))
	}
	for _, s := range fileWorldNames {
		if got := w.value(s.store, s.name); got != gens[0] {
			t.Errorf("%s/%s does not hold the new value", s.store, s.name)
		}
		if got := w.value(s.store, s.sibling); got != "<missing>" {
			t.Errorf("%s/%s is left behind", s.store, s.sibling)
		}
	}
	if !res.Rotated || !res.Generated || res.Recovered != "" || res.Version != "2" || len(res.Replicas) != 3 {
		t.Errorf("result %+v", res)
	}
	// Replicas carry provenance naming the primary's new version: replication has nothing to do.
	for _, r := range res.Replicas {
		p := w.describe(r.Store, r.Name).Provenance
		if !p.Origin() || p.SourceStore != "a" || p.SourceName != "app/db" || p.SourceVersion != res.Version {
			t.Errorf("%s provenance %+v, want origin a/app/db@%s", r, p, res.Version)
		}
	}
	if n := w.sync("a", "app/db"); n != 0 {
		t.Errorf("replication wrote %d times after the rotation, want 0", n)
	}
	for _, s := range fileWorldNames[1:] {
		if n := w.sync(s.store, s.name); n != 0 {
			t.Errorf("replication wrote %d times on %s's event", n, s.store)
		}
	}
	md := w.describe("a", "app/db")
	if _, ok := md.Tags[TagRotation]; ok {
		t.Errorf("the lease is left: %q", md.Tags[TagRotation])
	}
	if got, want := md.Tags[TagRotated], w.clk.Now().UTC().Format(time.RFC3339); got != want {
		t.Errorf("%s = %q, want %q", TagRotated, got, want)
	}
	var rotates int
	for _, r := range w.audit.Records() {
		if r.Action == "rotate" && r.Rule == "db" && r.SourceVersion == res.Version {
			rotates++
		}
	}
	if rotates != 4 {
		t.Errorf("%d rotate audit records, want 4 (the primary and 3 replicas): %+v", rotates, w.audit.Records())
	}
	if items, err := w.eng.Due(ctx); err != nil || len(items) != 0 {
		t.Errorf("Due after the rotation = %+v, %v", items, err)
	}
	w.noLeak(oldValue)
}

// TestCompactState: a primary whose tags are GCP labels keeps the lease and the time in the compact form.
func TestCompactState(t *testing.T) {
	w := newWorld(t)
	g := gcpLike
	w.add(fileStore(t, "g"), &g)
	w.add(fileStore(t, "b"), nil)
	w.rules = []replicate.Rule{rule("r", "g", replicate.Target{Store: "b", Name: "gcp/{{ .Name }}"})}
	w.build([]Policy{{Name: "p", Store: "g", Every: time.Hour, Generate: randomSpec(), Test: "check"}}, -1)
	w.write("g", "db", oldValue)
	w.sync("g", "db")
	var during string
	w.setHook(func(context.Context, string, store.Value) error { during = w.leaseTag("g", "db"); return nil })
	if _, err := w.eng.Rotate(ctx, "p", "db"); err != nil {
		t.Fatal(err)
	}
	if len(during) > 63 || strings.ContainsAny(during, " :|") || !strings.Contains(during, "_"+PhasePending+"_") {
		t.Errorf("lease tag on a label store: %q", during)
	}
	l, err := parseLease(during)
	if err != nil || l.Pending != pendingVersionID(l.Seed) {
		t.Errorf("parseLease(%q) = %+v, %v", during, l, err)
	}
	rot := w.describe("g", "db").Tags[TagRotated]
	if at, err := parseTime(rot); err != nil || !at.Equal(w.clk.Now().Truncate(time.Second)) {
		t.Errorf("%s = %q (%v, %v)", TagRotated, rot, at, err)
	}
	gens := w.generated()
	if w.value("g", "db") != gens[0] || w.value("b", "gcp/db") != gens[0] {
		t.Error("the new value is not everywhere")
	}
}

func TestLeaseEncoding(t *testing.T) {
	exp := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	fresh := freshLease("00112233445566aa", exp)
	taken := &lease{ID: "ffeeddccbbaa9988", Expiry: exp, Phase: PhasePromoting, Pending: fresh.Pending, Seed: fresh.Seed}
	aws := &lease{ID: "3f1b2c4d-1111-4222-8333-444455556666", Expiry: exp, Phase: PhasePending, Pending: "3f1b2c4d-1111-4222-8333-444455556666"}
	plain := store.Limits{MaxTags: -1}
	g := gcpLike
	for _, c := range []struct {
		name    string
		l       *lease
		lim     store.Limits
		want    string
		wantErr bool
	}{
		{"canonical", fresh, plain, "00112233445566aa 2026-05-06T07:08:09Z pending " + fresh.Pending, false},
		{"taken over", taken, plain, "ffeeddccbbaa9988 2026-05-06T07:08:09Z promoting " + fresh.Pending, false},
		{"compact", fresh, g, "00112233445566aa_20260506t070809z_pending_00112233445566aa", false},
		{"compact taken over", taken, g, "ffeeddccbbaa9988_20260506t070809z_promoting_00112233445566aa", false},
		{"token on a label store", aws, g, "", true},
		{"no tags", fresh, store.Limits{}, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.l.encode(c.lim)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("encode = %q, %v; want %q", got, err, c.want)
			}
			if err != nil {
				return
			}
			back, err := parseLease(got)
			if err != nil || back.ID != c.l.ID || !back.Expiry.Equal(c.l.Expiry) || back.Phase != c.l.Phase || back.Pending != c.l.Pending {
				t.Errorf("parseLease(%q) = %+v, %v", got, back, err)
			}
		})
	}
	for _, bad := range []string{"", "x", "a b c", "a 2026 pending p", "a 2026-05-06T07:08:09Z sleeping p", "a_b_c", "a_x_pending_s"} {
		if _, err := parseLease(bad); err == nil {
			t.Errorf("parseLease(%q) accepted", bad)
		}
	}
	if len(pendingVersionID("x")) != 36 || pendingVersionID("x") != pendingVersionID("x") || pendingVersionID("x") == pendingVersionID("y") {
		t.Error("pendingVersionID is not a deterministic 36-character id")
	}
}

// A step of a rotation, and how to break it in fileWorld.
type crashPoint struct {
	name      string
	when      func(call) bool
	committed bool // failing here (the call having landed, for after) leaves the rotation committed to promotion
	anyAfter  bool // after makes a difference (a write)
}

func leasePhase(c call, phase string) bool {
	v, ok := c.tags[TagRotation]
	return c.op == "update-metadata" && ok && strings.Contains(v, " "+phase+" ")
}

func is(storeName, op, name string) func(call) bool {
	return func(c call) bool { return c.store == storeName && c.op == op && c.name == name }
}

var fileCrashPoints = []crashPoint{
	{"acquire", func(c call) bool { return c.store == "a" && leasePhase(c, PhasePending) }, false, true},
	{"generate", func(c call) bool { return c.op == "generate" }, false, false},
	{"pending-a", is("a", "put", "app/db"+PendingSuffix), false, true},
	{"pending-b", is("b", "put", "app/db"+PendingSuffix), false, true},
	{"pending-d", is("d", "put", "app-db"+PendingSuffix), false, true},
	{"test", func(c call) bool { return c.op == "hook" }, false, false},
	{"promoting", func(c call) bool { return c.store == "a" && leasePhase(c, PhasePromoting) }, false, true},
	{"promote-a", is("a", "put", "app/db"), true, true},
	{"promote-b", is("b", "put", "app/db"), true, true},
	{"promote-d", is("d", "put", "app-db"), true, true},
	{"cleanup-d", is("d", "delete", "app-db"+PendingSuffix), true, true},
	{"cleanup-a", is("a", "delete", "app/db"+PendingSuffix), true, true},
	{"release", func(c call) bool {
		_, held := c.tags[TagRotation]
		return c.store == "a" && c.op == "update-metadata" && c.name == "app/db" && !held
	}, true, true},
}

// TestInterrupted breaks a rotation at each step — a failed call the run survives, or a crash (every call
// fails from there on), before or after the call did its work — then lets the next timer run recover.
func TestInterrupted(t *testing.T) {
	for _, cp := range fileCrashPoints {
		for _, crash := range []bool{false, true} {
			for _, after := range []bool{false, true} {
				if after && !cp.anyAfter {
					continue
				}
				mode := map[bool]string{false: "fail", true: "crash"}[crash]
				if after {
					mode += "-after"
				}
				t.Run(cp.name+"/"+mode, func(t *testing.T) {
					t.Parallel()
					w := fileWorld(t, -1)
					interrupt(t, w, cp, crash, after, fileWorldNames)
				})
			}
		}
	}
}

type named = []struct{ store, name, sibling string }

func interrupt(t *testing.T, w *world, cp crashPoint, crash, after bool, names named) {
	t.Helper()
	prim := names[0]
	versions := map[string]int{}
	original := map[string]string{}
	for _, s := range names {
		versions[s.store] = w.versions(s.store, s.name)
		original[s.store] = w.describe(s.store, s.name).Version
	}
	committed := cp.committed || cp.name == "promoting" && after
	f := &fault{when: cp.when, crash: crash, after: after}
	w.c.arm(f)

	_, err := w.eng.Rotate(ctx, "db", prim.name)
	w.seen(err)
	if !f.fired {
		t.Fatal("the fault never fired: the crash point matches no call")
	}
	completed := !crash && cp.name == "promoting" && after // the run saw the phase landed and went on
	if completed != (err == nil) {
		t.Fatalf("first run: err = %v", err)
	}
	// Every store has a working current value, and the old one everywhere unless promotion started.
	gens := w.generated()
	for _, s := range names {
		got := w.value(s.store, s.name)
		if got != oldValue && (!committed || len(gens) == 0 || got != gens[0]) {
			t.Errorf("after the interruption %s/%s holds %q", s.store, s.name, redact(got))
		}
	}
	lease := w.leaseTag(prim.store, prim.name)
	switch {
	case !crash && !committed:
		if lease != "" {
			t.Errorf("a failure before promotion must release the lease: %q", lease)
		}
		for _, s := range names {
			if got := w.value(s.store, s.sibling); got != "<missing>" {
				t.Errorf("a failure before promotion must discard the pending value: %s/%s is there", s.store, s.sibling)
			}
		}
	case !crash && lease != "":
		if l, err := parseLease(lease); err != nil || l.live(w.clk.Now()) || l.Phase != PhasePromoting {
			t.Errorf("a failure after promotion started must leave an expired promoting lease: %q", lease)
		}
	case crash:
		w.c.revive()
		if lease != "" {
			// The crashed run's lease is live: the next run is refused until it expires.
			_, err := w.eng.Rotate(ctx, "db", prim.name)
			if w.seen(err); !errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), "a previous rotation isn't complete (lease held until ") {
				t.Fatalf("Rotate with a live lease: %v", err)
			}
			if items, _ := w.eng.Due(ctx); len(items) != 0 {
				t.Errorf("a secret with a live lease is listed due: %+v", items)
			}
			w.clk.advance(11 * time.Minute)
		}
	}
	w.c.revive()
	before := len(w.generated())

	// The next timer run.
	results, err := w.eng.RotateDue(ctx)
	if w.seen(err) != nil {
		t.Fatalf("recovery: %v", err)
	}
	gens = w.generated()
	if committed {
		if len(gens) != 1 {
			t.Errorf("%d values generated for one rotation, want 1", len(gens))
		}
		if lease != "" && (len(results) != 1 || results[0].Recovered != RolledForward || results[0].Generated) {
			t.Errorf("recovery results %+v, want one rolled forward", results)
		}
	} else {
		if len(gens) != before+1 {
			t.Errorf("the recovery generated %d values, want 1", len(gens)-before)
		}
		if crash && lease != "" && (len(results) != 1 || results[0].Recovered != RolledBack) {
			t.Errorf("recovery results %+v, want one rolled back", results)
		}
	}
	want := gens[len(gens)-1]
	for _, s := range names {
		if got := w.value(s.store, s.name); got != want {
			t.Errorf("after recovery %s/%s holds %q, want the last generated value", s.store, s.name, redact(got))
		}
		if got := w.value(s.store, s.sibling); got != "<missing>" {
			t.Errorf("after recovery %s/%s is left behind", s.store, s.sibling)
		}
		// One promotion per store: no double rotation.
		if stagedStore(w, s.store) {
			if prev := stageHolder(t, w, s.store, s.name, "AWSPREVIOUS"); prev != original[s.store] {
				t.Errorf("%s/%s: AWSPREVIOUS is on %s, want the version before the rotation, %s", s.store, s.name, prev, original[s.store])
			}
			if p, c := stageHolder(t, w, s.store, s.name, "AWSPENDING"), stageHolder(t, w, s.store, s.name, "AWSCURRENT"); p != c {
				t.Errorf("%s/%s: AWSPENDING on %s, not on the current version %s: a rotation looks in progress", s.store, s.name, p, c)
			}
		} else if n := w.versions(s.store, s.name); n != versions[s.store]+1 {
			t.Errorf("%s/%s has %d versions, want %d", s.store, s.name, n, versions[s.store]+1)
		}
	}
	md := w.describe(prim.store, prim.name)
	if md.Tags[TagRotation] != "" || md.Tags[TagRotated] == "" {
		t.Errorf("after recovery: lease %q, rotated %q", md.Tags[TagRotation], md.Tags[TagRotated])
	}
	if items, err := w.eng.Due(ctx); err != nil || len(items) != 0 {
		t.Errorf("Due after recovery = %+v, %v", items, err)
	}
	if n := w.sync(prim.store, prim.name); n != 0 {
		t.Errorf("replication wrote %d times after recovery", n)
	}
	w.noLeak(oldValue)
}

func stagedStore(w *world, name string) bool { _, ok := w.raw[name].(store.Staged); return ok }

// stageHolder is the version holding stage ("" when none does).
func stageHolder(t *testing.T, w *world, storeName, name, stage string) string {
	t.Helper()
	for vi, err := range w.raw[storeName].(store.Versioned).Versions(ctx, name) {
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(vi.Stages, stage) {
			return vi.Version
		}
	}
	return ""
}

// redact shows a test value without its bytes.
func redact(v string) string {
	if strings.HasPrefix(v, "<") {
		return v
	}
	return fmt.Sprintf("[%d bytes]", len(v))
}

func TestConcurrentRotate(t *testing.T) {
	w := fileWorld(t, 50*time.Millisecond)
	loserDone := make(chan struct{})
	w.setHook(func(context.Context, string, store.Value) error {
		select {
		case <-loserDone:
		case <-time.After(10 * time.Second):
			t.Error("the losing run never returned")
		}
		return nil
	})
	type out struct {
		res Result
		err error
	}
	results := make(chan out, 2)
	var start sync.WaitGroup
	start.Add(1)
	for range 2 {
		go func() {
			start.Wait()
			res, err := w.eng.Rotate(ctx, "db", "app/db")
			results <- out{res, err}
		}()
	}
	start.Done()
	first := <-results
	if !errors.Is(first.err, ErrLeaseHeld) || !strings.Contains(first.err.Error(), "a previous rotation isn't complete (lease held until ") {
		t.Fatalf("the first run to return: %+v; want the lease error", first)
	}
	w.seen(first.err)
	// While the winner tests its pending value, a third run is refused at once.
	if _, err := w.eng.Rotate(ctx, "db", "app/db"); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("a third run: %v", err)
	}
	close(loserDone)
	second := <-results
	if w.seen(second.err) != nil || !second.res.Rotated {
		t.Fatalf("the winner: %+v", second)
	}
	gens := w.generated()
	if len(gens) != 1 {
		t.Fatalf("%d values generated, want 1", len(gens))
	}
	for _, s := range fileWorldNames {
		if w.value(s.store, s.name) != gens[0] {
			t.Errorf("%s/%s does not hold the new value", s.store, s.name)
		}
	}
	w.noLeak(oldValue)
}

// TestRollbackOnTestFailure: a failing test hook discards the pending value everywhere and keeps
// current untouched; its error never carries the value.
func TestRollbackOnTestFailure(t *testing.T) {
	w := fileWorld(t, -1)
	w.setHook(func(_ context.Context, _ string, v store.Value) error {
		return fmt.Errorf("login refused for password %s", v.Bytes())
	})
	_, err := w.eng.Rotate(ctx, "db", "app/db")
	if w.seen(err) == nil || !strings.Contains(err.Error(), "login refused for password [redacted]") || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("Rotate: %v", err)
	}
	for _, s := range fileWorldNames {
		if w.value(s.store, s.name) != oldValue || w.value(s.store, s.sibling) != "<missing>" {
			t.Errorf("%s: the rollback left the store changed", s.store)
		}
	}
	if l := w.leaseTag("a", "app/db"); l != "" {
		t.Errorf("lease left: %q", l)
	}
	rollbacks := 0
	for _, r := range w.audit.Records() {
		if r.Action == "rotate-rollback" {
			rollbacks++
		}
	}
	if rollbacks != 1 {
		t.Errorf("%d rollback audit records, want 1", rollbacks)
	}
	w.noLeak(oldValue)
}

// TestChain: a replica's own replicas (a→b→c) are rotated too, with the primary as their origin.
func TestChain(t *testing.T) {
	w := newWorld(t)
	for _, n := range []string{"a", "b", "c"} {
		w.add(fileStore(t, n), nil)
	}
	w.rules = []replicate.Rule{rule("ab", "a", replicate.Target{Store: "b"}), rule("bc", "b", replicate.Target{Store: "c", Name: "copy/{{ .Name }}"}),
		rule("ba", "b", replicate.Target{Store: "a"})}
	w.build([]Policy{{Name: "db", Store: "a", Every: time.Hour, Generate: randomSpec()}}, -1)
	w.write("a", "k", oldValue)
	w.sync("a", "k")
	w.sync("b", "k")
	if w.value("c", "copy/k") != oldValue {
		t.Fatal("setup: the chain did not replicate")
	}
	res, err := w.eng.Rotate(ctx, "db", "k")
	if err != nil {
		t.Fatal(err)
	}
	gens := w.generated()
	if len(res.Replicas) != 2 || w.value("b", "k") != gens[0] || w.value("c", "copy/k") != gens[0] {
		t.Fatalf("chain not rotated: %+v", res)
	}
	for _, ref := range []replicate.Ref{{Store: "a", Name: "k"}, {Store: "b", Name: "k"}, {Store: "c", Name: "copy/k"}} {
		if n := w.sync(ref.Store, ref.Name); n != 0 {
			t.Errorf("replication wrote %d times on %s's event", n, ref)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	w := newWorld(t)
	w.add(fileStore(t, "a"), nil)
	noTags := store.Limits{NameMinLen: 1, NameMaxLen: 100, MaxValueBytes: 100}
	w.add(fileStore(t, "n"), &noTags)
	ok := Policy{Name: "p", Store: "a", Every: time.Hour, Generate: randomSpec()}
	for _, c := range []struct {
		name string
		edit func(p *Policy)
		want string
	}{
		{"unknown store", func(p *Policy) { p.Store = "x" }, `store "x" is not configured`},
		{"no schedule", func(p *Policy) { p.Every = 0 }, "no schedule"},
		{"both schedules", func(p *Policy) { p.Cron = "0 3 * * *" }, "not both"},
		{"bad cron", func(p *Policy) { p.Every, p.Cron = 0, "61 * * * *" }, "cron"},
		{"bad spec", func(p *Policy) { p.Generate.Random.Length = 0 }, "generate"},
		{"unknown hook", func(p *Policy) { p.Test = "nope" }, `test hook "nope" is not registered`},
		{"bad glob", func(p *Policy) { p.Match = []string{"[a"} }, "match"},
		{"store without tags", func(p *Policy) { p.Store = "n" }, "cannot hold the rotation lease"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := ok
			r := *ok.Generate.Random
			p.Generate.Random = &r
			c.edit(&p)
			_, err := New([]Policy{p}, w.stores, nil, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want %q", err, c.want)
			}
		})
	}
	if _, err := New([]Policy{ok, ok}, w.stores, nil, Options{}); err == nil || !strings.Contains(err.Error(), "same name") {
		t.Errorf("duplicate names: %v", err)
	}
	if _, err := New([]Policy{ok}, w.stores, nil, Options{}); err != nil {
		t.Errorf("a good policy: %v", err)
	}
}

func TestRotateRefuses(t *testing.T) {
	w := fileWorld(t, -1)
	for _, c := range []struct{ policy, name, want string }{
		{"nope", "app/db", "not configured"},
		{"db", "other/db", "does not select"},
		{"db", "app/db" + PendingSuffix, "does not select"},
		{"db", "app/missing", "not found"},
	} {
		if _, err := w.eng.Rotate(ctx, c.policy, c.name); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Rotate(%s, %s) = %v, want %q", c.policy, c.name, err, c.want)
		}
	}
	if len(w.generated()) != 0 {
		t.Error("a refused rotation generated a value")
	}
}

// TestSlowRunLosesLease: a run that outlives its lease (a slow test hook) is taken over by the next run,
// which rolls back and rotates afresh; the slow run then stops without touching anything.
func TestSlowRunLosesLease(t *testing.T) {
	w := fileWorld(t, -1)
	var second Result
	var secondErr error
	calls := 0
	w.setHook(func(ctx context.Context, _ string, _ store.Value) error {
		calls++
		if calls == 1 {
			w.clk.advance(11 * time.Minute) // the lease (10 minutes) expires while this hook runs
			second, secondErr = w.eng.Rotate(ctx, "db", "app/db")
		}
		return nil
	})
	_, err := w.eng.Rotate(ctx, "db", "app/db")
	if w.seen(err) == nil || !errors.Is(err, errLeaseLost) {
		t.Fatalf("the slow run: %v", err)
	}
	if w.seen(secondErr) != nil || second.Recovered != RolledBack || !second.Rotated {
		t.Fatalf("the run that took over: %+v, %v", second, secondErr)
	}
	gens := w.generated()
	for _, s := range fileWorldNames {
		if got := w.value(s.store, s.name); got != gens[1] {
			t.Errorf("%s/%s holds %s, want the second run's value", s.store, s.name, redact(got))
		}
		if got := w.value(s.store, s.sibling); got != "<missing>" {
			t.Errorf("%s/%s is left behind", s.store, s.sibling)
		}
	}
	if l := w.leaseTag("a", "app/db"); l != "" {
		t.Errorf("lease left: %q", l)
	}
	w.noLeak(oldValue)
}

// TestRotateRequested: a cloud's rotation request rotates once; the same request delivered again (or any
// request made before that rotation) changes nothing; a later request rotates again.
func TestRotateRequested(t *testing.T) {
	w := fileWorld(t, -1)
	requested := w.clk.Now()
	w.clk.advance(time.Minute)
	res, err := w.eng.RotateRequested(ctx, "db", "app/db", requested)
	if w.seen(err) != nil || !res.Rotated {
		t.Fatalf("first delivery: %+v %v", res, err)
	}
	before := w.versions("a", "app/db")
	w.clk.advance(time.Minute)
	res, err = w.eng.RotateRequested(ctx, "db", "app/db", requested)
	if w.seen(err) != nil || res.Rotated || res.Skipped == "" || w.versions("a", "app/db") != before {
		t.Fatalf("redelivery: %+v %v, versions %d → %d", res, err, before, w.versions("a", "app/db"))
	}
	w.clk.advance(time.Minute)
	res, err = w.eng.RotateRequested(ctx, "db", "app/db", w.clk.Now())
	if w.seen(err) != nil || !res.Rotated {
		t.Fatalf("a later request: %+v %v", res, err)
	}
}

// creatorStore is a file store that can also create a secret with its first value (store.Creator), as
// Secret Manager does in fewer calls than Put; it counts its creates.
type creatorStore struct {
	store.Store
	creates int
}

func (c *creatorStore) Create(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	c.creates++
	if _, err := c.Store.Describe(ctx, name); err == nil {
		return store.Metadata{}, &store.Error{Kind: store.ErrAlreadyExists, Store: c.Name(), Name: name}
	}
	return c.Store.Put(ctx, name, v, opts)
}

// TestPendingSiblingCreated: a replica store that can create writes a new pending sibling with Create,
// not Put, and the rotation still lands everywhere.
func TestPendingSiblingCreated(t *testing.T) {
	w := newWorld(t)
	w.add(fileStore(t, "a"), nil)
	cr := &creatorStore{Store: fileStore(t, "b")}
	w.add(cr, nil)
	w.rules = []replicate.Rule{rule("r", "a", replicate.Target{Store: "b"})}
	w.build([]Policy{{Name: "db", Store: "a", Match: []string{"app/*"}, Every: 24 * time.Hour, Generate: randomSpec(),
		LeaseTTL: 10 * time.Minute}}, -1)
	w.write("a", "app/db", oldValue)
	if n := w.sync("a", "app/db"); n != 1 {
		t.Fatalf("replication wrote %d replicas, want 1", n)
	}
	creates := cr.creates
	res, err := w.eng.Rotate(ctx, "db", "app/db")
	if w.seen(err) != nil || !res.Rotated {
		t.Fatalf("rotate: %+v %v", res, err)
	}
	if cr.creates-creates != 1 {
		t.Errorf("%d creates for the pending sibling, want 1", cr.creates-creates)
	}
	if got, want := w.value("b", "app/db"), w.value("a", "app/db"); got != want || got == oldValue {
		t.Errorf("the replica does not hold the new value")
	}
}
