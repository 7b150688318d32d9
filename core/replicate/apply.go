package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/store"
)

// Result says what Apply, Sync or Sweep did.
type Result struct {
	Counts   map[Action]int `json:"counts"`
	Items    []*Item        `json:"items,omitempty"`
	Failures []Failure      `json:"failures,omitempty"`
	Marked   int            `json:"marked"`  // sources given a Synced mark
	Skipped  int            `json:"skipped"` // sources a sweep skipped on their Synced mark
	Calls    int64          `json:"calls"`   // store operations made (each may be more than one API call)
	mu       sync.Mutex
}

func newResult() *Result { return &Result{Counts: map[Action]int{}} }

// Err is nil when nothing failed; else it joins the failures, wrapping ErrRetryable if any was transient.
func (r *Result) Err() error {
	if r == nil || len(r.Failures) == 0 {
		return nil
	}
	var errs []error
	retry := false
	for _, f := range r.Failures {
		errs = append(errs, fmt.Errorf("%s: %s", f.Source, f.Error))
		retry = retry || f.Retryable
	}
	err := errors.Join(errs...)
	if retry {
		return fmt.Errorf("%w: %w", ErrRetryable, err)
	}
	return err
}

// Summary is one line for logs: the counts of each action.
func (r *Result) Summary() string {
	var parts []string
	for _, a := range Actions {
		if n := r.Counts[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	if len(r.Failures) > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", len(r.Failures)))
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}

func (r *Result) addUnit(u *unit, keepItems bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range u.items {
		if it.err != nil {
			t := it.Target
			r.Failures = append(r.Failures, failure(it.Source, &t, it.err))
			continue
		}
		r.Counts[it.Action]++
		if keepItems {
			r.Items = append(r.Items, it)
		}
	}
}

// ApplyOptions configure Apply.
type ApplyOptions struct {
	Progress func(done, total int) // called after each source secret; nil: none
}

// Apply carries out a plan: writes, deletes, conflict alerts and refusal records. A target that changed
// since the plan is written only if it is still in the planned state (compare-and-swap where the store
// has it); otherwise its secret is planned again.
func (e *Engine) Apply(ctx context.Context, p *Plan, opts ApplyOptions) (*Result, error) {
	res := newResult()
	for _, f := range p.Failures {
		res.Failures = append(res.Failures, f)
	}
	for i, u := range p.units {
		e.applyUnit(ctx, u, res)
		res.addUnit(u, true)
		if opts.Progress != nil {
			opts.Progress(i+1, len(p.units))
		}
	}
	return res, res.Err()
}

// applyUnit applies a planned unit, re-planning once when a target moved under it, then marks the source.
func (e *Engine) applyUnit(ctx context.Context, u *unit, res *Result) {
	for attempt := 0; ; attempt++ {
		moved := false
		for _, it := range u.items {
			if it.err != nil {
				continue
			}
			err := e.applyItem(ctx, it, res)
			if err == nil {
				continue
			}
			if errors.Is(err, store.ErrConflict) && attempt == 0 {
				moved = true
				continue
			}
			it.err = err
			u.failed = true
			e.audit.Record(ctx, e.record(it, "fail", reason(err)))
		}
		if !moved {
			break
		}
		e.planUnit(ctx, u, true)
	}
	if !u.failed && !u.missing && u.only == nil && u.held == "" && !e.covered(u) {
		u.markErr = e.mark(ctx, u, res)
	}
}

func (e *Engine) record(it *Item, action, why string) audit.Record {
	return audit.Record{Time: e.opts.Now().UTC(), Action: action, Rule: it.Rule,
		SourceStore: it.Source.Store, SourceName: it.Source.Name, SourceVersion: it.Source.Version,
		TargetStore: it.Target.Store, TargetName: it.Target.Name, TargetVersion: it.Target.Version, Reason: why}
}

func (e *Engine) applyItem(ctx context.Context, it *Item, res *Result) error {
	tgt := e.stores[it.Target.Store]
	switch it.Action {
	case ActCreate, ActUpdate:
		if it.tgtGone {
			rec, ok := tgt.(store.Recoverable)
			if !ok {
				return &store.Error{Kind: store.ErrSoftDeleted, Store: it.Target.Store, Name: it.Target.Name,
					Detail: "the target is deleted and the store cannot recover it"}
			}
			atomic.AddInt64(&res.Calls, 1)
			if err := rec.Recover(ctx, it.Target.Name); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				return err
			}
		}
		opts := store.PutOptions{Tags: it.tags, Provenance: e.provenance(it)}
		var md store.Metadata
		var err error
		atomic.AddInt64(&res.Calls, 1)
		err = e.gated(ctx, it.Target.Store, func() (err error) {
			if cr, ok := tgt.(store.Creator); ok && it.tgtMeta == nil && !it.tgtGone {
				md, err = cr.Create(ctx, it.Target.Name, it.value, opts)
			} else if cas, ok := tgt.(store.CompareAndSwapper); ok && !it.tgtGone {
				expect := ""
				if it.tgtMeta != nil {
					expect = it.tgtMeta.Version
				}
				md, err = cas.PutIf(ctx, it.Target.Name, it.value, opts, expect)
			} else {
				md, err = tgt.Put(ctx, it.Target.Name, it.value, opts)
			}
			return err
		})
		if err != nil {
			if errors.Is(err, store.ErrAlreadyExists) {
				return &store.Error{Kind: store.ErrConflict, Store: it.Target.Store, Name: it.Target.Name, Detail: "created concurrently", Err: err}
			}
			return err
		}
		it.Target.Version = md.Version
		it.value = store.Value{}
		e.audit.Record(ctx, e.record(it, string(it.Action), it.Reason))
		e.log.InfoContext(ctx, "replicated", "rule", it.Rule, "source", it.Source.String(), "target", it.Target.String(),
			"action", string(it.Action))
	case ActDelete:
		atomic.AddInt64(&res.Calls, 1)
		if err := tgt.Delete(ctx, it.Target.Name, store.DeleteOptions{}); err != nil &&
			!errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrSoftDeleted) {
			return err
		}
		e.audit.Record(ctx, e.record(it, "delete", it.Reason))
		e.log.InfoContext(ctx, "deleted replica", "rule", it.Rule, "source", it.Source.String(), "target", it.Target.String())
	case ActConflict:
		e.audit.Record(ctx, e.record(it, "conflict", it.Reason))
		e.log.WarnContext(ctx, "foreign write to a replica", "rule", it.Rule, "source", it.Source.String(),
			"target", it.Target.String(), "reason", it.Reason)
		if e.opts.Notifier != nil && e.alerted.first(it.Rule+"\x00"+it.Source.String()+"\x00"+it.Target.String()) {
			a := Alert{Kind: "replication.conflict", Time: e.opts.Now().UTC(), Rule: it.Rule,
				SourceStore: it.Source.Store, SourceName: it.Source.Name, SourceVersion: it.Source.Version,
				TargetStore: it.Target.Store, TargetName: it.Target.Name, TargetVersion: it.Target.Version, Reason: it.Reason}
			if err := e.opts.Notifier.Notify(ctx, a); err != nil {
				e.log.ErrorContext(ctx, "cannot publish the conflict alert", "target", it.Target.String(), "error", err.Error())
			}
		}
	case ActRefuse:
		e.audit.Record(ctx, e.record(it, "refuse", it.Reason))
		e.log.WarnContext(ctx, "replication refused", "rule", it.Rule, "source", it.Source.String(),
			"target", it.Target.String(), "reason", it.Reason)
	}
	return nil
}

