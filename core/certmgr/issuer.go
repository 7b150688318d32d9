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
		var key crypto.Signer
		switch {
		case b.KMS != nil:
			build := m.opts.Clients.KMS
			if build == nil {
				build = defaultKMS
			}
			client, err := build(ctx, b.KMS)
			if err != nil {
				return nil, fmt.Errorf("builtin issuer: KMS client (%s): %w", b.KMS.Region, err)
			}
			if key, err = kmssigner.NewAWS(ctx, client, b.KMS.KeyID); err != nil {
				return nil, fmt.Errorf("builtin issuer: %w", err)
			}
		default:
			if key, err = pki.LoadFileSigner(b.KeyFile); err != nil {
				return nil, fmt.Errorf("builtin issuer: %w", err)
			}
		}
		li, err := pki.NewLocalIssuer(inter, chain, key, m.cc.Policy)
		if err != nil {
			return nil, fmt.Errorf("builtin issuer: %w", err)
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
