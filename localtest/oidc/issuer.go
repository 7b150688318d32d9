// Package oidc is a local OpenID Connect issuer for tests: an RSA signing key with a key id, served on
// 127.0.0.1 (plain HTTP or, with Options.TLS, HTTPS from a generated CA) with a discovery document and a
// JWKS, a Mint method for tests, and the managed-identity endpoint that Azure App Service and Azure
// Functions expose (IDENTITY_ENDPOINT / IDENTITY_HEADER), so azidentity.NewManagedIdentityCredential
// gets its tokens here. A Verifier checks tokens the way a relying party (Key Vault, an STS) does:
// signature against the JWKS fetched from the issuer URL, issuer, audience and lifetime, and says
// exactly which check failed.
//
// Other fakes (an Entra token endpoint, an STS) can mount their handlers on the same server with Handle.
// The issuer logs request lines only (method, path, status) — never tokens, headers or query strings.
package oidc

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Options configure an Issuer. Zero values get sensible, random defaults.
type Options struct {
	// TLS serves HTTPS with a certificate from CA (or a newly generated CA when CA is nil).
	TLS bool
	CA  *CA

	// TenantID goes into tid and into Authority. Default: a random UUID.
	TenantID string
	// PrincipalID is the managed identity's object id: sub and oid of the tokens the managed-identity
	// endpoint issues. Default: a random UUID.
	PrincipalID string
	// ClientID is the managed identity's client (application) id: appid/azp. Default: a random UUID.
	ClientID string
	// IdentityHeader is the per-instance secret the managed-identity endpoint expects in
	// X-IDENTITY-HEADER (IDENTITY_HEADER in the function's environment). Default: random.
	IdentityHeader string

	// IssuerPath is the issuer's path below the server's base URL, e.g. "/<tenant>/" to look like
	// https://sts.windows.net/<tenant>/. Default "": the issuer is the base URL itself.
	IssuerPath string
	// KeyID is the kid of the signing key. Default: random. Two issuers given the same KeyID sign
	// with different keys under the same kid (a forged-signature test).
	KeyID string
	// TokenTTL is the lifetime of minted tokens. Default: one hour.
	TokenTTL time.Duration
}

// Issuer is a running local OIDC issuer.
type Issuer struct {
	opts    Options
	key     *rsa.PrivateKey
	baseURL string
	issuer  string
	ca      *CA
	lis     net.Listener
	srv     *http.Server
	mux     *http.ServeMux
	issued  atomic.Int64
	logs    *LogBuffer
	jwksDoc []byte

	mu     sync.Mutex
	minted []string         // every token signed, for leak checks (MintedTokens)
	byRes  map[string]int64 // managed-identity tokens issued, per resource
}

// Managed-identity endpoint path and the API version Azure App Service / Functions speak.
const (
	ManagedIdentityPath       = "/msi/token"
	ManagedIdentityAPIVersion = "2019-08-01"
	jwksPath                  = "/discovery/keys"
)

// Start generates a key and serves the issuer on a free 127.0.0.1 port.
func Start(opts Options) (*Issuer, error) {
	if opts.TenantID == "" {
		opts.TenantID = NewUUID()
	}
	if opts.PrincipalID == "" {
		opts.PrincipalID = NewUUID()
	}
	if opts.ClientID == "" {
		opts.ClientID = NewUUID()
	}
	if opts.IdentityHeader == "" {
		opts.IdentityHeader = randomHex(16)
	}
	if opts.KeyID == "" {
		opts.KeyID = randomHex(8)
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("oidc issuer: generate key: %w", err)
	}
	i := &Issuer{opts: opts, key: key, mux: http.NewServeMux(), logs: &LogBuffer{}}
	i.jwksDoc, err = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &key.PublicKey, KeyID: opts.KeyID, Algorithm: string(jose.RS256), Use: "sig"}}})
	if err != nil {
		return nil, fmt.Errorf("oidc issuer: encode JWKS: %w", err)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oidc issuer: listen: %w", err)
	}
	i.lis = lis
	scheme := "http"
	srv := &http.Server{Handler: requestLog(i.logs, i.mux), ReadHeaderTimeout: 10 * time.Second}
	if opts.TLS {
		i.ca = opts.CA
		if i.ca == nil {
			if i.ca, err = NewCA(); err != nil {
				_ = lis.Close()
				return nil, err
			}
		}
		if srv.TLSConfig, err = i.ca.ServerTLSConfig(); err != nil {
			_ = lis.Close()
			return nil, err
		}
		scheme = "https"
	}
	i.srv = srv
	i.baseURL = scheme + "://" + lis.Addr().String()
	i.issuer = i.baseURL + opts.IssuerPath

	discovery := strings.TrimSuffix(opts.IssuerPath, "/") + "/.well-known/openid-configuration"
	i.mux.HandleFunc("GET "+discovery, i.serveDiscovery)
	i.mux.HandleFunc("GET "+jwksPath, i.serveJWKS)
	i.mux.HandleFunc(ManagedIdentityPath, i.serveManagedIdentity)

	go func() {
		var err error
		if opts.TLS {
			err = srv.ServeTLS(lis, "", "")
		} else {
			err = srv.Serve(lis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			i.logs.Printf("serve: %v", err)
		}
	}()
	return i, nil
}

