package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Spec describes one leaf certificate.
type Spec struct {
	// Name identifies the certificate in keyferry (a label for logs and errors; not put in the certificate).
	Name string
	// CommonName is the subject CN (optional; clients match the SANs). When set it must itself be
	// allowed by the policy: as a DNS name, an IP address or a URI.
	CommonName string
	// DNSNames are DNS SANs; "*.svc.example.com" is a wildcard (needs Policy.AllowWildcards).
	DNSNames []string
	// IPAddresses are IP SANs (need Policy.AllowIPs).
	IPAddresses []net.IP
	// URIs are URI SANs, e.g. SPIFFE IDs spiffe://prod.example/ns/app/sa/api. No user info, query or
	// fragment, and no empty, "." or ".." path segments.
	URIs []string
	// KeyType is ec-p256 (default), ec-p384, rsa-2048, rsa-3072 or rsa-4096.
	KeyType string
	// TTL is the certificate's lifetime; 0 means 72h.
	TTL time.Duration
	// RenewBefore is how long before NotAfter the certificate is due for renewal; 0 means at 2/3 of its
	// life (see RenewAt).
	RenewBefore time.Duration
	// KeyUsage names key usages: digital-signature, key-encipherment, key-agreement, data-encipherment,
	// content-commitment. Empty means digital-signature, plus key-encipherment for RSA keys.
	KeyUsage []string
	// ExtKeyUsage names extended key usages: server-auth (default), client-auth.
	ExtKeyUsage []string
}

// KeyUsages maps the names Spec.KeyUsage accepts. CA usages (cert-sign, crl-sign) are deliberately absent:
// a leaf never signs.
var KeyUsages = map[string]x509.KeyUsage{
	"digital-signature":  x509.KeyUsageDigitalSignature,
	"key-encipherment":   x509.KeyUsageKeyEncipherment,
	"key-agreement":      x509.KeyUsageKeyAgreement,
	"data-encipherment":  x509.KeyUsageDataEncipherment,
	"content-commitment": x509.KeyUsageContentCommitment,
}

// ExtKeyUsages maps the names Spec.ExtKeyUsage accepts.
var ExtKeyUsages = map[string]x509.ExtKeyUsage{
	"server-auth": x509.ExtKeyUsageServerAuth,
	"client-auth": x509.ExtKeyUsageClientAuth,
}

// withDefaults fills the defaults documented on Spec.
func (s Spec) withDefaults() Spec {
	if s.KeyType == "" {
		s.KeyType = KeyECP256
	}
	if s.TTL == 0 {
		s.TTL = DefaultLeafTTL
	}
	if len(s.ExtKeyUsage) == 0 {
		s.ExtKeyUsage = []string{"server-auth"}
	}
	if len(s.KeyUsage) == 0 {
		s.KeyUsage = []string{"digital-signature"}
		if strings.HasPrefix(s.KeyType, "rsa-") {
			s.KeyUsage = append(s.KeyUsage, "key-encipherment")
		}
	}
	return s
}

// Policy decides which specs an issuer signs. It is deny by default: a zero Policy allows nothing, and a
// spec is signed only if its CN, every SAN, its TTL and its key type are all allowed.
type Policy struct {
	// AllowedDomains are DNS name globs, matched label by label, case-insensitively: "*" is exactly one
	// label ("*.svc.example.com" allows api.svc.example.com, not a.b.svc.example.com nor svc.example.com),
	// "**" one or more labels ("**.example.com" allows any name under example.com, not example.com
	// itself); other labels match literally. A wildcard SAN "*.svc.example.com" is allowed only by a
	// pattern covering every name it covers ("*.svc.example.com", "**.example.com"), and only with
	// AllowWildcards.
	AllowedDomains []string
	// AllowedURIs allow URI SANs. A pattern with "*" is a glob over the whole URI ("*" matches within one
	// path segment, "**" across segments); otherwise it is a prefix that ends at a segment boundary:
	// "spiffe://prod.example/ns/app" allows that URI and everything under spiffe://prod.example/ns/app/,
	// not spiffe://prod.example/ns/application.
	AllowedURIs []string
	// MaxTTL is the longest lifetime allowed; 0 allows none.
	MaxTTL time.Duration
	// AllowedKeyTypes lists the key types allowed (see KeyTypes); empty allows none.
	AllowedKeyTypes []string
	// AllowWildcards allows wildcard DNS names (which must still match AllowedDomains).
	AllowWildcards bool
	// AllowIPs allows IP address SANs (and an IP address as CN).
	AllowIPs bool
}

