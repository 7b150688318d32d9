package pki

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestPolicyCheck(t *testing.T) {
	base := Policy{
		AllowedDomains:  []string{"*.svc.example.com", "**.apps.example.com", "api.example.com"},
		AllowedURIs:     []string{"spiffe://prod.example/ns/app/", "spiffe://prod.example/ns/*/sa/metrics", "urn:keyferry:**"},
		MaxTTL:          7 * 24 * time.Hour,
		AllowedKeyTypes: []string{KeyECP256, KeyRSA2048},
	}
	with := func(f func(*Policy)) Policy {
		p := base
		f(&p)
		return p
	}
	wild := with(func(p *Policy) { p.AllowWildcards = true })
	ips := with(func(p *Policy) { p.AllowIPs = true })

	cases := []struct {
		name   string
		policy Policy
		spec   Spec
		// want lists substrings of the error, one per expected violation; empty means allowed.
		want []string
	}{
		// Zero policy: deny by default, and say how to allow each part.
		{"zero policy denies a plain name", Policy{}, Spec{DNSNames: []string{"api.example.com"}}, []string{
			`DNSNames[0] "api.example.com": matches no AllowedDomains pattern (the policy allows none) (to allow: add "api.example.com" to AllowedDomains, or a glob such as "*.example.com")`,
			`TTL "72h0m0s": exceeds the policy's MaxTTL 0s (to allow: set MaxTTL to at least 72h0m0s)`,
			`KeyType "ec-p256": not allowed (the policy allows none) (to allow: add "ec-p256" to AllowedKeyTypes)`,
		}},
		{"zero policy denies an IP", Policy{}, Spec{IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}, []string{"IP addresses are not allowed (to allow: set AllowIPs: true)", "MaxTTL", "AllowedKeyTypes"}},
		{"zero policy denies a URI", Policy{}, Spec{URIs: []string{"spiffe://prod.example/ns/app/sa/api"}}, []string{`matches no AllowedURIs pattern (the policy allows none) (to allow: add "spiffe://prod.example/ns/app/sa/api" to AllowedURIs, or the prefix "spiffe://prod.example/ns/app/sa/")`, "MaxTTL", "AllowedKeyTypes"}},
		{"empty spec", base, Spec{}, []string{"nothing to certify"}},

		// DNS globs.
		{"one-label glob", base, Spec{DNSNames: []string{"api.svc.example.com"}}, nil},
		{"one-label glob is case-insensitive", base, Spec{DNSNames: []string{"API.Svc.Example.com"}}, nil},
		{"one-label glob: two labels denied", base, Spec{DNSNames: []string{"a.b.svc.example.com"}}, []string{"DNSNames[0]"}},
		{"one-label glob: apex denied", base, Spec{DNSNames: []string{"svc.example.com"}}, []string{"DNSNames[0]"}},
		{"any-depth glob: one label", base, Spec{DNSNames: []string{"web.apps.example.com"}}, nil},
		{"any-depth glob: deep", base, Spec{DNSNames: []string{"a.b.c.apps.example.com"}}, nil},
		{"any-depth glob: apex denied", base, Spec{DNSNames: []string{"apps.example.com"}}, []string{"DNSNames[0]"}},
		{"exact name", base, Spec{DNSNames: []string{"api.example.com"}}, nil},
		{"exact name: sibling denied", base, Spec{DNSNames: []string{"www.example.com"}}, []string{`"www.example.com": matches no AllowedDomains pattern`}},
		{"suffix trick denied", base, Spec{DNSNames: []string{"x.svc.example.com.evil.com"}}, []string{"DNSNames[0]"}},
		{"label-suffix trick denied", base, Spec{DNSNames: []string{"x.evilsvc.example.com"}}, []string{"DNSNames[0]"}},
		{"every SAN checked", base, Spec{DNSNames: []string{"api.svc.example.com", "evil.com", "db.apps.example.com"}}, []string{`DNSNames[1] "evil.com"`}},
		{"invalid DNS name", base, Spec{DNSNames: []string{"bad..svc.example.com"}}, []string{"invalid DNS name: empty label"}},
		{"trailing dot", base, Spec{DNSNames: []string{"api.svc.example.com."}}, []string{"invalid DNS name"}},
		{"hyphen label", base, Spec{DNSNames: []string{"-x.svc.example.com"}}, []string{"hyphen"}},

		// Wildcards.
		{"wildcard needs AllowWildcards", base, Spec{DNSNames: []string{"*.svc.example.com"}}, []string{"wildcard names are not allowed (to allow: set AllowWildcards: true)"}},
		{"wildcard covered by one-label glob", wild, Spec{DNSNames: []string{"*.svc.example.com"}}, nil},
		{"wildcard covered by any-depth glob", wild, Spec{DNSNames: []string{"*.x.apps.example.com"}}, nil},
		{"wildcard not covered by exact name", wild, Spec{DNSNames: []string{"*.example.com"}}, []string{`"*.example.com": matches no AllowedDomains`}},
		{"wildcard one level too deep", wild, Spec{DNSNames: []string{"*.a.svc.example.com"}}, []string{"matches no AllowedDomains"}},
		{"wildcard not leftmost", wild, Spec{DNSNames: []string{"api.*.example.com"}}, []string{"only allowed as the whole leftmost label"}},
		{"partial wildcard", wild, Spec{DNSNames: []string{"api-*.svc.example.com"}}, []string{"only allowed as the whole leftmost label"}},
		{"wildcard over a TLD", with(func(p *Policy) { p.AllowWildcards = true; p.AllowedDomains = []string{"**"} }), Spec{DNSNames: []string{"*.com"}}, []string{"at least two labels"}},

		// Common name.
		{"CN allowed like a SAN", base, Spec{CommonName: "api.svc.example.com", DNSNames: []string{"api.svc.example.com"}}, nil},
		{"CN outside the policy", base, Spec{CommonName: "evil.com", DNSNames: []string{"api.svc.example.com"}}, []string{`CommonName "evil.com": matches no AllowedDomains`}},
		{"CN free text", base, Spec{CommonName: "My Service", DNSNames: []string{"api.svc.example.com"}}, []string{"is not a DNS name, IP address or URI"}},
		{"CN IP needs AllowIPs", base, Spec{CommonName: "10.0.0.1"}, []string{`CommonName "10.0.0.1": IP addresses are not allowed`}},
		{"CN IP with AllowIPs", ips, Spec{CommonName: "10.0.0.1"}, nil},
		{"CN URI", base, Spec{CommonName: "spiffe://prod.example/ns/app/sa/api"}, nil},
		{"CN wildcard without AllowWildcards", base, Spec{CommonName: "*.svc.example.com"}, []string{"wildcard names are not allowed"}},

		// IPs.
		{"IPs allowed", ips, Spec{DNSNames: []string{"api.svc.example.com"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::1")}}, nil},
		{"IPs denied", base, Spec{IPAddresses: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::1")}}, []string{"IPAddresses[0]", "IPAddresses[1]"}},
		{"invalid IP", ips, Spec{IPAddresses: []net.IP{{1, 2, 3}}}, []string{"invalid IP address"}},

		// URIs.
		{"URI under prefix", base, Spec{URIs: []string{"spiffe://prod.example/ns/app/sa/api"}}, nil},
		{"URI prefix is segment-bounded", base, Spec{URIs: []string{"spiffe://prod.example/ns/application/sa/api"}}, []string{"matches no AllowedURIs"}},
		{"URI other trust domain", base, Spec{URIs: []string{"spiffe://staging.example/ns/app/sa/api"}}, []string{"matches no AllowedURIs"}},
		{"URI glob one segment", base, Spec{URIs: []string{"spiffe://prod.example/ns/billing/sa/metrics"}}, nil},
		{"URI glob does not cross segments", base, Spec{URIs: []string{"spiffe://prod.example/ns/a/b/sa/metrics"}}, []string{"matches no AllowedURIs"}},
		{"URI double-star glob", base, Spec{URIs: []string{"urn:keyferry:a:b:c"}}, nil},
		{"URI dot-dot escape", base, Spec{URIs: []string{"spiffe://prod.example/ns/app/../../ns/admin/sa/root"}}, []string{`has an empty, "." or ".." path segment`}},
		{"URI empty segment", base, Spec{URIs: []string{"spiffe://prod.example/ns/app//x"}}, []string{"path segment"}},
		{"URI user info", base, Spec{URIs: []string{"spiffe://a@prod.example/ns/app/x"}}, []string{"user info"}},
		{"URI query", base, Spec{URIs: []string{"spiffe://prod.example/ns/app/x?y=1"}}, []string{"has a query"}},
		{"URI fragment", base, Spec{URIs: []string{"spiffe://prod.example/ns/app/x#y"}}, []string{"has a fragment"}},
		{"URI no scheme", base, Spec{URIs: []string{"/ns/app/x"}}, []string{"no scheme"}},
		{"URI upper-case scheme", base, Spec{URIs: []string{"SPIFFE://prod.example/ns/app/x"}}, []string{"normal form"}},

		// TTL.
		{"TTL default within MaxTTL", base, Spec{DNSNames: []string{"api.example.com"}}, nil},
		{"TTL at MaxTTL", base, Spec{DNSNames: []string{"api.example.com"}, TTL: 7 * 24 * time.Hour}, nil},
		{"TTL above MaxTTL", base, Spec{DNSNames: []string{"api.example.com"}, TTL: 8 * 24 * time.Hour}, []string{`TTL "192h0m0s": exceeds the policy's MaxTTL 168h0m0s (to allow: raise MaxTTL to at least 192h0m0s, or request a TTL of at most 168h0m0s)`}},
		{"default TTL above MaxTTL", with(func(p *Policy) { p.MaxTTL = time.Hour }), Spec{DNSNames: []string{"api.example.com"}}, []string{"exceeds the policy's MaxTTL 1h0m0s"}},
		{"negative TTL", base, Spec{DNSNames: []string{"api.example.com"}, TTL: -time.Hour}, []string{"negative lifetime"}},
		{"RenewBefore not below TTL", base, Spec{DNSNames: []string{"api.example.com"}, TTL: time.Hour, RenewBefore: time.Hour}, []string{"would always be due"}},

		// Key types and usages.
		{"rsa-2048 allowed", base, Spec{DNSNames: []string{"api.example.com"}, KeyType: KeyRSA2048}, nil},
		{"rsa-4096 denied", base, Spec{DNSNames: []string{"api.example.com"}, KeyType: KeyRSA4096}, []string{`KeyType "rsa-4096": not allowed (allowed: "ec-p256", "rsa-2048") (to allow: add "rsa-4096" to AllowedKeyTypes)`}},
		{"unknown key type", base, Spec{DNSNames: []string{"api.example.com"}, KeyType: "dsa-1024"}, []string{"unknown key type"}},
		{"client auth", base, Spec{URIs: []string{"spiffe://prod.example/ns/app/sa/api"}, ExtKeyUsage: []string{"client-auth", "server-auth"}}, nil},
		{"unknown EKU", base, Spec{DNSNames: []string{"api.example.com"}, ExtKeyUsage: []string{"code-signing"}}, []string{"unknown extended key usage"}},
		{"CA key usage refused", base, Spec{DNSNames: []string{"api.example.com"}, KeyUsage: []string{"cert-sign"}}, []string{"unknown key usage"}},

		// Broken policies deny.
		{"bad domain pattern", with(func(p *Policy) { p.AllowedDomains = []string{"api-*.example.com"} }), Spec{DNSNames: []string{"api-1.example.com"}}, []string{`Policy.AllowedDomains[0] "api-*.example.com": invalid pattern: label "api-*": "*" and "**" must be a whole label`, "DNSNames[0]"}},
		{"bad key type in policy", with(func(p *Policy) { p.AllowedKeyTypes = []string{"ec-p521"} }), Spec{DNSNames: []string{"api.example.com"}, KeyType: KeyECP256}, []string{"Policy.AllowedKeyTypes[0]", `KeyType "ec-p256": not allowed`}},
		{"URI pattern without scheme", with(func(p *Policy) { p.AllowedURIs = []string{"prod.example"} }), Spec{DNSNames: []string{"api.example.com"}}, []string{"Policy.AllowedURIs[0]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.policy.Check(c.spec)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("allowed, want denied")
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *PolicyError", err)
			}
			if len(pe.Violations) != len(c.want) {
				t.Errorf("%d violations, want %d:\n%v", len(pe.Violations), len(c.want), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestPolicyErrorNamesSpec(t *testing.T) {
	err := Policy{}.Check(Spec{Name: "billing-api", DNSNames: []string{"a.example.com"}})
	if err == nil || !strings.HasPrefix(err.Error(), `pki: certificate "billing-api" denied by policy (3 violations):`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := openPolicy.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Policy{}).Validate(); err != nil {
		t.Fatalf("zero policy is valid (it allows nothing): %v", err)
	}
	err := Policy{AllowedDomains: []string{"", "a..b", "x*.y"}, AllowedURIs: []string{""}, MaxTTL: -1}.Validate()
	if err == nil {
		t.Fatal("broken policy validated")
	}
	if n := len(err.(*PolicyError).Violations); n != 5 {
		t.Errorf("%d violations, want 5: %v", n, err)
	}
}
