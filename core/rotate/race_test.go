package rotate

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/awssm"
	"github.com/keyferry/keyferry/core/store/file"
)

// race runs a replication of the primary once, when the rotation next looks at one replica (armed from the
// test hook, so that look is promotion's): fresh, the replication lands before the look; stale, between
// the look and the rotation's write (the look returns what the replica held before it).
type race struct {
	mu    sync.Mutex
	name  string // the replica's secret the race waits for
	armed bool
	stale bool
	run   func()
}

func (r *race) arm() { r.mu.Lock(); r.armed = true; r.mu.Unlock() }

func (r *race) describe(ctx context.Context, name string, d func(context.Context, string) (store.Metadata, error)) (store.Metadata, error) {
	r.mu.Lock()
	fire := r.armed && name == r.name
	if fire {
		r.armed = false
	}
	r.mu.Unlock()
	if !fire {
		return d(ctx, name)
	}
	md, err := d(ctx, name)
	r.run()
	if r.stale {
		return md, err
	}
	return d(ctx, name)
}

// racingFile and racingAWS are the replica stores with the race in their Describe (and every other
// capability of the store kept: compare-and-swap, stages, versions).
type racingFile struct {
	*file.Store
	r *race
}

func (s *racingFile) Describe(ctx context.Context, name string) (store.Metadata, error) {
	return s.r.describe(ctx, name, s.Store.Describe)
}

type racingAWS struct {
	*awssm.Store
	r *race
}

func (s *racingAWS) Describe(ctx context.Context, name string) (store.Metadata, error) {
	return s.r.describe(ctx, name, s.Store.Describe)
}

// TestPromotionRacingReplication: the primary's promotion sets off a replication run (its change event)
// that races the rotation's promotion of the replicas. Either way every replica ends with the new value as
// one new version of its own, the Secrets Manager replica keeps no AWSPENDING on a version that is not
// current, and a replication afterwards writes nothing.
func TestPromotionRacingReplication(t *testing.T) {
	for _, c := range []struct {
		name    string
		replica string // where the race strikes
		stale   bool
	}{
		{"replication lands first in Secrets Manager", "aws2", false},
		{"replication lands between look and write (compare-and-swap)", "b", true},
		{"replication lands first in the file store", "b", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			w.add(awsStore(t, "aws"), nil)
			w.add(awsStore(t, "aws2"), nil)
			w.add(fileStore(t, "b"), nil)
			prefix := fmt.Sprintf("kf%d-%d", time.Now().UnixNano(), motoSeq.Add(1))
			name := prefix + "/app/db"
			rc := &race{name: name, stale: c.stale}
			if c.replica == "aws2" {
				rc.name = "replica/" + name
				w.stores["aws2"] = &racingAWS{Store: w.raw["aws2"].(*awssm.Store), r: rc}
			} else {
				w.stores["b"] = &racingFile{Store: w.raw["b"].(*file.Store), r: rc}
			}
			w.rules = []replicate.Rule{{Name: "r", From: replicate.Source{Store: "aws", Match: []string{prefix + "/**"}},
				To: []replicate.Target{{Store: "aws2", Name: "replica/{{ .Name }}"}, {Store: "b"}}}}
			w.build([]Policy{{Name: "db", Store: "aws", Match: []string{prefix + "/app/*"}, Every: 24 * time.Hour,
				Generate: randomSpec(), Test: "check"}}, -1)
			w.write("aws", name, oldValue)
			if n := w.sync("aws", name); n != 2 {
				t.Fatalf("replication wrote %d replicas, want 2", n)
			}
			// Secrets Manager's times have whole seconds: let the new version be a second younger than
			// the old, as it would be, so that replication sees it as the newer value.
			time.Sleep(1100 * time.Millisecond)
			racer, err := replicate.New(w.rules, w.raw, replicate.Options{Now: w.clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			raced := 0
			rc.run = func() {
				res, err := racer.Sync(ctx, "aws", name)
				if err != nil {
					t.Errorf("the racing replication: %v", err)
					return
				}
				raced = res.Counts[replicate.ActCreate] + res.Counts[replicate.ActUpdate]
			}
			w.setHook(func(context.Context, string, store.Value) error { rc.arm(); return nil })
			before := map[string]int{"aws2": w.versions("aws2", "replica/"+name), "b": w.versions("b", name)}

			if _, err := w.eng.Rotate(ctx, "db", name); w.seen(err) != nil {
				t.Fatal(err)
			}
			if raced == 0 {
				t.Fatal("the racing replication wrote nothing: the race never happened")
			}
			gens := w.generated()
			for st, n := range map[string]string{"aws": name, "aws2": "replica/" + name, "b": name} {
				if got := w.value(st, n); len(gens) != 1 || got != gens[0] {
					t.Errorf("%s/%s holds %s, want the new value", st, n, redact(got))
				}
			}
			// Secrets Manager keeps the pending version beside the replication's copy; the file store
			// gains exactly one version.
			if got := w.versions("b", name); got != before["b"]+1 {
				t.Errorf("b/%s has %d versions, %d before: the promotion wrote a second one", name, got, before["b"])
			}
			if p, cur := stageHolder(t, w, "aws2", "replica/"+name, "AWSPENDING"), stageHolder(t, w, "aws2", "replica/"+name, "AWSCURRENT"); p != "" && p != cur {
				t.Errorf("aws2: AWSPENDING left on %s, which is not current (%s)", p, cur)
			}
			if n := w.sync("aws", name); n != 0 {
				t.Errorf("replication wrote %d times after the rotation", n)
			}
			w.noLeak(oldValue)
		})
	}
}
