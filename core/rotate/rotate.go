package rotate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
)

// cleanupTimeout bounds the calls a failing run makes to undo its work (they run even when the run's
// context is cancelled).
const cleanupTimeout = time.Minute

// target is one store a rotation writes: the primary (first) or a replica.
type target struct {
	ref     replicate.Ref
	st      store.Store
	staged  store.Staged // the store has version stages
	exists  bool         // the secret existed when the rotation was planned
	sibling string       // the pending sibling's name ("" when the store cannot hold one)
	sibErr  error        // why there is no sibling name
}

// pendingInStage reports whether the pending value goes in a version stage rather than a sibling.
func (t *target) pendingInStage() bool { return t.staged != nil && t.exists }

func siblingName(st store.Store, name string) (string, error) {
	return replicate.TargetName(replicate.Target{Store: st.Name(), Name: "{{ .Name }}" + PendingSuffix}, st.Name(), name, st.Limits())
}

func (e *Engine) newTarget(ctx context.Context, storeName, name string, primary bool) (*target, error) {
	st, ok := e.stores[storeName]
	if !ok {
		return nil, fmt.Errorf("store %q is not configured", storeName)
	}
	t := &target{ref: replicate.Ref{Store: storeName, Name: name}, st: st, exists: primary}
	t.staged, _ = st.(store.Staged)
	// Only a store with stages needs to know now whether the replica exists (its pending value is a
	// staged version of it, or a sibling when it does not exist yet); elsewhere the pending value is always
	// a sibling, and promotion looks at the replica itself.
	if !primary && t.staged != nil {
		_, err := st.Describe(ctx, name)
		switch {
		case err == nil:
			t.exists = true
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrSoftDeleted):
		default:
			return nil, err
		}
	}
	t.sibling, t.sibErr = siblingName(st, name)
	return t, nil
}

// plan lists the stores a rotation of p's secret writes (see planOnce), waiting out throttling until
// the lease's patience runs out.
func (e *Engine) plan(ctx context.Context, p *policy, name string, l *lease) ([]*target, error) {
	var targets []*target
	err := e.patient(ctx, l, func() (err error) { targets, err = e.planOnce(ctx, p, name); return err })
	return targets, err
}

// planOnce lists the stores a rotation of p's secret writes: the primary first, then every replica the
// replication rules keep of it, transitively (a replica's own replicas), each once.
func (e *Engine) planOnce(ctx context.Context, p *policy, name string) ([]*target, error) {
	prim, err := e.newTarget(ctx, p.Store, name, true)
	if err != nil {
		return nil, err
	}
	out := []*target{prim}
	if e.repl == nil {
		return out, nil
	}
	key := func(r replicate.Ref) string {
		return r.Store + "\x00" + e.stores[r.Store].Limits().CanonicalName(r.Name)
	}
	seen := map[string]bool{key(prim.ref): true}
	for queue := []replicate.Ref{prim.ref}; len(queue) > 0; queue = queue[1:] {
		refs, err := e.repl.Replicas(ctx, queue[0].Store, queue[0].Name)
		if err != nil {
			if queue[0] != prim.ref && (errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrSoftDeleted)) {
				continue // a replica that does not exist yet has no replicas of its own
			}
			return nil, err
		}
		for _, r := range refs {
			r.Version = ""
			if seen[key(r)] {
				continue
			}
			seen[key(r)] = true
			t, err := e.newTarget(ctx, r.Store, r.Name, false)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
			queue = append(queue, r)
		}
	}
	for _, t := range out {
		if !t.pendingInStage() && t.sibErr != nil {
			return nil, fmt.Errorf("%s: no name for the pending sibling: %w", t.ref, t.sibErr)
		}
	}
	return out, nil
}

