package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// Action is what a plan item does to a target.
type Action string

const (
	ActCreate    Action = "create"    // the target does not exist: write it
	ActUpdate    Action = "update"    // the target is an older copy (or a foreign write being overwritten): write it
	ActUnchanged Action = "unchanged" // the target already holds the source's value
	ActSkip      Action = "skip"      // leave the target alone (newer value there, or on_conflict: skip)
	ActConflict  Action = "conflict"  // someone else wrote the target: alert, write nothing
	ActRefuse    Action = "refuse"    // the target cannot hold this secret (name, size, binary, collision)
	ActDelete    Action = "delete"    // the source is gone and the rule propagates deletes
	ActKeep      Action = "keep"      // the source is gone; the target stays
)

// Actions lists every action in the order reports show them.
var Actions = []Action{ActCreate, ActUpdate, ActDelete, ActUnchanged, ActSkip, ActKeep, ActConflict, ActRefuse}

// Ref names a secret in a store, at a version when known.
type Ref struct {
	Store   string `json:"store"`
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

func (r Ref) String() string {
	s := r.Store + "/" + r.Name
	if r.Version != "" {
		s += "@" + r.Version
	}
	return s
}

// Origin is where a value was last written by someone other than keyferry.
type Origin struct {
	Store   string    `json:"store"`
	Name    string    `json:"name"`
	Version string    `json:"version,omitempty"`
	Written time.Time `json:"written,omitzero"`
}

func (o Origin) String() string { return Ref{o.Store, o.Name, o.Version}.String() }

// Item is one (source, target) pair of a plan. It holds no value in any exported or printed form.
type Item struct {
	Rule   string  `json:"rule"`
	Source Ref     `json:"source"`
	Target Ref     `json:"target"`
	Action Action  `json:"action"`
	Reason string  `json:"reason"`
	Origin *Origin `json:"origin,omitempty"`

	rule    *rule
	ti      int             // index of the target in the rule
	srcMeta store.Metadata  // the source as planned
	tgtMeta *store.Metadata // the target as planned; nil when missing
	tgtGone bool            // the target is soft-deleted (recover before writing)
	value   store.Value     // what to write (creates and updates)
	tags    map[string]string
	err     error // why the item failed (transient failures are retried by sweeps)
}

// writes reports whether the item writes to the target.
func (it *Item) writes() bool {
	return it.Action == ActCreate || it.Action == ActUpdate || it.Action == ActDelete
}

// Plan is what Apply would do. Planning writes nothing.
type Plan struct {
	Items    []*Item   `json:"items"`
	Failures []Failure `json:"failures,omitempty"`
	units    []*unit
}

// Count returns how many items have the action.
func (p *Plan) Count(a Action) int {
	n := 0
	for _, it := range p.Items {
		if it.Action == a {
			n++
		}
	}
	return n
}

// MarshalJSON renders the plan; values are never part of it.
func (p *Plan) MarshalJSON() ([]byte, error) {
	type plain Plan
	counts := map[Action]int{}
	for _, it := range p.Items {
		counts[it.Action]++
	}
	return json.Marshal(struct {
		Counts map[Action]int `json:"counts"`
		*plain
	}{counts, (*plain)(p)})
}

// Failure is work that could not be planned or applied.
type Failure struct {
	Source    Ref    `json:"source"`
	Target    *Ref   `json:"target,omitempty"`
	Error     string `json:"error"`
	Retryable bool   `json:"retryable"`
	err       error
}

func (f Failure) Unwrap() error { return f.err }

// unit is one source secret and every item planned for it; it is applied and marked as a whole.
type unit struct {
	store   string
	name    string
	meta    store.Metadata
	missing bool
	rules   []*rule
	items   []*Item
	failed  bool
	markErr error // the Synced mark could not be written (the sweep retries; replication itself succeeded)
	// only, when set, limits planning to the one target it names: the unit was found because that replica
	// changed, and only that replica is this unit's business (the source's own event or sweep handles
	// its other targets, so two functions never race for them). A partial unit is never marked.
	only *Ref
	// held says why Options.Hold left the source alone ("" when it did not).
	held string
}

// Scope narrows planning. The zero value is everything.
type Scope struct {
	Store string   // only sources in this store (with Name: one secret)
	Name  string   // only this source secret
	Rules []string // only these rules
}

func (sc Scope) wants(r *rule) bool {
	return (len(sc.Rules) == 0 || slices.Contains(sc.Rules, r.Name)) && (sc.Store == "" || sc.Store == r.From.Store)
}

// Plan computes what Apply would do for the secrets in scope. It reads metadata, and a source's value only
// where a target would be written (to check that the target can hold it). It writes nothing.
func (e *Engine) Plan(ctx context.Context, sc Scope) (*Plan, error) {
	units, fails := e.sources(ctx, sc, false)
	p := &Plan{Failures: fails}
	for _, u := range units {
		e.planUnit(ctx, u, true)
		p.add(u)
	}
	e.collisions(p)
	return p, nil
}

func (p *Plan) add(u *unit) {
	p.units = append(p.units, u)
	p.Items = append(p.Items, u.items...)
}

// sources lists the source secrets in scope as units. With sweep set, units whose Synced mark matches
// are left out.
func (e *Engine) sources(ctx context.Context, sc Scope, sweep bool) ([]*unit, []Failure) {
	byKey := map[string]*unit{}
	var order []string
	var fails []Failure
	listed := map[string][]store.Metadata{}
	for _, r := range e.rules {
		if !sc.wants(r) {
			continue
		}
		src := e.stores[r.From.Store]
		var mds []store.Metadata
		if sc.Name != "" {
			md, err := src.Describe(ctx, sc.Name)
			switch {
			case err == nil:
				mds = []store.Metadata{md}
			case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrSoftDeleted):
				if r.selectsName(sc.Name) {
					key := r.From.Store + "\x00" + sc.Name
					if byKey[key] == nil {
						byKey[key] = &unit{store: r.From.Store, name: sc.Name, missing: true, meta: store.Metadata{Name: sc.Name}}
						order = append(order, key)
					}
					byKey[key].rules = append(byKey[key].rules, r)
				}
				continue
			default:
				fails = append(fails, failure(Ref{Store: r.From.Store, Name: sc.Name}, nil, err))
				continue
			}
		} else {
			cacheKey := r.From.Store + "\x00" + r.prefix
			if l, ok := listed[cacheKey]; ok {
				mds = l
			} else {
				for md, err := range src.List(ctx, store.ListOptions{Prefix: r.prefix}) {
					if err != nil {
						fails = append(fails, failure(Ref{Store: r.From.Store, Name: r.prefix + "*"}, nil, err))
						break
					}
					mds = append(mds, md)
				}
				listed[cacheKey] = mds
			}
		}
		for _, md := range mds {
			if !r.selects(md) {
				continue
			}
			key := r.From.Store + "\x00" + md.Name
			if byKey[key] == nil {
				byKey[key] = &unit{store: r.From.Store, name: md.Name, meta: md}
				order = append(order, key)
			}
			byKey[key].rules = append(byKey[key].rules, r)
		}
	}
	units := make([]*unit, 0, len(order))
	for _, k := range order {
		units = append(units, byKey[k])
	}
	return units, fails
}

