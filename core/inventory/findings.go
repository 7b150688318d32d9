package inventory

import (
	"bytes"
	"crypto/dsa" //nolint:staticcheck // DSA keys are recognised only to be reported as weak.
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"math"
	"strings"
	"time"
)

const day = 24 * time.Hour

// expiryBuckets are the expiring-N findings, tightest first: a certificate gets only the tightest.
var expiryBuckets = []struct {
	kind string
	days int
}{{KindExpiring7, 7}, {KindExpiring30, 30}, {KindExpiring60, 60}, {KindExpiring90, 90}}

// Assess returns e with DaysLeft and Findings computed at opts.Now: expired, or the tightest of
// expiring-7/30/60/90 (expiring within that many days); weak-key (RSA under 2048 bits, EC under P-256,
// DSA); weak-signature (MD2, MD5, SHA-1; not reported for self-signed certificates, whose own signature
// nobody relies on); untrusted-chain (only when opts.Roots is set: the certificate does not verify to one
// of the roots through opts.Intermediates and the certificates found beside it). An entry not built from
// a certificate keeps its key and chain findings and gets its expiry findings from NotAfter.
func Assess(e Entry, opts Options) Entry {
	now := opts.now()
	left := e.NotAfter.Sub(now)
	e.DaysLeft = int(math.Floor(left.Hours() / 24))

	var out []Finding
	switch {
	case left <= 0:
		ago := int(math.Floor(-left.Hours() / 24))
		out = append(out, Finding{Kind: KindExpired, Detail: fmt.Sprintf("expired %s (%s)", daysAgo(ago), e.NotAfter.UTC().Format(time.RFC3339))})
	default:
		for _, b := range expiryBuckets {
			if left <= time.Duration(b.days)*day {
				out = append(out, Finding{Kind: b.kind, Detail: fmt.Sprintf("expires in %s (%s), within %d days",
					plural(e.DaysLeft, "day"), e.NotAfter.UTC().Format(time.RFC3339), b.days)})
				break
			}
		}
	}

	if e.cert == nil {
		for _, f := range e.Findings {
			if !isExpiryKind(f.Kind) {
				out = append(out, f)
			}
		}
		e.Findings = out
		return e
	}
	c := e.cert
	if d, weak := weakKey(c); weak {
		out = append(out, Finding{Kind: KindWeakKey, Detail: d})
	}
	if d, weak := weakSignature(c); weak {
		out = append(out, Finding{Kind: KindWeakSignature, Detail: d})
	}
	if opts.Roots != nil {
		if err := verifyChain(c, e.chain, opts, now); err != nil {
			out = append(out, Finding{Kind: KindUntrustedChain, Detail: err.Error()})
		}
	}
	e.Findings = out
	return e
}

func daysAgo(n int) string {
	if n == 0 {
		return "today"
	}
	return plural(n, "day") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 || n == -1 {
		return fmt.Sprintf("%d %s", n, unit)
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// keyType names the certificate's public key: ec-p256, ec-p384, ec-p521, ec-p224, rsa-2048, ed25519,
// dsa-1024, ...
func keyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		if k.Curve == nil {
			return "ec"
		}
		return "ec-" + strings.ToLower(strings.ReplaceAll(k.Curve.Params().Name, "-", ""))
	case ed25519.PublicKey:
		return "ed25519"
	case *dsa.PublicKey:
		if k.P == nil {
			return "dsa"
		}
		return fmt.Sprintf("dsa-%d", k.P.BitLen())
	}
	if c.PublicKeyAlgorithm != x509.UnknownPublicKeyAlgorithm {
		return strings.ToLower(c.PublicKeyAlgorithm.String())
	}
	return "unknown"
}

func weakKey(c *x509.Certificate) (string, bool) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 {
			return fmt.Sprintf("RSA key of %d bits (at least 2048 needed)", n), true
		}
	case *ecdsa.PublicKey:
		if k.Curve != nil && k.Curve.Params().BitSize < 256 {
			return fmt.Sprintf("EC key on %s (at least P-256 needed)", k.Curve.Params().Name), true
		}
	case *dsa.PublicKey:
		return "DSA key (deprecated; use ECDSA or RSA)", true
	}
	return "", false
}

func weakSignature(c *x509.Certificate) (string, bool) {
	switch c.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
	default:
		return "", false
	}
	if selfSigned(c) {
		return "", false
	}
	return fmt.Sprintf("signed with %s", c.SignatureAlgorithm), true
}

// selfSigned reports whether c names itself as issuer (and, where both key ids are present, they match).
func selfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		return false
	}
	if len(c.AuthorityKeyId) > 0 && len(c.SubjectKeyId) > 0 {
		return bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId)
	}
	return true
}

// verifyChain verifies c to opts.Roots at now, clamped into c's validity so that an expired (or not yet
// valid) certificate is judged on its chain alone.
func verifyChain(c *x509.Certificate, chain []*x509.Certificate, opts Options, now time.Time) error {
	var inters *x509.CertPool
	if opts.Intermediates != nil {
		inters = opts.Intermediates.Clone()
	} else {
		inters = x509.NewCertPool()
	}
	for _, ic := range chain {
		inters.AddCert(ic)
	}
	at := now
	if at.Before(c.NotBefore) {
		at = c.NotBefore
	}
	if at.After(c.NotAfter) {
		at = c.NotAfter
	}
	_, err := c.Verify(x509.VerifyOptions{
		Roots: opts.Roots, Intermediates: inters, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("does not chain to a configured root: %w", err)
	}
	return nil
}
