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
	"strconv"
	"strings"
	"sync"
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
	policy       *compiledPolicy
	roots        *x509.CertPool
	inters       *x509.CertPool
	chainPEM     []byte
	// validFrom and validUntil bound the chain's validity: a leaf must lie inside both.
	validFrom, validUntil time.Time

	mu       sync.Mutex
	verified map[string]bool // leaf shapes (names, key usages) that verified to the root; see shape
}

// maxVerifiedShapes bounds LocalIssuer.verified; past it the set starts again.
const maxVerifiedShapes = 4096

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
	li := &LocalIssuer{
		intermediate: intermediate, key: key, policy: policy.compiled(),
		roots: roots, inters: inters, chainPEM: chainPEM.Bytes(), verified: map[string]bool{},
		validFrom: intermediate.NotBefore, validUntil: intermediate.NotAfter,
	}
	for _, c := range chain {
		if c.NotBefore.After(li.validFrom) {
			li.validFrom = c.NotBefore
		}
		if c.NotAfter.Before(li.validUntil) {
			li.validUntil = c.NotAfter
		}
	}
	return li, nil
}

// Issue checks s against the policy, generates a fresh key, signs a leaf valid from a minute ago for
// s.TTL, and verifies it chains to the roots (with every name constraint on the way) before returning.
func (li *LocalIssuer) Issue(ctx context.Context, s Spec) (*Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := li.policy.check(s); err != nil {
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
	if err := li.verify(der, tmpl, t); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	keyPEM, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Bundle{
		CertPEM:  pemCert(der),
		KeyPEM:   keyPEM,
		ChainPEM: bytes.Clone(li.chainPEM),
		// As encoded: whole seconds, UTC.
		NotBefore: tmpl.NotBefore.Truncate(time.Second).UTC(),
		NotAfter:  tmpl.NotAfter.Truncate(time.Second).UTC(),
		Serial:    FormatSerial(serial),
	}, nil
}

// verify checks that the signed leaf (der, made from tmpl) verifies to the root at time t, under every
// name constraint and extended key usage of the chain. The full x509 verification runs once per leaf shape
// (its subject, names and key usages: all a chain's constraints look at). The chain is fixed and was
// verified when the issuer was made, and x509.CreateCertificate has already checked the leaf's signature
// against the intermediate's key, so a later leaf of a verified shape only needs to lie within the chain's
// validity. Renewals, which repeat a shape, thus cost one signature check instead of three.
func (li *LocalIssuer) verify(der []byte, tmpl *x509.Certificate, t time.Time) error {
	if t.Before(li.validFrom) || tmpl.NotAfter.After(li.validUntil) {
		return fmt.Errorf("the certificate's validity (to %s) is outside the chain's (%s to %s)",
			tmpl.NotAfter.UTC().Format(time.RFC3339), li.validFrom.UTC().Format(time.RFC3339), li.validUntil.UTC().Format(time.RFC3339))
	}
	key := shape(tmpl)
	li.mu.Lock()
	ok := li.verified[key]
	li.mu.Unlock()
	if ok {
		return nil
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse the signed certificate: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         li.roots,
		Intermediates: li.inters,
		CurrentTime:   t,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("the signed certificate does not verify to the root (is a name outside the intermediate's constraints?): %w", err)
	}
	li.mu.Lock()
	if len(li.verified) >= maxVerifiedShapes {
		clear(li.verified)
	}
	li.verified[key] = true
	li.mu.Unlock()
	return nil
}

// shape is what of a leaf the chain's constraints depend on: its subject (keyferry sets only the common
// name), SANs, key usage and extended key usages.
func shape(c *x509.Certificate) string {
	n := len(c.Subject.CommonName) + 16
	for _, d := range c.DNSNames {
		n += len(d) + 2
	}
	for _, u := range c.URIs {
		n += len(u.Path) + len(u.Host) + len(u.Scheme) + 8
	}
	b := make([]byte, 0, n)
	b = append(b, c.Subject.CommonName...)
	for _, d := range c.DNSNames {
		b = append(append(b, 0, 'd'), strings.ToLower(d)...)
	}
	for _, ip := range c.IPAddresses {
		b = append(append(b, 0, 'i'), ip.String()...)
	}
	for _, u := range c.URIs {
		b = append(append(b, 0, 'u'), u.String()...)
	}
	for _, e := range c.EmailAddresses {
		b = append(append(b, 0, 'e'), e...)
	}
	b = strconv.AppendInt(append(b, 0, 'k'), int64(c.KeyUsage), 10)
	for _, e := range c.ExtKeyUsage {
		b = strconv.AppendInt(append(b, 0, 'x'), int64(e), 10)
	}
	return string(b)
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
	const hexdigits = "0123456789abcdef"
	out := make([]byte, 0, 3*len(b))
	for i, c := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, hexdigits[c>>4], hexdigits[c&0xf])
	}
	return string(out)
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
