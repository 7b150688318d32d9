// Package vaultpki is a pki.Issuer backed by a HashiCorp Vault PKI secrets engine.
//
// Two modes:
//
//   - Issue: PUT <mount>/issue/<role>. Vault generates the key pair and returns the private key with the
//     certificate. The key type is the role's (key_type/key_bits); a Spec.KeyType the role does not issue
//     is an error.
//   - Sign: the key is generated here with pki.GenerateKey(Spec.KeyType) and only a certificate request
//     (CSR) goes to PUT <mount>/sign/<role>. The private key never leaves the process.
//
// The Spec maps onto the request as common_name (Spec.CommonName, or the first DNS name when it is empty,
// since roles require a common name by default), alt_names (DNS names), ip_sans, uri_sans and ttl (0
// means pki.DefaultLeafTTL); in Sign mode the CSR carries the same subject and SANs. Key usages, extended
// key usages and the largest TTL are the role's business: Vault applies the role's and caps the TTL at the
// role's max_ttl. The returned leaf is checked before it is handed out: the key must match it, the chain
// (ca_chain, else issuing_ca) must link, every requested SAN must be present, and the requested extended
// key usages and key usages must be among those the role granted.
//
// The Vault role is the policy: this issuer applies no pki.Policy of its own. Errors carry Vault's own
// messages (for a refused name, "common name x not allowed by this role") and never contain key material.
package vaultpki

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/keyferry/keyferry/core/pki"
)

// Mode says who generates the key pair.
type Mode int

const (
	// Issue lets Vault generate the key (PUT <mount>/issue/<role>).
	Issue Mode = iota + 1
	// Sign generates the key here and sends Vault a CSR (PUT <mount>/sign/<role>).
	Sign
)

