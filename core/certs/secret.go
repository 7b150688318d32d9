package certs

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"maps"
	"time"

	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/store"
)

// SecretContentType is the content type SecretTarget writes where the store records one.
const SecretContentType = "application/json"

// SecretMarkKey is the tag SecretTarget marks its secrets with, in place of TagKey: the store layer
// reserves the "keyferry-" prefix for its provenance record (store.CheckPut refuses user tags with it and
// every adapter strips it from the tags it reads back), so keyferry-cert cannot pass through a
// store.Store. keyferry_cert is valid in every store (AWS tags, Azure tags, GCP labels, Vault custom
// metadata, the file store).
const SecretMarkKey = "keyferry_cert"

// SecretTarget keeps certificates in any secret store (AWS Secrets Manager, GCP Secret Manager, Key
// Vault secrets, Vault KV, the file store). The value is the bundle's JSON (pki.Bundle.JSON:
// {"certificate","private_key","chain","not_after"}), written as one text value, so certificate and key
// change together; the secret carries the tag keyferry_cert=<spec name> (SecretMarkKey, see there why
// not keyferry-cert).
//
// Put first reads the secret's metadata (Describe, never the value) to refuse overwriting a secret that
// is not keyferry's, then writes with the store's compare-and-swap where it has one (Vault, GCP, the file
// store), so a secret created or changed in between is not overwritten (ErrFailed, retry).
//
// Current has to read the value (store Get) to parse the certificate out of the JSON: on AWS Secrets
// Manager that is a billed GetSecretValue (plus a DescribeSecret), on Key Vault a secret get, and every
// store's audit log records it as an access to the secret, private key included. Renewal checks against
// a secret target therefore cost one value read per check.
type SecretTarget struct {
	// SecretName maps a spec name to the secret name; nil: the spec name itself.
	SecretName func(name string) string
	// Adopt lets Put overwrite an existing secret that does not carry keyferry_cert=<spec name>.
	Adopt bool

	store store.Store
}

var _ Target = (*SecretTarget)(nil)

// NewSecretTarget returns a target writing to st.
func NewSecretTarget(st store.Store) *SecretTarget { return &SecretTarget{store: st} }

// Name is the store's configured name.
func (t *SecretTarget) Name() string { return t.store.Name() }

func (t *SecretTarget) secretName(name string) string {
	if t.SecretName != nil {
		return t.SecretName(name)
	}
	return name
}

func (t *SecretTarget) err(kind error, op, name, detail string, cause error) error {
	return &Error{Kind: kind, Target: t.Name(), Op: op, Name: name, Detail: detail, Err: cause}
}

// storeKind classifies a store error: what the store refuses to hold is refused, anything else failed.
func storeKind(err error) error {
	for _, k := range []error{store.ErrInvalidName, store.ErrInvalidValue, store.ErrInvalidTags, store.ErrTooLarge,
		store.ErrSoftDeleted, store.ErrUnsupported} {
		if errors.Is(err, k) {
			return ErrRefused
		}
	}
	return ErrFailed
}

// Put writes the bundle's JSON with the tags and keyferry's mark.
func (t *SecretTarget) Put(ctx context.Context, name string, b *pki.Bundle, tags map[string]string) (Meta, error) {
	p, err := Check(b, time.Now())
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "invalid bundle", err)
	}
	tags, err = withMarkKey(SecretMarkKey, name, tags)
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "", err)
	}
	doc, err := p.Bundle.JSON()
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "encode the bundle", err)
	}
	sn := t.secretName(name)
	v := store.Text(string(doc))
	opts := store.PutOptions{Tags: tags, ContentType: SecretContentType}
	if err := store.CheckPut(t.store, sn, v, opts); err != nil {
		return Meta{}, t.err(storeKind(err), "put", name, "", err)
	}
	md, err := t.store.Describe(ctx, sn)
	exists := true
	switch {
	case errors.Is(err, store.ErrNotFound):
		exists = false
	case err != nil:
		return Meta{}, t.err(storeKind(err), "put", name, "read the secret's metadata", err)
	case md.Tags[SecretMarkKey] != name && !t.Adopt:
		return Meta{}, t.err(ErrRefused, "put", name, "the secret "+sn+" exists and is not keyferry's certificate "+
			quote(name)+" (no tag "+SecretMarkKey+"="+name+"): refusing to overwrite it; remove it, tag it, or set Adopt", nil)
	}
	if exists && len(md.Tags) > 0 {
		// Keep the secret's other tags, as the store contract says a Put does (some adapters replace
		// them all, Azure keeps tags per version).
		merged := maps.Clone(md.Tags)
		maps.Copy(merged, tags)
		opts.Tags = merged
		if err := store.CheckPut(t.store, sn, v, opts); err != nil {
			return Meta{}, t.err(storeKind(err), "put", name, "with the secret's existing tags", err)
		}
	}
	var out store.Metadata
	if cas, ok := t.store.(store.CompareAndSwapper); ok {
		ifVersion := ""
		if exists {
			ifVersion = md.Version
		}
		out, err = cas.PutIf(ctx, sn, v, opts, ifVersion)
	} else {
		out, err = t.store.Put(ctx, sn, v, opts)
	}
	if err != nil {
		return Meta{}, t.err(storeKind(err), "put", name, "", err)
	}
	return Meta{ID: sn, Version: out.Version, Managed: true, NotAfter: p.Leaf.NotAfter}, nil
}

// bundleDoc is the public part of the bundle JSON: the private key is not even decoded.
type bundleDoc struct {
	Certificate string `json:"certificate"`
	Chain       string `json:"chain"`
	NotAfter    string `json:"not_after"`
}

// Current reads the secret (its value: see the type's documentation for the cost) and parses the
// certificate out of its JSON. A secret without keyferry's mark whose value is not a bundle is reported
// with its metadata, Managed false and no certificate.
func (t *SecretTarget) Current(ctx context.Context, name string) (*x509.Certificate, Meta, error) {
	sn := t.secretName(name)
	if err := store.CheckName(t.store, "get", sn); err != nil {
		return nil, Meta{}, t.err(ErrFailed, "current", name, "", err)
	}
	sec, err := t.store.Get(ctx, sn)
	if errors.Is(err, store.ErrNotFound) {
		return nil, Meta{}, t.err(ErrNotFound, "current", name, "no secret "+sn, err)
	}
	if err != nil {
		return nil, Meta{}, t.err(ErrFailed, "current", name, "", err)
	}
	meta := Meta{ID: sn, Version: sec.Metadata.Version, Managed: sec.Metadata.Tags[SecretMarkKey] == name}
	var doc bundleDoc
	if err := json.Unmarshal(sec.Value.Bytes(), &doc); err != nil || doc.Certificate == "" {
		if !meta.Managed {
			return nil, meta, nil
		}
		// The JSON error is not quoted: it may show a character of the value.
		return nil, meta, t.err(ErrFailed, "current", name, "the secret "+sn+" carries keyferry's tag but holds no certificate bundle JSON", nil)
	}
	cert, err := pki.ParseCertificatePEM([]byte(doc.Certificate))
	if err != nil {
		if !meta.Managed {
			return nil, meta, nil
		}
		return nil, meta, t.err(ErrFailed, "current", name, "the bundle's certificate", err)
	}
	meta.NotAfter = cert.NotAfter
	return cert, meta, nil
}

func quote(s string) string { return `"` + s + `"` }
