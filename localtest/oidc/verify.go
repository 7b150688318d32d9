package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Reason names the check a token failed.
type Reason string

const (
	ReasonMissing     Reason = "missing"       // no token at all
	ReasonMalformed   Reason = "malformed"     // not a JWS compact JWT, or claims not a JSON object
	ReasonAlgorithm   Reason = "algorithm"     // signed with an algorithm other than RS256
	ReasonUnknownKey  Reason = "unknown-key"   // kid absent or not in the issuer's JWKS
	ReasonSignature   Reason = "signature"     // signature does not verify with the issuer's key
	ReasonIssuer      Reason = "issuer"        // iss is not the expected issuer
	ReasonAudience    Reason = "audience"      // aud is none of the accepted audiences
	ReasonExpired     Reason = "expired"       // exp is in the past (beyond the leeway) or absent
	ReasonNotYetValid Reason = "not-yet-valid" // nbf is in the future (beyond the leeway)
	ReasonDiscovery   Reason = "discovery"     // the issuer's discovery document or JWKS could not be fetched
)

// VerifyError says which check a token failed and what was found.
type VerifyError struct {
	Reason   Reason
	Expected string // what the verifier wanted (issuer, audiences), if it applies
	Found    string // what the token carried (never the token itself)
	Err      error  // underlying cause, if any
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	b.WriteString("token rejected: " + string(e.Reason))
	if e.Expected != "" || e.Found != "" {
		fmt.Fprintf(&b, " (expected %s, found %q)", e.Expected, e.Found)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *VerifyError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of a verification error ("" if err is not one).
func ReasonOf(err error) Reason {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

// Claims are the verified claims of a token.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	ObjectID  string // oid
	TenantID  string // tid
	AppID     string // appid, or azp
	IssuedAt  time.Time
	NotBefore time.Time
	Expires   time.Time
	Raw       map[string]any
}

// Verifier validates RS256 JWTs from one issuer the way a relying party does: the signature against
// the JWKS named by the issuer's discovery document (fetched from the issuer URL and cached; refreshed
// when a token names an unknown kid), then iss, aud, exp and nbf with a small leeway.
type Verifier struct {
	issuer    string
	audiences []string
	leeway    time.Duration
	client    *http.Client
	now       func() time.Time

	mu        sync.Mutex
	keys      *jose.JSONWebKeySet
	fetchedAt time.Time
}

// VerifierOption adjusts a Verifier.
type VerifierOption func(*Verifier)

// WithLeeway sets the clock-skew allowance for exp and nbf (default 30s).
func WithLeeway(d time.Duration) VerifierOption { return func(v *Verifier) { v.leeway = d } }

// WithHTTPClient sets the client used to fetch discovery and JWKS (needed for an HTTPS issuer with a
// local CA; default: a plain client with a timeout).
func WithHTTPClient(c *http.Client) VerifierOption { return func(v *Verifier) { v.client = c } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// NewVerifier returns a verifier for tokens whose iss is exactly issuer and whose aud is one of audiences.
func NewVerifier(issuer string, audiences []string, opts ...VerifierOption) *Verifier {
	v := &Verifier{issuer: issuer, audiences: append([]string(nil), audiences...), leeway: 30 * time.Second,
		client: &http.Client{Timeout: 30 * time.Second}, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Issuer is the issuer this verifier accepts.
func (v *Verifier) Issuer() string { return v.issuer }

// Audiences are the audiences this verifier accepts.
func (v *Verifier) Audiences() []string { return append([]string(nil), v.audiences...) }

// Verify checks the token and returns its claims, or a *VerifyError naming the failed check.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, &VerifyError{Reason: ReasonMissing}
	}
	mc := jwt.MapClaims{}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation(), jwt.WithJSONNumber())
	_, err := parser.ParseWithClaims(token, mc, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, &VerifyError{Reason: ReasonUnknownKey, Found: "", Err: errors.New("the token header names no kid")}
		}
		return v.key(ctx, kid)
	})
	if err != nil {
		var ve *VerifyError
		switch {
		case errors.As(err, &ve):
			return nil, ve
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			if strings.Contains(err.Error(), "signing method") {
				return nil, &VerifyError{Reason: ReasonAlgorithm, Expected: "RS256", Err: err}
			}
			return nil, &VerifyError{Reason: ReasonSignature, Err: err}
		case errors.Is(err, jwt.ErrTokenUnverifiable):
			return nil, &VerifyError{Reason: ReasonAlgorithm, Expected: "RS256", Err: err}
		default:
			return nil, &VerifyError{Reason: ReasonMalformed, Err: err}
		}
	}

	c := &Claims{Raw: map[string]any(mc)}
	c.Issuer, _ = mc["iss"].(string)
	c.Subject, _ = mc["sub"].(string)
	c.ObjectID, _ = mc["oid"].(string)
	c.TenantID, _ = mc["tid"].(string)
	c.AppID, _ = mc["appid"].(string)
	if c.AppID == "" {
		c.AppID, _ = mc["azp"].(string)
	}
	aud, err := mc.GetAudience()
	if err != nil {
		return nil, &VerifyError{Reason: ReasonMalformed, Err: fmt.Errorf("aud: %w", err)}
	}
	c.Audience = aud
	times := map[string]*time.Time{"iat": &c.IssuedAt, "nbf": &c.NotBefore, "exp": &c.Expires}
	for name, dst := range times {
		if _, ok := mc[name]; !ok {
			continue
		}
		n, ok := mc[name].(json.Number)
		if !ok {
			return nil, &VerifyError{Reason: ReasonMalformed, Err: fmt.Errorf("%s is not a number", name)}
		}
		f, err := n.Float64()
		if err != nil {
			return nil, &VerifyError{Reason: ReasonMalformed, Err: fmt.Errorf("%s: %w", name, err)}
		}
		*dst = time.Unix(int64(f), 0)
	}

	if c.Issuer != v.issuer {
		return nil, &VerifyError{Reason: ReasonIssuer, Expected: v.issuer, Found: c.Issuer}
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return nil, &VerifyError{Reason: ReasonAudience, Expected: strings.Join(v.audiences, " or "),
			Found: strings.Join(c.Audience, ",")}
	}
	now := v.now()
	if c.Expires.IsZero() {
		return nil, &VerifyError{Reason: ReasonExpired, Err: errors.New("the token has no exp claim")}
	}
	if now.After(c.Expires.Add(v.leeway)) {
		return nil, &VerifyError{Reason: ReasonExpired,
			Err: fmt.Errorf("expired at %s, now %s", c.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if !c.NotBefore.IsZero() && now.Add(v.leeway).Before(c.NotBefore) {
		return nil, &VerifyError{Reason: ReasonNotYetValid,
			Err: fmt.Errorf("valid from %s, now %s", c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	return c, nil
}

// key returns the public key for kid, fetching the JWKS if it is not cached or does not hold kid
// (at most once per second, so a flood of bad kids cannot hammer the issuer).
func (v *Verifier) key(ctx context.Context, kid string) (any, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if k := lookup(v.keys, kid); k != nil {
		return k, nil
	}
	if v.keys == nil || v.now().Sub(v.fetchedAt) > time.Second {
		keys, err := v.fetchKeys(ctx)
		if err != nil {
			return nil, &VerifyError{Reason: ReasonDiscovery, Err: err}
		}
		v.keys, v.fetchedAt = keys, v.now()
	}
	if k := lookup(v.keys, kid); k != nil {
		return k, nil
	}
	return nil, &VerifyError{Reason: ReasonUnknownKey, Found: kid, Err: errors.New("no key with this kid in the issuer's JWKS")}
}

func lookup(set *jose.JSONWebKeySet, kid string) any {
	if set == nil {
		return nil
	}
	for _, k := range set.Key(kid) {
		if k.Use == "" || k.Use == "sig" {
			return k.Key
		}
	}
	return nil
}

func (v *Verifier) fetchKeys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	discoveryURL := strings.TrimSuffix(v.issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.getJSON(ctx, discoveryURL, &doc); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if doc.Issuer != v.issuer {
		return nil, fmt.Errorf("discovery document at %s names issuer %q, want %q", discoveryURL, doc.Issuer, v.issuer)
	}
	if doc.JWKSURI == "" {
		return nil, fmt.Errorf("discovery document at %s has no jwks_uri", discoveryURL)
	}
	var set jose.JSONWebKeySet
	if err := v.getJSON(ctx, doc.JWKSURI, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	return &set, nil
}

func (v *Verifier) getJSON(ctx context.Context, url string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