// errMoved: the source changed between replication and its mark.
var errMoved = errors.New("the source moved on")

// mark records on the source that this version is replicated under the current rules, so sweeps can
// skip it without looking at any target. Stores without MetadataUpdater are never marked (and are
// always planned).
func (e *Engine) mark(ctx context.Context, u *unit, res *Result) error {
	mu, ok := e.stores[u.store].(store.MetadataUpdater)
	sm, marker := e.stores[u.store].(store.SyncMarker)
	if !ok && !marker || u.meta.Version == "" {
		return nil
	}
	want := u.meta.Version + "/" + u.fingerprint()
	var p store.Provenance
	if u.meta.Provenance != nil {
		p = *u.meta.Provenance
	}
	if p.Synced == want {
		return nil
	}
	p.Synced = want
	atomic.AddInt64(&res.Calls, 1)
	err := e.gated(ctx, u.store, func() error {
		if marker {
			return sm.MarkSynced(ctx, u.name, want)
		}
		// UpdateMetadata replaces the tags: read them again rather than write back the ones read when
		// planning, which may be stale by now (a rotation's lease or its last-rotated time, a user's edit).
		atomic.AddInt64(&res.Calls, 1)
		cur, err := e.stores[u.store].Describe(ctx, u.name)
		if err != nil {
			return err
		}
		if cur.Version != u.meta.Version {
			return errMoved // a newer version is for its own event or the next sweep
		}
		p := store.Provenance{}
		if cur.Provenance != nil {
			p = *cur.Provenance
		}
		p.Synced = want
		return mu.UpdateMetadata(ctx, u.name, cur.Tags, &p)
	})
	if errors.Is(err, errMoved) {
		return nil
	}
	if err != nil {
		// Not a failure of replication: the next sweep plans this source again.
		e.log.WarnContext(ctx, "cannot mark the source as replicated", "source", Ref{u.store, u.name, u.meta.Version}.String(),
			"error", reason(err))
		return err
	}
	res.mu.Lock()
	res.Marked++
	res.mu.Unlock()
	return nil
}

