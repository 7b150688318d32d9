package rotate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// Item is a secret due for rotation.
type Item struct {
	Policy string    `json:"policy"`
	Store  string    `json:"store"`
	Name   string    `json:"name"`
	Last   time.Time `json:"last"`   // the last completed rotation, or the value's own time when none is recorded
	Since  string    `json:"since"`  // where Last comes from: "rotated" (keyferry_rotated), "updated" or "created"
	DueAt  time.Time `json:"due_at"` // when it became due
	Reason string    `json:"reason"`
}

// Due lists the secrets due for rotation now, policy by policy, from the primaries' metadata alone (one
// listing per policy; no value is read). A secret whose rotation was interrupted (an expired lease) is
// due too; one whose rotation is running (a live lease) is not.
func (e *Engine) Due(ctx context.Context) ([]Item, error) {
	now := e.now()
	var out []Item
	var errs []error
	for _, p := range e.policies {
		for md, err := range e.stores[p.Store].List(ctx, store.ListOptions{Prefix: p.prefix}) {
			if err != nil {
				errs = append(errs, fmt.Errorf("rotate policy %s: list %s: %w", p.Name, p.Store, err))
				break
			}
			if !p.selects(md.Name) {
				continue
			}
			if it, due := e.dueItem(p, md, now); due {
				out = append(out, it)
			}
		}
	}
	return out, errors.Join(errs...)
}

// dueItem decides whether the secret with this metadata is due under p at now.
func (e *Engine) dueItem(p *policy, md store.Metadata, now time.Time) (Item, bool) {
	it := Item{Policy: p.Name, Store: p.Store, Name: md.Name}
	st, err := stateOf(md)
	if err != nil {
		// Rotate refuses it with the same message; listing it makes the problem visible.
		it.DueAt, it.Reason = now, err.Error()
		return it, true
	}
	it.Last, it.Since = lastRotation(md, st)
	if l := st.lease; l != nil && l.Phase != PhaseDone {
		if l.live(now) {
			return it, false
		}
		it.DueAt, it.Reason = l.Expiry, "an interrupted rotation (phase "+l.Phase+") must be finished"
		return it, true
	}
	it.DueAt, it.Reason = p.next(it.Last)
	return it, !it.DueAt.After(now)
}

// RotateDue rotates every secret Due lists, up to Options.Concurrency at a time. A secret whose lease
// another run holds is left to that run (not an error). It returns what each rotation did, in Due's order,
// and the failures joined.
func (e *Engine) RotateDue(ctx context.Context) ([]Result, error) {
	items, err := e.Due(ctx)
	results := make([]Result, len(items))
	errs := make([]error, len(items))
	sem := make(chan struct{}, e.concurrency)
	var wg sync.WaitGroup
	for i, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i], errs[i] = e.Rotate(ctx, it.Policy, it.Name)
		}()
	}
	wg.Wait()
	out := make([]Result, 0, len(items))
	all := []error{err}
	for i, it := range items {
		if errors.Is(errs[i], ErrLeaseHeld) {
			e.log.InfoContext(ctx, "rotation left to the run holding the lease", "policy", it.Policy, "store", it.Store,
				"name", it.Name, "error", errs[i].Error())
			continue
		}
		out = append(out, results[i])
		all = append(all, errs[i])
	}
	return out, errors.Join(all...)
}
