// Package certs distributes issued certificates (pki.Bundle) to targets, each in its native form: a
// secret in any store.Store (the bundle's JSON), an AWS Certificate Manager import, an Azure Key Vault
// certificate, a Google Certificate Manager self-managed certificate.
//
// # All or nothing per target
//
// A target receives the certificate and its key together, in one write, or not at all. Every Put checks
// the bundle before any call goes out (see Check): the key must belong to the leaf, every chain
// certificate must be signed by the next, the chain must be present unless the leaf is self-signed, and
// the leaf must not have expired. A bundle failing any check is refused with no call made, so a target
// never holds a mismatched pair or a broken chain.
//
// # Ownership
//
// keyferry marks what it writes with the tag (or label) keyferry-cert=<spec name> (TagKey; secret stores
// reserve the keyferry- prefix, so SecretTarget uses keyferry_cert, SecretMarkKey). Put never
// overwrites an object that exists under the target name without that mark (unless the target's Adopt
// option says so); Current reports the mark as Meta.Managed, and NeedsRenewal leaves unmarked
// certificates alone ("not managed by keyferry").
//
// # Errors
//
// Errors are *Error values with a kind: ErrRefused (the bundle or the target's state was refused, by
// keyferry before any call or by the service's validation: retrying the same write will not help),
// ErrNotFound (Current: nothing there), or ErrFailed (the call failed: network, throttling, permission,
// a lost race). Their messages never contain key material: besides never quoting keys, *Error scrubs any
// PEM private key block and any long base64 run from the causes it wraps.
package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/keyferry/keyferry/core/pki"
)

// TagKey is the tag or label keyferry puts on everything it writes, with the spec name as its value.
const TagKey = "keyferry-cert"

// Target is one place certificates are written to, in its native form.
type Target interface {
	// Name is the configured name of the target.
	Name() string
	// Current reports what the target holds now for the spec name: the leaf certificate and metadata,
	// reading as little as the target allows (see each target for what a call costs). Nothing there is an
	// error wrapping ErrNotFound.
	Current(ctx context.Context, name string) (*x509.Certificate, Meta, error)
	// Put writes the bundle for the spec name, certificate and key together, with the user tags (the
	// target adds keyferry-cert=<name>). The bundle is checked before any call.
	Put(ctx context.Context, name string, b *pki.Bundle, tags map[string]string) (Meta, error)
}

// Meta describes the object a target holds for a spec name.
type Meta struct {
	// ID is the target's id of the object: the secret name, the ACM certificate ARN, the Key Vault
	// certificate id, the Certificate Manager resource name.
	ID string
	// Version is the object's current version, where the target keeps versions.
	Version string
	// Managed is true when the object carries keyferry's mark, keyferry-cert=<spec name>.
	Managed bool
	// NotAfter is the leaf certificate's expiry (zero if unknown).
	NotAfter time.Time
}

// Error kinds. Test with errors.Is.
var (
	// ErrRefused: the write was refused, by keyferry before any call (a mismatched pair, a broken chain, a
	// name or tag the target cannot hold, an object keyferry does not own) or by the target's validation.
	// Nothing was written; retrying the same write will not help.
	ErrRefused = errors.New("refused")
	// ErrNotFound: the target holds nothing for the name.
	ErrNotFound = errors.New("not found")
	// ErrFailed: the call failed (transport, throttling, permission, a concurrent change). Nothing or the
	// whole bundle was written, never part of it; a retry may succeed.
	ErrFailed = errors.New("failed")
)