// fingerprint of a unit: the rules that replicate it.
func (u *unit) fingerprint() string {
	var fps []string
	for _, r := range u.rules {
		fps = append(fps, r.fingerprint)
	}
	sort.Strings(fps)
	if len(fps) == 1 {
		return fps[0]
	}
	return fingerprint(Rule{Name: strings.Join(fps, "+")})
}

// marked reports whether the source carries a Synced mark for its current version and these rules.
// known is false when the metadata cannot tell (a listing without versions, where metadata belongs to
// the secret rather than the version).
func (u *unit) marked(lim store.Limits) (marked, known bool) {
	p := u.meta.Provenance
	if u.meta.Version == "" && !lim.MetadataPerVersion {
		return false, false
	}
	if p == nil || p.Synced == "" {
		return false, true
	}
	v, fp, _ := strings.Cut(p.Synced, "/")
	if fp != u.fingerprint() {
		return false, true
	}
	return u.meta.Version == "" || v == u.meta.Version, true
}

// clean reports whether keyferry wrote the current value of a secret with this metadata.
func clean(md store.Metadata) bool {
	p := md.Provenance
	if !p.Origin() {
		return false
	}
	// Stores that keep provenance per version, or replace it on every write, leave ReplicaVersion empty:
	// provenance present means keyferry's write is current. Without a version (a listing), trust it.
	return p.ReplicaVersion == "" || md.Version == "" || p.ReplicaVersion == md.Version
}

