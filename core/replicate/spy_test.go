package replicate

import (
	"context"
	"iter"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/file"
)

// spy wraps a real file store: it counts operations, can override the declared limits (to stand in for a
// narrower store such as Key Vault), can inject throttling and unavailability, and records the writes it
// passes on as change events.
type spy struct {
	store.Store
	limits *store.Limits

	mu      sync.Mutex
	calls   map[string]int
	events  []string // names written through this store (Put, PutIf, Delete)
	faults  float64
	rng     *rand.Rand
	faulted int
}

func newSpy(t *testing.T, name string) *spy {
	t.Helper()
	fs, err := file.New(file.Options{Name: name, Dir: filepath.Join(t.TempDir(), "store")})
	if err != nil {
		t.Fatal(err)
	}
	return &spy{Store: fs, calls: map[string]int{}, rng: rand.New(rand.NewPCG(1, uint64(len(name))))}
}

func (s *spy) count(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	if s.faults > 0 && s.rng.Float64() < s.faults {
		s.faulted++
		if s.rng.IntN(2) == 0 {
			return &store.Error{Kind: store.ErrThrottled, Store: s.Name(), Op: op, Detail: "injected throttle", RetryAfter: 1}
		}
		return &store.Error{Kind: store.ErrUnavailable, Store: s.Name(), Op: op, Detail: "injected unavailability"}
	}
	return nil
}

func (s *spy) n(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *spy) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

func (s *spy) writes() int { return s.n("put") + s.n("putif") + s.n("delete") }

func (s *spy) reset() {
	s.mu.Lock()
	s.calls = map[string]int{}
	s.events = nil
	s.mu.Unlock()
}

func (s *spy) drain() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events
	s.events = nil
	return e
}

func (s *spy) Limits() store.Limits {
	if s.limits != nil {
		return *s.limits
	}
	return s.Store.Limits()
}

func (s *spy) Get(ctx context.Context, name string) (store.Secret, error) {
	if err := s.count("get"); err != nil {
		return store.Secret{}, err
	}
	return s.Store.Get(ctx, name)
}

func (s *spy) Describe(ctx context.Context, name string) (store.Metadata, error) {
	if err := s.count("describe"); err != nil {
		return store.Metadata{}, err
	}
	return s.Store.Describe(ctx, name)
}

func (s *spy) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Metadata, error] {
	return func(yield func(store.Metadata, error) bool) {
		if err := s.count("list"); err != nil {
			yield(store.Metadata{}, err)
			return
		}
		for md, err := range s.Store.List(ctx, opts) {
			if !yield(md, err) {
				return
			}
		}
	}
}

func (s *spy) written(name string) {
	s.mu.Lock()
	s.events = append(s.events, name)
	s.mu.Unlock()
}

func (s *spy) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	if err := store.CheckPut(s, name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	if err := s.count("put"); err != nil {
		return store.Metadata{}, err
	}
	md, err := s.Store.Put(ctx, name, v, opts)
	if err == nil {
		s.written(name)
	}
	return md, err
}

func (s *spy) PutIf(ctx context.Context, name string, v store.Value, opts store.PutOptions, ifVersion string) (store.Metadata, error) {
	if err := store.CheckPut(s, name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	if err := s.count("putif"); err != nil {
		return store.Metadata{}, err
	}
	md, err := s.Store.(store.CompareAndSwapper).PutIf(ctx, name, v, opts, ifVersion)
	if err == nil {
		s.written(name)
	}
	return md, err
}

func (s *spy) Delete(ctx context.Context, name string, opts store.DeleteOptions) error {
	if err := s.count("delete"); err != nil {
		return err
	}
	err := s.Store.Delete(ctx, name, opts)
	if err == nil {
		s.written(name)
	}
	return err
}

func (s *spy) UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *store.Provenance) error {
	if err := s.count("mark"); err != nil {
		return err
	}
	return s.Store.(store.MetadataUpdater).UpdateMetadata(ctx, name, tags, prov)
}
