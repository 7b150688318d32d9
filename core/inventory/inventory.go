// Package inventory keeps one inventory of certificates across clouds: AWS Certificate Manager, Azure Key
// Vault certificates, Google Certificate Manager, Vault PKI mounts, and PEM certificates found inside the
// secrets of any keyferry store. Each Source scans one place; Collect runs them all (one failing source
// never stops the others), assesses every certificate (expiry buckets, weak keys, weak signatures, an
// untrusted chain) and returns the entries sorted by expiry. The writers render the inventory as a table,
// JSON, CSV, a self-contained HTML report, CloudWatch Embedded Metric Format lines, and OpenMetrics text.
//
// Secret values are read only to find CERTIFICATE PEM blocks in them: a value is never kept, printed,
// logged or put into an error, and private key blocks are never decoded.
package inventory

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/keyferry/keyferry/core/pki"
)

// ManagedTag is the tag (ACM, Key Vault certificates) or label (Certificate Manager) keyferry puts on the
// certificates it manages.
const ManagedTag = "keyferry-cert"

// StoreManagedTag marks keyferry's certificates in secret stores instead: the store layer reserves the
// "keyferry-" prefix for its provenance record (store.CheckPut refuses it in user tags and the adapters
// strip it from what they read back), so keyferry-cert cannot pass through a store.Store. It matches the
// mark core/certs writes on its secret targets.
const StoreManagedTag = "keyferry_cert"

// Entry is one certificate of the inventory.
type Entry struct {
	// Cloud is aws, azure, gcp, vault or local (the file store).
	Cloud string `json:"cloud"`
	// Location is where in the cloud: an AWS region, a Key Vault host, a GCP projects/P/locations/L, a
	// Vault address; for a store, what the caller configured (often empty).
	Location string `json:"location"`
	// Store is the keyferry store the certificate was found in, or the Vault PKI mount.
	Store string `json:"store,omitempty"`
	// Name identifies the certificate in its place: an ACM ARN, a Key Vault or GCP certificate name, a
	// secret name (with "#N" when a secret holds several certificates), a Vault serial.
	Name string `json:"name"`

	Subject            string    `json:"subject"`
	SANs               []string  `json:"sans,omitempty"`
	Issuer             string    `json:"issuer"`
	Serial             string    `json:"serial"`
	NotBefore          time.Time `json:"not_before"`
	NotAfter           time.Time `json:"not_after"`
	DaysLeft           int       `json:"days_left"`
	KeyType            string    `json:"key_type"`
	SignatureAlgorithm string    `json:"signature_algorithm"`
	// Managed is set when the certificate carries keyferry's tag or label (ManagedTag; StoreManagedTag in
	// secret stores).
	Managed bool `json:"managed"`
	// InUse lists what the cloud says uses the certificate (ACM InUseBy, GCP used_by); empty elsewhere.
	InUse    []string  `json:"in_use,omitempty"`
	Findings []Finding `json:"findings"`

	cert  *x509.Certificate   // the certificate itself, when the entry was built from one
	chain []*x509.Certificate // certificates found beside it (candidate intermediates)
}

// Finding is one problem with a certificate.
type Finding struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Finding kinds.
const (
	KindExpired        = "expired"
	KindExpiring7      = "expiring-7"
	KindExpiring30     = "expiring-30"
	KindExpiring60     = "expiring-60"
	KindExpiring90     = "expiring-90"
	KindWeakKey        = "weak-key"
	KindWeakSignature  = "weak-signature"
	KindUntrustedChain = "untrusted-chain"
)

// StatusOK is the status of a certificate with more than 90 days left.
const StatusOK = "ok"

// Statuses lists every expiry status, most urgent first.
var Statuses = []string{KindExpired, KindExpiring7, KindExpiring30, KindExpiring60, KindExpiring90, StatusOK}

// Status is the entry's expiry status: the expiry finding's kind (expired, expiring-7, -30, -60, -90),
// or ok.
func (e Entry) Status() string {
	for _, f := range e.Findings {
		if isExpiryKind(f.Kind) {
			return f.Kind
		}
	}
	return StatusOK
}

// Certificate returns the parsed certificate behind the entry (nil for an entry not built from one).
func (e Entry) Certificate() *x509.Certificate { return e.cert }