// Sync replicates one secret that changed in storeName: as the source of the rules that select it, and as
// the replica of the rules that write to it (so a foreign write to a replica is handled per on_conflict).
// It is what the functions call for each change event; calling it again changes nothing.
func (e *Engine) Sync(ctx context.Context, storeName, secretName string) (*Result, error) {
	res := newResult()
	if _, ok := e.stores[storeName]; !ok {
		return res, fmt.Errorf("store %q is not configured", storeName)
	}
	type key struct{ store, name string }
	seen := map[key]bool{}
	var units []*unit
	add := func(us []*unit, fails []Failure) {
		res.Failures = append(res.Failures, fails...)
		for _, u := range us {
			if k := (key{u.store, u.name}); !seen[k] {
				seen[k] = true
				units = append(units, u)
			}
		}
	}
	add(e.sources(ctx, Scope{Store: storeName, Name: secretName}, false))
	// As a replica: find the source each rule writing to this store would map onto this name.
	var self *store.Metadata
	for _, r := range e.rules {
		for ti, t := range r.To {
			if t.Store != storeName {
				continue
			}
			if self == nil {
				md, err := e.stores[storeName].Describe(ctx, secretName)
				if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrSoftDeleted) {
					res.Failures = append(res.Failures, failure(Ref{Store: storeName, Name: secretName}, nil, err))
					return res, res.Err()
				}
				self = &md
			}
			for _, cand := range e.candidates(ctx, r, ti, storeName, secretName, *self) {
				us, fails := e.sources(ctx, Scope{Store: r.From.Store, Name: cand, Rules: []string{r.Name}}, false)
				for _, u := range us {
					u.only = &Ref{Store: storeName, Name: secretName}
				}
				add(us, fails)
			}
		}
	}
	for _, u := range units {
		// A unit found through one rule must still carry every rule that selects its source.
		if !u.missing {
			u.rules = e.rulesFor(u.store, u.meta)
		}
		e.planUnit(ctx, u, true)
		e.applyUnit(ctx, u, res)
		res.addUnit(u, true)
	}
	return res, res.Err()
}

func (e *Engine) rulesFor(storeName string, md store.Metadata) []*rule {
	var out []*rule
	for _, r := range e.rules {
		if r.From.Store == storeName && r.selects(md) {
			out = append(out, r)
		}
	}
	return out
}

// candidates are the names in r's source store that r would map onto target/name: the replica's recorded
// origin, the same name, and (when neither maps there and the name template is not the identity) every
// listed source whose rendered name matches.
func (e *Engine) candidates(ctx context.Context, r *rule, ti int, target, name string, md store.Metadata) []string {
	lim := e.stores[target].Limits()
	maps := func(src string) bool {
		n, err := renderName(r.names[ti], target, r.From.Store, src, lim)
		return err == nil && lim.CanonicalName(n) == lim.CanonicalName(name)
	}
	var out []string
	if p := md.Provenance; p.Origin() && p.SourceStore == r.From.Store && r.selectsName(p.SourceName) && maps(p.SourceName) {
		out = append(out, p.SourceName)
	}
	if r.selectsName(name) && maps(name) && (len(out) == 0 || out[0] != name) {
		out = append(out, name)
	}
	if len(out) > 0 || r.To[ti].Name == "" {
		return out
	}
	for smd, err := range e.stores[r.From.Store].List(ctx, store.ListOptions{Prefix: r.prefix}) {
		if err != nil {
			break
		}
		if r.selects(smd) && maps(smd.Name) {
			out = append(out, smd.Name)
		}
	}
	return out
}

// Replicas returns the replicas the rules keep of the secret storeName/secretName (rendered target names;
// refused names left out), reading only the source's metadata. Rotation uses it to land a new value in
// every replica before promoting it.
func (e *Engine) Replicas(ctx context.Context, storeName, secretName string) ([]Ref, error) {
	src, ok := e.stores[storeName]
	if !ok {
		return nil, fmt.Errorf("store %q is not configured", storeName)
	}
	md, err := src.Describe(ctx, secretName)
	if err != nil {
		return nil, err
	}
	var out []Ref
	for _, r := range e.rulesFor(storeName, md) {
		for ti, t := range r.To {
			name, err := renderName(r.names[ti], t.Store, storeName, secretName, e.stores[t.Store].Limits())
			if err == nil {
				out = append(out, Ref{Store: t.Store, Name: name})
			}
		}
	}
	return out, nil
}