// originOf is where the current value of storeName/md came from.
func originOf(storeName string, md store.Metadata) Origin {
	if clean(md) {
		p := md.Provenance
		return Origin{Store: p.SourceStore, Name: p.SourceName, Version: p.SourceVersion, Written: p.Written}
	}
	return Origin{Store: storeName, Name: md.Name, Version: md.Version, Written: md.Updated}
}

func (e *Engine) sameOrigin(a, b Origin) bool {
	if a.Store != b.Store || a.Version != b.Version {
		return false
	}
	if s, ok := e.stores[a.Store]; ok {
		l := s.Limits()
		return l.CanonicalName(a.Name) == l.CanonicalName(b.Name)
	}
	return a.Name == b.Name
}

// newer orders origins by the time their value was written; ties are broken by store and name, the same
// way in every cloud.
func newer(a, b Origin) bool {
	if !a.Written.Equal(b.Written) {
		return a.Written.After(b.Written)
	}
	return a.Store+"/"+a.Name > b.Store+"/"+b.Name
}

// planUnit decides every item of a unit. withValues reads the source value where a target would be
// written, to check the target's limits (Status leaves it out).
func (e *Engine) planUnit(ctx context.Context, u *unit, withValues bool) {
	u.items = nil
	u.failed = false
	u.markErr = nil
	u.held = ""
	if e.opts.Hold != nil && !u.missing {
		if u.held = e.opts.Hold(u.meta); u.held != "" {
			e.log.InfoContext(ctx, "source left alone for now", "source", Ref{u.store, u.name, u.meta.Version}.String(), "reason", u.held)
			return
		}
	}
	origin := originOf(u.store, u.meta)
	for _, r := range u.rules {
		for ti, t := range r.To {
			it := &Item{Rule: r.Name, rule: r, ti: ti, srcMeta: u.meta,
				Source: Ref{Store: u.store, Name: u.name, Version: u.meta.Version}, Target: Ref{Store: t.Store}}
			if !u.missing {
				o := origin
				it.Origin = &o
			}
			u.items = append(u.items, it)
			tgt := e.stores[t.Store]
			name, err := renderName(r.names[ti], t.Store, u.store, u.name, tgt.Limits())
			if u.only != nil && (t.Store != u.only.Store || err != nil ||
				tgt.Limits().CanonicalName(name) != tgt.Limits().CanonicalName(u.only.Name)) {
				u.items = u.items[:len(u.items)-1]
				continue
			}
			it.Target.Name = name
			if err != nil {
				it.Action, it.Reason = ActRefuse, "the target cannot hold this name: "+reason(err)
				continue
			}
			var md store.Metadata
			err = e.gated(ctx, t.Store, func() (err error) { md, err = tgt.Describe(ctx, name); return err })
			switch {
			case err == nil:
				it.tgtMeta = &md
				it.Target.Version = md.Version
			case errors.Is(err, store.ErrNotFound):
			case errors.Is(err, store.ErrSoftDeleted):
				it.tgtGone = true
			default:
				u.failed = true
				it.Action, it.Reason = ActSkip, "cannot read the target: "+reason(err)
				e.failures(u, it, err)
				continue
			}
			if u.missing {
				e.decideDelete(it)
			} else {
				e.decide(it, origin)
			}
		}
	}
	if withValues && !u.missing {
		e.loadValue(ctx, u)
	}
}

// failures records a failure on the unit (kept on the item for Apply's result).
func (e *Engine) failures(u *unit, it *Item, err error) {
	u.failed = true
	it.err = err
}