// Rotate rotates one secret of a policy now, whether it is due or not: it generates a value, lands it as
// pending in the primary and every replica, runs the policy's test hook, then promotes it everywhere.
// A secret whose previous rotation was interrupted (an expired lease) is recovered instead: rolled back
// and rotated afresh, or rolled forward (finishing that rotation, generating nothing). A live lease held
// RotateRequested answers a cloud's request to rotate a secret (a GCP SECRET_ROTATE notification, a Key
// Vault SecretNearExpiry event) made at requested: a secret keyferry has rotated since then is not
// rotated again, so a redelivered or duplicate event changes nothing. A zero requested always rotates.
func (e *Engine) RotateRequested(ctx context.Context, policyName, secretName string, requested time.Time) (Result, error) {
	p, ok := e.byName[policyName]
	if ok && !requested.IsZero() && p.selects(secretName) {
		md, cur, err := e.readLease(ctx, p, secretName)
		if err != nil {
			return Result{Policy: p.Name, Store: p.Store, Name: secretName}, err
		}
		st, serr := stateOf(md)
		if serr == nil && (cur == nil || cur.Phase == PhaseDone) && !st.rotated.IsZero() &&
			!st.rotated.Before(requested.Truncate(time.Second)) {
			return Result{Policy: p.Name, Store: p.Store, Name: secretName, Version: md.Version,
				Skipped: "rotated at " + st.rotated.UTC().Format(time.RFC3339) + ", after the request"}, nil
		}
	}
	return e.Rotate(ctx, policyName, secretName)
}

// by another run is refused with a *LeaseError.
func (e *Engine) Rotate(ctx context.Context, policyName, secretName string) (Result, error) {
	p, ok := e.byName[policyName]
	if !ok {
		return Result{}, fmt.Errorf("rotation policy %q is not configured", policyName)
	}
	res := Result{Policy: p.Name, Store: p.Store, Name: secretName}
	if !p.selects(secretName) {
		return res, fmt.Errorf("rotation policy %s does not select %s/%s", p.Name, p.Store, secretName)
	}
	md, cur, err := e.readLease(ctx, p, secretName)
	if err != nil {
		return res, err
	}
	now := e.now()
	if cur != nil && cur.Phase != PhaseDone {
		if cur.live(now) {
			return res, e.heldErr(p, secretName, cur)
		}
		l, res, finished, err := e.recoverLease(ctx, p, secretName, cur, res)
		if finished || err != nil {
			return res, err
		}
		// Rotate afresh under the same lease, with a new pending version id.
		l.Seed, l.Pending = l.ID, pendingVersionID(l.ID)
		if err := e.setPhase(ctx, p, secretName, l, PhasePending); err != nil {
			e.giveUp(ctx, p, secretName, l, err)
			return res, err
		}
		return e.fresh(ctx, p, secretName, l, res)
	}
	l := freshLease(e.newID(), now.Add(p.ttl))
	if err := e.acquire(ctx, p, secretName, nil, l, &md); err != nil {
		return res, err
	}
	return e.fresh(ctx, p, secretName, l, res)
}

// recoverLease takes over the expired lease cur of an interrupted rotation and recovers it by its phase:
// promoting is finished (finished is then true: the rotation completed, or failed again), pending is
// rolled back, and the caller holds the returned lease.
func (e *Engine) recoverLease(ctx context.Context, p *policy, name string, cur *lease, res Result) (l *lease, _ Result, finished bool, _ error) {
	l = &lease{ID: e.newID(), Expiry: e.now().Add(p.ttl), Phase: cur.Phase, Pending: cur.Pending, Seed: cur.Seed}
	if err := e.acquire(ctx, p, name, cur, l, nil); err != nil {
		return nil, res, true, err
	}
	e.log.WarnContext(ctx, "recovering an interrupted rotation", "policy", p.Name, "store", p.Store, "name", name,
		"phase", cur.Phase, "expired", cur.Expiry.UTC().Format(time.RFC3339))
	if l.Phase == PhasePromoting {
		res.Recovered = RolledForward
		res, err := e.finish(ctx, p, name, l, nil, nil, res)
		return l, res, true, err
	}
	targets, err := e.plan(ctx, p, name, l)
	if err == nil {
		err = e.rollback(ctx, p, name, l, targets)
	}
	if err != nil {
		e.giveUp(ctx, p, name, l, err)
		return l, res, true, fmt.Errorf("rotate %s/%s: rolling back the interrupted rotation: %w", p.Store, name, err)
	}
	res.Recovered = RolledBack
	e.record(ctx, p, name, "", "rotate-rollback", "an interrupted rotation was rolled back", nil)
	return l, res, false, nil
}