// Close stops the server.
func (i *Issuer) Close() error { return i.srv.Close() }

// URL is the server's base URL (http(s)://127.0.0.1:PORT).
func (i *Issuer) URL() string { return i.baseURL }

// Issuer is the iss of every token (base URL + IssuerPath); discovery is at
// Issuer (without a trailing slash) + "/.well-known/openid-configuration".
func (i *Issuer) Issuer() string { return i.issuer }

// JWKSURL is where the signing keys are published.
func (i *Issuer) JWKSURL() string { return i.baseURL + jwksPath }

// Authority is what a Key Vault challenge names as authorization="...": base URL + "/" + tenant.
// The Key Vault SDKs take the tenant from its first path segment.
func (i *Issuer) Authority() string { return i.baseURL + "/" + i.opts.TenantID }

// TenantID, PrincipalID and ClientID identify the tenant and the managed identity.
func (i *Issuer) TenantID() string    { return i.opts.TenantID }
func (i *Issuer) PrincipalID() string { return i.opts.PrincipalID }
func (i *Issuer) ClientID() string    { return i.opts.ClientID }

// KeyID is the kid of the signing key.
func (i *Issuer) KeyID() string { return i.opts.KeyID }

// CA is the CA behind the HTTPS certificate (nil for a plain-HTTP issuer).
func (i *Issuer) CA() *CA { return i.ca }

// HTTPClient is a client that can reach the issuer (trusting its CA when it serves HTTPS).
func (i *Issuer) HTTPClient() *http.Client {
	if i.ca != nil {
		return i.ca.Client()
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
}

// IdentityEndpoint is the managed-identity endpoint URL (IDENTITY_ENDPOINT).
func (i *Issuer) IdentityEndpoint() string { return i.baseURL + ManagedIdentityPath }

// IdentityHeader is the secret the managed-identity endpoint expects (IDENTITY_HEADER).
func (i *Issuer) IdentityHeader() string { return i.opts.IdentityHeader }

// ManagedIdentityEnv is the environment Azure App Service / Functions give a function with a managed
// identity, pointing at this issuer. Set it (t.Setenv) before creating a ManagedIdentityCredential.
func (i *Issuer) ManagedIdentityEnv() map[string]string {
	return map[string]string{"IDENTITY_ENDPOINT": i.IdentityEndpoint(), "IDENTITY_HEADER": i.opts.IdentityHeader}
}

// Handle mounts another handler (an Entra token endpoint, an STS fake) on the issuer's server.
func (i *Issuer) Handle(pattern string, h http.Handler) { i.mux.Handle(pattern, h) }

// Issued is the number of tokens minted so far (by Mint and by the managed-identity endpoint).
func (i *Issuer) Issued() int64 { return i.issued.Load() }

// Logs returns the request lines logged so far.
func (i *Issuer) Logs() string { return i.logs.String() }

// Mint signs a token with the issuer's key. Claims not given get defaults: iss (the issuer), iat and
// nbf (now), exp (now + TokenTTL). A claim given as nil is left out of the token.
func (i *Issuer) Mint(claims map[string]any) (string, error) {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": i.issuer,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(i.opts.TokenTTL).Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		if t, ok := v.(time.Time); ok {
			v = t.Unix()
		}
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = i.opts.KeyID
	s, err := tok.SignedString(i.key)
	if err != nil {
		return "", fmt.Errorf("oidc issuer: sign: %w", err)
	}
	i.issued.Add(1)
	i.mu.Lock()
	i.minted = append(i.minted, s)
	i.mu.Unlock()
	return s, nil
}

