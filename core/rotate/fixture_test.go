package rotate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/generate"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/file"
)

var ctx = context.Background()

// azureLike declares Key Vault's name rules and per-version tags on a file store.
var azureLike = store.Limits{NamePattern: regexp.MustCompile(`^[0-9a-zA-Z-]+$`), NameRule: "letters, digits and hyphens",
	NameMinLen: 1, NameMaxLen: 127, CaseInsensitive: true, MaxValueBytes: 25600, Binary: store.BinaryBase64, MaxTags: 15,
	MetadataPerVersion: true}

// gcpLike declares Secret Manager's name rules and label rules on a file store.
var gcpLike = store.Limits{NamePattern: regexp.MustCompile(`^[A-Za-z0-9_-]+$`), NameRule: "letters, digits, _ and -",
	NameMinLen: 1, NameMaxLen: 255, MaxValueBytes: 65536, Binary: store.BinaryNative, MaxTags: 64,
	TagKeyPattern:   regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]*$`),
	TagValuePattern: regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]*$`), TagKeyMaxLen: 63, TagValueMaxLen: 63, TagRule: "GCP labels"}

// call is one store operation as the chaos layer sees it.
type call struct {
	store, op, name string
	tags            map[string]string // UpdateMetadata's and Put's tags
	stage           string            // MoveStage's stage, PutStaged's first stage
}

func (c call) String() string { return fmt.Sprintf("%s %s %s %s", c.store, c.op, c.name, c.stage) }

// fault breaks the first call it matches: the call fails (before reaching the store, or after it did its
// work: the reply is lost); with crash, every later call fails too — the process is dead until revive.
type fault struct {
	when  func(call) bool
	crash bool
	after bool
	fired bool
}

var errCrashed = errors.New("the process crashed")

// chaos is shared by every store of a test world (and its generator and hooks).
type chaos struct {
	mu     sync.Mutex
	dead   bool
	faults []*fault
	calls  []call
}

func (c *chaos) arm(f *fault) { c.mu.Lock(); c.faults = append(c.faults, f); c.mu.Unlock() }

func (c *chaos) revive() { c.mu.Lock(); c.dead = false; c.faults = nil; c.mu.Unlock() }

func (c *chaos) isDead() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.dead }

// check runs before a call: nil lets it through; after says whether to fail it once done.
func (c *chaos) check(cl call) (err error, after *fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return &store.Error{Kind: store.ErrUnavailable, Store: cl.store, Op: cl.op, Name: cl.name, Err: errCrashed}, nil
	}
	c.calls = append(c.calls, cl)
	for _, f := range c.faults {
		if f.fired || !f.when(cl) {
			continue
		}
		f.fired = true
		if f.after {
			return nil, f
		}
		if f.crash {
			c.dead = true
		}
		return &store.Error{Kind: store.ErrUnavailable, Store: cl.store, Op: cl.op, Name: cl.name, Detail: "injected fault"}, nil
	}
	return nil, nil
}

func (c *chaos) done(cl call, f *fault, err error) error {
	if f == nil || err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.crash {
		c.dead = true
	}
	return &store.Error{Kind: store.ErrUnavailable, Store: cl.store, Op: cl.op, Name: cl.name, Detail: "injected fault after the write"}
}

// generic runs op through the chaos layer.
func do[T any](c *chaos, cl call, op func() (T, error)) (T, error) {
	var zero T
	err, f := c.check(cl)
	if err != nil {
		return zero, err
	}
	v, err := op()
	if err := c.done(cl, f, err); err != nil {
		return zero, err
	}
	return v, err
}

// tstore wraps a store: chaos on every call, and optionally other declared limits.
type tstore struct {
	store.Store
	c      *chaos
	limits *store.Limits
}

func (s *tstore) Limits() store.Limits {
	if s.limits != nil {
		return *s.limits
	}
	return s.Store.Limits()
}

func (s *tstore) cl(op, name string) call { return call{store: s.Name(), op: op, name: name} }

func (s *tstore) Get(ctx context.Context, name string) (store.Secret, error) {
	return do(s.c, s.cl("get", name), func() (store.Secret, error) { return s.Store.Get(ctx, name) })
}

func (s *tstore) Describe(ctx context.Context, name string) (store.Metadata, error) {
	return do(s.c, s.cl("describe", name), func() (store.Metadata, error) { return s.Store.Describe(ctx, name) })
}