// Violation is one reason a spec is denied.
type Violation struct {
	// Field names the offending part of the spec (e.g. "DNSNames[1]"), or of the policy.
	Field string
	// Value is the offending value.
	Value string
	// Problem says what is wrong.
	Problem string
	// Fix says what would allow it.
	Fix string
}

func (v Violation) String() string {
	s := v.Field
	if v.Value != "" {
		s += fmt.Sprintf(" %q", v.Value)
	}
	s += ": " + v.Problem
	if v.Fix != "" {
		s += " (to allow: " + v.Fix + ")"
	}
	return s
}

// PolicyError lists every violation found in one check.
type PolicyError struct {
	Spec       string
	Violations []Violation
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	name := ""
	if e.Spec != "" {
		name = fmt.Sprintf(" %q", e.Spec)
	}
	fmt.Fprintf(&b, "pki: certificate%s denied by policy (%d violation", name, len(e.Violations))
	if len(e.Violations) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, v := range e.Violations {
		b.WriteString("\n  - ")
		b.WriteString(v.String())
	}
	return b.String()
}

// maxNameLen bounds the length of any name checked, so a hostile spec cannot make matching expensive.
const maxNameLen = 2048

// Check reports whether the policy allows the spec (with its defaults applied). The error is a
// *PolicyError listing every violation and what would allow it.
func (p Policy) Check(s Spec) error { return p.compiled().check(s) }

// compiledPolicy is a policy with its patterns compiled once (an issuer checks every spec against it).
type compiledPolicy struct {
	p       Policy
	domains []*regexp.Regexp
	uris    []func(string) bool
	vs      []Violation // the policy's own problems, reported with every check
}

func (p Policy) compiled() *compiledPolicy {
	cp := &compiledPolicy{p: p}
	cp.domains, cp.uris, cp.vs = p.compile()
	return cp
}

