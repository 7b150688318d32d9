package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Issuer issues leaf certificates.
type Issuer interface {
	Issue(ctx context.Context, s Spec) (*Bundle, error)
}

// Bundle is an issued certificate with its private key, PEM encoded.
type Bundle struct {
	// CertPEM is the leaf certificate.
	CertPEM []byte
	// KeyPEM is the leaf's PKCS#8 private key.
	KeyPEM []byte
	// ChainPEM is the issuing intermediate first, then every certificate above it up to and including
	// the root. A TLS server sends CertPEM followed by ChainPEM (the root is harmless but optional).
	ChainPEM []byte
	// NotBefore and NotAfter are the leaf's validity.
	NotBefore, NotAfter time.Time
	// Serial is the leaf's serial number as colon-separated lowercase hex ("3a:f0:...").
	Serial string
}

// LocalIssuer signs leaves in process with an intermediate's key (a file or KMS signer). It is safe for
// concurrent use.
type LocalIssuer struct {
	intermediate *x509.Certificate
	key          crypto.Signer
	policy       Policy
	roots        *x509.CertPool
	inters       *x509.CertPool
	chainPEM     []byte
}

var _ Issuer = (*LocalIssuer)(nil)

// NewLocalIssuer returns an issuer signing with key as intermediate under policy. chain holds the
// certificates above the intermediate, ending with the root (the self-signed certificates in it are the
// trust anchors every leaf is verified against before it is returned). The key must belong to the
// intermediate, and the chain must link up to a root.
func NewLocalIssuer(intermediate *x509.Certificate, chain []*x509.Certificate, key crypto.Signer, policy Policy) (*LocalIssuer, error) {
	if intermediate == nil || key == nil {
		return nil, errors.New("pki: issuer: intermediate certificate and key are required")
	}
	if !intermediate.IsCA || !intermediate.BasicConstraintsValid {
		return nil, fmt.Errorf("pki: issuer: %q is not a CA certificate", intermediate.Subject.CommonName)
	}
	if intermediate.KeyUsage != 0 && intermediate.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: issuer: %q may not sign certificates (no certSign key usage)", intermediate.Subject.CommonName)
	}
	if !publicKeysEqual(intermediate.PublicKey, key.Public()) {
		return nil, fmt.Errorf("pki: issuer: the key does not belong to the intermediate %q", intermediate.Subject.CommonName)
	}
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("pki: issuer: invalid policy: %w", err)
	}
	all := append([]*x509.Certificate{intermediate}, chain...)
	if err := checkLinks(all); err != nil {
		return nil, fmt.Errorf("pki: issuer: %w", err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	nroots := 0
	for _, c := range all {
		if isSelfSigned(c) {
			roots.AddCert(c)
			nroots++
		} else {
			inters.AddCert(c)
		}
	}
	if nroots == 0 {
		return nil, errors.New("pki: issuer: the chain has no root (self-signed) certificate to verify leaves against: pass the root as the last chain certificate")
	}
	var chainPEM bytes.Buffer
	for _, c := range all {
		chainPEM.Write(pemCert(c.Raw))
	}
	if _, err := intermediate.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("pki: issuer: the intermediate does not verify to the root now: %w", err)
	}
	return &LocalIssuer{
		intermediate: intermediate, key: key, policy: policy,
		roots: roots, inters: inters, chainPEM: chainPEM.Bytes(),
	}, nil
}

