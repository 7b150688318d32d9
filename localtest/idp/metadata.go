package idp

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keyferry/keyferry/localtest/oidc"
)

// Metadata server operations, as counted.
const (
	OpMetadataIdentity = "identity"
	OpMetadataToken    = "token"
	OpMetadataRead     = "read"
)

// MetadataConfig configures the GCE / Cloud Run / Cloud Functions metadata server fake.
type MetadataConfig struct {
	// Issuer signs the ID tokens. Real tokens carry iss https://accounts.google.com; these carry
	// Issuer.Issuer(), so relying parties can fetch its keys. Required.
	Issuer *oidc.Issuer
	// ServiceAccountEmail is the runtime ("default") service account. Default:
	// <project>-compute@developer.gserviceaccount.com style name in ProjectID.
	ServiceAccountEmail string
	// ServiceAccountUniqueID is the SA's numeric unique id: sub and azp of ID tokens. Default: random.
	ServiceAccountUniqueID string
	ProjectID              string // default "keyferry-test"
	ProjectNumber          string // default random 12 digits
	// Scopes of the access tokens from /token. Default cloud-platform.
	Scopes []string
	// Zone and InstanceID, if set, go into format=full tokens as google.compute_engine (GCE VMs only).
	Zone, InstanceID string
	// TokenTTL is the lifetime of ID and access tokens. Default one hour.
	TokenTTL time.Duration
	Now      func() time.Time
}

// Metadata fakes the metadata server endpoints a function uses for its identity:
// /computeMetadata/v1/instance/service-accounts/{default|<email>}/{identity,token,email,scopes},
// /computeMetadata/v1/project/{project-id,numeric-project-id}. Serve it over plain HTTP and set
// GCE_METADATA_HOST=<host:port> (StartMetadata's Host).
type Metadata struct {
	server
	counters
	cfg    MetadataConfig
	mu     sync.Mutex
	tokens map[string]time.Time
}

// NewMetadata builds the fake as a handler.
func NewMetadata(cfg MetadataConfig) (*Metadata, error) {
	if cfg.Issuer == nil {
		return nil, fmt.Errorf("idp: MetadataConfig.Issuer is required")
	}
	if cfg.ProjectID == "" {
		cfg.ProjectID = "keyferry-test"
	}
	if cfg.ProjectNumber == "" {
		cfg.ProjectNumber = "1" + randString(digits, 11)
	}
	if cfg.ServiceAccountEmail == "" {
		cfg.ServiceAccountEmail = cfg.ProjectNumber + "-compute@developer.gserviceaccount.com"
	}
	if cfg.ServiceAccountUniqueID == "" {
		cfg.ServiceAccountUniqueID = numericID()
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"https://www.googleapis.com/auth/cloud-platform"}
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Metadata{cfg: cfg, tokens: map[string]time.Time{}}, nil
}

// StartMetadata serves the fake over plain HTTP on 127.0.0.1 (the metadata server is plain HTTP).
func StartMetadata(cfg MetadataConfig) (*Metadata, error) {
	m, err := NewMetadata(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.serve(m, nil); err != nil {
		return nil, err
	}
	return m, nil
}

// Host is the value for GCE_METADATA_HOST (127.0.0.1:PORT).
func (m *Metadata) Host() string { return strings.TrimPrefix(m.URL, "http://") }

// ServiceAccountEmail and ServiceAccountUniqueID identify the runtime service account.
func (m *Metadata) ServiceAccountEmail() string    { return m.cfg.ServiceAccountEmail }
func (m *Metadata) ServiceAccountUniqueID() string { return m.cfg.ServiceAccountUniqueID }

// ValidAccessToken reports whether token is an unexpired access token from /token.
func (m *Metadata) ValidAccessToken(token string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.tokens[token]
	return ok && m.cfg.Now().Before(exp)
}

// IssuedSecrets are the access tokens /token issued (the ID tokens are listed by the issuer).
func (m *Metadata) IssuedSecrets() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.tokens))
	for t := range m.tokens {
		out = append(out, t)
	}
	return out
}

func (m *Metadata) text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Metadata-Flavor", "Google")
	w.Header().Set("Content-Type", "application/text")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// ServeHTTP answers metadata requests.
