// Package azkv is an in-repo Azure Key Vault data-plane emulator for tests, built so that the official
// SDK (azsecrets) cannot tell it from the service: HTTPS on 127.0.0.1 with a generated CA, a required
// api-version, the 401 bearer challenge on an unauthenticated first request, bearer tokens validated
// for real (signature against the issuer's JWKS, issuer, audience https://vault.azure.net, lifetime),
// and the secrets API with the service's status codes, error codes and messages, 1-127 character
// case-insensitive names, the 25,600-character value limit, 15 tags, maxresults/nextLink paging,
// versions listed in version-id order, and soft delete with asynchronous delete, recover and purge.
//
// Every request passes through the fault layer (fault.Handler with fault.AzureKeyVault) so tests can
// apply quotas, inject throttling and read per-API call counters. The emulator logs one line per
// request (method, path, status) to a buffer (Logs); it never logs bodies, values, tokens or queries.
//
// The object model (objects.go) is generic over the object kind, and certificates and keys sit beside
// secrets with the same versions, paging and soft-delete lifecycle, so azcertificates and azkeys work
// against the emulator too: keys (keys.go) are EC and RSA keys created in the vault, read back as public
// JWKs and used to sign and verify, their private halves never leaving it; certificates
// (certificates.go) are imported from PKCS#12 or PEM, each version backed, as in the service, by a
// managed secret holding the private key and a managed key of the same name and version.
//
// Messages marked "verified" in the source were checked against recorded service responses; the others
// follow the service's shape with wording of our own.
package azkv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// Resource is the audience Key Vault tokens must carry and the resource its challenge names.
const Resource = "https://vault.azure.net"

// Options configure a Server.
type Options struct {
	// Faults is the fault/quota layer in front of the vault. Nil: a layer with no rules (counting only).
	Faults *fault.Layer

	// Issuer is the local identity provider whose tokens the vault accepts. The vault verifies tokens
	// against it (Verifier, when nil, is built from it) and names it in its challenge (Authority).
	Issuer *oidc.Issuer
	// Verifier overrides the token verifier (e.g. to accept another issuer or audience).
	Verifier *oidc.Verifier
	// Authority is the challenge's authorization="..." URL; its first path segment is the tenant.
	// Default: Issuer.Authority().
	Authority string

	// CA issues the server certificate. Nil: a new CA.
	CA *oidc.CA

	// TransitionDelay is how long delete, recover and purge take to complete (the service takes
	// seconds; until then reads answer 404 and writes 409). 0 completes them at once.
	TransitionDelay time.Duration
	// RecoverableDays is the soft-delete retention, 7-90 (default 90).
	RecoverableDays int
	// PurgeProtection refuses purges (403), as a vault with purge protection does.
	PurgeProtection bool

	// Events, if set, receives the Event Grid events the vault's system topic would publish
	// (Microsoft.KeyVault.SecretNewVersionCreated, in the Event Grid schema), one call per event, on its
	// own goroutine. Like the real service, deletions publish nothing.
	Events func(event []byte)
	// VaultName names the vault in events (default "local").
	VaultName string

	// Authorize, if set, decides whether the caller may perform the RBAC data action (e.g.
	// ActionGetSecret); a refusal is the service's 403 ForbiddenByRbac. Nil allows every valid token.
	Authorize func(p Principal, action string) bool
}

// Principal is the caller a valid token identifies.
type Principal struct {
	ObjectID, TenantID, AppID, Issuer string
}

// RBAC data actions the emulator checks with Options.Authorize (listing and reading deleted secrets
// is readMetadata).
const (
	ActionGetSecret     = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
	ActionSetSecret     = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
	ActionReadMetadata  = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
	ActionUpdateSecret  = "Microsoft.KeyVault/vaults/secrets/update/action"
	ActionDeleteSecret  = "Microsoft.KeyVault/vaults/secrets/delete"
	ActionRecoverSecret = "Microsoft.KeyVault/vaults/secrets/recover/action"
	ActionPurgeSecret   = "Microsoft.KeyVault/vaults/secrets/purge/action"
)

