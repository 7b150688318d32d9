package rotate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// Metadata keys the engine keeps on the primary (see the package documentation).
const (
	// TagRotated holds the time of the last completed rotation.
	TagRotated = "keyferry_rotated"
	// TagRotation holds the lease of the rotation in flight: "<id> <expiry> <phase> <pending version id>".
	TagRotation = "keyferry_rotation"
)

// PendingSuffix is appended to a secret's name (then mapped through the store's name rules) to name the
// sibling that holds the pending value in stores without version stages.
const PendingSuffix = store.PendingSuffix

// Phases of a lease.
const (
	PhasePending   = "pending"   // landing and testing the pending value: a failure rolls back
	PhasePromoting = "promoting" // promotion decided: a failure rolls forward
	PhaseDone      = "done"      // finished (a lease left in this phase blocks nothing)
)

// AWS version stages.
const (
	stageCurrent = "AWSCURRENT"
	stagePending = "AWSPENDING"
)

// compactTime is the time layout of the compact form (lower-cased).
const compactTime = "20060102T150405Z"

// ErrLeaseHeld is matched (errors.Is) by the error of a run that found another run's live lease.
var ErrLeaseHeld = errors.New("lease held")

// LeaseError says that another run holds the secret's rotation lease.
type LeaseError struct {
	Store, Name string
	Until       time.Time
}

