// Package idp holds token-VALIDATING fakes of the three clouds' workload-identity token exchanges, for
// offline trust tests (moto's STS validates nothing):
//
//   - AWSSTS: sts:AssumeRoleWithWebIdentity (query protocol) against IAM OIDC providers and role trust
//     conditions, GetCallerIdentity (SigV4-verified) for the session credentials it issued or was given,
//     and GetWebIdentityToken (IAM outbound identity federation: JWTs from the account's issuer). Its
//     Authenticate checks any SigV4-signed request against those sessions.
//   - Entra: the v2.0 token endpoint with client_credentials + a JWT client assertion, matched against
//     federated identity credentials; access tokens are minted by a given oidc.Issuer.
//   - GoogleSTS: sts.googleapis.com /v1/token (OIDC and AWS workload identity providers) and
//     iamcredentials generateAccessToken (service-account impersonation).
//   - Metadata: the GCE/Cloud Run metadata server's identity and token endpoints.
//
// Every fake is an http.Handler (NewX) and can run on its own 127.0.0.1 server (StartX, which returns the
// fake with URL set and a Close method). JWTs are checked the way the real trust configuration checks
// them: signature against the trusted issuer's JWKS (discovered from the issuer URL with the configured
// HTTP client, e.g. the oidc package's CA client for an HTTPS issuer), issuer, audience, subject, exp and
// nbf. Refusals use each service's real error format; the message starts with the real service's text
// where known and adds what was presented and what was expected. Tokens never appear in messages.
//
// Each fake counts accepted and refused requests per operation (Accepted, Refused, Counts, RefusedWith) and
// per operation and subject (CountsFor), and can list the secrets it handed out (IssuedSecrets: access
// tokens, session keys; the JWTs are listed by the oidc.Issuer that signed them), so that tests can check
// that none leaks into a log.
package idp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// server is the optional 127.0.0.1 listener a fake runs on (set by the StartX functions).
type server struct {
	// URL is the base URL (http(s)://127.0.0.1:PORT) once started; empty for a fake made with NewX.
	URL string
	ca  *oidc.CA
	srv *http.Server
}

func (s *server) serve(h http.Handler, ca *oidc.CA) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("idp: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if ca != nil {
		if srv.TLSConfig, err = ca.ServerTLSConfig(); err != nil {
			_ = lis.Close()
			return err
		}
		scheme = "https"
	}
	s.ca, s.srv, s.URL = ca, srv, scheme+"://"+lis.Addr().String()
	go func() {
		if ca != nil {
			_ = srv.ServeTLS(lis, "", "")
		} else {
			_ = srv.Serve(lis)
		}
	}()
	return nil
}

// Close stops the server (a no-op for a fake that was never started).
func (s *server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// CA is the CA behind the server's certificate (nil for plain HTTP).
func (s *server) CA() *oidc.CA { return s.ca }

// HTTPClient is a client that reaches the server (trusting its CA when it serves HTTPS).
func (s *server) HTTPClient() *http.Client {
	if s.ca != nil {
		return s.ca.Client()
	}
	return plainClient()
}

func plainClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
}

// counters count accepted and refused requests per operation, per operation and subject (the role,
// audience, provider… a request was for: CountsFor), and refusals per error code.
type counters struct {
	accepted, refused atomic.Int64
	mu                sync.Mutex
	byOp              map[string]*[2]int64
	byKey             map[[2]string]*[2]int64
	byCode            map[string]int64
}

func (c *counters) accept(op string) { c.acceptFor(op, "") }

// acceptFor counts an accepted request of op for key ("" counts the operation only).
func (c *counters) acceptFor(op, key string) {
	c.accepted.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.op(op)[0]++
	if key != "" {
		c.key(op, key)[0]++
	}
}

func (c *counters) refuse(op, code string) { c.refuseFor(op, "", code) }

// refuseFor counts a refused request of op for key ("" counts the operation only).
func (c *counters) refuseFor(op, key, code string) {
	c.refused.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.op(op)[1]++
	if key != "" {
		c.key(op, key)[1]++
	}
	if c.byCode == nil {
		c.byCode = map[string]int64{}
	}
	c.byCode[code]++
}

func (c *counters) key(op, key string) *[2]int64 {
	if c.byKey == nil {
		c.byKey = map[[2]string]*[2]int64{}
	}
	k := [2]string{op, key}
	if c.byKey[k] == nil {
		c.byKey[k] = new([2]int64)
	}
	return c.byKey[k]
}

// CountsFor returns the accepted and refused counts of one operation for one subject: the role ARN
// (AssumeRoleWithWebIdentity), the audience (GetWebIdentityToken, the metadata server's identity), the
// assumed-role ARN (GetCallerIdentity), the assertion's issuer (Entra token), the provider (Google STS
// token) or the impersonating principal (generateAccessToken).
func (c *counters) CountsFor(op, key string) (accepted, refused int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.byKey[[2]string{op, key}]; n != nil {
		return n[0], n[1]
	}
	return 0, 0
}