func (e *Engine) decide(it *Item, src Origin) {
	tgt := it.tgtMeta
	if src.Store != it.Source.Store && e.reaches(src, it.Target) && (tgt == nil || !e.sameOrigin(originOf(it.Target.Store, *tgt), src)) {
		// The source is itself a replica, and the store the value came from replicates it to this target
		// directly: that copy is the origin's to make (its event or its sweep), so two functions never race
		// to write the same value twice.
		it.Action, it.Reason = ActSkip, "left to the rules of "+src.Store+", where this value came from"
		return
	}
	if tgt == nil {
		it.Action, it.Reason = ActCreate, "the target does not exist"
		if it.tgtGone {
			it.Reason = "the target is deleted but recoverable: recover it, then write"
		}
		return
	}
	to := originOf(it.Target.Store, *tgt)
	switch {
	case e.sameOrigin(to, src):
		it.Action, it.Reason = ActUnchanged, "in sync with "+src.String()
		if !clean(*tgt) {
			it.Reason = "the target is where this value came from"
		}
	case clean(*tgt) && newer(src, to):
		it.Action, it.Reason = ActUpdate, "the target holds an older value (from "+to.String()+")"
	case clean(*tgt):
		it.Action, it.Reason = ActSkip, "the target holds a newer value (from "+to.String()+"); an old source version never overwrites it"
	case lineage(it.srcMeta, it.Target.Store, *tgt, e):
		it.Action, it.Reason = ActUpdate, "the target has not changed since the source copied it; the source was written since"
	case e.peers[it.Target.Store][it.Source.Store] && newer(src, to):
		it.Action, it.Reason = ActUpdate, "a newer write in "+it.Source.Store+" (the stores replicate both ways)"
	case e.peers[it.Target.Store][it.Source.Store]:
		it.Action, it.Reason = ActSkip, "the target holds a newer write; it replicates back to "+it.Source.Store
	default:
		why := "the target was written by someone other than keyferry"
		if p := tgt.Provenance; p.Origin() {
			why = "the target was written by someone other than keyferry after keyferry copied " + Origin{p.SourceStore, p.SourceName, p.SourceVersion, p.Written}.String()
		}
		switch it.rule.OnConflict {
		case ConflictOverwrite:
			it.Action, it.Reason = ActUpdate, why+": overwriting (on_conflict: overwrite)"
		case ConflictSkip:
			it.Action, it.Reason = ActSkip, why+": left alone (on_conflict: skip)"
		default:
			it.Action, it.Reason = ActConflict, why+": nothing written (on_conflict: alert)"
		}
	}
}

// covered reports whether the unit's source is a clean replica whose origin store replicates the value to
// every target of the unit's rules (or is that target): then nothing is this replica's to forward, and a
// sweep can skip it without a Synced mark.
func (e *Engine) covered(u *unit) bool {
	if u.missing || !clean(u.meta) {
		return false
	}
	o := originOf(u.store, u.meta)
	if o.Store == u.store {
		return false
	}
	for _, r := range u.rules {
		for ti, t := range r.To {
			if t.Store == o.Store {
				continue
			}
			name, err := renderName(r.names[ti], t.Store, u.store, u.name, e.stores[t.Store].Limits())
			if err != nil || !e.reaches(o, Ref{Store: t.Store, Name: name}) {
				return false
			}
		}
	}
	return true
}

// reaches reports whether a rule of the origin's store replicates the origin's secret to exactly this
// target. Rules that filter on tags are not counted: the origin's tags are not known here.
func (e *Engine) reaches(o Origin, t Ref) bool {
	for _, r := range e.rules {
		if r.From.Store != o.Store || len(r.From.Tags) > 0 || len(r.From.ExcludeTags) > 0 || !r.selectsName(o.Name) {
			continue
		}
		for ti, tt := range r.To {
			if tt.Store != t.Store {
				continue
			}
			lim := e.stores[t.Store].Limits()
			name, err := renderName(r.names[ti], t.Store, o.Store, o.Name, lim)
			if err == nil && lim.CanonicalName(name) == lim.CanonicalName(t.Name) {
				return true
			}
		}
	}
	return false
}

// lineage reports whether the source's (stale) provenance says it was copied from exactly the target's
// current version: the target has not moved since, and the source carries a newer write.
func lineage(src store.Metadata, targetStore string, tgt store.Metadata, e *Engine) bool {
	p := src.Provenance
	if !p.Origin() || p.SourceStore != targetStore || p.SourceVersion != tgt.Version || tgt.Version == "" {
		return false
	}
	return e.sameOrigin(Origin{Store: targetStore, Name: p.SourceName, Version: p.SourceVersion},
		Origin{Store: targetStore, Name: tgt.Name, Version: tgt.Version})
}

func (e *Engine) decideDelete(it *Item) {
	tgt := it.tgtMeta
	switch {
	case tgt == nil:
		it.Action, it.Reason = ActUnchanged, "the source and the target are both gone"
	case !clean(*tgt) || !e.sameOrigin(Origin{Store: it.Source.Store, Name: it.Source.Name},
		Origin{Store: tgt.Provenance.SourceStore, Name: tgt.Provenance.SourceName}):
		it.Action, it.Reason = ActKeep, "the source is gone; the target is not keyferry's copy of it"
	case it.rule.Delete == DeletePropagate:
		it.Action, it.Reason = ActDelete, "the source is gone (delete: propagate)"
	default:
		it.Action, it.Reason = ActKeep, "the source is gone; the replica stays (delete: keep)"
	}
}