func (cp *compiledPolicy) check(s Spec) error {
	p, domains, urisPats := cp.p, cp.domains, cp.uris
	s = s.withDefaults()
	var vs []Violation
	add := func(field, value, problem, fix string) {
		vs = append(vs, Violation{Field: field, Value: value, Problem: problem, Fix: fix})
	}
	vs = append(vs, cp.vs...)

	if s.CommonName == "" && len(s.DNSNames) == 0 && len(s.IPAddresses) == 0 && len(s.URIs) == 0 {
		add("Spec", "", "no CommonName and no SAN: nothing to certify", "set DNSNames, IPAddresses or URIs")
	}

	checkDNS := func(field, name string) {
		if err := checkSANDNSName(name); err != nil {
			add(field, name, "invalid DNS name: "+err.Error(), "")
			return
		}
		wild := strings.HasPrefix(name, "*.")
		if wild && !p.AllowWildcards {
			add(field, name, "wildcard names are not allowed", "set AllowWildcards: true")
		}
		if !matchAnyDomain(domains, name) {
			fix := fmt.Sprintf("add %q to AllowedDomains", strings.ToLower(name))
			if i := strings.IndexByte(name, '.'); !wild && i > 0 && strings.Count(name, ".") >= 2 {
				fix += fmt.Sprintf(", or a glob such as %q", "*"+strings.ToLower(name[i:]))
			}
			add(field, name, "matches no AllowedDomains pattern"+listed(p.AllowedDomains), fix)
		}
	}
	checkIP := func(field string, ip net.IP) {
		if ip.To4() == nil && ip.To16() == nil {
			add(field, fmt.Sprint([]byte(ip)), "invalid IP address", "")
			return
		}
		if !p.AllowIPs {
			add(field, ip.String(), "IP addresses are not allowed", "set AllowIPs: true")
		}
	}
	checkURI := func(field, uri string) {
		if err := checkURISAN(uri); err != nil {
			add(field, uri, "invalid URI: "+err.Error(), "")
			return
		}
		for _, m := range urisPats {
			if m(uri) {
				return
			}
		}
		fix := fmt.Sprintf("add %q to AllowedURIs", uri)
		if i := strings.LastIndexByte(uri, '/'); i > strings.Index(uri, "://")+2 && i > 0 {
			fix += fmt.Sprintf(", or the prefix %q", uri[:i+1])
		}
		add(field, uri, "matches no AllowedURIs pattern"+listed(p.AllowedURIs), fix)
	}

	if cn := s.CommonName; cn != "" {
		switch {
		case len(cn) > maxNameLen:
			add("CommonName", cn[:64]+"...", fmt.Sprintf("longer than %d characters", maxNameLen), "")
		case net.ParseIP(cn) != nil:
			checkIP("CommonName", net.ParseIP(cn))
		case strings.Contains(cn, ":"):
			checkURI("CommonName", cn)
		case checkSANDNSName(cn) == nil:
			checkDNS("CommonName", cn)
		default:
			add("CommonName", cn, "is not a DNS name, IP address or URI, so no policy can allow it",
				"use a DNS name covered by AllowedDomains, or leave CommonName empty and rely on the SANs")
		}
	}
	for i, n := range s.DNSNames {
		checkDNS(fmt.Sprintf("DNSNames[%d]", i), n)
	}
	for i, ip := range s.IPAddresses {
		checkIP(fmt.Sprintf("IPAddresses[%d]", i), ip)
	}
	for i, u := range s.URIs {
		checkURI(fmt.Sprintf("URIs[%d]", i), u)
	}

	switch {
	case s.TTL < 0:
		add("TTL", s.TTL.String(), "negative lifetime", "")
	case s.TTL > p.MaxTTL:
		fix := fmt.Sprintf("raise MaxTTL to at least %s, or request a TTL of at most %s", s.TTL, p.MaxTTL)
		if p.MaxTTL == 0 {
			fix = fmt.Sprintf("set MaxTTL to at least %s", s.TTL)
		}
		add("TTL", s.TTL.String(), fmt.Sprintf("exceeds the policy's MaxTTL %s", p.MaxTTL), fix)
	}
	switch {
	case s.RenewBefore < 0:
		add("RenewBefore", s.RenewBefore.String(), "negative", "")
	case s.TTL > 0 && s.RenewBefore >= s.TTL:
		add("RenewBefore", s.RenewBefore.String(), fmt.Sprintf("not shorter than the TTL %s: the certificate would always be due", s.TTL),
			"use a RenewBefore shorter than the TTL, or 0 for 2/3 of the life")
	}

	if !validKeyType(s.KeyType) {
		add("KeyType", s.KeyType, "unknown key type", "use one of "+strings.Join(KeyTypes, ", "))
	} else if !slices.Contains(p.AllowedKeyTypes, s.KeyType) {
		add("KeyType", s.KeyType, "not allowed"+listed(p.AllowedKeyTypes), fmt.Sprintf("add %q to AllowedKeyTypes", s.KeyType))
	}
	for i, ku := range s.KeyUsage {
		if _, ok := KeyUsages[ku]; !ok {
			add(fmt.Sprintf("KeyUsage[%d]", i), ku, "unknown key usage", "use one of "+strings.Join(sortedKeys(KeyUsages), ", "))
		}
	}
	for i, eku := range s.ExtKeyUsage {
		if _, ok := ExtKeyUsages[eku]; !ok {
			add(fmt.Sprintf("ExtKeyUsage[%d]", i), eku, "unknown extended key usage", "use one of "+strings.Join(sortedKeys(ExtKeyUsages), ", "))
		}
	}

	if len(vs) == 0 {
		return nil
	}
	return &PolicyError{Spec: s.Name, Violations: vs}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func listed(allowed []string) string {
	if len(allowed) == 0 {
		return " (the policy allows none)"
	}
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = fmt.Sprintf("%q", a)
	}
	return " (allowed: " + strings.Join(q, ", ") + ")"
}

// Validate reports the policy's own mistakes (malformed patterns, unknown key types). Check reports
// them too, so a broken policy denies everything rather than allowing something by accident.
func (p Policy) Validate() error {
	_, _, vs := p.compile()
	if len(vs) == 0 {
		return nil
	}
	return &PolicyError{Violations: vs}
}

// compile turns the patterns into matchers; malformed patterns match nothing and come back as violations.
func (p Policy) compile() (domains []*regexp.Regexp, uris []func(string) bool, vs []Violation) {
	for i, d := range p.AllowedDomains {
		re, err := compileDomainGlob(d)
		if err != nil {
			vs = append(vs, Violation{Field: fmt.Sprintf("Policy.AllowedDomains[%d]", i), Value: d, Problem: "invalid pattern: " + err.Error()})
			continue
		}
		domains = append(domains, re)
	}
	for i, u := range p.AllowedURIs {
		m, err := compileURIPattern(u)
		if err != nil {
			vs = append(vs, Violation{Field: fmt.Sprintf("Policy.AllowedURIs[%d]", i), Value: u, Problem: "invalid pattern: " + err.Error()})
			continue
		}
		uris = append(uris, m)
	}
	for i, kt := range p.AllowedKeyTypes {
		if !validKeyType(kt) {
			vs = append(vs, Violation{Field: fmt.Sprintf("Policy.AllowedKeyTypes[%d]", i), Value: kt,
				Problem: "unknown key type", Fix: "use one of " + strings.Join(KeyTypes, ", ")})
		}
	}
	if p.MaxTTL < 0 {
		vs = append(vs, Violation{Field: "Policy.MaxTTL", Value: p.MaxTTL.String(), Problem: "negative"})
	}
	return domains, uris, vs
}

