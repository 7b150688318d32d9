// Package pki is keyferry's built-in certificate authority: an offline root, name-constrained
// intermediates whose key is any crypto.Signer (a PKCS#8 file, or a KMS key, see package kmssigner), and
// leaf issuance from a Spec under a deny-by-default Policy.
//
// Everything is built with the standard library's crypto/x509. Every certificate this package signs is
// checked before it is returned: intermediates against the root's signature, leaves by x509.Verify
// against the configured roots, so a leaf outside an intermediate's name constraints is never handed out.
// Errors never contain private key material.
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// Default lifetimes.
const (
	DefaultRootTTL         = 10 * 365 * 24 * time.Hour
	DefaultIntermediateTTL = 365 * 24 * time.Hour
	DefaultLeafTTL         = 72 * time.Hour
)

// backdate is how far NotBefore is set into the past, to absorb clock skew between issuer and verifiers.
const backdate = time.Minute

// RootOptions configure InitRoot.
type RootOptions struct {
	// CommonName is the root's subject CN (required).
	CommonName string
	// Organization is the subject O (optional).
	Organization string
	// KeyType is one of KeyTypes; "" means ec-p384.
	KeyType string
	// TTL is the root's lifetime; 0 means 10 years.
	TTL time.Duration
}

// InitRoot creates a self-signed root CA and returns its certificate and its PKCS#8 private key, both PEM.
// The root is meant to stay offline: keep keyPEM out of every store keyferry replicates to, and use it
// only to sign intermediates with SignIntermediate.
func InitRoot(ctx context.Context, o RootOptions) (certPEM, keyPEM []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(o.CommonName) == "" {
		return nil, nil, errors.New("pki: root: CommonName is required")
	}
	if o.KeyType == "" {
		o.KeyType = KeyECP384
	}
	if o.TTL == 0 {
		o.TTL = DefaultRootTTL
	}
	if o.TTL < 0 {
		return nil, nil, fmt.Errorf("pki: root: negative TTL %s", o.TTL)
	}
	key, err := GenerateKey(o.KeyType)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: root: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	subject := pkix.Name{CommonName: o.CommonName}
	if o.Organization != "" {
		subject.Organization = []string{o.Organization}
	}
	t := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             t.Add(-backdate),
		NotAfter:              t.Add(o.TTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            -1,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: root: sign: %w", err)
	}
	keyPEM, err = MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), keyPEM, nil
}

// IntermediateOptions configure SignIntermediate.
type IntermediateOptions struct {
	// TTL is the intermediate's lifetime; 0 means 1 year. It is cut to the root's NotAfter.
	TTL time.Duration
	// PermittedDNSDomains restricts the DNS names of everything below the intermediate: "example.com"
	// permits example.com and every name under it, ".example.com" only names under it (RFC 5280).
	PermittedDNSDomains []string
	// ExcludedDNSDomains are DNS subtrees forbidden below the intermediate, even inside a permitted one.
	ExcludedDNSDomains []string
	// PermittedURIDomains restricts the host of URI SANs, e.g. "prod.example" for the SPIFFE trust domain
	// spiffe://prod.example.
	PermittedURIDomains []string
	// PathLen is the number of CA certificates allowed below the intermediate; 0 (the default, and what
	// keyferry uses) lets it sign leaves only.
	PathLen int
}