// fresh runs a new rotation under lease l (phase pending).
func (e *Engine) fresh(ctx context.Context, p *policy, name string, l *lease, res Result) (Result, error) {
	targets, err := e.plan(ctx, p, name, l)
	if err != nil {
		return res, e.abort(ctx, p, name, l, nil, err)
	}
	raw, err := e.generate(p.Generate)
	if err != nil {
		return res, e.abort(ctx, p, name, l, targets, fmt.Errorf("generate: %w", err))
	}
	val := store.Text(string(raw))
	res.Generated = true
	for _, t := range targets {
		if err := e.patient(ctx, l, func() error { return e.landPending(ctx, p, name, l, t, val) }); err != nil {
			return res, e.abort(ctx, p, name, l, targets, scrub(fmt.Errorf("pending value in %s: %w", t.ref, err), val))
		}
	}
	if p.Test != "" {
		if err := e.opts.Hooks[p.Test](ctx, name, val); err != nil {
			return res, e.abort(ctx, p, name, l, targets, scrub(fmt.Errorf("test hook %s: %w", p.Test, err), val))
		}
	}
	if err := e.setPhase(ctx, p, name, l, PhasePromoting); err != nil {
		// Whether the phase was written decides between rolling back and forward: look.
		if _, cur, rerr := e.readLease(ctx, p, name); rerr != nil || cur == nil || cur.ID != l.ID || cur.Phase != PhasePromoting {
			return res, e.abort(ctx, p, name, l, targets, err)
		}
		l.Phase = PhasePromoting
	}
	return e.finish(ctx, p, name, l, targets, &val, res)
}

// abort undoes a rotation that failed before promotion: pending values discarded everywhere, the lease
// released. If that fails too, the lease is marked expired so that the next run rolls back.
func (e *Engine) abort(ctx context.Context, p *policy, name string, l *lease, targets []*target, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, cur, err := e.readLease(ctx, p, name); err == nil && cur != nil && cur.ID != l.ID {
		// Another run took the lease over (ours expired): what is pending is its business now.
		e.log.ErrorContext(ctx, "rotation failed after its lease was taken over; nothing undone", "policy", p.Name,
			"store", p.Store, "name", name, "error", cause.Error())
		return fmt.Errorf("rotate %s/%s: %w (%w: nothing undone)", p.Store, name, cause, errLeaseLost)
	}
	err := e.rollback(ctx, p, name, l, targets)
	if err == nil {
		err = e.release(ctx, p, name, l, false)
	}
	reason := "rotation failed before promotion; rolled back: " + cause.Error()
	if err != nil {
		e.giveUp(ctx, p, name, l, err)
		reason = "rotation failed before promotion; the rollback failed too and is left to the next run: " + err.Error()
	}
	e.record(ctx, p, name, "", "rotate-rollback", reason, nil)
	e.log.ErrorContext(ctx, "rotation rolled back", "policy", p.Name, "store", p.Store, "name", name, "error", cause.Error())
	if err != nil {
		return fmt.Errorf("rotate %s/%s: %w (rollback: %w)", p.Store, name, cause, err)
	}
	return fmt.Errorf("rotate %s/%s: %w (rolled back)", p.Store, name, cause)
}

// giveUp marks the lease expired after a failure the run cannot undo, so the next run recovers at once.
func (e *Engine) giveUp(ctx context.Context, p *policy, name string, l *lease, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := e.abandon(ctx, p, name, l); err != nil {
		e.log.ErrorContext(ctx, "cannot mark the rotation lease expired; the next run recovers once it expires",
			"policy", p.Name, "store", p.Store, "name", name, "until", l.Expiry.UTC().Format(time.RFC3339), "error", err.Error())
	}
	e.log.ErrorContext(ctx, "rotation interrupted; the next run recovers it", "policy", p.Name, "store", p.Store, "name", name,
		"phase", l.Phase, "error", cause.Error())
}

func (e *Engine) pendingProvenance(p *policy, name string, l *lease) *store.Provenance {
	return &store.Provenance{SourceStore: p.Store, SourceName: name, SourceVersion: l.Pending, Written: e.now().UTC()}
}

