package rotate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/file"
)

// throttling refuses the first n writes with the store's throttling error (the store's own retries spent),
// asking for a millisecond's wait; n < 0 refuses every write.
type throttling struct {
	store.Store
	mu        sync.Mutex
	n, tries  int
	throttled int
}

func (s *throttling) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	s.mu.Lock()
	s.tries++
	refuse := s.n < 0 || s.throttled < s.n
	if refuse {
		s.throttled++
	}
	s.mu.Unlock()
	if refuse {
		return store.Metadata{}, &store.Error{Kind: store.ErrThrottled, Store: s.Name(), Op: "put", Name: name, RetryAfter: time.Millisecond}
	}
	return s.Store.Put(ctx, name, v, opts)
}

// TestThrottledStepsWait: a replica whose writes are throttled beyond the store's own retries makes the
// rotation wait and try the step again rather than fail; a replica that stays throttled makes it give up
// after a bounded number of tries and roll back, every store keeping the old value.
func TestThrottledStepsWait(t *testing.T) {
	for _, c := range []struct {
		name      string
		throttled int
		rotated   bool
		tries     int // writes tried in the throttled store
	}{
		{"throttled a while", 5, true, 5 + 2}, // the sibling and the promotion, after five refusals
		{"throttled for good", -1, false, maxThrottledTries},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := fileWorld(t, -1)
			th := &throttling{Store: w.stores["b"], n: c.throttled}
			w.stores["b"] = th
			_, err := w.eng.Rotate(ctx, "db", "app/db")
			w.seen(err)
			if c.rotated != (err == nil) {
				t.Fatalf("Rotate: %v", err)
			}
			if !c.rotated && !errors.Is(err, store.ErrThrottled) {
				t.Errorf("the error does not say the store throttled: %v", err)
			}
			if th.tries != c.tries {
				t.Errorf("%d writes tried in the throttled store, want %d", th.tries, c.tries)
			}
			want := oldValue
			if c.rotated {
				want = w.generated()[0]
			}
			for _, s := range fileWorldNames {
				if got := w.value(s.store, s.name); got != want {
					t.Errorf("%s/%s holds %s", s.store, s.name, redact(got))
				}
				if got := w.value(s.store, s.sibling); got != "<missing>" {
					t.Errorf("%s/%s is left behind", s.store, s.sibling)
				}
			}
			if lease := w.leaseTag("a", "app/db"); lease != "" {
				t.Errorf("lease left: %q", lease)
			}
			w.noLeak(oldValue)
		})
	}
}

// replacing makes Put replace the secret's whole tag set with the tags given, as Secret Manager's labels
// and Vault's custom metadata are replaced on a write.
type replacing struct{ *file.Store }

func (s *replacing) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	md, err := s.Store.Put(ctx, name, v, opts)
	if err != nil || opts.Tags == nil {
		return md, err
	}
	if err := s.Store.UpdateMetadata(ctx, name, opts.Tags, md.Provenance); err != nil {
		return md, err
	}
	return s.Store.Describe(ctx, name)
}

// TestPromotionKeepsTags: promoting a primary whose store replaces the tag set on a write keeps the user's
// tags.
func TestPromotionKeepsTags(t *testing.T) {
	w := newWorld(t)
	prim := fileStore(t, "a")
	w.raw["a"], w.stores["a"] = prim, &replacing{prim}
	w.add(fileStore(t, "b"), nil)
	w.rules = []replicate.Rule{rule("r", "a", replicate.Target{Store: "b"})}
	w.build([]Policy{{Name: "db", Store: "a", Match: []string{"app/*"}, Every: 24 * time.Hour, Generate: randomSpec()}}, -1)
	if _, err := prim.Put(ctx, "app/db", store.Text(oldValue), store.PutOptions{Tags: map[string]string{"owner": "team-a"}}); err != nil {
		t.Fatal(err)
	}
	w.sync("a", "app/db")
	if _, err := w.eng.Rotate(ctx, "db", "app/db"); w.seen(err) != nil {
		t.Fatal(err)
	}
	md := w.describe("a", "app/db")
	if md.Tags["owner"] != "team-a" || md.Tags[TagRotated] == "" || md.Tags[TagRotation] != "" {
		t.Errorf("tags after the rotation: %v", md.Tags)
	}
	if got := w.value("a", "app/db"); got != w.generated()[0] {
		t.Errorf("the primary holds %s", redact(got))
	}
}