func (m *Metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/computeMetadata/v1/"
	op := OpMetadataRead
	rest, isMeta := strings.CutPrefix(r.URL.Path, prefix)
	if isMeta && strings.HasPrefix(rest, "instance/service-accounts/") {
		switch {
		case strings.HasSuffix(rest, "/identity"):
			op = OpMetadataIdentity
		case strings.HasSuffix(rest, "/token"):
			op = OpMetadataToken
		}
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		m.refuse(op, "403")
		m.text(w, http.StatusForbidden, "Request denied: the metadata server does not accept requests with X-Forwarded-For.\n")
		return
	}
	if r.Header.Get("Metadata-Flavor") != "Google" {
		m.refuse(op, "403")
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, "<p>Your client does not have permission to get URL <code>%s</code> from this server. Missing Metadata-Flavor:Google header.</p>\n", r.URL.Path)
		return
	}
	if r.Method != http.MethodGet {
		m.refuse(op, "405")
		m.text(w, http.StatusMethodNotAllowed, "Method not allowed.\n")
		return
	}
	if r.URL.Path == "/" {
		m.text(w, http.StatusOK, "computeMetadata/\n")
		return
	}
	if !isMeta {
		m.text(w, http.StatusNotFound, "Not Found\n")
		return
	}
	switch rest {
	case "project/project-id":
		m.text(w, http.StatusOK, m.cfg.ProjectID)
		return
	case "project/numeric-project-id":
		m.text(w, http.StatusOK, m.cfg.ProjectNumber)
		return
	case "instance/zone":
		if m.cfg.Zone != "" {
			m.text(w, http.StatusOK, "projects/"+m.cfg.ProjectNumber+"/zones/"+m.cfg.Zone)
			return
		}
	case "instance/id":
		if m.cfg.InstanceID != "" {
			m.text(w, http.StatusOK, m.cfg.InstanceID)
			return
		}
	}
	saPath, isSA := strings.CutPrefix(rest, "instance/service-accounts/")
	if !isSA {
		m.text(w, http.StatusNotFound, "Not Found\n")
		return
	}
	account, leaf, _ := strings.Cut(saPath, "/")
	if account != "default" && !strings.EqualFold(account, m.cfg.ServiceAccountEmail) {
		m.refuse(op, "404")
		m.text(w, http.StatusNotFound, fmt.Sprintf("Service account %s is not attached to this instance (only %s).\n", account, m.cfg.ServiceAccountEmail))
		return
	}
	switch leaf {
	case "email":
		m.text(w, http.StatusOK, m.cfg.ServiceAccountEmail)
	case "aliases":
		m.text(w, http.StatusOK, "default\n")
	case "scopes":
		m.text(w, http.StatusOK, strings.Join(m.cfg.Scopes, "\n")+"\n")
	case "identity":
		m.identity(w, r)
	case "token":
		m.token(w, r)
	default:
		m.text(w, http.StatusNotFound, "Not Found\n")
	}
}

func (m *Metadata) identity(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	aud := q.Get("audience")
	if aud == "" {
		m.refuse(OpMetadataIdentity, "400")
		m.text(w, http.StatusBadRequest, "non-empty audience parameter required\n")
		return
	}
	format := q.Get("format")
	if format != "" && format != "standard" && format != "full" {
		m.refuse(OpMetadataIdentity, "400")
		m.text(w, http.StatusBadRequest, "format must be one of standard or full\n")
		return
	}
	now := m.cfg.Now()
	claims := map[string]any{
		"aud": aud, "azp": m.cfg.ServiceAccountUniqueID, "sub": m.cfg.ServiceAccountUniqueID,
		"iat": now.Unix(), "nbf": nil, "exp": now.Add(m.cfg.TokenTTL).Unix(),
	}
	if format == "full" {
		claims["email"] = m.cfg.ServiceAccountEmail
		claims["email_verified"] = true
		if m.cfg.Zone != "" || m.cfg.InstanceID != "" {
			claims["google"] = map[string]any{"compute_engine": map[string]any{
				"project_id": m.cfg.ProjectID, "project_number": m.cfg.ProjectNumber,
				"zone": m.cfg.Zone, "instance_id": m.cfg.InstanceID,
			}}
		}
	}
	tok, err := m.cfg.Issuer.Mint(claims)
	if err != nil {
		m.refuseFor(OpMetadataIdentity, aud, "500")
		m.text(w, http.StatusInternalServerError, "could not sign the identity token\n")
		return
	}
	m.acceptFor(OpMetadataIdentity, aud)
	m.text(w, http.StatusOK, tok)
}

func (m *Metadata) token(w http.ResponseWriter, _ *http.Request) {
	tok := "ya29.c.md-" + randString(urlChars, 120)
	m.mu.Lock()
	m.tokens[tok] = m.cfg.Now().Add(m.cfg.TokenTTL)
	m.mu.Unlock()
	m.accept(OpMetadataToken)
	w.Header().Set("Metadata-Flavor", "Google")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": int(m.cfg.TokenTTL / time.Second), "token_type": "Bearer"})
}