// landPending writes the pending value to one store: a version staged AWSPENDING, or the sibling.
func (e *Engine) landPending(ctx context.Context, p *policy, name string, l *lease, t *target, val store.Value) error {
	if t.pendingInStage() {
		_, err := t.staged.PutStaged(ctx, t.ref.Name, l.Pending, val, []string{stagePending})
		return err
	}
	// A sibling already holding this rotation's pending value (a repeated step) is left alone.
	md, derr := t.st.Describe(ctx, t.sibling)
	if derr == nil && md.Provenance.Origin() &&
		md.Provenance.SourceStore == p.Store && md.Provenance.SourceName == name && md.Provenance.SourceVersion == l.Pending {
		return nil
	}
	opts := store.PutOptions{Provenance: e.pendingProvenance(p, name, l)}
	var err error
	if cr, ok := t.st.(store.Creator); ok && errors.Is(derr, store.ErrNotFound) {
		// The usual case, known from the look above: a new sibling, created with its value and provenance
		// in fewer calls than Put (Secret Manager: two writes instead of a read and three writes).
		if _, err = cr.Create(ctx, t.sibling, val, opts); errors.Is(err, store.ErrAlreadyExists) {
			_, err = t.st.Put(ctx, t.sibling, val, opts)
		}
	} else {
		_, err = t.st.Put(ctx, t.sibling, val, opts)
	}
	if errors.Is(err, store.ErrSoftDeleted) {
		// A sibling deleted softly by an earlier rotation: purge it and write again.
		if rec, ok := t.st.(store.Recoverable); ok {
			if perr := rec.Purge(ctx, t.sibling); perr == nil {
				_, err = t.st.Put(ctx, t.sibling, val, opts)
			}
		}
	}
	return err
}

// rollback discards the pending value everywhere (replicas first, the primary last). The lease is kept.
func (e *Engine) rollback(ctx context.Context, p *policy, name string, l *lease, targets []*target) error {
	var errs []error
	for i := len(targets) - 1; i >= 0; i-- {
		t := targets[i]
		if t.staged != nil {
			if err := e.unstage(ctx, t, l.Pending); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.ref, err))
			}
		}
		if t.sibling != "" {
			if err := e.patient(ctx, l, func() error { return deleteSibling(ctx, t) }); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", replicate.Ref{Store: t.ref.Store, Name: t.sibling}, err))
			}
		}
	}
	return errors.Join(errs...)
}

// unstage takes AWSPENDING off the pending version by moving it onto the current version (the Staged
// interface cannot remove a stage; on the current version it means "no rotation in progress").
func (e *Engine) unstage(ctx context.Context, t *target, pending string) error {
	if vs, ok := t.st.(store.Versioned); ok {
		held := false
		for vi, err := range vs.Versions(ctx, t.ref.Name) {
			if err != nil {
				if gone(err) {
					return nil
				}
				return err
			}
			if vi.Version == pending {
				held = slices.Contains(vi.Stages, stagePending) && !slices.Contains(vi.Stages, stageCurrent)
				break
			}
		}
		if !held {
			return nil
		}
	}
	md, err := t.st.Describe(ctx, t.ref.Name)
	if err != nil {
		if gone(err) {
			return nil
		}
		return err
	}
	if md.Version == "" || md.Version == pending {
		return nil
	}
	return t.staged.MoveStage(ctx, t.ref.Name, stagePending, md.Version)
}

// deleteSibling removes a target's pending sibling (nothing to do when it is gone already).
func deleteSibling(ctx context.Context, t *target) error {
	if err := t.st.Delete(ctx, t.sibling, store.DeleteOptions{Force: true}); err != nil && !gone(err) {
		return err
	}
	return nil
}

// patienceMargin is how long before its lease expires a rotation stops waiting out throttling, and
// maxThrottledTries bounds the tries of one step.
const (
	patienceMargin    = time.Minute
	maxThrottledTries = 30
)

