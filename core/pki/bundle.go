package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// bundleJSON is the JSON form of a Bundle.
type bundleJSON struct {
	Certificate string `json:"certificate"`
	PrivateKey  string `json:"private_key"`
	Chain       string `json:"chain"`
	NotAfter    string `json:"not_after"`
}

// JSON encodes the bundle as {"certificate","private_key","chain","not_after"}: the three PEM texts as
// strings and NotAfter in RFC 3339 (UTC).
func (b *Bundle) JSON() ([]byte, error) {
	if b == nil {
		return nil, errors.New("pki: nil bundle")
	}
	return json.Marshal(bundleJSON{
		Certificate: string(b.CertPEM),
		PrivateKey:  string(b.KeyPEM),
		Chain:       string(b.ChainPEM),
		NotAfter:    b.NotAfter.UTC().Format(time.RFC3339),
	})
}

// PFX encodes the bundle as PKCS#12 with go-pkcs12's Modern encoder (AES-256-CBC with PBKDF2, and an
// HMAC-SHA-256 MAC), for Azure Key Vault, Windows and Java. The chain certificates are included. The
// pair and chain are checked first, so a mismatched key is never packaged.
func (b *Bundle) PFX(password string) ([]byte, error) {
	pb, err := b.Parse()
	if err != nil {
		return nil, err
	}
	pfx, err := pkcs12.Modern.Encode(pb.Key, pb.Leaf, pb.Chain, password)
	if err != nil {
		return nil, fmt.Errorf("pki: encode PKCS#12: %w", err)
	}
	return pfx, nil
}

// Parse decodes and checks the bundle (see ParseBundle).
func (b *Bundle) Parse() (*ParsedBundle, error) {
	if b == nil {
		return nil, errors.New("pki: nil bundle")
	}
	return ParseBundle(b.CertPEM, b.KeyPEM, b.ChainPEM)
}

// ParsedBundle is a decoded, checked certificate, key and chain.
type ParsedBundle struct {
	Leaf  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// ParseBundle decodes a leaf certificate, its private key and its chain, and checks that the key belongs
// to the leaf and that each certificate is signed by the next (the last by itself, if it is a root).
// certPEM may carry the chain after the leaf (a "full chain" file); chainPEM may be empty. The key may be
// PKCS#8, PKCS#1 or SEC 1. It checks signatures and links, not validity dates or trust: use x509.Verify
// with your roots for that. Errors never contain key material.
func ParseBundle(certPEM, keyPEM, chainPEM []byte) (*ParsedBundle, error) {
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: bundle certificate: %w", err)
	}
	if len(certs) == 0 {
		return nil, errors.New("pki: bundle: no certificate")
	}
	chain, err := ParseCertificatesPEM(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: bundle chain: %w", err)
	}
	all := append(certs, chain...)
	key, err := parsePrivateKeyPEM(keyPEM, true)
	if err != nil {
		return nil, fmt.Errorf("pki: bundle key: %w", err)
	}
	leaf := all[0]
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		kt, _ := KeyTypeOf(key.Public())
		lt, _ := KeyTypeOf(leaf.PublicKey)
		return nil, fmt.Errorf("pki: bundle: the private key (%s) does not match the certificate %q (serial %s, %s key): refusing the mismatched pair",
			orUnknown(kt), leaf.Subject.CommonName, FormatSerial(leaf.SerialNumber), orUnknown(lt))
	}
	if err := checkLinks(all); err != nil {
		return nil, fmt.Errorf("pki: bundle: %w", err)
	}
	return &ParsedBundle{Leaf: leaf, Key: key, Chain: all[1:]}, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unsupported type"
	}
	return s
}

// Matches checks that keyPEM is the private key of the first certificate in certPEM and that any further
// certificates in certPEM form its chain. A nil error means the pair can be deployed together.
func Matches(certPEM, keyPEM []byte) error {
	_, err := ParseBundle(certPEM, keyPEM, nil)
	return err
}
