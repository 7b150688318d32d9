package pki

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzPolicyCheck feeds Policy.Check arbitrary policies and specs: it must never panic, must deny with a
// *PolicyError listing at least one violation, must never allow anything under a zero policy, and must
// never allow a name that no pattern of its kind could allow.
//
//	go test ./core/pki -run '^$' -fuzz FuzzPolicyCheck -fuzztime 30s
func FuzzPolicyCheck(f *testing.F) {
	f.Add("**.example.com", "spiffe://prod.example/", "ec-p256", int64(time.Hour), true, true,
		"api.example.com", "a.b.example.com", "spiffe://prod.example/ns/a", "10.0.0.1", "ec-p256", int64(time.Hour), int64(0))
	f.Add("*.svc.example.com", "spiffe://prod.example/ns/*/sa/**", "rsa-2048", int64(72*time.Hour), false, false,
		"*.svc.example.com", "x.svc.example.com", "spiffe://prod.example/ns/x/sa/y/z", "::1", "", int64(0), int64(time.Hour))
	f.Add("", "", "", int64(0), false, false, "", "", "", "", "", int64(0), int64(0))
	f.Add("a*b.c", "*", "x", int64(-1), true, true, "My CN", "..", "::", "1.2.3", "ec-p521", int64(-5), int64(-5))
	f.Add("**", "urn:**", "ec-p384", int64(1<<62), true, true, "*.com", "*", "urn:x", "", "ec-p384", int64(1<<62), int64(1<<62))
	f.Fuzz(func(t *testing.T, domain, uriPat, keyType string, maxTTL int64, wild, ips bool,
		cn, dns, uri, ip, specKeyType string, ttl, renew int64) {
		p := Policy{
			AllowedDomains:  []string{domain},
			AllowedURIs:     []string{uriPat},
			MaxTTL:          time.Duration(maxTTL),
			AllowedKeyTypes: []string{keyType},
			AllowWildcards:  wild,
			AllowIPs:        ips,
		}
		s := Spec{
			CommonName:  cn,
			DNSNames:    []string{dns},
			URIs:        []string{uri},
			IPAddresses: []net.IP{net.ParseIP(ip)},
			KeyType:     specKeyType,
			TTL:         time.Duration(ttl),
			RenewBefore: time.Duration(renew),
		}
		err := p.Check(s)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) || len(pe.Violations) == 0 {
				t.Fatalf("denial is not a non-empty *PolicyError: %v", err)
			}
			_ = err.Error()
		} else {
			// Allowed: the DNS name is matched by the domain pattern, the URI by the URI pattern, a wildcard
			// only with AllowWildcards, an IP only with AllowIPs.
			if domain == "" || uriPat == "" || !ips {
				t.Fatalf("allowed under a policy that cannot allow every SAN: %+v %+v", p, s)
			}
			if strings.Contains(dns, "*") && !wild {
				t.Fatalf("wildcard %q allowed without AllowWildcards", dns)
			}
			if strings.Contains(dns, "..") || strings.Contains(uri, "/../") {
				t.Fatalf("malformed name allowed: %q %q", dns, uri)
			}
		}
		if (Policy{}).Check(s) == nil {
			t.Fatalf("zero policy allowed %+v", s)
		}
		// A spec with only a DNS name must obey the same rules.
		if p.Check(Spec{DNSNames: []string{dns}, KeyType: specKeyType, TTL: time.Duration(ttl)}) == nil && domain == "" {
			t.Fatalf("DNS name %q allowed with no domain pattern", dns)
		}
	})
}