// Error is the error every target returns.
type Error struct {
	Kind   error  // ErrRefused, ErrNotFound or ErrFailed
	Target string // the target's name
	Op     string // "put" or "current"
	Name   string // the spec name
	Detail string // what exactly is wrong
	Err    error  // the cause (an SDK error), may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("certs: ")
	b.WriteString(e.Target)
	if e.Op != "" {
		b.WriteString(": " + e.Op)
	}
	if e.Name != "" {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	b.WriteString(": ")
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("error")
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return Redact(b.String())
}

// Unwrap exposes the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

var (
	pemKeyBlock = lazyRegexp(`(?s)-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|$)`)
	longBase64  = lazyRegexp(`[A-Za-z0-9+/]{160,}={0,2}|[A-Za-z0-9_-]{160,}`)
)

// Redact removes PEM private key blocks and long base64 runs (an encoded key, PKCS#12 file or request
// body echoed by a service) from s.
func Redact(s string) string {
	if strings.Contains(s, "PRIVATE KEY") {
		s = pemKeyBlock().ReplaceAllString(s, "[redacted private key]")
	}
	return longBase64().ReplaceAllString(s, "[redacted base64]")
}

// Prepared is a checked bundle, normalised: the leaf alone, the chain in order, a PKCS#8 key.
type Prepared struct {
	Leaf     *x509.Certificate
	Chain    []*x509.Certificate
	LeafPEM  []byte
	ChainPEM []byte
	KeyPEM   []byte
	// Bundle is the normalised bundle (NotAfter, NotBefore and Serial from the leaf).
	Bundle *pki.Bundle
}

// Check verifies a bundle before anything is written, at time now: the key matches the leaf
// (pki.Matches/ParseBundle), the chain links certificate by certificate, a chain is present unless the
// leaf is self-signed, the bundle's NotAfter agrees with the leaf's, and the leaf has not expired. Its
// errors never contain key material.
func Check(b *pki.Bundle, now time.Time) (*Prepared, error) {
	if b == nil {
		return nil, errors.New("no bundle")
	}
	if err := pki.Matches(b.CertPEM, b.KeyPEM); err != nil {
		return nil, err
	}
	pb, err := pki.ParseBundle(b.CertPEM, b.KeyPEM, b.ChainPEM)
	if err != nil {
		return nil, err
	}
	leaf := pb.Leaf
	if len(pb.Chain) == 0 && !(bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignatureFrom(leaf) == nil) {
		return nil, fmt.Errorf("the bundle has no chain: the certificate %q is issued by %q, which is missing, so clients could not verify it",
			leaf.Subject.CommonName, leaf.Issuer.CommonName)
	}
	if !b.NotAfter.IsZero() && !b.NotAfter.Equal(leaf.NotAfter) {
		return nil, fmt.Errorf("the bundle's NotAfter %s disagrees with its certificate's %s",
			b.NotAfter.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if !now.Before(leaf.NotAfter) {
		return nil, fmt.Errorf("the certificate %q (serial %s) expired at %s", leaf.Subject.CommonName,
			pki.FormatSerial(leaf.SerialNumber), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	keyPEM, err := pki.MarshalPrivateKeyPEM(pb.Key)
	if err != nil {
		return nil, err
	}
	p := &Prepared{Leaf: leaf, Chain: pb.Chain, KeyPEM: keyPEM,
		LeafPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})}
	var chain bytes.Buffer
	for _, c := range pb.Chain {
		chain.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	p.ChainPEM = chain.Bytes()
	p.Bundle = &pki.Bundle{CertPEM: p.LeafPEM, KeyPEM: keyPEM, ChainPEM: p.ChainPEM,
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: pki.FormatSerial(leaf.SerialNumber)}
	return p, nil
}

// FullChainPEM is the leaf followed by the chain.
func (p *Prepared) FullChainPEM() []byte {
	return append(bytes.Clone(p.LeafPEM), p.ChainPEM...)
}

// withMark returns the user tags plus keyferry's mark; a user tag trying to set the mark to something
// else is refused.
func withMark(name string, tags map[string]string) (map[string]string, error) {
	return withMarkKey(TagKey, name, tags)
}

func withMarkKey(key, name string, tags map[string]string) (map[string]string, error) {
	for _, k := range []string{TagKey, SecretMarkKey} {
		if v, ok := tags[k]; ok && v != name {
			return nil, fmt.Errorf("the tag %s is keyferry's ownership mark and must be the spec name %q, not %q", k, name, v)
		}
	}
	out := make(map[string]string, len(tags)+1)
	maps.Copy(out, tags)
	if key != TagKey {
		delete(out, TagKey)
	}
	out[key] = name
	return out, nil
}

// Status is the outcome of one target's write.
type Status int

const (
	// StatusOK: the target holds the bundle.
	StatusOK Status = iota
	// StatusRefused: nothing was written; the bundle or the target's state was refused (ErrRefused).
	StatusRefused
	// StatusFailed: the write failed; a retry may succeed.
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusRefused:
		return "refused"
	case StatusFailed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Result is one target's outcome.
type Result struct {
	Target string
	Status Status
	Meta   Meta  // for StatusOK
	Err    error // for StatusRefused and StatusFailed; never contains key material
}

// Distribute writes b for the spec name to every target, independently and concurrently: one target's
// refusal or failure does not stop the others. The bundle is checked once first; a bundle that fails
// the check is refused for every target and no call is made. Results are in the order of targets.
func Distribute(ctx context.Context, b *pki.Bundle, name string, targets []Target) []Result {
	return DistributeTagged(ctx, b, name, nil, targets)
}

// DistributeTagged is Distribute with user tags for every target.
func DistributeTagged(ctx context.Context, b *pki.Bundle, name string, tags map[string]string, targets []Target) []Result {
	out := make([]Result, len(targets))
	for i, t := range targets {
		if t != nil {
			out[i].Target = t.Name()
		}
	}
	if _, err := Check(b, time.Now()); err != nil {
		for i := range out {
			out[i].Status = StatusRefused
			out[i].Err = &Error{Kind: ErrRefused, Target: out[i].Target, Op: "put", Name: name, Detail: "invalid bundle", Err: err}
		}
		return out
	}
	var wg sync.WaitGroup
	for i, t := range targets {
		if t == nil {
			out[i].Status = StatusFailed
			out[i].Err = &Error{Kind: ErrFailed, Op: "put", Name: name, Detail: "nil target"}
			continue
		}
		wg.Go(func() {
			meta, err := t.Put(ctx, name, b, tags)
			switch {
			case err == nil:
				out[i].Status, out[i].Meta = StatusOK, meta
			case errors.Is(err, ErrRefused):
				out[i].Status, out[i].Err = StatusRefused, safe(err, out[i].Target, name)
			default:
				out[i].Status, out[i].Err = StatusFailed, safe(err, out[i].Target, name)
			}
		})
	}
	wg.Wait()
	return out
}

// safe makes sure an error from a Target implementation outside this package is redacted too.
func safe(err error, target, name string) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Kind: ErrFailed, Target: target, Op: "put", Name: name, Err: err}
}

// Reasons NeedsRenewal gives for its common answers.
const (
	ReasonMissing    = "missing"
	ReasonNotManaged = "not managed by keyferry"
)

// NeedsRenewal decides from what the target holds now whether the spec name is due for renewal at now:
//
//   - nothing there: true, "missing";
//   - something there without keyferry's mark (a certificate from another CA or process): false,
//     "not managed by keyferry" — keyferry does not take it over;
//   - a keyferry certificate inside its renewal window (pki.RenewAt: renewBefore before NotAfter, or at
//     two thirds of its life when renewBefore is 0), or expired: true;
//   - otherwise false, with when it will be due.
//
// An error reading the target is returned as it is, with false.
func NeedsRenewal(ctx context.Context, t Target, name string, renewBefore time.Duration, now time.Time) (bool, string, error) {
	cert, meta, err := t.Current(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		return true, ReasonMissing, nil
	case err != nil:
		return false, "", err
	case !meta.Managed:
		return false, ReasonNotManaged, nil
	case cert == nil:
		return true, "keyferry's object holds no readable certificate", nil
	}
	exp := cert.NotAfter.UTC().Format(time.RFC3339)
	if !now.Before(cert.NotAfter) {
		return true, "expired at " + exp, nil
	}
	at := pki.RenewAt(cert, renewBefore)
	if !now.Before(at) {
		return true, fmt.Sprintf("inside the renewal window: due at %s, expires at %s", at.UTC().Format(time.RFC3339), exp), nil
	}
	return false, fmt.Sprintf("valid until %s; renewal due at %s", exp, at.UTC().Format(time.RFC3339)), nil
}