func (s *tstore) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Metadata, error] {
	return func(yield func(store.Metadata, error) bool) {
		if _, err := do(s.c, s.cl("list", opts.Prefix), func() (int, error) { return 0, nil }); err != nil {
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

func (s *tstore) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	if err := store.CheckPut(s, name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	cl := s.cl("put", name)
	cl.tags = opts.Tags
	return do(s.c, cl, func() (store.Metadata, error) { return s.Store.Put(ctx, name, v, opts) })
}

func (s *tstore) Delete(ctx context.Context, name string, opts store.DeleteOptions) error {
	_, err := do(s.c, s.cl("delete", name), func() (int, error) { return 0, s.Store.Delete(ctx, name, opts) })
	return err
}

func (s *tstore) UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *store.Provenance) error {
	if err := s.Limits().CheckTags(tags, store.ProvenanceEntries(prov)); err != nil {
		return store.Annotate(err, s.Name(), "update-metadata", name)
	}
	cl := s.cl("update-metadata", name)
	cl.tags = tags
	_, err := do(s.c, cl, func() (int, error) {
		return 0, s.Store.(store.MetadataUpdater).UpdateMetadata(ctx, name, tags, prov)
	})
	return err
}

// tstaged wraps a store with version stages.
type tstaged struct{ *tstore }

func (s *tstaged) PutStaged(ctx context.Context, name, versionID string, v store.Value, stages []string) (store.VersionInfo, error) {
	cl := s.cl("put-staged", name)
	if len(stages) > 0 {
		cl.stage = stages[0]
	}
	return do(s.c, cl, func() (store.VersionInfo, error) {
		return s.Store.(store.Staged).PutStaged(ctx, name, versionID, v, stages)
	})
}

func (s *tstaged) MoveStage(ctx context.Context, name, stage, versionID string) error {
	cl := s.cl("move-stage", name)
	cl.stage = stage
	_, err := do(s.c, cl, func() (int, error) { return 0, s.Store.(store.Staged).MoveStage(ctx, name, stage, versionID) })
	return err
}

func (s *tstaged) GetVersion(ctx context.Context, name, version string) (store.Secret, error) {
	return do(s.c, s.cl("get-version", name), func() (store.Secret, error) {
		return s.Store.(store.Versioned).GetVersion(ctx, name, version)
	})
}

func (s *tstaged) Versions(ctx context.Context, name string) iter.Seq2[store.VersionInfo, error] {
	return func(yield func(store.VersionInfo, error) bool) {
		if _, err := do(s.c, s.cl("versions", name), func() (int, error) { return 0, nil }); err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		for vi, err := range s.Store.(store.Versioned).Versions(ctx, name) {
			if !yield(vi, err) {
				return
			}
		}
	}
}

// clock is the engine's time, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// world is a set of stores, the replication rules between them, and a rotation engine over them.
type world struct {
	t      *testing.T
	c      *chaos
	raw    map[string]store.Store // the stores without the chaos layer (what readers see)
	stores map[string]store.Store // the wrapped stores the engines use
	rules  []replicate.Rule
	clk    *clock
	logs   *bytes.Buffer
	audit  *audit.Memory
	errs   []string // every error message a test saw

	mu     sync.Mutex
	gens   []string // every value generated, in order
	genErr *fault   // breaks the generator (when matches any call)
	hook   func(ctx context.Context, name string, v store.Value) error

	repl *replicate.Engine
	eng  *Engine
}

// fileStore is a file store in a fresh directory.
func fileStore(t *testing.T, name string) *file.Store {
	t.Helper()
	fs, err := file.New(file.Options{Name: name, Dir: filepath.Join(t.TempDir(), name)})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, c: &chaos{}, raw: map[string]store.Store{}, stores: map[string]store.Store{},
		clk: &clock{t: time.Now().UTC().Add(30 * 24 * time.Hour)}, logs: &bytes.Buffer{}, audit: &audit.Memory{}}
	return w
}

// add puts a store in the world; limits (optional) replace its declared ones.
func (w *world) add(s store.Store, limits *store.Limits) {
	w.raw[s.Name()] = s
	ts := &tstore{Store: s, c: w.c, limits: limits}
	switch s.(type) {
	case store.Staged:
		w.stores[s.Name()] = &tstaged{ts}
	case store.Creator:
		w.stores[s.Name()] = &tcreator{ts}
	default:
		w.stores[s.Name()] = ts
	}
}

// tcreator is a tstore over a store.Creator.
type tcreator struct{ *tstore }

func (s *tcreator) Create(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	cl := s.cl("create", name)
	cl.tags = opts.Tags
	return do(s.c, cl, func() (store.Metadata, error) { return s.Store.(store.Creator).Create(ctx, name, v, opts) })
}

// build makes the engines. settle is the lease's settle time (negative: none).
func (w *world) build(policies []Policy, settle time.Duration) {
	w.t.Helper()
	var err error
	w.repl, err = replicate.New(w.rules, w.stores, replicate.Options{Now: w.clk.Now})
	if err != nil {
		w.t.Fatal(err)
	}
	w.eng, err = New(policies, w.stores, w.repl, Options{Logger: slog.New(slog.NewJSONHandler(w.logs, nil)), Audit: w.audit,
		Now: w.clk.Now, LeaseSettle: settle,
		Hooks: map[string]func(context.Context, string, store.Value) error{"check": func(ctx context.Context, name string, v store.Value) error {
			if err, f := w.c.check(call{op: "hook", name: name}); err != nil || f != nil {
				if f != nil {
					_ = w.c.done(call{op: "hook"}, f, nil)
				}
				return errors.New("test hook failed")
			}
			w.mu.Lock()
			h := w.hook
			w.mu.Unlock()
			if h == nil {
				return nil
			}
			return h(ctx, name, v)
		}}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.eng.generate = func(s generate.Spec) ([]byte, error) {
		if err, f := w.c.check(call{op: "generate"}); err != nil || f != nil {
			if f != nil {
				_ = w.c.done(call{op: "generate"}, f, nil)
			}
			return nil, errors.New("generator failed")
		}
		b, err := generate.Generate(s)
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		v := fmt.Sprintf("canary-gen-%d-%s", len(w.gens), b)
		w.gens = append(w.gens, v)
		return []byte(v), nil
	}
}

func (w *world) generated() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.gens)
}

func (w *world) setHook(h func(ctx context.Context, name string, v store.Value) error) {
	w.mu.Lock()
	w.hook = h
	w.mu.Unlock()
}

// write is a write by someone other than keyferry.
func (w *world) write(storeName, name, value string) store.Metadata {
	w.t.Helper()
	md, err := w.raw[storeName].Put(ctx, name, store.Text(value), store.PutOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return md
}

// value reads the current value as a reader does ("<missing>", or "<error: …>").
func (w *world) value(storeName, name string) string {
	w.t.Helper()
	sec, err := w.raw[storeName].Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return "<missing>"
	}
	if err != nil {
		return "<error: " + err.Error() + ">"
	}
	return string(sec.Value.Bytes())
}

func (w *world) describe(storeName, name string) store.Metadata {
	w.t.Helper()
	md, err := w.raw[storeName].Describe(ctx, name)
	if err != nil {
		w.t.Fatalf("describe %s/%s: %v", storeName, name, err)
	}
	return md
}

func (w *world) versions(storeName, name string) int {
	w.t.Helper()
	n := 0
	for _, err := range w.raw[storeName].(store.Versioned).Versions(ctx, name) {
		if err != nil {
			w.t.Fatal(err)
		}
		n++
	}
	return n
}

// sync lets the replication engine handle a change; it returns how many writes it made.
func (w *world) sync(storeName, name string) int {
	w.t.Helper()
	res, err := w.repl.Sync(ctx, storeName, name)
	if err != nil {
		w.t.Fatalf("Sync(%s, %s): %v", storeName, name, err)
	}
	return res.Counts[replicate.ActCreate] + res.Counts[replicate.ActUpdate] + res.Counts[replicate.ActDelete]
}

// seen records an error's message for the canary scan.
func (w *world) seen(err error) error {
	if err != nil {
		w.mu.Lock()
		w.errs = append(w.errs, err.Error())
		w.mu.Unlock()
	}
	return err
}

// noLeak fails the test if any value ever written appears in logs, audit records or error messages.
func (w *world) noLeak(values ...string) {
	w.t.Helper()
	var b strings.Builder
	b.WriteString(w.logs.String())
	for _, r := range w.audit.Records() {
		fmt.Fprintf(&b, "%+v\n", r)
	}
	w.mu.Lock()
	b.WriteString(strings.Join(w.errs, "\n"))
	w.mu.Unlock()
	all := b.String()
	for _, v := range append(values, w.generated()...) {
		if strings.Contains(all, v) {
			w.t.Errorf("a value leaked into logs, audit records or errors")
		}
	}
	if strings.Contains(all, "canary") {
		w.t.Errorf("a canary leaked into logs, audit records or errors")
	}
}

// leaseTag is the primary's lease tag ("" when none).
func (w *world) leaseTag(storeName, name string) string {
	return w.describe(storeName, name).Tags[TagRotation]
}

func randomSpec() generate.Spec {
	return generate.Spec{Random: &generate.Random{Length: 24, Charset: "abcdefghijklmnopqrstuvwxyz0123456789"}}
}

func rule(name, from string, to ...replicate.Target) replicate.Rule {
	return replicate.Rule{Name: name, From: replicate.Source{Store: from}, To: to}
}