func matchAnyDomain(res []*regexp.Regexp, name string) bool {
	name = strings.ToLower(name)
	for _, re := range res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// compileDomainGlob turns a label glob into an anchored regular expression (RE2: linear time).
func compileDomainGlob(pat string) (*regexp.Regexp, error) {
	if pat == "" {
		return nil, errors.New("empty")
	}
	if len(pat) > 253 {
		return nil, errors.New("longer than 253 characters")
	}
	labels := strings.Split(strings.ToLower(pat), ".")
	parts := make([]string, len(labels))
	for i, l := range labels {
		switch {
		case l == "*":
			parts[i] = `[^.]+`
		case l == "**":
			parts[i] = `[^.]+(?:\.[^.]+)*`
		case strings.Contains(l, "*"):
			return nil, fmt.Errorf("label %q: \"*\" and \"**\" must be a whole label", l)
		default:
			if err := checkLabel(l); err != nil {
				return nil, err
			}
			parts[i] = regexp.QuoteMeta(l)
		}
	}
	return regexp.Compile(`^` + strings.Join(parts, `\.`) + `$`)
}

// compileURIPattern returns a matcher for an AllowedURIs entry: a glob if it has "*", else a prefix
// ending at a path segment boundary.
func compileURIPattern(pat string) (func(string) bool, error) {
	if pat == "" {
		return nil, errors.New("empty")
	}
	if len(pat) > maxNameLen {
		return nil, fmt.Errorf("longer than %d characters", maxNameLen)
	}
	if !strings.Contains(pat, ":") {
		return nil, errors.New(`not a URI (no scheme), e.g. "spiffe://prod.example/ns/app/"`)
	}
	if !strings.Contains(pat, "*") {
		return func(u string) bool {
			if u == pat {
				return true
			}
			if strings.HasSuffix(pat, "/") {
				return strings.HasPrefix(u, pat)
			}
			return strings.HasPrefix(u, pat+"/")
		}, nil
	}
	var b strings.Builder
	b.WriteString("^")
	for rest := pat; rest != ""; {
		i := strings.IndexByte(rest, '*')
		if i < 0 {
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		b.WriteString(regexp.QuoteMeta(rest[:i]))
		if strings.HasPrefix(rest[i:], "**") {
			b.WriteString(`.*`)
			rest = strings.TrimLeft(rest[i:], "*")
		} else {
			b.WriteString(`[^/]*`)
			rest = rest[i+1:]
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, err
	}
	return re.MatchString, nil
}

// checkSANDNSName accepts a DNS name, or a wildcard "*.rest" whose rest has at least two labels.
func checkSANDNSName(name string) error {
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		if strings.Count(rest, ".") < 1 {
			return errors.New(`a wildcard needs at least two labels after "*." (no "*.com")`)
		}
		return checkDNSName(rest)
	}
	if strings.Contains(name, "*") {
		return errors.New(`"*" is only allowed as the whole leftmost label`)
	}
	return checkDNSName(name)
}

// checkDNSName accepts a fully qualified name without trailing dot: labels of 1-63 letters, digits,
// hyphens and underscores, not starting or ending with a hyphen, 253 characters at most.
func checkDNSName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, l := range strings.Split(name, ".") {
		if err := checkLabel(l); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(l string) error {
	if l == "" {
		return errors.New("empty label")
	}
	if len(l) > 63 {
		return errors.New("label longer than 63 characters")
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("label %q has the character %q", l, c)
		}
	}
	return nil
}

// checkURISAN accepts an absolute URI without user info, query or fragment, whose path has no empty,
// "." or ".." segment (which would let a URI escape a prefix pattern).
func checkURISAN(s string) error {
	if len(s) > maxNameLen {
		return fmt.Errorf("longer than %d characters", maxNameLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("does not parse as a URI")
	}
	switch {
	case u.Scheme == "":
		return errors.New("no scheme")
	case u.User != nil:
		return errors.New("has user info")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("has a query")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("has a fragment")
	case u.Opaque == "" && u.Host == "":
		return errors.New("has no host")
	case u.String() != s:
		return errors.New("is not in normal form")
	}
	if u.Opaque == "" && u.Path != "" {
		for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
			if seg == "" || seg == "." || seg == ".." {
				return errors.New(`has an empty, "." or ".." path segment`)
			}
		}
	}
	return nil
}