// RBAC data actions of the certificates and keys APIs (reading covers listing and deleted objects).
const (
	ActionReadCertificate    = "Microsoft.KeyVault/vaults/certificates/read"
	ActionImportCertificate  = "Microsoft.KeyVault/vaults/certificates/import/action"
	ActionUpdateCertificate  = "Microsoft.KeyVault/vaults/certificates/update/action"
	ActionDeleteCertificate  = "Microsoft.KeyVault/vaults/certificates/delete"
	ActionRecoverCertificate = "Microsoft.KeyVault/vaults/certificates/recover/action"
	ActionPurgeCertificate   = "Microsoft.KeyVault/vaults/certificates/purge/action"

	ActionReadKey    = "Microsoft.KeyVault/vaults/keys/read"
	ActionCreateKey  = "Microsoft.KeyVault/vaults/keys/create/action"
	ActionUpdateKey  = "Microsoft.KeyVault/vaults/keys/update/action"
	ActionDeleteKey  = "Microsoft.KeyVault/vaults/keys/delete"
	ActionRecoverKey = "Microsoft.KeyVault/vaults/keys/recover/action"
	ActionPurgeKey   = "Microsoft.KeyVault/vaults/keys/purge/action"
	ActionSignKey    = "Microsoft.KeyVault/vaults/keys/sign/action"
	ActionVerifyKey  = "Microsoft.KeyVault/vaults/keys/verify/action"
)

// MaxSecretValueChars is the service's secret value limit, in characters (UTF-16 code units). Beyond it
// the service answers 400 BadParameter "Secret is beyond the maximum permitted length of 25600
// characters." with inner error SecretTooLarge.
const MaxSecretValueChars = 25600

const (
	maxRequestBodyBytes    = 1 << 20
	maxTags                = 15
	maxTagLen              = 512
	maxContentTypeLen      = 255
	defaultPageSize        = 25
	maxPageSize            = 25
	defaultRecoverableDays = 90
)

// Server is a running emulator.
type Server struct {
	opts      Options
	faults    *fault.Layer
	verifier  *oidc.Verifier
	authority string
	ca        *oidc.CA
	lis       net.Listener
	srv       *http.Server
	baseURL   string
	logs      *oidc.LogBuffer

	mu       sync.Mutex
	secrets  *collection[secretPayload]
	kinds    *kindStore // keys and certificates
	statuses map[int]int64
}

// Start serves a new, empty vault over HTTPS on a free 127.0.0.1 port.
func Start(opts Options) (*Server, error) {
	s := &Server{opts: opts, faults: opts.Faults, verifier: opts.Verifier, authority: opts.Authority, ca: opts.CA,
		logs: &oidc.LogBuffer{}, secrets: newCollection[secretPayload](),
		kinds: &kindStore{keys: newCollection[keyPayload](), certs: newCollection[certPayload]()}, statuses: map[int]int64{}}
	if s.faults == nil {
		s.faults = fault.New(1, 1)
	}
	if s.verifier == nil {
		if opts.Issuer == nil {
			return nil, errors.New("azkv: Options.Issuer or Options.Verifier is required")
		}
		s.verifier = oidc.NewVerifier(opts.Issuer.Issuer(), []string{Resource}, oidc.WithHTTPClient(opts.Issuer.HTTPClient()))
	}
	if s.authority == "" {
		if opts.Issuer == nil {
			return nil, errors.New("azkv: Options.Authority is required without Options.Issuer")
		}
		s.authority = opts.Issuer.Authority()
	}
	if s.opts.RecoverableDays == 0 {
		s.opts.RecoverableDays = defaultRecoverableDays
	}
	if s.opts.RecoverableDays < 7 || s.opts.RecoverableDays > 90 {
		return nil, fmt.Errorf("azkv: RecoverableDays %d is outside 7-90", s.opts.RecoverableDays)
	}
	var err error
	if s.ca == nil {
		if s.ca, err = oidc.NewCA(); err != nil {
			return nil, err
		}
	}
	tlsCfg, err := s.ca.ServerTLSConfig()
	if err != nil {
		return nil, err
	}
	if s.lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("azkv: listen: %w", err)
	}
	s.baseURL = "https://" + s.lis.Addr().String()
	s.srv = &http.Server{Handler: s.Handler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: nil}
	go func() {
		if err := s.srv.ServeTLS(s.lis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logs.Printf("serve: %v", err)
		}
	}()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// URL is the vault URL (https://127.0.0.1:PORT), what a client is given as vaultURL.
