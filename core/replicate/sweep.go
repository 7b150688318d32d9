package replicate

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// SweepOptions configure Sweep.
type SweepOptions struct {
	// Deep re-checks every replica, including sources whose Synced mark says they are replicated. A
	// normal sweep trusts the marks and the replicas' own change events for foreign writes; run a deep
	// sweep now and then (daily, say) to catch foreign writes whose events were lost.
	Deep bool
	// Progress is called after each source secret is settled; nil: none.
	Progress func(done, total int)
}

// Sweep reconciles every replication from metadata: it lists the sources, skips those marked as
// replicated at their current version (unless Deep), plans and applies the rest, and finds replicas whose
// source is gone (for rules that propagate deletes). It reads a value only to copy it. Work runs
// concurrently under an adaptive limit that halves on throttling and grows while calls succeed, and
// secrets that fail transiently are retried with backoff, so a sweep converges under throttling and
// injected faults without exceeding the stores' quotas for long.
func (e *Engine) Sweep(ctx context.Context, opts SweepOptions) (*Result, error) {
	res := newResult()
	units, fails := e.sources(ctx, Scope{}, true)
	res.Failures = append(res.Failures, fails...)
	units = append(units, e.orphans(ctx, units, res)...)

	var todo []*unit
	for _, u := range units {
		if !opts.Deep && !u.missing {
			if marked, known := u.marked(e.stores[u.store].Limits()); known && marked || e.covered(u) {
				res.Skipped++
				continue
			}
		}
		todo = append(todo, u)
	}
	if len(todo) == 0 {
		return res, res.Err()
	}

	lim := newAIMD(e.opts.MaxConcurrency)
	type job struct {
		u       *unit
		attempt int
	}
	queue := make(chan job, len(todo))
	for _, u := range todo {
		queue <- job{u: u}
	}
	var (
		wg      sync.WaitGroup
		pending = len(todo)
		done    int
		mu      sync.Mutex
	)
	finish := func() {
		mu.Lock()
		pending--
		done++
		d := done
		if pending == 0 {
			close(queue)
		}
		mu.Unlock()
		if opts.Progress != nil {
			opts.Progress(d, len(todo))
		}
	}
	workers := e.opts.MaxConcurrency
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				if err := lim.acquire(ctx); err != nil {
					j.u.items = nil
					res.mu.Lock()
					res.Failures = append(res.Failures, failure(Ref{Store: j.u.store, Name: j.u.name}, nil, err))
					res.mu.Unlock()
					finish()
					continue
				}
				u := j.u
				if !opts.Deep && !u.missing && u.meta.Version == "" {
					// The listing could not tell whether the mark is current: describe the source.
					if md, err := e.stores[u.store].Describe(ctx, u.name); err == nil {
						u.meta = md
						if marked, _ := u.marked(e.stores[u.store].Limits()); marked {
							lim.release(nil)
							res.mu.Lock()
							res.Skipped++
							res.mu.Unlock()
							finish()
							continue
						}
					}
				}
				e.planUnit(ctx, u, true)
				e.applyUnit(ctx, u, res)
				err := unitErr(u)
				lim.release(err)
				if err != nil && transient(err) && j.attempt+1 < e.opts.MaxAttempts && ctx.Err() == nil {
					wait := backoff(e.backoffBase, j.attempt, err)
					go func() {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
						}
						queue <- job{u: u, attempt: j.attempt + 1}
					}()
					continue
				}
				res.addUnit(u, false)
				finish()
			}
		}()
	}
	wg.Wait()
	return res, res.Err()
}

// unitErr is the first failure of a unit's items.
func unitErr(u *unit) error {
	for _, it := range u.items {
		if it.err != nil {
			return it.err
		}
	}
	return u.markErr
}

// backoff is how long to wait before retrying a unit: the store's Retry-After when it gave one, else
// exponential from 100 ms with jitter, capped at 10 s.
func backoff(base time.Duration, attempt int, err error) time.Duration {
	var se *store.Error
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return se.RetryAfter
	}
	d := base << min(attempt, 7)
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