// MintedTokens returns every token signed so far (by Mint and the managed-identity endpoint), so that a
// test can check that none of them appears in logs or messages.
func (i *Issuer) MintedTokens() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.minted...)
}

// ManagedIdentityTokens is the number of tokens the managed-identity endpoint issued for resource.
func (i *Issuer) ManagedIdentityTokens(resource string) int64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.byRes[resource]
}

// ManagedIdentityClaims are the claims of a token the managed-identity endpoint issues for resource:
// aud = resource, sub = oid = PrincipalID, tid = TenantID, appid = azp = ClientID (Entra v1 shape).
func (i *Issuer) ManagedIdentityClaims(resource string) map[string]any {
	return map[string]any{
		"aud": resource, "sub": i.opts.PrincipalID, "oid": i.opts.PrincipalID, "tid": i.opts.TenantID,
		"appid": i.opts.ClientID, "azp": i.opts.ClientID, "idtyp": "app", "ver": "1.0",
	}
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                i.issuer,
		"jwks_uri":                              i.JWKSURL(),
		"response_types_supported":              []string{"id_token", "token"},
		"subject_types_supported":               []string{"public", "pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nbf", "oid", "tid", "appid", "azp"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(i.jwksDoc)
}

// serveManagedIdentity answers GET ?api-version=2019-08-01&resource=R with X-IDENTITY-HEADER, as the
// App Service / Functions identity endpoint does.
func (i *Issuer) serveManagedIdentity(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"statusCode": 405, "message": "Only GET is supported."})
		return
	}
	if got := r.Header.Get("X-IDENTITY-HEADER"); got == "" || got != i.opts.IdentityHeader {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"statusCode": 401,
			"message": "The X-IDENTITY-HEADER header is missing or does not match this instance's IDENTITY_HEADER."})
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != ManagedIdentityAPIVersion {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400,
			"message": fmt.Sprintf("api-version %q is not supported; use %s.", v, ManagedIdentityAPIVersion)})
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400, "message": "The resource parameter is required."})
		return
	}
	if id := q.Get("client_id"); id != "" && !strings.EqualFold(id, i.opts.ClientID) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400,
			"message": "No managed identity with the requested client_id is assigned to this app."})
		return
	}
	if id := q.Get("object_id"); id != "" && !strings.EqualFold(id, i.opts.PrincipalID) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400,
			"message": "No managed identity with the requested object_id is assigned to this app."})
		return
	}
	exp := time.Now().Add(i.opts.TokenTTL)
	claims := i.ManagedIdentityClaims(resource)
	claims["exp"] = exp.Unix()
	tok, err := i.Mint(claims)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"statusCode": 500, "message": "token signing failed"})
		return
	}
	i.mu.Lock()
	if i.byRes == nil {
		i.byRes = map[string]int64{}
	}
	i.byRes[resource]++
	i.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_on":   fmt.Sprint(exp.Unix()),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    i.opts.ClientID,
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// NewUUID returns a random (version 4) UUID string.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// LogBuffer is a concurrency-safe log sink for request lines.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Printf appends one line.
func (l *LogBuffer) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, "%s ", time.Now().UTC().Format("15:04:05.000"))
	fmt.Fprintf(&l.b, format, args...)
	l.b.WriteByte('\n')
}

// String returns everything logged so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// requestLog logs "METHOD PATH STATUS" per request: no query string, headers or bodies.
func requestLog(logs *LogBuffer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		logs.Printf("%s %s %d", r.Method, r.URL.EscapedPath(), sw.Status())
	})
}

// StatusWriter records the status code written through it.
type StatusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status.
func (s *StatusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (s *StatusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Status is the status written (0 if the handler wrote nothing, e.g. a hijacked connection).
func (s *StatusWriter) Status() int { return s.status }

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack passes through to the underlying writer, so that a fault layer behind this writer can still
// reset connections.
func (s *StatusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot be hijacked")
	}
	return h.Hijack()
}