func (s *Server) URL() string { return s.baseURL }

// CA is the CA that issued the server certificate.
func (s *Server) CA() *oidc.CA { return s.ca }

// CACertPEM is the CA certificate in PEM form.
func (s *Server) CACertPEM() []byte { return s.ca.CertPEM() }

// HTTPClient is an HTTP client trusting the server's CA; azsecrets takes it as ClientOptions.Transport.
func (s *Server) HTTPClient() *http.Client { return s.ca.Client() }

// Faults is the fault layer in front of the vault (rules, counters).
func (s *Server) Faults() *fault.Layer { return s.faults }

// Authority is the URL the challenge names.
func (s *Server) Authority() string { return s.authority }

// Logs returns the request lines logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// StatusCount is how many responses with this HTTP status the vault (including the fault layer) sent.
func (s *Server) StatusCount(code int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statuses[code]
}

// Handler is the emulator's whole handler chain: request log → fault layer → auth → API.
func (s *Server) Handler() http.Handler {
	api := s.authenticate(http.HandlerFunc(s.route))
	faulted := s.faults.Handler(fault.AzureKeyVault, api)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &oidc.StatusWriter{ResponseWriter: w}
		faulted.ServeHTTP(sw, r)
		st := sw.Status()
		s.mu.Lock()
		s.statuses[st]++
		s.mu.Unlock()
		status := fmt.Sprint(st)
		if st == 0 {
			status = "reset"
		}
		s.logs.Printf("%s %s %s %s", r.Method, r.URL.EscapedPath(), status, time.Since(start).Round(time.Microsecond))
	})
}

// kvError is the service's error body: {"error":{"code":...,"message":...,"innererror":{"code":...}}}.
type kvError struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	InnerError *innerError `json:"innererror,omitempty"`
}

