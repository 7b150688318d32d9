package inventory

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
)

var (
	beginCert = []byte("-----BEGIN CERTIFICATE-----")
	endCert   = []byte("-----END CERTIFICATE-----")
)

// maxJSONDepth bounds the walk through a JSON value.
const maxJSONDepth = 32

// found collects the certificates of one value, without duplicates.
type found struct {
	certs []*x509.Certificate
	seen  map[[32]byte]bool
	bad   int // CERTIFICATE blocks that did not parse
}

func (f *found) add(der []byte) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		f.bad++
		return
	}
	h := sha256.Sum256(c.Raw)
	if f.seen == nil {
		f.seen = map[[32]byte]bool{}
	}
	if !f.seen[h] {
		f.seen[h] = true
		f.certs = append(f.certs, c)
	}
}

// scanPEM decodes every CERTIFICATE block of data and reports whether it saw a CERTIFICATE header. Only
// the text between a CERTIFICATE header and its END line is ever handed to the PEM decoder (and not even
// that when another BEGIN line sits in between), so no other block, a private key above all, is decoded.
func (f *found) scanPEM(data []byte) bool {
	saw := false
	for {
		i := bytes.Index(data, beginCert)
		if i < 0 {
			return saw
		}
		saw = true
		j := bytes.Index(data[i:], endCert)
		if j < 0 {
			return saw
		}
		region := data[i : i+j+len(endCert)]
		data = data[i+j+len(endCert):]
		if bytes.Contains(region[len(beginCert):], []byte("-----BEGIN")) {
			f.bad++
			continue
		}
		block, _ := pem.Decode(region)
		if block == nil {
			// Not a well-formed block, e.g. escaped newlines inside JSON text (the JSON walk finds those).
			continue
		}
		f.add(block.Bytes)
	}
}

// certificatesIn finds the certificates in a secret value: PEM CERTIFICATE blocks in the text, inside any
// JSON string field ({"certificate": "-----BEGIN CERTIFICATE-----\n..."}, at any depth), inside
// base64-encoded PEM (a whole value or a JSON field, as Kubernetes tls.crt holds it), or a value that is
// one DER certificate. It returns the certificates in the order found and how many CERTIFICATE blocks did
// not parse. Nothing of the value is kept: the certificates are parsed from freshly decoded bytes.
func certificatesIn(value []byte) ([]*x509.Certificate, int) {
	var f found
	rawPEM := f.scanPEM(value)
	if bytes.IndexByte(value, '{') >= 0 || bytes.IndexByte(value, '[') >= 0 {
		var v any
		d := json.NewDecoder(bytes.NewReader(value))
		d.UseNumber()
		if d.Decode(&v) == nil {
			f.walkJSON(v, 0)
		}
	}
	if len(f.certs) == 0 && !rawPEM {
		f.tryBase64(string(value))
	}
	if len(f.certs) == 0 && len(value) > 0 && value[0] == 0x30 {
		if c, err := x509.ParseCertificate(value); err == nil {
			// Copy: the certificate must not alias the value's buffer.
			if c2, err := x509.ParseCertificate(bytes.Clone(c.Raw)); err == nil {
				f.certs = append(f.certs, c2)
			}
		}
	}
	return f.certs, f.bad
}

func (f *found) walkJSON(v any, depth int) {
	if depth > maxJSONDepth {
		return
	}
	switch x := v.(type) {
	case string:
		if !f.scanPEM([]byte(x)) {
			f.tryBase64(x)
		}
	case []any:
		for _, y := range x {
			f.walkJSON(y, depth+1)
		}
	case map[string]any:
		for _, y := range x {
			f.walkJSON(y, depth+1)
		}
	}
}

// tryBase64 scans s as base64-encoded PEM when it decodes to text holding a CERTIFICATE header.
func (f *found) tryBase64(s string) {
	s = strings.TrimSpace(s)
	if len(s) < 64 || !strings.HasPrefix(s, "LS0tLS1CRUdJTi") { // base64 of "-----BEGIN"
		return
	}
	s = strings.Join(strings.Fields(s), "")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			f.scanPEM(b)
			return
		}
	}
}

// group splits the certificates of one place into leaves and the rest: a certificate that issued another
// certificate of the set is chain material, not an entry of its own; every other one is an entry, with
// all the others as its candidate chain. A set with only CA certificates (a trust bundle) yields each.
func group(certs []*x509.Certificate) (leaves []*x509.Certificate) {
	for i, c := range certs {
		issuer := false
		for j, o := range certs {
			if i != j && issued(c, o) {
				issuer = true
				break
			}
		}
		if !issuer {
			leaves = append(leaves, c)
		}
	}
	if len(leaves) == 0 { // a cycle (cross-signed pair): list everything
		return certs
	}
	return leaves
}

// issued reports whether parent issued child (by name, and by key id where both carry one).
func issued(parent, child *x509.Certificate) bool {
	if selfSigned(child) || !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return false
	}
	if len(child.AuthorityKeyId) > 0 && len(parent.SubjectKeyId) > 0 {
		return bytes.Equal(child.AuthorityKeyId, parent.SubjectKeyId)
	}
	return true
}