// loadValue reads the source's value once if any item writes it, re-deciding if the source changed since
// it was described, then checks each write against its target's limits.
func (e *Engine) loadValue(ctx context.Context, u *unit) {
	need := false
	for _, it := range u.items {
		need = need || it.Action == ActCreate || it.Action == ActUpdate
	}
	if !need {
		return
	}
	var sec store.Secret
	err := e.gated(ctx, u.store, func() (err error) {
		// With the metadata in hand, the value alone is enough (one call instead of two in AWS), as long
		// as it is still the version that was described.
		if vr, ok := e.stores[u.store].(store.ValueReader); ok && u.meta.Version != "" {
			v, ver, err := vr.GetValue(ctx, u.name)
			if err != nil {
				return err
			}
			if ver == u.meta.Version {
				sec.Value, sec.Metadata = v, u.meta
				return nil
			}
		}
		sec, err = e.stores[u.store].Get(ctx, u.name)
		return err
	})
	if err != nil {
		for _, it := range u.items {
			if it.Action == ActCreate || it.Action == ActUpdate {
				it.Action, it.Reason = ActSkip, "cannot read the source: "+reason(err)
				e.failures(u, it, err)
			}
		}
		return
	}
	if sec.Metadata.Version != u.meta.Version || u.meta.Version == "" {
		// The listing was older than the value (or had no version): decide again on what was read.
		u.meta = sec.Metadata
		o := originOf(u.store, u.meta)
		for _, it := range u.items {
			if it.Action == ActRefuse || it.err != nil {
				continue
			}
			it.srcMeta, it.Source.Version = u.meta, u.meta.Version
			it.Origin = &o
			e.decide(it, o)
		}
	}
	for _, it := range u.items {
		if it.Action != ActCreate && it.Action != ActUpdate {
			continue
		}
		e.prepare(ctx, u, it, sec.Value)
	}
}

// prepare builds what an item writes and refuses what the target cannot hold.
func (e *Engine) prepare(ctx context.Context, u *unit, it *Item, v store.Value) {
	t := it.rule.To[it.ti]
	tgt := e.stores[t.Store]
	if it.Action == ActUpdate && e.sameValueInFlight(ctx, u, it, v) {
		it.Action, it.Reason = ActUnchanged, "the target already holds this value (the source's record of it is being written)"
		return
	}
	it.tags = propagateTags(u.meta.Tags, t.Tags)
	if it.rule.Granularity == JSONKeys {
		merged, why, err := e.mergeKeys(ctx, it, v)
		if err != nil {
			it.Action, it.Reason = ActSkip, "cannot read the target to merge keys: "+reason(err)
			e.failures(u, it, err)
			return
		}
		if why != "" {
			it.Action, it.Reason = ActRefuse, why
			return
		}
		v = merged
	}
	if err := store.CheckPut(tgt, it.Target.Name, v, store.PutOptions{Tags: it.tags, Provenance: e.provenance(it)}); err != nil {
		it.Action, it.Reason = ActRefuse, "the target cannot hold it: "+reason(err)
		return
	}
	it.value = v
}

// sameValueInFlight reads the target's value in the one ambiguous case: the source or the target is a
// replica whose provenance does not (yet) name its current version — the state between a store's value
// write and its provenance write (GCP: AddSecretVersion then UpdateSecret; Vault: data then metadata) — so
// it looks like a new write. If the target already holds the same bytes, there is nothing to copy, and two
// functions do not start copying one value back and forth. A real foreign write differs and is copied.
func (e *Engine) sameValueInFlight(ctx context.Context, u *unit, it *Item, v store.Value) bool {
	inFlight := func(md store.Metadata) bool { return md.Provenance != nil && md.Provenance.Origin() && !clean(md) }
	if it.tgtMeta == nil || !inFlight(u.meta) && !inFlight(*it.tgtMeta) {
		return false
	}
	var cur store.Secret
	err := e.gated(ctx, it.Target.Store, func() (err error) { cur, err = e.stores[it.Target.Store].Get(ctx, it.Target.Name); return err })
	return err == nil && cur.Value.Equal(v)
}

