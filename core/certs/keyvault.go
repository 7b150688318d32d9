package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keyferry/keyferry/core/pki"
)

// KeyVaultFormat is how KeyVaultTarget sends the certificate, and so the content type of the
// certificate's backing secret.
type KeyVaultFormat int

const (
	// KeyVaultPFX imports a PKCS#12 file (application/x-pkcs12), encrypted with a fresh random password
	// sent alongside it. The default.
	KeyVaultPFX KeyVaultFormat = iota
	// KeyVaultPEM imports PEM text (application/x-pem-file): the PKCS#8 key, the leaf, the chain.
	KeyVaultPEM
)

// Key Vault content types of a certificate's backing secret.
const (
	ContentTypePKCS12 = "application/x-pkcs12"
	ContentTypePEM    = "application/x-pem-file"
)

// KeyVaultTarget imports certificates into Azure Key Vault (azcertificates). Each Put is one
// ImportCertificate call: a new version of the certificate of the same name (renewal keeps the name; the
// versionless id always points at the newest), whose backing secret and key Key Vault creates together
// from the imported file, so certificate and key change together. Key Vault tags belong to each version:
// every import carries the user tags and keyferry-cert=<spec name>.
//
// Put first reads the certificate (GetCertificate: public certificate and attributes, never the key) to
// refuse overwriting a certificate that is not keyferry's. Current is that same GetCertificate: the
// leaf from its cer field (DER), the tags, the version.
type KeyVaultTarget struct {
	// Format is how the bundle is sent; the default is KeyVaultPFX.
	Format KeyVaultFormat
	// CertName maps a spec name to the certificate name (1-127 letters, digits and hyphens); nil: the
	// spec name itself.
	CertName func(name string) string
	// Adopt lets Put import over an existing certificate that does not carry keyferry-cert=<spec name>.
	Adopt bool

	name   string
	client *azcertificates.Client
}

var _ Target = (*KeyVaultTarget)(nil)

// NewKeyVaultTarget returns a target named name importing through client (one vault).
func NewKeyVaultTarget(name string, client *azcertificates.Client) *KeyVaultTarget {
	return &KeyVaultTarget{name: name, client: client}
}

// Name is the target's configured name.
func (t *KeyVaultTarget) Name() string { return t.name }

var kvNameRule = lazyRegexp(`^[0-9A-Za-z-]{1,127}$`)

func (t *KeyVaultTarget) certName(name string) string {
	if t.CertName != nil {
		return t.CertName(name)
	}
	return name
}

func (t *KeyVaultTarget) err(kind error, op, name, detail string, cause error) error {
	return &Error{Kind: kind, Target: t.name, Op: op, Name: name, Detail: detail, Err: cause}
}

// kvKind classifies a Key Vault error: 404 not found; 400 (bad content) and 409 (a deleted certificate
// or a plain secret holds the name) refused; anything else failed.
func kvKind(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusNotFound:
			return ErrNotFound
		case http.StatusBadRequest, http.StatusConflict:
			return ErrRefused
		}
	}
	return ErrFailed
}

// checkKVTags applies Key Vault's tag rules: at most 15, names at most 512 characters, values at most 256.
func checkKVTags(tags map[string]string) error {
	if len(tags) > 15 {
		return fmt.Errorf("%d tags, Key Vault allows at most 15", len(tags))
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > 512 {
			return fmt.Errorf("tag name %q: Key Vault tag names are 1 to 512 characters", k)
		}
		if utf8.RuneCountInString(v) > 256 {
			return fmt.Errorf("tag %q: Key Vault tag values are at most 256 characters", k)
		}
	}
	return nil
}