type innerError struct {
	Code string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("x-ms-keyvault-service-version", "keyferry-localtest")
	w.WriteHeader(status)
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

func writeError(w http.ResponseWriter, status int, code, inner, format string, args ...any) {
	e := kvError{Code: code, Message: fmt.Sprintf(format, args...)}
	if inner != "" {
		e.InnerError = &innerError{Code: inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// apiVersionPattern accepts the service's version forms: 7.4, 7.6-preview.2, 2025-07-01, 2026-04-01-preview.
var apiVersionPattern = regexp.MustCompile(`^(\d+\.\d+|\d{4}-\d{2}-\d{2})(-preview(\.\d+)?)?$`)

// authenticate answers requests without a valid bearer token with 401 and the challenge, as the
// service does: the SDK's first request carries no token (and no body), reads the challenge, gets a
// token for the resource it names from the authority it names, and sends the request again.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		challenge := func(msg string, args ...any) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s", resource="%s"`, s.authority, Resource))
			writeError(w, http.StatusUnauthorized, "Unauthorized", "", msg, args...)
		}
		auth := r.Header.Get("Authorization")
		scheme, token, _ := strings.Cut(auth, " ")
		if auth == "" || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			// verified (recorded service response)
			challenge("AKV10000: Request is missing a Bearer or PoP token.")
			return
		}
		claims, err := s.verifier.Verify(r.Context(), strings.TrimSpace(token))
		if err != nil {
			var ve *oidc.VerifyError
			errors.As(err, &ve)
			switch oidc.ReasonOf(err) {
			case oidc.ReasonAudience: // verified
				challenge("AKV10022: Invalid audience. Expected %s, found: %s.", Resource, ve.Found)
			case oidc.ReasonIssuer: // verified
				challenge("AKV10032: Invalid issuer. Expected one of %s, found %s.", s.verifier.Issuer(), ve.Found)
			case oidc.ReasonUnknownKey: // verified
				challenge("AKV10046: Unable to resolve the key used for signature validation.")
			case oidc.ReasonNotYetValid: // verified wording, no AKV code recorded
				challenge("Token not yet valid.")
			case oidc.ReasonExpired:
				challenge("Invalid token: the token is expired.")
			case oidc.ReasonSignature:
				challenge("Invalid token: the token signature is invalid.")
			case oidc.ReasonAlgorithm:
				challenge("Invalid token: the token signing algorithm is not supported.")
			case oidc.ReasonDiscovery:
				challenge("Invalid token: the signing keys of the token's issuer could not be retrieved.")
			default:
				challenge("Invalid token: the bearer token is malformed.")
			}
			return
		}
		v := r.URL.Query().Get("api-version")
		if v == "" {
			writeError(w, http.StatusBadRequest, "BadParameter", "", "The 'api-version' query parameter is required.")
			return
		}
		if !apiVersionPattern.MatchString(v) {
			writeError(w, http.StatusBadRequest, "BadParameter", "", "The specified version (%s) is not recognized.", v)
			return
		}
		p := Principal{ObjectID: claims.ObjectID, TenantID: claims.TenantID, AppID: claims.AppID, Issuer: claims.Issuer}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// authorize applies Options.Authorize; it writes the service's RBAC 403 and returns false on refusal.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, action string) bool {
	if s.opts.Authorize == nil {
		return true
	}
	p := principalFrom(r.Context())
	if s.opts.Authorize(p, action) {
		return true
	}
	writeError(w, http.StatusForbidden, "Forbidden", "ForbiddenByRbac",
		"Caller is not authorized to perform action on resource.\r\n"+
			"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n"+
			"Caller: appid=%s;oid=%s;iss=%s\r\nAction: '%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\n"+
			"DenyAssignmentId: null\r\nDecisionReason: null \r\nVault: %s;location=local\r\n",
		p.AppID, p.ObjectID, p.Issuer, action, strings.ToLower(s.baseURL+r.URL.EscapedPath()), s.lis.Addr().String())
	return false
}

// route dispatches the data-plane API.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBodyBytes)
	raw := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	seg := make([]string, len(raw))
	for i, p := range raw {
		u, err := unescape(p)
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadParameter", "", "The request URI is invalid.")
			return
		}
		seg[i] = u
	}
	switch strings.ToLower(seg[0]) {
	case "secrets":
		if s.managedSecretRequest(w, r, seg[1:]) { // a certificate's secret (certificates.go)
			return
		}
		s.routeSecrets(w, r, seg[1:])
	case "deletedsecrets":
		s.routeDeletedSecrets(w, r, seg[1:])
	case "certificates":
		s.routeCertificates(w, r, seg[1:])
	case "deletedcertificates":
		s.routeDeletedCertificates(w, r, seg[1:])
	case "keys":
		s.routeKeys(w, r, seg[1:])
	case "deletedkeys":
		s.routeDeletedKeys(w, r, seg[1:])
	default:
		writeError(w, http.StatusNotImplemented, "NotImplemented", "",
			"The local Key Vault emulator does not implement %s /%s.", r.Method, seg[0])
	}
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "",
		"The requested resource does not support http method '%s'.", r.Method)
}