// patient runs an idempotent step, and again while a store throttles it (the store's own retries are
// spent), after the wait the store asked for (a second when it names none) plus up to half again at
// random, so that the rotations throttled together spread out. It gives up when a wait would end within
// patienceMargin of the lease's expiry (the lease must outlive the step), after maxThrottledTries tries,
// or when ctx ends, returning the throttling error.
func (e *Engine) patient(ctx context.Context, l *lease, step func() error) error {
	for try := 1; ; try++ {
		err := step()
		if !errors.Is(err, store.ErrThrottled) || try >= maxThrottledTries {
			return err
		}
		wait := time.Second
		var se *store.Error
		if errors.As(err, &se) && se.RetryAfter > 0 {
			wait = se.RetryAfter
		}
		wait += rand.N(wait/2 + 1)
		if l != nil && e.now().Add(wait).After(l.Expiry.Add(-patienceMargin)) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

func gone(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrSoftDeleted)
}

// finish promotes (phase promoting) and completes the rotation. val is the pending value when the run
// generated it; nil reads it back from the primary. targets nil plans them.
func (e *Engine) finish(ctx context.Context, p *policy, name string, l *lease, targets []*target, val *store.Value, res Result) (Result, error) {
	var err error
	if targets == nil {
		targets, err = e.plan(ctx, p, name, l)
	}
	var version string
	if err == nil {
		version, err = e.promote(ctx, p, name, l, targets, val, &res)
	}
	if err == nil {
		err = e.release(ctx, p, name, l, true)
	}
	if err != nil {
		if val != nil {
			err = scrub(err, *val)
		}
		e.giveUp(ctx, p, name, l, err)
		e.record(ctx, p, name, version, "rotate-fail", "promotion did not complete; the next run finishes it: "+err.Error(), nil)
		return res, fmt.Errorf("rotate %s/%s: promotion did not complete (the next run finishes it): %w", p.Store, name, err)
	}
	res.Rotated = true
	reason := "rotated"
	if res.Recovered == RolledForward {
		reason = "finished an interrupted rotation"
	}
	e.record(ctx, p, name, version, "rotate", reason, nil)
	for i := range res.Replicas {
		e.record(ctx, p, name, version, "rotate", reason, &res.Replicas[i])
	}
	e.log.InfoContext(ctx, reason, "policy", p.Name, "store", p.Store, "name", name, "version", version,
		"replicas", len(res.Replicas), "recovered", res.Recovered)
	return res, nil
}

// promote makes the pending value current: the primary first, then every replica with provenance naming
// the primary's new version, then the siblings go. Each step checks whether it is done already, so a run
// that finishes an interrupted promotion repeats nothing. It returns the primary's new version.
func (e *Engine) promote(ctx context.Context, p *policy, name string, l *lease, targets []*target, val *store.Value, res *Result) (string, error) {
	prim := targets[0]
	if prim.staged != nil {
		// MoveStage leaves a stage already on the version alone.
		if err := prim.staged.MoveStage(ctx, name, stageCurrent, l.Pending); err != nil {
			return "", fmt.Errorf("promote %s: %w", prim.ref, err)
		}
	} else {
		md, err := prim.st.Describe(ctx, name)
		if err != nil {
			return "", err
		}
		pending := val
		if pending == nil {
			sib, err := prim.st.Get(ctx, prim.sibling)
			switch {
			case err == nil:
				cur, err := prim.st.Get(ctx, name)
				if err != nil {
					return "", err
				}
				if !cur.Value.Equal(sib.Value) {
					pending = &sib.Value
				}
			case gone(err):
				// The primary's sibling goes last, once every store is promoted: nothing left to write here.
			default:
				return "", err
			}
		}
		if pending != nil {
			// The whole tag set, not just the lease: where tags belong to each version (Key Vault) the new
			// version carries exactly these, and some stores replace the tag set on a write (Secret
			// Manager's labels, Vault's custom metadata), so the user's tags must go along.
			tags := maps.Clone(md.Tags)
			if tags == nil {
				tags = map[string]string{}
			}
			enc, err := l.encode(prim.st.Limits())
			if err != nil {
				return "", err
			}
			tags[TagRotation] = enc
			if _, err := prim.st.Put(ctx, name, *pending, store.PutOptions{Tags: tags}); err != nil {
				return "", fmt.Errorf("promote %s: %w", prim.ref, err)
			}
		}
	}
	// Everything else copies what the primary now holds.
	cur, err := prim.st.Get(ctx, name)
	if err != nil {
		return "", err
	}
	version, written := cur.Metadata.Version, cur.Metadata.Updated
	if written.IsZero() {
		written = e.now()
	}
	res.Version = version
	origin := store.Provenance{SourceStore: p.Store, SourceName: name, SourceVersion: version, Written: written.UTC()}
	for _, t := range targets[1:] {
		var ref replicate.Ref
		err := e.patient(ctx, l, func() (err error) { ref, err = e.promoteReplica(ctx, t, l, cur.Value, origin); return err })
		if err != nil {
			return version, fmt.Errorf("promote %s: %w", t.ref, err)
		}
		res.Replicas = append(res.Replicas, ref)
	}
	// The siblings go: the replicas' first, the primary's last (its presence tells a recovering run that
	// promotion may not be complete).
	for i := len(targets) - 1; i >= 0; i-- {
		t := targets[i]
		if t.pendingInStage() || t.sibling == "" {
			continue
		}
		if err := e.patient(ctx, l, func() error { return deleteSibling(ctx, t) }); err != nil {
			return version, fmt.Errorf("delete the pending sibling %s/%s: %w", t.ref.Store, t.sibling, err)
		}
	}
	return version, nil
}

// promoted reports whether a replica already holds the primary's new version, written by keyferry.
func promoted(md store.Metadata, origin store.Provenance) bool {
	p := md.Provenance
	return p.Origin() && p.SourceStore == origin.SourceStore && p.SourceName == origin.SourceName &&
		p.SourceVersion == origin.SourceVersion && (p.ReplicaVersion == "" || md.Version == "" || p.ReplicaVersion == md.Version)
}

func (e *Engine) promoteReplica(ctx context.Context, t *target, l *lease, val store.Value, origin store.Provenance) (replicate.Ref, error) {
	ref := t.ref
	md, err := t.st.Describe(ctx, t.ref.Name)
	exists := err == nil
	switch {
	case exists && promoted(md, origin):
		ref.Version = md.Version
		if t.pendingInStage() && md.Version != l.Pending {
			// Someone else copied the new value here first (a replication run racing this promotion,
			// set off by the primary's change event): the pending version is never promoted, so it must
			// not keep AWSPENDING, which would look like a rotation in progress.
			if err := e.unstage(ctx, t, l.Pending); err != nil {
				return ref, err
			}
		}
		return ref, nil
	case err != nil && !gone(err):
		return ref, err
	case errors.Is(err, store.ErrSoftDeleted):
		if rec, ok := t.st.(store.Recoverable); ok {
			if err := rec.Recover(ctx, t.ref.Name); err != nil {
				return ref, err
			}
			if md, err = t.st.Describe(ctx, t.ref.Name); err != nil {
				return ref, err
			}
			exists = true
		}
	}
	prov := origin
	if t.staged != nil && exists {
		// AWSCURRENT moves onto the pending version (written now if it is not there), then the provenance
		// records it.
		if err := t.staged.MoveStage(ctx, t.ref.Name, stageCurrent, l.Pending); err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				return ref, err
			}
			if _, err := t.staged.PutStaged(ctx, t.ref.Name, l.Pending, val, []string{stageCurrent}); err != nil {
				return ref, err
			}
		}
		mu, ok := t.st.(store.MetadataUpdater)
		if !ok {
			return ref, fmt.Errorf("the store cannot record provenance without a write")
		}
		prov.ReplicaVersion = l.Pending
		if err := mu.UpdateMetadata(ctx, t.ref.Name, md.Tags, &prov); err != nil {
			return ref, err
		}
		ref.Version = l.Pending
		return ref, nil
	}
	var tags map[string]string
	if exists && t.st.Limits().MetadataPerVersion {
		tags = md.Tags // the new version carries exactly these
	}
	opts := store.PutOptions{Tags: tags, Provenance: &prov}
	if cas, ok := t.st.(store.CompareAndSwapper); ok {
		// Write only over what was just looked at, so that a replication run copying the same value in
		// between (set off by the primary's change event) does not make this a second new version.
		expect := ""
		if exists {
			expect = md.Version
		}
		out, err := cas.PutIf(ctx, t.ref.Name, val, opts, expect)
		if err == nil {
			ref.Version = out.Version
			return ref, nil
		}
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrAlreadyExists) {
			return ref, err
		}
		if md, err := t.st.Describe(ctx, t.ref.Name); err == nil && promoted(md, origin) {
			ref.Version = md.Version
			return ref, nil
		}
		// Another value landed meanwhile: the promotion overwrites it, as below.
	}
	out, err := t.st.Put(ctx, t.ref.Name, val, opts)
	if err != nil {
		return ref, err
	}
	ref.Version = out.Version
	return ref, nil
}
