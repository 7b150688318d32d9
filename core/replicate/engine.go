package replicate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/gobwas/glob"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/store"
)

// Notifier publishes alerts an operator can route (SNS, Event Grid, Pub/Sub; see core/notify).
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// Alert is a replication alert. It names secrets and versions, never a value.
type Alert struct {
	Kind          string    `json:"kind"` // replication.conflict, replication.refused
	Time          time.Time `json:"time"`
	Rule          string    `json:"rule"`
	SourceStore   string    `json:"source_store"`
	SourceName    string    `json:"source_name"`
	SourceVersion string    `json:"source_version,omitempty"`
	TargetStore   string    `json:"target_store"`
	TargetName    string    `json:"target_name"`
	TargetVersion string    `json:"target_version,omitempty"`
	Reason        string    `json:"reason"`
}

// Options configure an Engine.
type Options struct {
	Logger         *slog.Logger     // nil: discard
	Audit          audit.Sink       // nil: none
	Notifier       Notifier         // conflict alerts; nil: audit records only
	Now            func() time.Time // nil: time.Now
	MaxConcurrency int              // sweep ceiling per store; 0: 32
	// MaxAttempts bounds how often a sweep retries a secret that failed with a transient error; 0: 12.
	MaxAttempts int
	// Hold, when set, is asked about every source before it is planned: a non-empty answer (why) leaves
	// the source alone this time — nothing copied, no mark. Rotation uses it so that replication does not
	// copy a value the rotation is still promoting in every store (rotate.Hold).
	Hold func(md store.Metadata) string
}

// ErrRetryable marks results whose failures were transient (throttling, unreachable stores): running the
// same work again later can succeed.
var ErrRetryable = errors.New("transient failure")

// Engine plans and applies the configured replication rules.
type Engine struct {
	rules  []*rule
	stores map[string]store.Store
	opts   Options
	log    *slog.Logger
	audit  audit.Sink
	// peers[x][y] is true when some rule replicates from store x to store y.
	peers map[string]map[string]bool
	// backoffBase is the first retry delay of a sweep (doubling per attempt).
	backoffBase time.Duration
	// alerted remembers the conflicts recently alerted, so the several events one change causes (and
	// redeliveries) publish one alert, not one each. Audit records are still written every time.
	alerted *recent
	// gates pace the calls to each store after it throttles (see gate.go).
	gates map[string]*gate
}

// recent is a small set of keys, each forgotten after ttl; the oldest go first when it is full.
type recent struct {
	mu   sync.Mutex
	ttl  time.Duration
	max  int
	seen map[string]time.Time
	now  func() time.Time
}

// first reports whether key was not seen within ttl, and records it.
func (r *recent) first(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if t, ok := r.seen[key]; ok && now.Sub(t) < r.ttl {
		return false
	}
	if len(r.seen) >= r.max {
		for k, t := range r.seen {
			if now.Sub(t) >= r.ttl || len(r.seen) >= r.max {
				delete(r.seen, k)
			}
		}
	}
	r.seen[key] = now
	return true
}

// rule is a Rule compiled.
type rule struct {
	Rule
	match, exclude []glob.Glob
	prefix         string // longest literal prefix shared by the match globs (for List)
	names          []*template.Template
	fingerprint    string
}

// New compiles the rules against the stores. It makes no call.
func New(rules []Rule, stores map[string]store.Store, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Audit == nil {
		opts.Audit = audit.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = 32
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 12
	}
	e := &Engine{stores: stores, opts: opts, log: opts.Logger, audit: opts.Audit, peers: map[string]map[string]bool{},
		backoffBase: 100 * time.Millisecond,
		alerted:     &recent{ttl: time.Hour, max: 4096, seen: map[string]time.Time{}, now: opts.Now}}
	limits := map[string]store.Limits{}
	e.gates = map[string]*gate{}
	for n, s := range stores {
		limits[n] = s.Limits()
		e.gates[n] = &gate{}
	}
	if errs := Check(rules, limits); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, r := range rules {
		cr, err := compile(r)
		if err != nil {
			return nil, err
		}
		e.rules = append(e.rules, cr)
		for _, t := range r.To {
			if e.peers[r.From.Store] == nil {
				e.peers[r.From.Store] = map[string]bool{}
			}
			e.peers[r.From.Store][t.Store] = true
		}
	}
	return e, nil
}

func compile(r Rule) (*rule, error) {
	if r.OnConflict == "" {
		r.OnConflict = ConflictAlert
	}
	if r.Delete == "" {
		r.Delete = DeleteKeep
	}
	if r.Granularity == "" {
		r.Granularity = WholeValue
	}
	cr := &rule{Rule: r}
	for _, g := range r.From.Match {
		c, err := glob.Compile(g, '/')
		if err != nil {
			return nil, fmt.Errorf("rule %s: match %q: %w", r.Name, g, err)
		}
		cr.match = append(cr.match, c)
	}
	for _, g := range r.From.Exclude {
		c, err := glob.Compile(g, '/')
		if err != nil {
			return nil, fmt.Errorf("rule %s: exclude %q: %w", r.Name, g, err)
		}
		cr.exclude = append(cr.exclude, c)
	}
	cr.prefix = commonPrefix(r.From.Match)
	for _, t := range r.To {
		tmpl, err := parseName(t.Name)
		if err != nil {
			return nil, fmt.Errorf("rule %s: target %s: %w", r.Name, t.Store, err)
		}
		cr.names = append(cr.names, tmpl)
	}
	cr.fingerprint = fingerprint(r)
	return cr, nil
}