func isExpiryKind(k string) bool {
	switch k {
	case KindExpired, KindExpiring7, KindExpiring30, KindExpiring60, KindExpiring90:
		return true
	}
	return false
}

// Options configure the assessment.
type Options struct {
	// Roots are the trusted roots. When set, a certificate whose chain does not end at one of them gets an
	// untrusted-chain finding; when nil, the chain is not checked.
	Roots *x509.CertPool
	// Intermediates are extra intermediates for chain building (certificates found beside each
	// certificate, e.g. an ACM chain or a bundle's chain, are used too).
	Intermediates *x509.CertPool
	// Now is the time of the assessment; zero means time.Now().
	Now time.Time
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// Source scans one place for certificates. Scan yields entries built with FromCertificate and, for what
// it could not read, errors (an error with a zero Entry); it stops at the first error it cannot go on
// after. Entries need not be assessed: Collect does that.
type Source interface {
	// Name names the source in errors, e.g. "acm us-east-1" or "store prod-secrets".
	Name() string
	Scan(ctx context.Context) iter.Seq2[Entry, error]
}

// SourceError is an error of one source.
type SourceError struct {
	Source string
	Err    error
}

func (e *SourceError) Error() string { return "inventory: source " + e.Source + ": " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// Collect scans every source concurrently, assesses each entry with opts and returns the entries sorted by
// NotAfter (then cloud, location, store, name). Errors of every source are joined into the error, each a
// *SourceError naming its source; the entries of the other sources (and those a failing source yielded
// before failing) are returned all the same.
func Collect(ctx context.Context, opts Options, sources ...Source) ([]Entry, error) {
	type result struct {
		entries []Entry
		errs    []error
	}
	results := make([]result, len(sources))
	var wg sync.WaitGroup
	for i, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "unnamed"
			if src != nil {
				name = src.Name()
			}
			defer func() {
				if r := recover(); r != nil {
					results[i].errs = append(results[i].errs, &SourceError{Source: name, Err: fmt.Errorf("panic: %v", r)})
				}
			}()
			if src == nil {
				results[i].errs = append(results[i].errs, &SourceError{Source: name, Err: errors.New("nil source")})
				return
			}
			for e, err := range src.Scan(ctx) {
				if err != nil {
					results[i].errs = append(results[i].errs, &SourceError{Source: name, Err: err})
					continue
				}
				results[i].entries = append(results[i].entries, e)
			}
		}()
	}
	wg.Wait()

	var entries []Entry
	var errs []error
	for _, r := range results {
		entries = append(entries, r.entries...)
		errs = append(errs, r.errs...)
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	for i := range entries {
		entries[i] = Assess(entries[i], opts)
	}
	SortEntries(entries)
	return entries, errors.Join(errs...)
}

// SortEntries sorts by NotAfter, then cloud, location, store and name.
func SortEntries(entries []Entry) {
	slices.SortStableFunc(entries, func(a, b Entry) int {
		return cmp.Or(a.NotAfter.Compare(b.NotAfter), cmp.Compare(a.Cloud, b.Cloud), cmp.Compare(a.Location, b.Location),
			cmp.Compare(a.Store, b.Store), cmp.Compare(a.Name, b.Name))
	})
}

// FromCertificate builds an entry describing cert (subject, SANs, issuer, serial, validity, key type,
// signature algorithm). chain holds certificates found with it, used as intermediates by Assess. The
// caller fills Cloud, Location, Store, Name, Managed and InUse.
func FromCertificate(cert *x509.Certificate, chain []*x509.Certificate) Entry {
	e := Entry{
		Subject:            cert.Subject.String(),
		SANs:               sans(cert),
		Issuer:             cert.Issuer.String(),
		Serial:             formatSerial(cert),
		NotBefore:          cert.NotBefore.UTC(),
		NotAfter:           cert.NotAfter.UTC(),
		KeyType:            keyType(cert),
		SignatureAlgorithm: cert.SignatureAlgorithm.String(),
		cert:               cert,
	}
	for _, c := range chain {
		if c != nil && !c.Equal(cert) {
			e.chain = append(e.chain, c)
		}
	}
	return e
}

func sans(c *x509.Certificate) []string {
	var out []string
	out = append(out, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

func formatSerial(c *x509.Certificate) string { return pki.FormatSerial(c.SerialNumber) }