func (m Mode) String() string {
	switch m {
	case Issue:
		return "issue"
	case Sign:
		return "sign"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Issuer issues leaves through a Vault PKI role. It is safe for concurrent use (as is the Vault client).
type Issuer struct {
	client *vault.Client
	mount  string
	role   string
	mode   Mode
}

var _ pki.Issuer = (*Issuer)(nil)

// New returns an issuer using client (address, token and namespace are the client's) with the PKI
// engine mounted at mount (e.g. "pki" or "pki_int") and the role role. It makes no call.
func New(client *vault.Client, mount, role string, mode Mode) (*Issuer, error) {
	if client == nil {
		return nil, errors.New("vaultpki: the Vault client is nil")
	}
	mount = strings.Trim(mount, "/")
	if mount == "" {
		return nil, errors.New("vaultpki: the PKI mount path is empty")
	}
	if role == "" || strings.Contains(role, "/") {
		return nil, fmt.Errorf("vaultpki: invalid role name %q", role)
	}
	if mode != Issue && mode != Sign {
		return nil, fmt.Errorf("vaultpki: unknown mode %d (use vaultpki.Issue or vaultpki.Sign)", int(mode))
	}
	return &Issuer{client: client, mount: mount, role: role, mode: mode}, nil
}

// Path is the Vault path the issuer writes to: <mount>/issue/<role> or <mount>/sign/<role>.
func (is *Issuer) Path() string { return is.mount + "/" + is.mode.String() + "/" + is.role }

// Issue asks Vault for a certificate for s and returns it with its private key and chain.
func (is *Issuer) Issue(ctx context.Context, s pki.Spec) (*pki.Bundle, error) {
	where := "vaultpki: " + is.mode.String()
	if s.Name != "" {
		where += fmt.Sprintf(" %q", s.Name)
	}
	where += " via " + is.Path()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if s.TTL < 0 {
		return nil, fmt.Errorf("%s: negative TTL %s", where, s.TTL)
	}
	if s.TTL == 0 {
		s.TTL = pki.DefaultLeafTTL
	}
	cn := s.CommonName
	if cn == "" && len(s.DNSNames) > 0 {
		cn = s.DNSNames[0]
	}
	if cn == "" {
		return nil, fmt.Errorf("%s: the spec has neither a common name nor a DNS name (Vault roles require a common name)", where)
	}
	uris, err := parseURIs(s.URIs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	data := map[string]any{
		"common_name": cn,
		"ttl":         strconv.FormatInt(int64(s.TTL/time.Second), 10) + "s",
		"format":      "pem",
	}
	if len(s.DNSNames) > 0 {
		data["alt_names"] = strings.Join(s.DNSNames, ",")
	}
	if len(s.IPAddresses) > 0 {
		ips := make([]string, len(s.IPAddresses))
		for i, ip := range s.IPAddresses {
			ips[i] = ip.String()
		}
		data["ip_sans"] = strings.Join(ips, ",")
	}
	if len(s.URIs) > 0 {
		data["uri_sans"] = strings.Join(s.URIs, ",")
	}

	var keyPEM []byte
	switch is.mode {
	case Issue:
		data["private_key_format"] = "pkcs8"
	case Sign:
		kt := s.KeyType
		if kt == "" {
			kt = pki.KeyECP256
		}
		key, err := pki.GenerateKey(kt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: cn}, DNSNames: s.DNSNames, IPAddresses: s.IPAddresses, URIs: uris,
		}, key)
		if err != nil {
			return nil, fmt.Errorf("%s: create the certificate request: %w", where, err)
		}
		data["csr"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
		if keyPEM, err = pki.MarshalPrivateKeyPEM(key); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}

	sec, err := is.client.Logical().WriteWithContext(ctx, is.Path(), data)
	if err != nil {
		return nil, vaultError(where, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("%s: Vault returned no data", where)
	}
	certPEM, _ := sec.Data["certificate"].(string)
	if strings.TrimSpace(certPEM) == "" {
		return nil, fmt.Errorf("%s: Vault returned no certificate", where)
	}
	if is.mode == Issue {
		k, _ := sec.Data["private_key"].(string)
		if strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s: Vault returned no private key", where)
		}
		// Normalise to PKCS#8 whatever Vault sent (pki errors never quote the key).
		signer, err := pki.ParsePrivateKeyPEM([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("%s: the private key Vault returned: %w", where, err)
		}
		if keyPEM, err = pki.MarshalPrivateKeyPEM(signer); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	chainPEM, err := chainOf(sec.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	pb, err := pki.ParseBundle([]byte(certPEM), keyPEM, chainPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: Vault's answer does not form a valid bundle: %w", where, err)
	}
	if err := checkLeaf(pb.Leaf, s, uris); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if s.KeyType != "" {
		if got, _ := pki.KeyTypeOf(pb.Leaf.PublicKey); got != s.KeyType {
			return nil, fmt.Errorf("%s: the role issued a %s key, the spec asks for %s: set the role's key_type/key_bits, or use Sign mode",
				where, orUnknown(got), s.KeyType)
		}
	}
	// Re-encode: the leaf alone, then the chain exactly as checked.
	var chain bytes.Buffer
	for _, c := range pb.Chain {
		chain.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return &pki.Bundle{
		CertPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pb.Leaf.Raw}),
		KeyPEM:    keyPEM,
		ChainPEM:  chain.Bytes(),
		NotBefore: pb.Leaf.NotBefore,
		NotAfter:  pb.Leaf.NotAfter,
		Serial:    pki.FormatSerial(pb.Leaf.SerialNumber),
	}, nil
}

// chainOf is ca_chain (issuing CA first, up to the root), or issuing_ca when Vault sent no chain.
func chainOf(data map[string]any) ([]byte, error) {
	var out bytes.Buffer
	if list, ok := data["ca_chain"].([]any); ok {
		for i, v := range list {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("ca_chain entry %d is %T, not a PEM string", i, v)
			}
			out.WriteString(strings.TrimSpace(s))
			out.WriteByte('\n')
		}
	}
	if out.Len() == 0 {
		if s, ok := data["issuing_ca"].(string); ok && strings.TrimSpace(s) != "" {
			out.WriteString(strings.TrimSpace(s))
			out.WriteByte('\n')
		}
	}
	if out.Len() == 0 {
		return nil, errors.New("Vault returned neither ca_chain nor issuing_ca")
	}
	return out.Bytes(), nil
}

// checkLeaf makes sure Vault issued what was asked: every requested SAN, and the requested usages.
func checkLeaf(leaf *x509.Certificate, s pki.Spec, uris []*url.URL) error {
	var missing []string
	for _, d := range s.DNSNames {
		if !slices.ContainsFunc(leaf.DNSNames, func(x string) bool { return strings.EqualFold(x, d) }) {
			missing = append(missing, "DNS:"+d)
		}
	}
	for _, ip := range s.IPAddresses {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			missing = append(missing, "IP:"+ip.String())
		}
	}
	for _, u := range uris {
		if !slices.ContainsFunc(leaf.URIs, func(x *url.URL) bool { return x.String() == u.String() }) {
			missing = append(missing, "URI:"+u.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the issued certificate lacks requested names %s (check the role's allowed names and use_csr_sans)",
			strings.Join(missing, ", "))
	}
	for _, n := range s.ExtKeyUsage {
		eku, ok := pki.ExtKeyUsages[n]
		if !ok {
			return fmt.Errorf("unknown extended key usage %q", n)
		}
		if !slices.Contains(leaf.ExtKeyUsage, eku) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return fmt.Errorf("the role did not grant the extended key usage %s (set server_flag/client_flag/ext_key_usage on the role)", n)
		}
	}
	for _, n := range s.KeyUsage {
		ku, ok := pki.KeyUsages[n]
		if !ok {
			return fmt.Errorf("unknown key usage %q", n)
		}
		if leaf.KeyUsage&ku == 0 {
			return fmt.Errorf("the role did not grant the key usage %s (set key_usage on the role)", n)
		}
	}
	return nil
}

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

func orUnknown(s string) string {
	if s == "" {
		return "unsupported"
	}
	return s
}

// Error is a refusal or failure reported by Vault: the HTTP status and Vault's own error messages.
type Error struct {
	Where      string
	StatusCode int
	Messages   []string
	Err        error // the *vault.ResponseError
}

func (e *Error) Error() string {
	msg := strings.Join(e.Messages, "; ")
	if msg == "" {
		msg = "no error message"
	}
	return fmt.Sprintf("%s: Vault answered HTTP %d: %s", e.Where, e.StatusCode, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// vaultError turns the client's error into an *Error carrying Vault's messages (a transport error is
// wrapped as it is). Vault's errors describe the request's names and the role, never key material; a
// raw (unparsable) body is cut short.
func vaultError(where string, err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		msgs := slices.Clone(re.Errors)
		for i, m := range msgs {
			if re.RawError || len(m) > 512 {
				m = strings.TrimSpace(m)
				if len(m) > 512 {
					m = m[:512] + "…"
				}
			}
			if strings.Contains(m, "PRIVATE KEY") {
				m = "[message withheld: it quotes key material]"
			}
			msgs[i] = m
		}
		return &Error{Where: where, StatusCode: re.StatusCode, Messages: msgs, Err: err}
	}
	return fmt.Errorf("%s: %w", where, err)
}