// Issue checks s against the policy, generates a fresh key, signs a leaf valid from a minute ago for
// s.TTL, and verifies it chains to the roots (with every name constraint on the way) before returning.
func (li *LocalIssuer) Issue(ctx context.Context, s Spec) (*Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := li.policy.Check(s); err != nil {
		return nil, err
	}
	s = s.withDefaults()
	where := "pki: issue"
	if s.Name != "" {
		where += fmt.Sprintf(" %q", s.Name)
	}

	t := time.Now()
	notBefore, notAfter := t.Add(-backdate), t.Add(s.TTL)
	if notBefore.Before(li.intermediate.NotBefore) {
		notBefore = li.intermediate.NotBefore
	}
	if notAfter.After(li.intermediate.NotAfter) {
		return nil, fmt.Errorf("%s: the intermediate %q expires at %s, before the requested %s lifetime ends: rotate the intermediate or request a shorter TTL",
			where, li.intermediate.Subject.CommonName, li.intermediate.NotAfter.UTC().Format(time.RFC3339), s.TTL)
	}

	key, err := GenerateKey(s.KeyType)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	uris, err := parseURIs(s.URIs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var ku x509.KeyUsage
	for _, n := range s.KeyUsage {
		ku |= KeyUsages[n]
	}
	ekus := make([]x509.ExtKeyUsage, 0, len(s.ExtKeyUsage))
	for _, n := range s.ExtKeyUsage {
		ekus = append(ekus, ExtKeyUsages[n])
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		DNSNames:              s.DNSNames,
		IPAddresses:           s.IPAddresses,
		URIs:                  uris,
		KeyUsage:              ku,
		ExtKeyUsage:           ekus,
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          skid,
		AuthorityKeyId:        li.intermediate.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, li.intermediate, key.Public(), li.key)
	if err != nil {
		return nil, fmt.Errorf("%s: sign: %w", where, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: parse the signed certificate: %w", where, err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         li.roots,
		Intermediates: li.inters,
		CurrentTime:   t,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("%s: the signed certificate does not verify to the root (is a name outside the intermediate's constraints?): %w", where, err)
	}
	keyPEM, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Bundle{
		CertPEM:   pemCert(der),
		KeyPEM:    keyPEM,
		ChainPEM:  bytes.Clone(li.chainPEM),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		Serial:    FormatSerial(leaf.SerialNumber),
	}, nil
}

// FormatSerial writes a serial number as colon-separated lowercase hex.
func FormatSerial(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// RenewAt is when cert is due for renewal: renewBefore before NotAfter, or, when renewBefore is 0, at
// two thirds of its life. It is never before NotBefore. A nil cert is due at the zero time.
func RenewAt(cert *x509.Certificate, renewBefore time.Duration) time.Time {
	if cert == nil {
		return time.Time{}
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	if life <= 0 {
		return cert.NotBefore
	}
	if renewBefore <= 0 {
		return cert.NotBefore.Add(life / 3 * 2)
	}
	if renewBefore >= life {
		return cert.NotBefore
	}
	return cert.NotAfter.Add(-renewBefore)
}

// Due reports whether cert should be renewed at now (always, for a nil cert).
func Due(cert *x509.Certificate, renewBefore time.Duration, now time.Time) bool {
	if cert == nil {
		return true
	}
	return !now.Before(RenewAt(cert, renewBefore))
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// checkLinks checks that each certificate is signed by the next one, and the last by itself if it is
// self-issued.
func checkLinks(certs []*x509.Certificate) error {
	for i, c := range certs {
		if i+1 < len(certs) {
			next := certs[i+1]
			if !bytes.Equal(c.RawIssuer, next.RawSubject) {
				return fmt.Errorf("chain broken at certificate %d (%q): issued by %q, but the next certificate is %q",
					i+1, c.Subject.CommonName, c.Issuer.CommonName, next.Subject.CommonName)
			}
			if err := c.CheckSignatureFrom(next); err != nil {
				return fmt.Errorf("chain broken at certificate %d (%q): not signed by %q: %w",
					i+1, c.Subject.CommonName, next.Subject.CommonName, err)
			}
			continue
		}
		if bytes.Equal(c.RawIssuer, c.RawSubject) {
			if err := c.CheckSignatureFrom(c); err != nil {
				return fmt.Errorf("root %q: bad self-signature: %w", c.Subject.CommonName, err)
			}
		}
	}
	return nil
}