// orphans finds replicas whose source no longer exists, for rules that propagate deletes: it lists each
// such rule's targets and plans a missing-source unit for every clean replica of a listed-as-absent source.
func (e *Engine) orphans(ctx context.Context, units []*unit, res *Result) []*unit {
	present := map[string]bool{}
	for _, u := range units {
		present[u.store+"\x00"+u.name] = true
	}
	seen := map[string]bool{}
	var out []*unit
	for _, r := range e.rules {
		if r.Delete != DeletePropagate {
			continue
		}
		for _, t := range r.To {
			for md, err := range e.stores[t.Store].List(ctx, store.ListOptions{}) {
				if err != nil {
					res.Failures = append(res.Failures, failure(Ref{Store: t.Store, Name: "*"}, nil, err))
					break
				}
				p := md.Provenance
				if !p.Origin() || p.SourceStore != r.From.Store || !r.selectsName(p.SourceName) {
					continue
				}
				k := r.From.Store + "\x00" + p.SourceName
				if present[k] || seen[k] {
					continue
				}
				seen[k] = true
				// Confirm the source is gone (the listing may be filtered by tags the source no longer has).
				if _, err := e.stores[r.From.Store].Describe(ctx, p.SourceName); err == nil || !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrSoftDeleted) {
					continue
				}
				var rules []*rule
				for _, rr := range e.rules {
					if rr.From.Store == r.From.Store && rr.selectsName(p.SourceName) {
						rules = append(rules, rr)
					}
				}
				out = append(out, &unit{store: r.From.Store, name: p.SourceName, missing: true,
					meta: store.Metadata{Name: p.SourceName}, rules: rules})
			}
		}
	}
	return out
}

// aimd is an adaptive concurrency limit: additive increase while calls succeed, multiplicative decrease
// on throttling.
type aimd struct {
	mu    sync.Mutex
	cond  *sync.Cond
	limit float64
	max   float64
	inUse int
}

func newAIMD(max int) *aimd {
	a := &aimd{limit: float64(max) / 4, max: float64(max)}
	if a.limit < 1 {
		a.limit = 1
	}
	a.cond = sync.NewCond(&a.mu)
	return a
}

func (a *aimd) acquire(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for float64(a.inUse) >= a.limit {
		if err := ctx.Err(); err != nil {
			return err
		}
		a.cond.Wait()
	}
	a.inUse++
	return nil
}

func (a *aimd) release(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inUse--
	if errors.Is(err, store.ErrThrottled) {
		// Halve the concurrency; the throttling store's own gate makes its callers wait out Retry-After,
		// so the other stores are not paused with it.
		a.limit = max(1, a.limit/2)
	} else if err == nil {
		a.limit = min(a.max, a.limit+1/a.limit)
	}
	a.cond.Broadcast()
}

// Status is the state of one replica, decided from metadata alone.
type Status struct {
	Rule   string `json:"rule"`
	Source Ref    `json:"source"`
	Target Ref    `json:"target"`
	State  string `json:"state"` // in-sync, stale, missing, conflict, refused, newer, orphaned, unknown
	Reason string `json:"reason"`
}

// Status reports, for every replica in scope, whether it is in sync — from provenance only: it reads no
// value and writes nothing.
func (e *Engine) Status(ctx context.Context, sc Scope) ([]Status, error) {
	units, fails := e.sources(ctx, sc, false)
	var out []Status
	for _, u := range units {
		e.planUnit(ctx, u, false)
		for _, it := range u.items {
			st := map[Action]string{ActUnchanged: "in-sync", ActCreate: "missing", ActUpdate: "stale", ActConflict: "conflict",
				ActRefuse: "refused", ActSkip: "newer", ActDelete: "orphaned", ActKeep: "orphaned"}[it.Action]
			if it.err != nil {
				st = "unknown"
			}
			if it.Action == ActUpdate && it.rule.OnConflict == ConflictOverwrite && !clean(*it.tgtMeta) {
				st = "conflict"
			}
			if it.Action == ActSkip && it.rule.OnConflict == ConflictSkip && it.tgtMeta != nil && !clean(*it.tgtMeta) &&
				!e.peers[it.Target.Store][it.Source.Store] {
				st = "conflict"
			}
			out = append(out, Status{Rule: it.Rule, Source: it.Source, Target: it.Target, State: st, Reason: it.Reason})
		}
	}
	var err error
	if len(fails) > 0 {
		r := &Result{Failures: fails}
		err = r.Err()
	}
	return out, err
}