// fingerprint identifies what a rule does to a secret, so a change of configuration invalidates the
// Synced marks it left. It is derived from the configuration only, never from values.
func fingerprint(r Rule) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|%s|%q|", r.Name, r.OnConflict, r.Delete, r.Granularity, r.Keys)
	for _, t := range r.To {
		fmt.Fprintf(h, "%s|%s|%v|%q|%q|%v|%v;", t.Store, t.Name, t.Tags.Propagate, t.Tags.Include, t.Tags.Exclude,
			sortedPairs(t.Tags.Rename), sortedPairs(t.Tags.Set))
	}
	return hex.EncodeToString(h.Sum(nil))[:10]
}

func sortedPairs(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// commonPrefix is the literal prefix every glob starts with ("" when any glob starts with a wildcard).
func commonPrefix(globs []string) string {
	if len(globs) == 0 {
		return ""
	}
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

// selects reports whether the rule replicates the source secret with this metadata.
func (r *rule) selects(md store.Metadata) bool {
	if !r.selectsName(md.Name) {
		return false
	}
	for k, v := range r.From.Tags {
		have, ok := md.Tags[k]
		if !ok || (v != "*" && have != v) {
			return false
		}
	}
	for k, v := range r.From.ExcludeTags {
		if have, ok := md.Tags[k]; ok && (v == "*" || have == v) {
			return false
		}
	}
	return true
}

func (r *rule) selectsName(name string) bool {
	if strings.HasSuffix(name, store.PendingSuffix) {
		return false // a rotation's pending value: it lands in every store by the rotation itself
	}
	if len(r.match) > 0 {
		ok := false
		for _, g := range r.match {
			if g.Match(name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, g := range r.exclude {
		if g.Match(name) {
			return false
		}
	}
	return true
}

// Check makes the checks that need only the rules and the stores' declared limits: every store exists,
// templates execute, rendered literal names fit the target, and no two literal sources land on one
// target name. keyferry validate reports these; Plan finds the collisions that depend on what exists.
func Check(rules []Rule, limits map[string]store.Limits) []error {
	var errs []error
	fail := func(r Rule, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rule %s (line %d): %s", r.Name, r.Line, fmt.Sprintf(format, args...)))
	}
	type src struct{ rule, store, name string }
	landed := map[string]src{}
	for _, r := range rules {
		if _, ok := limits[r.From.Store]; !ok {
			fail(r, "source store %q is not configured", r.From.Store)
			continue
		}
		for _, g := range append(slices.Clone(r.From.Match), r.From.Exclude...) {
			if _, err := glob.Compile(g, '/'); err != nil {
				fail(r, "glob %q: %v", g, err)
			}
		}
		for _, t := range r.To {
			lim, ok := limits[t.Store]
			if !ok {
				fail(r, "target store %q is not configured", t.Store)
				continue
			}
			tmpl, err := parseName(t.Name)
			if err != nil {
				fail(r, "target %s: name template: %v", t.Store, err)
				continue
			}
			if t.Store == r.From.Store && (t.Name == "" || strings.ReplaceAll(t.Name, " ", "") == "{{.Name}}") {
				fail(r, "target %s is the source store under the same name: a secret cannot be copied onto itself", t.Store)
				continue
			}
			// Sample names exercise the template: one that fails for every name is a configuration error.
			sample := "app/example"
			if len(r.From.Match) > 0 && !strings.ContainsAny(r.From.Match[0], `*?[{\`) {
				sample = r.From.Match[0]
			}
			if _, err := renderName(tmpl, t.Store, r.From.Store, sample, lim); err != nil {
				fail(r, "target %s: the name for %q cannot be used: %v", t.Store, sample, err)
				continue
			}
			for _, k := range append(slices.Collect(maps.Keys(t.Tags.Set)), slices.Collect(maps.Values(t.Tags.Rename))...) {
				if strings.HasPrefix(strings.ToLower(k), store.ProvenancePrefix) {
					fail(r, "target %s: tag key %q uses keyferry's reserved prefix", t.Store, k)
				}
			}
			// Literal sources (match without wildcards) collide statically.
			for _, m := range r.From.Match {
				if strings.ContainsAny(m, `*?[{\`) {
					continue
				}
				n, err := renderName(tmpl, t.Store, r.From.Store, m, lim)
				if err != nil {
					continue
				}
				key := t.Store + "\x00" + lim.CanonicalName(n)
				if prev, ok := landed[key]; ok && (prev.store != r.From.Store || prev.name != m) {
					fail(r, "%s/%s and %s/%s (rule %s) both map to %s/%s: give one a name template", r.From.Store, m,
						prev.store, prev.name, prev.rule, t.Store, n)
				} else {
					landed[key] = src{r.Name, r.From.Store, m}
				}
			}
		}
	}
	return errs
}