// Put imports the bundle as a new version of the certificate.
func (t *KeyVaultTarget) Put(ctx context.Context, name string, b *pki.Bundle, tags map[string]string) (Meta, error) {
	p, err := Check(b, time.Now())
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "invalid bundle", err)
	}
	cn := t.certName(name)
	if !kvNameRule().MatchString(cn) {
		return Meta{}, t.err(ErrRefused, "put", name, fmt.Sprintf("%q is not a Key Vault certificate name (1-127 letters, digits and hyphens): map it with CertName", cn), nil)
	}
	tags, err = withMark(name, tags)
	if err == nil {
		err = checkKVTags(tags)
	}
	if err != nil {
		return Meta{}, t.err(ErrRefused, "put", name, "", err)
	}
	params := azcertificates.ImportCertificateParameters{Tags: map[string]*string{}}
	for k, v := range tags {
		params.Tags[k] = &v
	}
	switch t.Format {
	case KeyVaultPFX:
		pw, err := randomPassword()
		if err != nil {
			return Meta{}, t.err(ErrFailed, "put", name, "", err)
		}
		pfx, err := p.Bundle.PFX(pw)
		if err != nil {
			return Meta{}, t.err(ErrRefused, "put", name, "encode PKCS#12", err)
		}
		params.Base64EncodedCertificate = ptr(base64.StdEncoding.EncodeToString(pfx))
		params.Password = &pw
		params.CertificatePolicy = &azcertificates.CertificatePolicy{SecretProperties: &azcertificates.SecretProperties{ContentType: ptr(ContentTypePKCS12)}}
	case KeyVaultPEM:
		var text bytes.Buffer
		text.Write(p.KeyPEM)
		text.Write(p.LeafPEM)
		text.Write(p.ChainPEM)
		params.Base64EncodedCertificate = ptr(text.String())
		params.CertificatePolicy = &azcertificates.CertificatePolicy{SecretProperties: &azcertificates.SecretProperties{ContentType: ptr(ContentTypePEM)}}
	default:
		return Meta{}, t.err(ErrRefused, "put", name, fmt.Sprintf("unknown format %d", t.Format), nil)
	}

	cur, err := t.client.GetCertificate(ctx, cn, "", nil)
	switch k := kvKind(err); {
	case err == nil:
		if tagOf(cur.Tags, TagKey) != name && !t.Adopt {
			return Meta{}, t.err(ErrRefused, "put", name, "the Key Vault certificate "+cn+" exists and is not keyferry's certificate "+
				quote(name)+" (no tag "+TagKey+"="+name+"): refusing to import over it; remove it, tag it, or set Adopt", nil)
		}
	case k == ErrNotFound:
	default:
		return Meta{}, t.err(ErrFailed, "put", name, "read the certificate "+cn, err)
	}

	resp, err := t.client.ImportCertificate(ctx, cn, params, nil)
	if err != nil {
		return Meta{}, t.err(kvKind(err), "put", name, "import "+cn, err)
	}
	if !bytes.Equal(resp.CER, p.Leaf.Raw) {
		return Meta{}, t.err(ErrFailed, "put", name, "Key Vault answered the import with another certificate than the one sent", nil)
	}
	m := Meta{Managed: true, NotAfter: p.Leaf.NotAfter}
	if resp.ID != nil {
		m.ID, m.Version = string(*resp.ID), resp.ID.Version()
	}
	return m, nil
}

// Current reads the certificate's newest version (GetCertificate: no key, no secret read).
func (t *KeyVaultTarget) Current(ctx context.Context, name string) (*x509.Certificate, Meta, error) {
	cn := t.certName(name)
	if !kvNameRule().MatchString(cn) {
		return nil, Meta{}, t.err(ErrFailed, "current", name, fmt.Sprintf("%q is not a Key Vault certificate name", cn), nil)
	}
	resp, err := t.client.GetCertificate(ctx, cn, "", nil)
	if err != nil {
		k := kvKind(err)
		if k != ErrNotFound {
			k = ErrFailed
		}
		return nil, Meta{}, t.err(k, "current", name, "get the certificate "+cn, err)
	}
	meta := Meta{Managed: tagOf(resp.Tags, TagKey) == name}
	if resp.ID != nil {
		meta.ID, meta.Version = string(*resp.ID), resp.ID.Version()
	}
	if len(resp.CER) == 0 {
		return nil, meta, t.err(ErrFailed, "current", name, "Key Vault returned no certificate (cer) for "+cn, nil)
	}
	cert, err := x509.ParseCertificate(resp.CER)
	if err != nil {
		return nil, meta, t.err(ErrFailed, "current", name, "parse the cer of "+cn, err)
	}
	meta.NotAfter = cert.NotAfter
	return cert, meta, nil
}

func tagOf(tags map[string]*string, key string) string {
	if v := tags[key]; v != nil {
		return *v
	}
	return ""
}

func randomPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("password for the PKCS#12 file: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func ptr[T any](v T) *T { return &v }
