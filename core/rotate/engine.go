package rotate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/gobwas/glob"
	"github.com/robfig/cron/v3"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/generate"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
)

// Options configure an Engine.
type Options struct {
	Logger *slog.Logger     // nil: discard
	Audit  audit.Sink       // nil: none
	Now    func() time.Time // nil: time.Now
	// Hooks are the test hooks policies name in Test: each verifies a pending value before it is promoted
	// (e.g. logs in to a database with it). A hook must not log the value; an error it returns is scrubbed
	// of the value before it leaves the engine.
	Hooks map[string]func(ctx context.Context, secretName string, value store.Value) error
	// LeaseSettle is how long a run waits between writing its lease and reading it back (see the package
	// documentation); 0 means one second, a negative value no wait.
	LeaseSettle time.Duration
	// Concurrency bounds how many secrets RotateDue rotates at once; 0 means DefaultConcurrency. Each
	// rotation spends most of its time waiting (the lease settle, the stores' answers and their throttling
	// back-offs), so rotating several at once keeps the stores' quotas busy instead of idle.
	Concurrency int
}

// DefaultConcurrency is how many secrets RotateDue rotates at once unless Options.Concurrency says otherwise.
const DefaultConcurrency = 32

// DefaultLeaseTTL bounds a rotation's lease when the policy sets none.
const DefaultLeaseTTL = 15 * time.Minute

// Engine rotates secrets by policy.
type Engine struct {
	policies []*policy
	byName   map[string]*policy
	stores   map[string]store.Store
	repl     *replicate.Engine
	opts     Options
	log      *slog.Logger
	audit    audit.Sink
	settle   time.Duration
	// concurrency bounds RotateDue's parallel rotations.
	concurrency int

	// generate makes a value (generate.Generate; tests count and break it).
	generate func(generate.Spec) ([]byte, error)
	newID    func() string
}

// policy is a Policy compiled.
type policy struct {
	Policy
	match  []glob.Glob
	prefix string
	sched  cron.Schedule // nil with Every
	ttl    time.Duration
}