func (e *Engine) provenance(it *Item) *store.Provenance {
	if it.Origin == nil {
		return nil
	}
	return &store.Provenance{SourceStore: it.Origin.Store, SourceName: it.Origin.Name, SourceVersion: it.Origin.Version,
		Written: it.Origin.Written}
}

// mergeKeys merges the rule's keys of the source's JSON object into the target's object.
func (e *Engine) mergeKeys(ctx context.Context, it *Item, v store.Value) (store.Value, string, error) {
	var src map[string]json.RawMessage
	if v.IsBinary() || json.Unmarshal(v.Bytes(), &src) != nil || src == nil {
		return store.Value{}, "granularity: keys needs the source to be a JSON object, and it is not", nil
	}
	dst := map[string]json.RawMessage{}
	if it.tgtMeta != nil {
		cur, err := e.stores[it.Target.Store].Get(ctx, it.Target.Name)
		if err != nil {
			return store.Value{}, "", err
		}
		if cur.Value.IsBinary() || json.Unmarshal(cur.Value.Bytes(), &dst) != nil || dst == nil {
			return store.Value{}, "granularity: keys needs the target to be a JSON object, and it is not", nil
		}
	}
	keys := it.rule.Keys
	if len(keys) == 0 {
		keys = slices.Collect(maps.Keys(src))
	}
	for _, k := range keys {
		if raw, ok := src[k]; ok {
			dst[k] = raw
		}
	}
	b, err := json.Marshal(dst)
	if err != nil {
		return store.Value{}, "", err
	}
	return store.Text(string(b)), "", nil
}

// propagateTags applies a target's tag policy to the source's user tags.
func propagateTags(src map[string]string, tp TagPolicy) map[string]string {
	out := map[string]string{}
	if tp.Propagate {
		for k, v := range src {
			if len(tp.Include) > 0 && !slices.Contains(tp.Include, k) || slices.Contains(tp.Exclude, k) ||
				strings.HasPrefix(k, store.StatePrefix) { // keyferry's own state (rotation) stays with its secret
				continue
			}
			if n, ok := tp.Rename[k]; ok {
				k = n
			}
			out[k] = v
		}
	}
	maps.Copy(out, tp.Set)
	if len(out) == 0 {
		return nil
	}
	return out
}

// collisions refuses every write of two different sources that land on one target name. Sources in
// stores that replicate to each other are one secret seen from two places, not a collision.
func (e *Engine) collisions(p *Plan) {
	type key struct{ store, name string }
	bySrc := map[key][]*Item{}
	for _, it := range p.Items {
		if it.Action == ActRefuse && strings.HasPrefix(it.Reason, "the target cannot hold this name") {
			continue
		}
		k := key{it.Target.Store, e.stores[it.Target.Store].Limits().CanonicalName(it.Target.Name)}
		bySrc[k] = append(bySrc[k], it)
	}
	for _, items := range bySrc {
		for i, a := range items {
			for _, b := range items[i+1:] {
				if a.Source.Store == b.Source.Store && a.Source.Name == b.Source.Name {
					continue
				}
				if a.Source.Store != b.Source.Store && (e.peers[a.Source.Store][b.Source.Store] || e.peers[b.Source.Store][a.Source.Store]) {
					continue
				}
				for _, it := range []*Item{a, b} {
					other := b
					if it == b {
						other = a
					}
					it.Action = ActRefuse
					it.Reason = fmt.Sprintf("name collision: %s and %s both map to %s/%s; give one a name template",
						it.Source.Store+"/"+it.Source.Name, other.Source.Store+"/"+other.Source.Name, it.Target.Store, it.Target.Name)
					it.value = store.Value{}
				}
			}
		}
	}
}

// reason renders an error for a plan: store errors say what and how to fix; nothing carries a value.
func reason(err error) string {
	var se *store.Error
	if errors.As(err, &se) {
		s := se.Detail
		if s == "" {
			s = se.Error()
		}
		if se.Hint != "" {
			s += " (" + se.Hint + ")"
		}
		return s
	}
	return err.Error()
}

func failure(src Ref, tgt *Ref, err error) Failure {
	return Failure{Source: src, Target: tgt, Error: reason(err), Retryable: transient(err), err: err}
}

// transient reports whether trying again later can succeed.
func transient(err error) bool {
	return errors.Is(err, store.ErrThrottled) || errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, store.ErrConflict) || errors.Is(err, context.DeadlineExceeded)
}
