// Package certmgr is keyferry's certificate feature: it issues the certificates of the `certificates:`
// section (core/config) with the configured issuer (core/pki's builtin CA with a file or KMS key, or a
// Vault PKI role), writes each to every target in the target's native form (core/certs: a secret in any
// store, an ACM import, a Key Vault certificate, a Certificate Manager certificate), renews them, and keeps
// one inventory (core/inventory) of every certificate in the configured places.
//
// Renewal needs no database: for each spec and target, the target itself says what it holds
// (certs.NeedsRenewal). A spec is re-issued at most once per run, when any of its targets is missing its
// certificate, holds one inside its renewal window or expired, or holds one whose names no longer match
// the spec; the new certificate goes to the targets that need it. Transient failures are retried; every
// target gets its own result, and failures raise alerts (certificate.renewal-failed, certificate.expired)
// through the notifier.
//
// Nothing here ever logs, reports or returns a private key: errors from the targets are redacted
// (certs.Redact), and the issued bundle only travels to the targets.
package certmgr

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	certificatemanager "cloud.google.com/go/certificatemanager/apiv1"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	vault "github.com/hashicorp/vault/api"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/certs"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
)

// Alert kinds the manager sends.
const (
	KindExpiring      = "certificate.expiring"
	KindExpired       = "certificate.expired"
	KindRenewalFailed = "certificate.renewal-failed"
)

var (
	// ErrNotConfigured: the configuration has no `certificates:` section.
	ErrNotConfigured = errors.New("no certificates are configured: add a `certificates:` section (see docs/configuration.md)")
	// ErrTransient marks a run whose failures were transient (throttling, an unreachable service): running
	// it again later can succeed.
	ErrTransient = errors.New("transient failure")
)

// Options configure a Manager.
type Options struct {
	Logger   *slog.Logger       // nil: discard
	Audit    audit.Sink         // nil: none
	Notifier replicate.Notifier // alerts; nil: none (they are still logged)
	Now      func() time.Time   // the time renewal windows and the inventory are judged at; nil: time.Now
	Clients  Clients            // overridable clients and issuer (tests, special setups)
	// DryRun makes Issue and Renew write nothing and issue nothing: they report what they would do.
	DryRun bool
	// Attempts bounds the tries of one target check or write that fails transiently; 0: 3.
	Attempts int
	// Backoff is the first wait between tries, doubling after each; 0: 2s.
	Backoff time.Duration
}

// Manager issues, distributes, renews and inventories the configured certificates. It is safe for
// concurrent use. New makes no call: clients, the issuer and the targets are built on first use.
type Manager struct {
	cfg    *config.Config
	cc     *config.Certificates
	stores map[string]store.Store
	opts   Options
	log    *slog.Logger

	issuerMu sync.Mutex // held while the issuer is built (which may build a Vault client under mu)
	issuer   pki.Issuer

	mu      sync.Mutex
	targets map[string]*targetSet // by spec name
	acms    map[string]*acm.Client
	kvs     map[string]*azcertificates.Client
	cms     map[string]*certificatemanager.Client
	vaults  map[string]*vault.Client
}

type targetSet struct {
	list []builtTarget
}

// builtTarget is a spec's target, or why it could not be built.
type builtTarget struct {
	id  string
	t   certs.Target
	err error
}