func (c *counters) op(op string) *[2]int64 {
	if c.byOp == nil {
		c.byOp = map[string]*[2]int64{}
	}
	if c.byOp[op] == nil {
		c.byOp[op] = new([2]int64)
	}
	return c.byOp[op]
}

// Accepted is the number of requests answered with success (all operations).
func (c *counters) Accepted() int64 { return c.accepted.Load() }

// Refused is the number of requests answered with an error (all operations).
func (c *counters) Refused() int64 { return c.refused.Load() }

// Counts returns the accepted and refused counts of one operation.
func (c *counters) Counts(op string) (accepted, refused int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.byOp[op]; n != nil {
		return n[0], n[1]
	}
	return 0, 0
}

// RefusedWith is the number of refusals answered with the given error code.
func (c *counters) RefusedWith(code string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byCode[code]
}

// trust verifies JWTs for the fakes: one oidc.Verifier per (issuer, accepted audiences), each caching
// the issuer's JWKS fetched through its discovery document.
type trust struct {
	client *http.Client
	now    func() time.Time
	mu     sync.Mutex
	vs     map[string]*oidc.Verifier
}

func newTrust(client *http.Client, now func() time.Time) *trust {
	if client == nil {
		client = plainClient()
	}
	if now == nil {
		now = time.Now
	}
	return &trust{client: client, now: now, vs: map[string]*oidc.Verifier{}}
}

// verify checks signature, iss (exactly issuer), aud (one of audiences), exp and nbf.
func (t *trust) verify(ctx context.Context, issuer string, audiences []string, token string) (*oidc.Claims, error) {
	key := issuer + "\x00" + strings.Join(audiences, "\x00")
	t.mu.Lock()
	v := t.vs[key]
	if v == nil {
		v = oidc.NewVerifier(issuer, audiences, oidc.WithHTTPClient(t.client), oidc.WithClock(t.now))
		t.vs[key] = v
	}
	t.mu.Unlock()
	return v.Verify(ctx, token)
}

// peek returns the claims of a JWT without verifying it (to find which trust entry applies).
func peek(token string) (jwt.MapClaims, error) {
	if token == "" {
		return nil, errors.New("no token was presented")
	}
	mc := jwt.MapClaims{}
	if _, _, err := jwt.NewParser(jwt.WithJSONNumber()).ParseUnverified(token, mc); err != nil {
		return nil, fmt.Errorf("not a JWT: %w", err)
	}
	return mc, nil
}

func claimString(mc jwt.MapClaims, name string) string {
	s, _ := mc[name].(string)
	return s
}

func claimAudience(mc jwt.MapClaims) []string {
	aud, _ := mc.GetAudience()
	return aud
}

// verifyDetail describes a verification failure without the token.
func verifyDetail(err error) string {
	var ve *oidc.VerifyError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	switch ve.Reason {
	case oidc.ReasonSignature:
		return "the signature does not verify with the issuer's published key"
	case oidc.ReasonUnknownKey:
		return fmt.Sprintf("the token's kid %q is not in the issuer's JWKS", ve.Found)
	case oidc.ReasonAlgorithm:
		return "the token is not signed with RS256"
	case oidc.ReasonDiscovery:
		return "the issuer's discovery document or JWKS could not be fetched: " + errString(ve.Err)
	case oidc.ReasonAudience:
		return fmt.Sprintf("aud %q is not %s", ve.Found, ve.Expected)
	case oidc.ReasonIssuer:
		return fmt.Sprintf("iss %q is not %q", ve.Found, ve.Expected)
	case oidc.ReasonExpired, oidc.ReasonNotYetValid:
		return string(ve.Reason) + ": " + errString(ve.Err)
	}
	return ve.Error()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func isTimeReason(err error) bool {
	r := oidc.ReasonOf(err)
	return r == oidc.ReasonExpired || r == oidc.ReasonNotYetValid
}

// stringLike is IAM's StringLike: * matches any run of characters, ? any single character.
func stringLike(pattern, s string) bool {
	p, v := []rune(pattern), []rune(s)
	pi, vi, star, mark := 0, 0, -1, 0
	for vi < len(v) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == v[vi]):
			pi++
			vi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, vi
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchSubject is an exact match, or StringLike when the pattern holds * or ?.
func matchSubject(pattern, s string) bool {
	if strings.ContainsAny(pattern, "*?") {
		return stringLike(pattern, s)
	}
	return pattern == s
}

func subjectOp(pattern string) string {
	if strings.ContainsAny(pattern, "*?") {
		return "StringLike"
	}
	return "StringEquals"
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b64chars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	urlChars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	digits     = "0123456789"
)

func randString(alphabet string, n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// numericID is a Google-style 21-digit unique id.
func numericID() string { return "1" + randString(digits, 20) }

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
