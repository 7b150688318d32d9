package certmgr

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/pki/kmssigner"
	"github.com/keyferry/keyferry/core/pki/vaultpki"
)

// maxCertFile bounds what is read from a certificate file.
const maxCertFile = 1 << 20

// readCertificates reads every CERTIFICATE block of a PEM file. A file holding anything else (a private
// key by mistake) is refused without its content being echoed.
func readCertificates(path string) ([]*x509.Certificate, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxCertFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a PEM certificate file", path, maxCertFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return certs, nil
}

// issuerCertificates reads the builtin issuer's intermediate and the chain above it.
func issuerCertificates(b *config.BuiltinIssuer) (inter *x509.Certificate, chain []*x509.Certificate, err error) {
	certs, err := readCertificates(b.Certificate)
	if err != nil {
		return nil, nil, fmt.Errorf("the intermediate certificate: %w", err)
	}
	inter, chain = certs[0], certs[1:]
	if b.Chain != "" {
		more, err := readCertificates(b.Chain)
		if err != nil {
			return nil, nil, fmt.Errorf("the chain: %w", err)
		}
		chain = append(chain, more...)
	}
	return inter, chain, nil
}

// buildIssuer makes the configured issuer. It reads files and, for a KMS key or Vault, calls the cloud.
func (m *Manager) buildIssuer(ctx context.Context) (pki.Issuer, error) {
	if m.opts.Clients.Issuer != nil {
		return m.opts.Clients.Issuer, nil
	}
	is := m.cc.Issuer
	switch {
	case is == nil:
		return nil, errors.New("no issuer is configured: add `issuer:` to `certificates:`")
	case is.Builtin != nil:
		b := is.Builtin
		inter, chain, err := issuerCertificates(b)
		if err != nil {
			return nil, fmt.Errorf("builtin issuer: %w", err)
		}
		key, closeKey, err := m.issuerKey(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("builtin issuer: %w", err)
		}
		li, err := pki.NewLocalIssuer(inter, chain, key, m.cc.Policy)
		if err != nil {
			_ = closeKey()
			return nil, fmt.Errorf("builtin issuer: %w", err)
		}
		if b.CloudKMS != nil {
			return closingIssuer{Issuer: li, close: closeKey}, nil
		}
		return li, nil
	case is.Vault != nil:
		v := is.Vault
		client, err := m.vaultClient(ctx, v.Store)
		if err != nil {
			return nil, fmt.Errorf("vault issuer: %w", err)
		}
		mode := vaultpki.Sign
		if v.Mode == config.VaultPKIIssue {
			mode = vaultpki.Issue
		}
		vi, err := vaultpki.New(client, v.Mount, v.Role, mode)
		if err != nil {
			return nil, fmt.Errorf("vault issuer: %w", err)
		}
		// The Vault role applies its own rules; keyferry's policy applies as well.
		return policyIssuer{inner: vi, policy: m.cc.Policy}, nil
	}
	return nil, errors.New("the issuer names neither builtin nor vault")
}

// issuerKey makes the builtin issuer's signer: the key file, or a key held by AWS KMS, Azure Key Vault or
// Cloud KMS (whose public key is fetched now). closeKey releases what the signer holds (the Cloud KMS
// client); it is never nil.
func (m *Manager) issuerKey(ctx context.Context, b *config.BuiltinIssuer) (key crypto.Signer, closeKey func() error, err error) {
	noop := func() error { return nil }
	switch {
	case b.KMS != nil:
		build := m.opts.Clients.KMS
		if build == nil {
			build = defaultKMS
		}
		client, err := build(ctx, b.KMS)
		if err != nil {
			return nil, noop, fmt.Errorf("KMS client (%s): %w", b.KMS.Region, err)
		}
		key, err = kmssigner.NewAWS(ctx, client, b.KMS.KeyID)
		return key, noop, err
	case b.KeyVaultKey != nil:
		build := m.opts.Clients.KeyVaultKeys
		if build == nil {
			build = defaultKeyVaultKeys
		}
		client, err := build(ctx, b.KeyVaultKey)
		if err != nil {
			return nil, noop, fmt.Errorf("Key Vault keys client (%s): %w", b.KeyVaultKey.Vault, err)
		}
		key, err = kmssigner.NewAzure(ctx, client, b.KeyVaultKey.Key, b.KeyVaultKey.Version)
		return key, noop, err
	case b.CloudKMS != nil:
		build := m.opts.Clients.CloudKMS
		if build == nil {
			build = defaultCloudKMS
		}
		client, err := build(ctx, b.CloudKMS)
		if err != nil {
			return nil, noop, fmt.Errorf("Cloud KMS client: %w", err)
		}
		signer, err := kmssigner.NewGCP(ctx, client, b.CloudKMS.KeyVersion)
		if err == nil {
			if gs, ok := signer.(*kmssigner.GCPSigner); ok && gs.PSSOnly() {
				err = fmt.Errorf("Cloud KMS key version %s is %s: the builtin CA signs RSA certificates with PKCS #1 v1.5; use an RSA_SIGN_PKCS1_* or EC_SIGN_* key",
					b.CloudKMS.KeyVersion, gs.Algorithm())
			}
		}
		if err != nil {
			_ = client.Close()
			return nil, noop, err
		}
		return signer, client.Close, nil
	}
	key, err = pki.LoadFileSigner(b.KeyFile)
	return key, noop, err
}

// closingIssuer is an issuer holding a client to release: Close releases it.
type closingIssuer struct {
	pki.Issuer
	close func() error
}

func (c closingIssuer) Close() error { return c.close() }

// policyIssuer checks keyferry's policy before asking an issuer that applies none of its own.
type policyIssuer struct {
	inner  pki.Issuer
	policy pki.Policy
}

func (p policyIssuer) Issue(ctx context.Context, s pki.Spec) (*pki.Bundle, error) {
	if err := p.policy.Check(s); err != nil {
		return nil, err
	}
	return p.inner.Issue(ctx, s)
}

// issuerKind names the issuer in alerts and audit records.
func (m *Manager) issuerKind() string {
	switch {
	case m.opts.Clients.Issuer != nil:
		return "issuer"
	case m.cc.Issuer != nil && m.cc.Issuer.Vault != nil:
		return "vault-pki"
	}
	return "builtin-ca"
}