// New returns a manager for cfg's `certificates:` section, writing to secret stores through stores (by
// name; see core/stores.OpenAll).
func New(cfg *config.Config, stores map[string]store.Store, opts Options) (*Manager, error) {
	if cfg == nil || cfg.Certificates == nil {
		return nil, ErrNotConfigured
	}
	cc := cfg.Certificates
	for _, s := range cc.Specs {
		for _, t := range s.Targets {
			if t.Kind() == config.TargetStore && stores[t.Store] == nil {
				return nil, fmt.Errorf("certificate %s: the store %s is not open", s.Name, t.Store)
			}
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Audit == nil {
		opts.Audit = audit.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	return &Manager{cfg: cfg, cc: cc, stores: stores, opts: opts, log: opts.Logger,
		targets: map[string]*targetSet{}, acms: map[string]*acm.Client{}, kvs: map[string]*azcertificates.Client{},
		cms: map[string]*certificatemanager.Client{}, vaults: map[string]*vault.Client{}}, nil
}

// Close releases the clients created so far.
func (m *Manager) Close() error {
	var errs []error
	m.mu.Lock()
	for k, c := range m.cms {
		errs = append(errs, c.Close())
		delete(m.cms, k)
	}
	m.mu.Unlock()
	// The issuer lock is taken on its own: building an issuer takes issuerMu, then mu.
	m.issuerMu.Lock()
	defer m.issuerMu.Unlock()
	if c, ok := m.issuer.(io.Closer); ok && m.opts.Clients.Issuer == nil {
		errs = append(errs, c.Close())
		m.issuer = nil
	}
	return errors.Join(errs...)
}

// Specs lists the configured spec names, in file order.
func (m *Manager) Specs() []string {
	out := make([]string, len(m.cc.Specs))
	for i, s := range m.cc.Specs {
		out[i] = s.Name
	}
	return out
}

// ----- results -----

// Action is what happened at one target.
type Action string

const (
	ActWritten    Action = "written"     // the target holds the new certificate
	ActNotDue     Action = "not-due"     // the target's certificate is valid and outside its renewal window
	ActNotManaged Action = "not-managed" // the target holds an object keyferry did not write: left alone
	ActWouldWrite Action = "would-write" // dry run: the target would get a new certificate
	ActRefused    Action = "refused"     // the write or the bundle was refused; retrying will not help
	ActFailed     Action = "failed"      // the check or write failed (after the retries)
)

// TargetResult is the outcome at one target.
type TargetResult struct {
	Target   string    `json:"target"`
	Action   Action    `json:"action"`
	Reason   string    `json:"reason,omitempty"`
	ID       string    `json:"id,omitempty"`      // the target's object (secret name, ARN, ...)
	Version  string    `json:"version,omitempty"` // its version, where the target keeps versions
	NotAfter time.Time `json:"not_after,omitzero"`
	Attempts int       `json:"attempts,omitempty"`
	Err      error     `json:"-"`
	Error    string    `json:"error,omitempty"` // Err, redacted
}

// Result is the outcome for one spec.
type Result struct {
	Spec     string         `json:"spec"`
	Issued   bool           `json:"issued"`
	Serial   string         `json:"serial,omitempty"`
	NotAfter time.Time      `json:"not_after,omitzero"`
	Targets  []TargetResult `json:"targets"`
	// Err is an issuance failure (the targets then report it too).
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`
}

// Failed reports whether the issuance or any target failed or was refused.
func (r Result) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, t := range r.Targets {
		if t.Action == ActFailed || t.Action == ActRefused {
			return true
		}
	}
	return false
}

// Count counts the targets with action a.
func (r Result) Count(a Action) int {
	n := 0
	for _, t := range r.Targets {
		if t.Action == a {
			n++
		}
	}
	return n
}

func (m *Manager) spec(name string) (*config.CertSpec, error) {
	s := m.cc.Spec(name)
	if s == nil {
		return nil, fmt.Errorf("there is no certificate named %q; the certificates are: %s", name, strings.Join(m.Specs(), ", "))
	}
	return s, nil
}

// selected returns the specs named (every spec when names is empty), in file order.
func (m *Manager) selected(names []string) ([]*config.CertSpec, error) {
	for _, n := range names {
		if _, err := m.spec(n); err != nil {
			return nil, err
		}
	}
	var out []*config.CertSpec
	for i := range m.cc.Specs {
		if len(names) == 0 || slices.Contains(names, m.cc.Specs[i].Name) {
			out = append(out, &m.cc.Specs[i])
		}
	}
	return out, nil
}

// ----- issue -----

// IssueAll issues every spec anew and writes it to all its targets, due or not.
func (m *Manager) IssueAll(ctx context.Context) ([]Result, error) {
	return m.IssueSome(ctx)
}

// IssueSome issues the named specs (every spec when none is named) anew and writes each to all its
// targets.
func (m *Manager) IssueSome(ctx context.Context, names ...string) ([]Result, error) {
	specs, err := m.selected(names)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, s := range specs {
		out = append(out, m.issue(ctx, s))
	}
	return out, runError(out)
}

// Issue issues the spec named name anew and writes it to all its targets.
func (m *Manager) Issue(ctx context.Context, name string) (Result, error) {
	s, err := m.spec(name)
	if err != nil {
		return Result{}, err
	}
	r := m.issue(ctx, s)
	return r, runError([]Result{r})
}

func (m *Manager) issue(ctx context.Context, s *config.CertSpec) Result {
	ts := m.targetsOf(ctx, s)
	all := make([]int, len(ts.list))
	for i := range all {
		all[i] = i
	}
	reasons := map[int]string{}
	for _, i := range all {
		reasons[i] = "issued on request"
	}
	return m.deliver(ctx, s, ts, all, reasons, nil)
}

// ----- renew -----

// Renew renews the named specs (every spec when none is named): each target is asked what it holds, the
// spec is re-issued once if any target needs it, and the new certificate is written to those targets.
func (m *Manager) Renew(ctx context.Context, names ...string) ([]Result, error) {
	specs, err := m.selected(names)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, s := range specs {
		out = append(out, m.renew(ctx, s))
	}
	return out, runError(out)
}

// check is what one target holds, judged for renewal.
type check struct {
	due     bool
	reason  string
	managed bool
	cert    *x509.Certificate
	meta    certs.Meta
	err     error
	tries   int
}

// observed records what Current returned, so that the manager sees the certificate NeedsRenewal judged.
type observed struct {
	certs.Target
	cert *x509.Certificate
	meta certs.Meta
}

func (o *observed) Current(ctx context.Context, name string) (*x509.Certificate, certs.Meta, error) {
	c, meta, err := o.Target.Current(ctx, name)
	o.cert, o.meta = c, meta
	return c, meta, err
}

func (m *Manager) check(ctx context.Context, s *config.CertSpec, t certs.Target) check {
	var c check
	c.tries, c.err = m.retry(ctx, func() error {
		ob := &observed{Target: t}
		due, reason, err := certs.NeedsRenewal(ctx, ob, s.Name, s.RenewBefore, m.opts.Now())
		c = check{due: due, reason: reason, cert: ob.cert, meta: ob.meta, managed: ob.meta.Managed}
		return err
	})
	if c.err == nil && !c.due && c.managed && c.cert != nil {
		if why := mismatch(c.cert, &s.Spec); why != "" {
			c.due, c.reason = true, why
		}
	}
	return c
}

func (m *Manager) renew(ctx context.Context, s *config.CertSpec) Result {
	ts := m.targetsOf(ctx, s)
	checks := make([]check, len(ts.list))
	var wg sync.WaitGroup
	for i, bt := range ts.list {
		if bt.err != nil {
			checks[i] = check{err: bt.err, tries: 1}
			continue
		}
		wg.Go(func() { checks[i] = m.check(ctx, s, bt.t) })
	}
	wg.Wait()

	res := Result{Spec: s.Name, Targets: make([]TargetResult, len(ts.list))}
	var due []int
	reasons := map[int]string{}
	for i, c := range checks {
		tr := TargetResult{Target: ts.list[i].id, Attempts: c.tries, ID: c.meta.ID, Version: c.meta.Version, NotAfter: c.meta.NotAfter}
		switch {
		case c.err != nil:
			tr.Action, tr.Err, tr.Reason = ActFailed, c.err, "could not read what the target holds"
			m.alert(ctx, KindRenewalFailed, s.Name, tr.Target, tr.ID, "checking the target failed: "+redact(c.err))
		case c.due:
			due = append(due, i)
			reasons[i] = c.reason
			continue
		case c.reason == certs.ReasonNotManaged:
			tr.Action, tr.Reason = ActNotManaged, "an object keyferry did not write holds this name (no keyferry-cert mark): left alone"
		default:
			tr.Action, tr.Reason = ActNotDue, c.reason
		}
		res.Targets[i] = tr
	}
	if len(due) == 0 {
		finish(&res)
		return res
	}
	r := m.deliver(ctx, s, ts, due, reasons, checks)
	for _, i := range due {
		res.Targets[i] = r.Targets[i]
	}
	res.Issued, res.Serial, res.NotAfter, res.Err, res.Error = r.Issued, r.Serial, r.NotAfter, r.Err, r.Error
	finish(&res)
	return res
}

// mismatch says how a managed certificate no longer matches its spec ("" when it does).
func mismatch(c *x509.Certificate, s *pki.Spec) string {
	norm := func(in []string) []string {
		out := make([]string, len(in))
		for i, v := range in {
			out[i] = strings.ToLower(v)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	var uris, ips, specIPs []string
	for _, u := range c.URIs {
		uris = append(uris, u.String())
	}
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	for _, ip := range s.IPAddresses {
		specIPs = append(specIPs, net.IP(ip).String())
	}
	var diff []string
	if !slices.Equal(norm(c.DNSNames), norm(s.DNSNames)) {
		diff = append(diff, "dns")
	}
	if !slices.Equal(norm(uris), norm(s.URIs)) {
		diff = append(diff, "uris")
	}
	if !slices.Equal(norm(ips), norm(specIPs)) {
		diff = append(diff, "ips")
	}
	if s.CommonName != "" && c.Subject.CommonName != s.CommonName {
		diff = append(diff, "common_name")
	}
	if s.KeyType != "" {
		if kt, err := pki.KeyTypeOf(c.PublicKey); err == nil && kt != s.KeyType {
			diff = append(diff, "key_type")
		}
	}
	if len(diff) == 0 {
		return ""
	}
	return "the certificate no longer matches the spec (" + strings.Join(diff, ", ") + " changed)"
}

// ----- delivery -----

// deliver issues one certificate for s and writes it to the targets at idx (every other target keeps
// its zero result for the caller to fill). checks, when given, says what each target held.
func (m *Manager) deliver(ctx context.Context, s *config.CertSpec, ts *targetSet, idx []int, reasons map[int]string, checks []check) Result {
	res := Result{Spec: s.Name, Targets: make([]TargetResult, len(ts.list))}
	if m.opts.DryRun {
		for _, i := range idx {
			res.Targets[i] = TargetResult{Target: ts.list[i].id, Action: ActWouldWrite, Reason: reasons[i]}
		}
		finish(&res)
		return res
	}
	// Targets that could not be built fail here; the others get the certificate.
	var live []int
	for _, i := range idx {
		if err := ts.list[i].err; err != nil {
			res.Targets[i] = TargetResult{Target: ts.list[i].id, Action: ActFailed, Reason: reasons[i], Err: err, Attempts: 1}
			m.alert(ctx, KindRenewalFailed, s.Name, ts.list[i].id, "", redact(err))
			continue
		}
		live = append(live, i)
	}
	if len(live) == 0 {
		finish(&res)
		return res
	}
	b, err := m.issueBundle(ctx, s)
	if err != nil {
		res.Err = err
		for _, i := range live {
			res.Targets[i] = TargetResult{Target: ts.list[i].id, Action: ActFailed, Reason: reasons[i], Err: fmt.Errorf("issuance failed: %w", err), Attempts: 1}
			m.expiredAlert(ctx, s, ts.list[i].id, checks, i)
		}
		m.alert(ctx, KindRenewalFailed, s.Name, "", "", "issuing the certificate failed: "+redact(err))
		finish(&res)
		return res
	}
	res.Issued, res.Serial, res.NotAfter = true, b.Serial, b.NotAfter.UTC()
	m.opts.Audit.Record(ctx, audit.Record{Time: m.opts.Now(), Action: "issue", Rule: s.Name, SourceStore: m.issuerKind(),
		SourceName: s.Name, SourceVersion: b.Serial, Reason: "not after " + b.NotAfter.UTC().Format(time.RFC3339)})
	m.log.InfoContext(ctx, "certificate issued", "spec", s.Name, "serial", b.Serial, "not_after", b.NotAfter.UTC())

	targets := make([]certs.Target, len(live))
	for k, i := range live {
		targets[k] = ts.list[i].t
	}
	results, tries := m.distribute(ctx, b, s, targets)
	for k, i := range live {
		r := results[k]
		tr := TargetResult{Target: ts.list[i].id, Reason: reasons[i], Attempts: tries[k], ID: r.Meta.ID, Version: r.Meta.Version}
		rec := audit.Record{Time: m.opts.Now(), Rule: s.Name, SourceStore: m.issuerKind(), SourceName: s.Name, SourceVersion: b.Serial,
			TargetStore: tr.Target, TargetName: r.Meta.ID, TargetVersion: r.Meta.Version}
		switch r.Status {
		case certs.StatusOK:
			tr.Action, tr.NotAfter = ActWritten, r.Meta.NotAfter.UTC()
			rec.Action, rec.Reason = "write", reasons[i]
			m.log.InfoContext(ctx, "certificate written", "spec", s.Name, "target", tr.Target, "id", r.Meta.ID, "serial", b.Serial, "why", reasons[i])
		case certs.StatusRefused:
			tr.Action, tr.Err = ActRefused, r.Err
			rec.Action, rec.Reason = "refuse", redact(r.Err)
		default:
			tr.Action, tr.Err = ActFailed, r.Err
			rec.Action, rec.Reason = "fail", redact(r.Err)
		}
		m.opts.Audit.Record(ctx, rec)
		if tr.Err != nil {
			m.log.WarnContext(ctx, "certificate not written", "spec", s.Name, "target", tr.Target, "error", redact(tr.Err))
			m.alert(ctx, KindRenewalFailed, s.Name, tr.Target, tr.ID, redact(tr.Err))
			m.expiredAlert(ctx, s, tr.Target, checks, i)
		}
		res.Targets[i] = tr
	}
	finish(&res)
	return res
}

// expiredAlert sends certificate.expired when the target still holds an expired certificate of ours.
func (m *Manager) expiredAlert(ctx context.Context, s *config.CertSpec, target string, checks []check, i int) {
	if checks == nil || i >= len(checks) {
		return
	}
	c := checks[i]
	if c.cert != nil && c.managed && !m.opts.Now().Before(c.cert.NotAfter) {
		m.alert(ctx, KindExpired, s.Name, target, c.meta.ID, "the certificate expired at "+c.cert.NotAfter.UTC().Format(time.RFC3339)+
			" and its renewal failed")
	}
}

func (m *Manager) issueBundle(ctx context.Context, s *config.CertSpec) (*pki.Bundle, error) {
	is, err := m.getIssuer(ctx)
	if err != nil {
		return nil, err
	}
	var b *pki.Bundle
	_, err = m.retry(ctx, func() error {
		var err error
		b, err = is.Issue(ctx, s.Spec)
		if err != nil && isTransientIssue(err) {
			return transientError{err}
		}
		return err
	})
	if err != nil {
		var te transientError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%w: %w", ErrTransient, te.err)
		}
		return nil, err
	}
	return b, nil
}

// transientError marks an issuance error worth retrying.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// isTransientIssue: an issuer call that failed in transport or with a 5xx/429 (Vault), or a deadline.
func isTransientIssue(err error) bool {
	var pe *pki.PolicyError
	if errors.As(err, &pe) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ve *vault.ResponseError
	if errors.As(err, &ve) {
		return ve.StatusCode == 429 || ve.StatusCode >= 500
	}
	return false
}

// distribute writes b to targets, retrying the ones that failed transiently. tries counts the writes
// per target.
func (m *Manager) distribute(ctx context.Context, b *pki.Bundle, s *config.CertSpec, targets []certs.Target) ([]certs.Result, []int) {
	res := certs.DistributeTagged(ctx, b, s.Name, s.Tags, targets)
	tries := make([]int, len(targets))
	for i := range tries {
		tries[i] = 1
	}
	wait := m.opts.Backoff
	for attempt := 2; attempt <= m.opts.Attempts; attempt++ {
		var again []int
		for i, r := range res {
			if r.Status == certs.StatusFailed {
				again = append(again, i)
			}
		}
		if len(again) == 0 || !sleep(ctx, wait) {
			break
		}
		wait *= 2
		sub := make([]certs.Target, len(again))
		for k, i := range again {
			sub[k] = targets[i]
		}
		r2 := certs.DistributeTagged(ctx, b, s.Name, s.Tags, sub)
		for k, i := range again {
			res[i] = r2[k]
			tries[i]++
		}
	}
	return res, tries
}

// retry runs fn until it succeeds, fails for good, or the attempts are used up.
func (m *Manager) retry(ctx context.Context, fn func() error) (int, error) {
	wait := m.opts.Backoff
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) || attempt >= m.opts.Attempts || !sleep(ctx, wait) {
			return attempt, err
		}
		wait *= 2
	}
}

func retryable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var te transientError
	if errors.As(err, &te) {
		return true
	}
	return errors.Is(err, certs.ErrFailed) && !errors.Is(err, certs.ErrRefused)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// finish fills the redacted error texts.
func finish(r *Result) {
	if r.Err != nil {
		r.Error = redact(r.Err)
	}
	for i := range r.Targets {
		if r.Targets[i].Err != nil {
			r.Targets[i].Error = redact(r.Targets[i].Err)
		}
	}
}

// runError joins the failures of a run; it wraps ErrTransient when any failure may pass on a retry.
func runError(results []Result) error {
	var errs []error
	transient := false
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("certificate %s: %s", r.Spec, redact(r.Err)))
			if errors.Is(r.Err, ErrTransient) {
				transient = true
			}
			continue
		}
		for _, t := range r.Targets {
			if t.Err == nil {
				continue
			}
			errs = append(errs, fmt.Errorf("certificate %s → %s: %s", r.Spec, t.Target, redact(t.Err)))
			if t.Action == ActFailed && retryable(t.Err) {
				transient = true
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	err := errors.Join(errs...)
	if transient {
		return fmt.Errorf("%w: %w", ErrTransient, err)
	}
	return err
}

// redact is an error's text without key material.
func redact(err error) string {
	if err == nil {
		return ""
	}
	return certs.Redact(err.Error())
}

// alert publishes an alert (it is logged whether or not a notifier is set).
func (m *Manager) alert(ctx context.Context, kind, spec, target, id, reason string) {
	reason = certs.Redact(reason)
	m.log.WarnContext(ctx, "certificate alert", "kind", kind, "spec", spec, "target", target, "id", id, "reason", reason)
	if m.opts.Notifier == nil {
		return
	}
	a := replicate.Alert{Kind: kind, Time: m.opts.Now().UTC(), Rule: spec, SourceStore: m.issuerKind(), SourceName: spec,
		TargetStore: target, TargetName: id, Reason: reason}
	if err := m.opts.Notifier.Notify(ctx, a); err != nil {
		m.log.ErrorContext(ctx, "publishing an alert failed", "kind", kind, "error", certs.Redact(err.Error()))
	}
}

func (m *Manager) getIssuer(ctx context.Context) (pki.Issuer, error) {
	m.issuerMu.Lock()
	defer m.issuerMu.Unlock()
	if m.issuer != nil {
		return m.issuer, nil
	}
	is, err := m.buildIssuer(ctx)
	if err != nil {
		return nil, err // not kept: a transient failure (KMS, Vault) may pass next time
	}
	m.issuer = is
	return is, nil
}