// New checks the policies against the stores and hooks. It makes no call. repl may be nil (no replicas).
func New(policies []Policy, stores map[string]store.Store, repl *replicate.Engine, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Audit == nil {
		opts.Audit = audit.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{byName: map[string]*policy{}, stores: stores, repl: repl, opts: opts, log: opts.Logger, audit: opts.Audit,
		settle: opts.LeaseSettle, generate: generate.Generate, newID: newLeaseID}
	if e.settle == 0 {
		e.settle = time.Second
	}
	e.concurrency = opts.Concurrency
	if e.concurrency <= 0 {
		e.concurrency = DefaultConcurrency
	}
	var errs []error
	for _, p := range policies {
		cp, err := e.compile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("rotate policy %s (line %d): %w", p.Name, p.Line, err))
			continue
		}
		e.policies = append(e.policies, cp)
		e.byName[p.Name] = cp
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

func (e *Engine) compile(p Policy) (*policy, error) {
	if p.Name == "" {
		return nil, errors.New("the policy has no name")
	}
	if _, dup := e.byName[p.Name]; dup {
		return nil, errors.New("another policy has the same name")
	}
	st, ok := e.stores[p.Store]
	if !ok {
		return nil, fmt.Errorf("store %q is not configured", p.Store)
	}
	if _, ok := st.(store.MetadataUpdater); !ok {
		return nil, fmt.Errorf("store %q cannot update metadata, where rotation keeps its lease", p.Store)
	}
	probe := freshLease("0123456789abcdef", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if _, err := probe.encode(st.Limits()); err != nil {
		return nil, fmt.Errorf("store %q: %w", p.Store, err)
	}
	cp := &policy{Policy: p, ttl: p.LeaseTTL}
	if cp.ttl <= 0 {
		cp.ttl = DefaultLeaseTTL
	}
	switch {
	case p.Every > 0 && p.Cron != "":
		return nil, errors.New("set one of every and cron, not both")
	case p.Every > 0:
	case p.Every < 0:
		return nil, errors.New("every must be positive")
	case p.Cron != "":
		s, err := cron.ParseStandard(p.Cron)
		if err != nil {
			return nil, fmt.Errorf("cron %q: %w", p.Cron, err)
		}
		cp.sched = s
	default:
		return nil, errors.New("no schedule: set every or cron")
	}
	if p.MaxAge < 0 {
		return nil, errors.New("max_age must not be negative")
	}
	if err := p.Generate.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if p.Test != "" {
		if _, ok := e.opts.Hooks[p.Test]; !ok {
			return nil, fmt.Errorf("test hook %q is not registered", p.Test)
		}
	}
	for _, g := range p.Match {
		c, err := glob.Compile(g, '/')
		if err != nil {
			return nil, fmt.Errorf("match %q: %w", g, err)
		}
		cp.match = append(cp.match, c)
	}
	cp.prefix = commonPrefix(p.Match)
	return cp, nil
}

// commonPrefix is the literal prefix every glob starts with ("" when any glob starts with a wildcard).
func commonPrefix(globs []string) string {
	prefix := ""
	for i, g := range globs {
		lit := g
		if j := strings.IndexAny(g, `*?[{\`); j >= 0 {
			lit = g[:j]
		}
		if i == 0 {
			prefix = lit
			continue
		}
		for !strings.HasPrefix(lit, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	return prefix
}

// selects reports whether the policy rotates the secret with this name (never a pending sibling).
func (p *policy) selects(name string) bool {
	if isSibling(name) {
		return false
	}
	if len(p.match) == 0 {
		return true
	}
	for _, g := range p.match {
		if g.Match(name) {
			return true
		}
	}
	return false
}

// isSibling reports whether a name is a pending sibling's.
func isSibling(name string) bool {
	return strings.HasSuffix(strings.ToLower(name), strings.ToLower(PendingSuffix))
}

// next is when a secret last rotated at last becomes due, and why.
func (p *policy) next(last time.Time) (time.Time, string) {
	var at time.Time
	var why string
	if p.sched != nil {
		at, why = p.sched.Next(last.UTC()), "cron "+p.Cron
	} else {
		at, why = last.Add(p.Every), "every "+p.Every.String()
	}
	if p.MaxAge > 0 {
		if m := last.Add(p.MaxAge); m.Before(at) {
			at, why = m, "max age "+p.MaxAge.String()
		}
	}
	return at, why
}

func (e *Engine) now() time.Time { return e.opts.Now() }

// Policies lists the policy names, in configuration order.
func (e *Engine) Policies() []string {
	var out []string
	for _, p := range e.policies {
		out = append(out, p.Name)
	}
	return out
}

// Result says what one Rotate (or one Step that finished a rotation) did. It holds no value.
type Result struct {
	Policy   string          `json:"policy"`
	Store    string          `json:"store"`
	Name     string          `json:"name"`
	Version  string          `json:"version,omitempty"`  // the primary's new current version
	Replicas []replicate.Ref `json:"replicas,omitempty"` // the replicas promoted, at their new versions
	// Recovered says what this run did about an interrupted rotation it found: "rolled back" (then it
	// rotated afresh) or "rolled forward" (it finished that rotation, and generated nothing).
	Recovered string `json:"recovered,omitempty"`
	Generated bool   `json:"generated"` // this run generated a value
	Rotated   bool   `json:"rotated"`   // a rotation completed in this run
	// Skipped says why nothing was done (RotateRequested: the secret was rotated since the request).
	Skipped string `json:"skipped,omitempty"`
}

// Recovery outcomes (Result.Recovered).
const (
	RolledBack    = "rolled back"
	RolledForward = "rolled forward"
)

// record writes an audit record about the primary (target empty) or a replica.
func (e *Engine) record(ctx context.Context, p *policy, name, version, action, reason string, target *replicate.Ref) {
	r := audit.Record{Time: e.now().UTC(), Action: action, Rule: p.Name, SourceStore: p.Store, SourceName: name,
		SourceVersion: version, Reason: reason}
	if target != nil {
		r.TargetStore, r.TargetName, r.TargetVersion = target.Store, target.Name, target.Version
	}
	e.audit.Record(ctx, r)
}

// redacted is an error whose message was scrubbed of a value.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// scrub returns err with every occurrence of the values' bytes removed from its message.
func scrub(err error, values ...store.Value) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, v := range values {
		if s := string(v.Bytes()); len(s) > 0 && strings.Contains(msg, s) {
			msg, changed = strings.ReplaceAll(msg, s, "[redacted]"), true
		}
	}
	if !changed {
		return err
	}
	// What it wraps is scrubbed too, so that errors.Is still sees the kinds and nothing leaks by unwrapping.
	return &redacted{msg: msg, err: scrub(errors.Unwrap(err), values...)}
}

// PolicyFor returns the policy that rotates storeName/secretName (the first in file order), if any.
func (e *Engine) PolicyFor(storeName, secretName string) (string, bool) {
	for _, p := range e.policies {
		if p.Store == storeName && p.selects(secretName) {
			return p.Name, true
		}
	}
	return "", false
}