func (e *LeaseError) Error() string {
	return fmt.Sprintf("rotate %s/%s: a previous rotation isn't complete (lease held until %s)", e.Store, e.Name,
		e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseError) Is(target error) bool { return target == ErrLeaseHeld }

// errLeaseLost is returned when our lease was replaced by another run's.
var errLeaseLost = errors.New("the rotation lease was taken over by another run")

// lease is the content of TagRotation.
type lease struct {
	ID      string
	Expiry  time.Time
	Phase   string
	Pending string // the pending version id (stages; the siblings' provenance)
	Seed    string // what Pending derives from; "" when Pending was chosen by Secrets Manager
}

func (l *lease) live(now time.Time) bool { return l.Phase != PhaseDone && now.Before(l.Expiry) }

// newLeaseID returns 16 random lower-case hex characters.
func newLeaseID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pendingVersionID derives the pending version id (a UUID-shaped string, as Secrets Manager expects of a
// ClientRequestToken) from a seed, deterministically.
func pendingVersionID(seed string) string {
	h := sha256.Sum256([]byte("keyferry-rotation:" + seed))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// freshLease is the lease of a new rotation.
func freshLease(id string, expiry time.Time) *lease {
	return &lease{ID: id, Expiry: expiry, Phase: PhasePending, Pending: pendingVersionID(id), Seed: id}
}

func (l *lease) canonical() string {
	return strings.Join([]string{l.ID, l.Expiry.UTC().Format(time.RFC3339), l.Phase, l.Pending}, " ")
}

func (l *lease) compact() (string, bool) {
	if l.Seed == "" || strings.ContainsAny(l.ID+l.Seed, "_ ") {
		return "", false
	}
	return strings.Join([]string{l.ID, strings.ToLower(l.Expiry.UTC().Format(compactTime)), l.Phase, l.Seed}, "_"), true
}

// encode renders the lease in the form the store can hold.
func (l *lease) encode(lim store.Limits) (string, error) {
	if v := l.canonical(); fits(lim, TagRotation, v) {
		return v, nil
	}
	if v, ok := l.compact(); ok && fits(lim, TagRotation, v) {
		return v, nil
	}
	return "", fmt.Errorf("the store cannot hold the rotation lease as a tag (%s)", lim.TagRule)
}

func parseLease(s string) (*lease, error) {
	bad := func() (*lease, error) {
		return nil, fmt.Errorf("the %s tag %q is not a lease: remove it if no rotation is running", TagRotation, s)
	}
	if strings.Contains(s, " ") {
		f := strings.Fields(s)
		if len(f) != 4 {
			return bad()
		}
		t, err := time.Parse(time.RFC3339, f[1])
		if err != nil || !validPhase(f[2]) {
			return bad()
		}
		l := &lease{ID: f[0], Expiry: t, Phase: f[2], Pending: f[3]}
		if pendingVersionID(l.ID) == l.Pending {
			l.Seed = l.ID
		}
		return l, nil
	}
	f := strings.Split(s, "_")
	if len(f) != 4 || f[0] == "" || f[3] == "" {
		return bad()
	}
	t, err := time.Parse(compactTime, strings.ToUpper(f[1]))
	if err != nil || !validPhase(f[2]) {
		return bad()
	}
	return &lease{ID: f[0], Expiry: t, Phase: f[2], Seed: f[3], Pending: pendingVersionID(f[3])}, nil
}

// A canonical lease names its pending version id; its seed is known only when the id derives from the
// lease's own id (a taken-over lease keeps the pending version id of the rotation it took over). Stores
// holding the canonical form never need the seed.

func validPhase(p string) bool { return p == PhasePending || p == PhasePromoting || p == PhaseDone }

// encodeTime renders a time in the form the store can hold.
func encodeTime(lim store.Limits, t time.Time) (string, error) {
	if v := t.UTC().Format(time.RFC3339); fits(lim, TagRotated, v) {
		return v, nil
	}
	if v := strings.ToLower(t.UTC().Format(compactTime)); fits(lim, TagRotated, v) {
		return v, nil
	}
	return "", fmt.Errorf("the store cannot hold the rotation time as a tag (%s)", lim.TagRule)
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse(compactTime, strings.ToUpper(s))
}

func fits(lim store.Limits, key, value string) bool {
	return lim.CheckTags(map[string]string{key: value}, 0) == nil
}

// state is what the primary's metadata says about rotation.
type state struct {
	rotated time.Time // zero when not recorded
	lease   *lease    // nil when none
}

func stateOf(md store.Metadata) (state, error) {
	var st state
	if s, ok := md.Tags[TagRotated]; ok {
		t, err := parseTime(s)
		if err != nil {
			return st, fmt.Errorf("the %s tag %q is not a time", TagRotated, s)
		}
		st.rotated = t
	}
	if s, ok := md.Tags[TagRotation]; ok {
		l, err := parseLease(s)
		if err != nil {
			return st, err
		}
		st.lease = l
	}
	return st, nil
}

// lastRotation is the time due-ness counts from, and where it comes from.
func lastRotation(md store.Metadata, st state) (time.Time, string) {
	switch {
	case !st.rotated.IsZero():
		return st.rotated, "rotated"
	case !md.Updated.IsZero():
		return md.Updated, "updated"
	default:
		return md.Created, "created"
	}
}

// The lease operations below read the primary's metadata, change the two keys and write it back with
// MetadataUpdater, keeping every other tag and the provenance record as they are.

func (e *Engine) primary(p *policy) (store.Store, store.MetadataUpdater) {
	st := e.stores[p.Store]
	mu, _ := st.(store.MetadataUpdater)
	return st, mu
}

func (e *Engine) writeTags(ctx context.Context, p *policy, name string, md store.Metadata, change func(tags map[string]string) error) error {
	_, mu := e.primary(p)
	tags := maps.Clone(md.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	if err := change(tags); err != nil {
		return err
	}
	return mu.UpdateMetadata(ctx, name, tags, md.Provenance)
}

func (e *Engine) readLease(ctx context.Context, p *policy, name string) (store.Metadata, *lease, error) {
	st, _ := e.primary(p)
	md, err := st.Describe(ctx, name)
	if err != nil {
		return md, nil, err
	}
	s, err := stateOf(md)
	return md, s.lease, err
}

func (e *Engine) heldErr(p *policy, name string, l *lease) error {
	return &LeaseError{Store: p.Store, Name: name, Until: l.Expiry}
}

// acquire writes l as the secret's lease and confirms it. prev is the expired lease being taken over
// (nil for a fresh rotation); a different lease found in its place stops the run. read is the primary's
// metadata when the caller has just read it (nil: read it now).
func (e *Engine) acquire(ctx context.Context, p *policy, name string, prev, l *lease, read *store.Metadata) error {
	var md store.Metadata
	var cur *lease
	var err error
	if read != nil {
		md = *read
		var st state
		if st, err = stateOf(md); err == nil {
			cur = st.lease
		}
	} else {
		md, cur, err = e.readLease(ctx, p, name)
	}
	if err != nil {
		return err
	}
	now := e.now()
	renew := cur != nil && cur.ID == l.ID
	if cur != nil && cur.Phase != PhaseDone && !renew {
		if cur.live(now) {
			return e.heldErr(p, name, cur)
		}
		if prev == nil || cur.ID != prev.ID {
			return fmt.Errorf("rotate %s/%s: %w", p.Store, name, errLeaseLost)
		}
	}
	lim := e.stores[p.Store].Limits()
	enc, err := l.encode(lim)
	if err != nil {
		return err
	}
	if err := e.writeTags(ctx, p, name, md, func(tags map[string]string) error { tags[TagRotation] = enc; return nil }); err != nil {
		if !renew && prev == nil {
			// The write may have landed although it failed: take the lease away again if it did.
			_ = e.release(context.WithoutCancel(ctx), p, name, l, false)
		}
		return err
	}
	if !renew && e.settle > 0 {
		select {
		case <-time.After(e.settle):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, got, err := e.readLease(ctx, p, name)
	if err != nil {
		return err
	}
	if got == nil || got.ID != l.ID {
		if got != nil && got.live(e.now()) {
			return e.heldErr(p, name, got)
		}
		return fmt.Errorf("rotate %s/%s: %w", p.Store, name, errLeaseLost)
	}
	return nil
}

// setPhase moves our lease to phase and renews it.
func (e *Engine) setPhase(ctx context.Context, p *policy, name string, l *lease, phase string) error {
	md, cur, err := e.readLease(ctx, p, name)
	if err != nil {
		return err
	}
	if cur == nil || cur.ID != l.ID {
		return fmt.Errorf("rotate %s/%s: %w", p.Store, name, errLeaseLost)
	}
	next := *l
	next.Phase, next.Expiry = phase, e.now().Add(p.ttl)
	enc, err := next.encode(e.stores[p.Store].Limits())
	if err != nil {
		return err
	}
	if err := e.writeTags(ctx, p, name, md, func(tags map[string]string) error { tags[TagRotation] = enc; return nil }); err != nil {
		return err
	}
	*l = next
	return nil
}

// abandon marks our lease expired, so that the next run recovers at once (by its phase).
func (e *Engine) abandon(ctx context.Context, p *policy, name string, l *lease) error {
	md, cur, err := e.readLease(ctx, p, name)
	if err != nil {
		return err
	}
	if cur == nil || cur.ID != l.ID {
		return nil
	}
	next := *l
	next.Expiry = e.now().Add(-time.Second)
	enc, err := next.encode(e.stores[p.Store].Limits())
	if err != nil {
		return err
	}
	return e.writeTags(ctx, p, name, md, func(tags map[string]string) error { tags[TagRotation] = enc; return nil })
}

// release removes our lease; with rotated, it also records the completed rotation — in one write.
func (e *Engine) release(ctx context.Context, p *policy, name string, l *lease, rotated bool) error {
	md, cur, err := e.readLease(ctx, p, name)
	if err != nil {
		return err
	}
	if cur != nil && cur.ID != l.ID && cur.Phase != PhaseDone {
		return fmt.Errorf("rotate %s/%s: %w", p.Store, name, errLeaseLost)
	}
	if cur == nil && !rotated {
		return nil
	}
	return e.writeTags(ctx, p, name, md, func(tags map[string]string) error {
		delete(tags, TagRotation)
		if rotated {
			v, err := encodeTime(e.stores[p.Store].Limits(), e.now())
			if err != nil {
				return err
			}
			tags[TagRotated] = v
		}
		return nil
	})
}

// Hold is replicate.Options.Hold for stores with rotations: it leaves a source alone while a rotation is
// promoting it (a live lease in phase promoting). The rotation lands the new value in every replica itself,
// with provenance; a replication run copying it at the same moment would only add versions and make the
// replicas look written by someone else.
func Hold(md store.Metadata) string {
	s, ok := md.Tags[TagRotation]
	if !ok {
		return ""
	}
	l, err := parseLease(s)
	if err != nil || l.Phase != PhasePromoting || !l.live(time.Now()) {
		return ""
	}
	return "rotation " + l.ID + " is promoting it (lease until " + l.Expiry.UTC().Format(time.RFC3339) + ")"
}
