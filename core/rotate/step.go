package rotate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keyferry/keyferry/core/store"
)

// The steps of Secrets Manager's rotation protocol.
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
)

// Step runs one step of Secrets Manager's rotation protocol for secretID (a name or an ARN) with the
// version id Secrets Manager chose (clientRequestToken), so that Secrets Manager's own rotation schedule
// drives keyferry. The token is the rotation's lease id and pending version id; every step is idempotent:
//
//   - createSecret takes the lease and writes a generated value as version token, staged AWSPENDING
//     (nothing when that version exists);
//   - setSecret lands the pending value in every replica (its sibling, or AWSPENDING in a staged store);
//   - testSecret runs the policy's test hook on it;
//   - finishSecret promotes: AWSCURRENT moves to the token's version, then every replica, then the
//     siblings go and the lease is released.
//
// An interrupted keyferry rotation of the secret (an expired lease of another id) is recovered by
// createSecret before it starts; a live one is refused with a *LeaseError.
func (e *Engine) Step(ctx context.Context, step, secretID, clientRequestToken string) error {
	token := clientRequestToken
	if token == "" {
		return errors.New("rotation step: no ClientRequestToken")
	}
	p, name, err := e.resolveStaged(ctx, secretID)
	if err != nil {
		return err
	}
	switch step {
	case StepCreate:
		return e.stepCreate(ctx, p, name, token)
	case StepSet:
		l, val, err := e.stepPending(ctx, p, name, token)
		if err != nil {
			return err
		}
		targets, err := e.plan(ctx, p, name, l)
		if err != nil {
			return err
		}
		for _, t := range targets[1:] {
			if err := e.patient(ctx, l, func() error { return e.landPending(ctx, p, name, l, t, val) }); err != nil {
				return scrub(fmt.Errorf("setSecret %s/%s: pending value in %s: %w", p.Store, name, t.ref, err), val)
			}
		}
		return nil
	case StepTest:
		_, val, err := e.stepPending(ctx, p, name, token)
		if err != nil || p.Test == "" {
			return err
		}
		if err := e.opts.Hooks[p.Test](ctx, name, val); err != nil {
			return scrub(fmt.Errorf("testSecret %s/%s: test hook %s: %w", p.Store, name, p.Test, err), val)
		}
		return nil
	case StepFinish:
		return e.stepFinish(ctx, p, name, token)
	}
	return fmt.Errorf("rotation step %q: want %s, %s, %s or %s", step, StepCreate, StepSet, StepTest, StepFinish)
}

func (e *Engine) stepCreate(ctx context.Context, p *policy, name, token string) error {
	_, cur, err := e.readLease(ctx, p, name)
	if err != nil {
		return err
	}
	if cur != nil && cur.Phase != PhaseDone && cur.ID != token {
		if cur.live(e.now()) {
			return e.heldErr(p, name, cur)
		}
		l, _, finished, err := e.recoverLease(ctx, p, name, cur, Result{Policy: p.Name, Store: p.Store, Name: name})
		if err != nil {
			return err
		}
		if !finished {
			if err := e.release(ctx, p, name, l, false); err != nil {
				return err
			}
		}
	}
	l := &lease{ID: token, Expiry: e.now().Add(p.ttl), Phase: PhasePending, Pending: token}
	if cur != nil && cur.ID == token {
		l.Phase = cur.Phase // a repeated step
	}
	if err := e.acquire(ctx, p, name, nil, l, nil); err != nil {
		return err
	}
	vs, ok := e.stores[p.Store].(store.Versioned)
	if !ok {
		return fmt.Errorf("store %q does not read versions", p.Store)
	}
	if _, err := vs.GetVersion(ctx, name, token); err == nil {
		return nil // created already
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	raw, err := e.generate(p.Generate)
	if err != nil {
		return fmt.Errorf("createSecret %s/%s: generate: %w", p.Store, name, err)
	}
	val := store.Text(string(raw))
	staged := e.stores[p.Store].(store.Staged)
	if _, err := staged.PutStaged(ctx, name, token, val, []string{stagePending}); err != nil {
		return scrub(fmt.Errorf("createSecret %s/%s: %w", p.Store, name, err), val)
	}
	e.log.InfoContext(ctx, "pending value created", "policy", p.Name, "store", p.Store, "name", name, "version", token)
	return nil
}

// stepPending checks that the token holds the lease (renewing it) and reads the pending value.
func (e *Engine) stepPending(ctx context.Context, p *policy, name, token string) (*lease, store.Value, error) {
	_, cur, err := e.readLease(ctx, p, name)
	if err != nil {
		return nil, store.Value{}, err
	}
	if cur == nil || cur.ID != token || cur.Phase == PhaseDone {
		return nil, store.Value{}, fmt.Errorf("%s/%s: no keyferry rotation holds the lease for this token: run createSecret first", p.Store, name)
	}
	l := *cur
	if err := e.setPhase(ctx, p, name, &l, l.Phase); err != nil {
		return nil, store.Value{}, err
	}
	sec, err := e.stores[p.Store].(store.Versioned).GetVersion(ctx, name, token)
	if err != nil {
		return nil, store.Value{}, err
	}
	return &l, sec.Value, nil
}

func (e *Engine) stepFinish(ctx context.Context, p *policy, name, token string) error {
	md, cur, err := e.readLease(ctx, p, name)
	if err != nil {
		return err
	}
	if cur == nil || cur.ID != token || cur.Phase == PhaseDone {
		if md.Version == token {
			return nil // finished already
		}
		return fmt.Errorf("%s/%s: no keyferry rotation holds the lease for this token: run createSecret first", p.Store, name)
	}
	l := *cur
	if l.Phase != PhasePromoting {
		if err := e.setPhase(ctx, p, name, &l, PhasePromoting); err != nil {
			return err
		}
	}
	_, err = e.finish(ctx, p, name, &l, nil, nil, Result{Policy: p.Name, Store: p.Store, Name: name})
	return err
}

// resolveStaged finds the policy and secret name of a Secrets Manager secret id (a name, or an ARN whose
// last part is the name and Secrets Manager's 6-character suffix).
func (e *Engine) resolveStaged(ctx context.Context, secretID string) (*policy, string, error) {
	name := secretID
	if strings.HasPrefix(secretID, "arn:") {
		parts := strings.SplitN(secretID, ":", 7)
		if len(parts) != 7 || parts[5] != "secret" {
			return nil, "", fmt.Errorf("rotation step: %q is not a Secrets Manager secret ARN", secretID)
		}
		name = parts[6]
		if n := len(name); n > 7 && name[n-7] == '-' {
			name = name[:n-7]
		}
	}
	var found []*policy
	for _, p := range e.policies {
		if _, ok := e.stores[p.Store].(store.Staged); ok && p.selects(name) {
			found = append(found, p)
		}
	}
	if len(found) > 1 {
		// Several stores with stages: the one holding the secret.
		var holders []*policy
		for _, p := range found {
			if _, err := e.stores[p.Store].Describe(ctx, name); err == nil {
				holders = append(holders, p)
			}
		}
		found = holders
	}
	switch len(found) {
	case 0:
		return nil, "", fmt.Errorf("rotation step for %s: no rotation policy of a store with version stages selects it", name)
	case 1:
		return found[0], name, nil
	}
	return nil, "", fmt.Errorf("rotation step for %s: policies %s and %s both select it", name, found[0].Name, found[1].Name)
}