// SignIntermediate signs the certificate request csrPEM as an intermediate CA under root. It checks the
// request's self-signature, copies only its subject and public key (never its requested extensions), and
// marks the result IsCA with the given path length and, if any domain is given, critical name
// constraints. The returned certificate is verified against root before it is returned.
func SignIntermediate(ctx context.Context, root *x509.Certificate, rootKey crypto.Signer, csrPEM []byte, o IntermediateOptions) (certPEM []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if root == nil || rootKey == nil {
		return nil, errors.New("pki: intermediate: root certificate and key are required")
	}
	if !root.IsCA || !root.BasicConstraintsValid {
		return nil, fmt.Errorf("pki: intermediate: %q is not a CA certificate", root.Subject.CommonName)
	}
	if !publicKeysEqual(root.PublicKey, rootKey.Public()) {
		return nil, fmt.Errorf("pki: intermediate: the root key does not belong to the root certificate %q", root.Subject.CommonName)
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: intermediate: %w", err)
	}
	if o.PathLen < 0 {
		return nil, fmt.Errorf("pki: intermediate: negative PathLen %d", o.PathLen)
	}
	if o.TTL < 0 {
		return nil, fmt.Errorf("pki: intermediate: negative TTL %s", o.TTL)
	}
	if o.TTL == 0 {
		o.TTL = DefaultIntermediateTTL
	}
	var bad []string
	for _, list := range []struct {
		name string
		v    []string
	}{{"PermittedDNSDomains", o.PermittedDNSDomains}, {"ExcludedDNSDomains", o.ExcludedDNSDomains}, {"PermittedURIDomains", o.PermittedURIDomains}} {
		for _, d := range list.v {
			if err := checkConstraintDomain(d); err != nil {
				bad = append(bad, fmt.Sprintf("%s %q: %v", list.name, d, err))
			}
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("pki: intermediate: invalid name constraints:\n  %s", strings.Join(bad, "\n  "))
	}

	t := time.Now()
	notBefore, notAfter := t.Add(-backdate), t.Add(o.TTL)
	if notBefore.Before(root.NotBefore) {
		notBefore = root.NotBefore
	}
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter // never outlive the root
	}
	if !notAfter.After(t) {
		return nil, fmt.Errorf("pki: intermediate: the root %q expired at %s", root.Subject.CommonName, root.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(csr.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     csr.Subject,
		NotBefore:                   notBefore,
		NotAfter:                    notAfter,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLen:                  o.PathLen,
		MaxPathLenZero:              o.PathLen == 0,
		SubjectKeyId:                skid,
		PermittedDNSDomains:         o.PermittedDNSDomains,
		ExcludedDNSDomains:          o.ExcludedDNSDomains,
		PermittedURIDomains:         o.PermittedURIDomains,
		PermittedDNSDomainsCritical: len(o.PermittedDNSDomains)+len(o.ExcludedDNSDomains)+len(o.PermittedURIDomains) > 0,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, csr.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("pki: intermediate: sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: intermediate: parse the signed certificate: %w", err)
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("pki: intermediate: the signed certificate does not verify against the root: %w", err)
	}
	return pemCert(der), nil
}

// checkConstraintDomain accepts what RFC 5280 name constraints hold for DNS and URI hosts: a domain,
// optionally with a leading dot ("only below").
func checkConstraintDomain(d string) error {
	name := strings.TrimPrefix(d, ".")
	if name == "" {
		return errors.New("empty domain")
	}
	if strings.Contains(name, "*") {
		return errors.New(`name constraints take a domain, not a glob: "example.com" covers every name under it`)
	}
	if err := checkDNSName(name); err != nil {
		return err
	}
	return nil
}

// NewCSR returns a PEM certificate request for cn, signed by signer (a file key, a KMS key, ...), for
// SignIntermediate.
func NewCSR(signer crypto.Signer, cn string) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("pki: csr: signer is nil")
	}
	if strings.TrimSpace(cn) == "" {
		return nil, errors.New("pki: csr: common name is required")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCSR decodes a PEM certificate request and checks its self-signature.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return csr, nil
}

func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, errors.New("csr: no PEM block found")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("csr: PEM block %q is not a certificate request", block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: bad self-signature (the request was not signed by the key it carries): %w", err)
	}
	return csr, nil
}

// ParseCertificatePEM decodes the first CERTIFICATE block of data.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("pki: no CERTIFICATE PEM block found")
	}
	return certs[0], nil
}

// ParseCertificatesPEM decodes every CERTIFICATE block of data, in order. Other block types are an error,
// so a private key pasted into a certificate field is noticed (and never echoed).
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for i := 1; ; i++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("pki: PEM block %d is %q, want CERTIFICATE", i, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: certificate %d: %w", i, err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(data)) > 0 && len(certs) == 0 {
		return nil, errors.New("pki: no PEM block found where certificates were expected")
	}
	return certs, nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// randomSerial returns a random positive 128-bit serial number (RFC 5280 allows up to 20 octets).
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("pki: serial number: %w", err)
		}
		if s := new(big.Int).SetBytes(b); s.Sign() > 0 {
			return s, nil
		}
	}
}

// subjectKeyID is RFC 7093 section 2 method 1: the leftmost 160 bits of the SHA-256 hash of the
// subjectPublicKey bit string.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: subject key id: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("pki: subject key id: %w", err)
	}
	h := sha256.Sum256(spki.PublicKey.Bytes)
	return h[:20], nil
}

// publicKeysEqual compares two public keys of the standard library's types.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && ea.Equal(b)
}

// parseURIs parses URI SANs.
func parseURIs(in []string) ([]*url.URL, error) {
	out := make([]*url.URL, 0, len(in))
	for _, s := range in {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("URI SAN %q: %w", s, err)
		}
		out = append(out, u)
	}
	return out, nil
}
