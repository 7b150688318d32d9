package idp

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyferry/keyferry/localtest/oidc"
)

// DefaultFICAudience is the audience Entra expects in federated assertions unless configured otherwise.
const DefaultFICAudience = "api://AzureADTokenExchange"

// OpEntraToken is the Entra token endpoint operation, as counted.
const OpEntraToken = "token"

// FederatedCredential is a federated identity credential on an app registration (or user-assigned
// managed identity): an assertion whose iss, sub and aud match exactly is accepted for ClientID.
type FederatedCredential struct {
	TenantID string
	ClientID string // the application (client) id
	Issuer   string
	Subject  string
	Audience string // default api://AzureADTokenExchange
}

// EntraConfig configures the Entra token endpoint fake.
type EntraConfig struct {
	Credentials []FederatedCredential
	// TokenIssuer mints the access tokens (aud = the scope's resource, tid, oid, appid). Required.
	TokenIssuer *oidc.Issuer
	// TLS is the CA for StartEntra's HTTPS certificate (MSAL insists on https authorities). Default:
	// TokenIssuer's CA when it serves HTTPS, otherwise a new CA.
	TLS *oidc.CA
	// HTTPClient fetches the assertion issuers' discovery documents and JWKS. Default: a plain client.
	HTTPClient *http.Client
	// TokenTTL is the access tokens' lifetime (expires_in). Default 3599s.
	TokenTTL time.Duration
	// Now replaces time.Now.
	Now func() time.Time
}

// Entra is a fake of the Microsoft Entra ID v2.0 token endpoint for client_credentials with a JWT
// client assertion (workload identity federation), plus the tenant's OpenID discovery document that
// MSAL reads first.
type Entra struct {
	server
	counters
	cfg   EntraConfig
	trust *trust
	apps  map[string]map[string]*entraApp // tenant → client id → app
	mux   *http.ServeMux
}

type entraApp struct {
	tenant, clientID, objectID string
	fics                       []FederatedCredential
}

// NewEntra builds the fake as a handler.
func NewEntra(cfg EntraConfig) (*Entra, error) {
	if cfg.TokenIssuer == nil {
		return nil, fmt.Errorf("idp: EntraConfig.TokenIssuer is required")
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 3599 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Entra{cfg: cfg, trust: newTrust(cfg.HTTPClient, cfg.Now), apps: map[string]map[string]*entraApp{}, mux: http.NewServeMux()}
	for _, f := range cfg.Credentials {
		if f.TenantID == "" || f.ClientID == "" || f.Issuer == "" || f.Subject == "" {
			return nil, fmt.Errorf("idp: federated credential %+v needs TenantID, ClientID, Issuer and Subject", f)
		}
		if f.Audience == "" {
			f.Audience = DefaultFICAudience
		}
		t := strings.ToLower(f.TenantID)
		if e.apps[t] == nil {
			e.apps[t] = map[string]*entraApp{}
		}
		c := strings.ToLower(f.ClientID)
		app := e.apps[t][c]
		if app == nil {
			app = &entraApp{tenant: f.TenantID, clientID: f.ClientID, objectID: oidc.NewUUID()}
			e.apps[t][c] = app
		}
		app.fics = append(app.fics, f)
	}
	e.mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.serveDiscovery)
	e.mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.serveToken)
	return e, nil
}

// StartEntra serves the fake over HTTPS on 127.0.0.1. Point azidentity at it with
// azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: e.URL + "/"},
// Transport: e.HTTPClient()} and DisableInstanceDiscovery: true.
func StartEntra(cfg EntraConfig) (*Entra, error) {
	e, err := NewEntra(cfg)
	if err != nil {
		return nil, err
	}
	ca := cfg.TLS
	if ca == nil {
		ca = cfg.TokenIssuer.CA()
	}
	if ca == nil {
		if ca, err = oidc.NewCA(); err != nil {
			return nil, err
		}
	}
	if err := e.serve(e, ca); err != nil {
		return nil, err
	}
	return e, nil
}

// ServicePrincipalID is the object id (oid/sub of issued tokens) of the app's service principal.
func (e *Entra) ServicePrincipalID(tenantID, clientID string) string {
	if app := e.apps[strings.ToLower(tenantID)][strings.ToLower(clientID)]; app != nil {
		return app.objectID
	}
	return ""
}

// ServeHTTP routes discovery and token requests.
func (e *Entra) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.mux.ServeHTTP(w, r) }

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (e *Entra) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if e.apps[strings.ToLower(tenant)] == nil {
		writeJSON(w, http.StatusBadRequest, e.errorBody(&entraError{code: "invalid_tenant", aadsts: 90002,
			msg: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)}))
		return
	}
	base := baseURL(r) + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"issuer":                                base + "/v2.0",
		"jwks_uri":                              e.cfg.TokenIssuer.JWKSURL(),
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "microsoftonline.com",
	})
}

type entraError struct {
	status int
	code   string // OAuth error
	aadsts int
	msg    string
}

func (e *Entra) errorBody(x *entraError) map[string]any {
	now := e.cfg.Now().UTC()
	trace, corr := oidc.NewUUID(), oidc.NewUUID()
	return map[string]any{
		"error": x.code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			x.aadsts, x.msg, trace, corr, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":    []int{x.aadsts},
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", x.aadsts),
	}
}

func (e *Entra) serveToken(w http.ResponseWriter, r *http.Request) {
	resp, iss, x := e.token(r)
	if x != nil {
		e.refuseFor(OpEntraToken, iss, fmt.Sprintf("AADSTS%d", x.aadsts))
		writeJSON(w, x.status, e.errorBody(x))
		return
	}
	e.acceptFor(OpEntraToken, iss)
	writeJSON(w, http.StatusOK, resp)
}

const jwtBearerAssertion = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func entraTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// token answers a token request; iss is the client assertion's issuer (for CountsFor), when it has one.
func (e *Entra) token(r *http.Request) (_ map[string]any, iss string, _ *entraError) {
	resp, x := e.exchange(r, &iss)
	return resp, iss, x
}

func (e *Entra) exchange(r *http.Request, assertionIssuer *string) (map[string]any, *entraError) {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return nil, &entraError{400, "invalid_request", 900144, fmt.Sprintf("The request body must be a URL-encoded form: %v", err)}
	}
	tenant := r.PathValue("tenant")
	apps := e.apps[strings.ToLower(tenant)]
	if apps == nil {
		return nil, &entraError{400, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)}
	}
	f := r.PostForm
	if g := f.Get("grant_type"); g != "client_credentials" {
		return nil, &entraError{400, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'. (fake Entra: only client_credentials)", g)}
	}
	clientID := f.Get("client_id")
	if clientID == "" {
		return nil, &entraError{400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."}
	}
	app := apps[strings.ToLower(clientID)]
	if app == nil {
		return nil, &entraError{400, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant)}
	}
	assertion := f.Get("client_assertion")
	if f.Get("client_assertion_type") != jwtBearerAssertion || assertion == "" {
		return nil, &entraError{401, "invalid_client", 7000218, fmt.Sprintf("The request body must contain the following parameter: 'client_assertion' or 'client_secret'. (fake Entra: client_assertion_type must be %s with a client_assertion)", jwtBearerAssertion)}
	}
	scope := f.Get("scope")
	if scope == "" {
		return nil, &entraError{400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."}
	}
	resource := ""
	for _, s := range strings.Fields(scope) {
		if r, ok := strings.CutSuffix(s, "/.default"); ok {
			resource = r
			break
		}
	}
	if resource == "" {
		return nil, &entraError{400, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)}
	}

	mc, err := peek(assertion)
	if err != nil {
		return nil, &entraError{401, "invalid_client", 50027, fmt.Sprintf("JWT token is invalid or malformed. (fake Entra: %v)", err)}
	}
	iss, sub, aud := claimString(mc, "iss"), claimString(mc, "sub"), claimAudience(mc)
	*assertionIssuer = iss
	var fic *FederatedCredential
	for i := range app.fics {
		c := &app.fics[i]
		if c.Issuer == iss && c.Subject == sub && slices.Contains(aud, c.Audience) {
			fic = c
			break
		}
	}
	if fic == nil {
		var want []string
		for _, c := range app.fics {
			want = append(want, fmt.Sprintf("issuer '%s' subject '%s' audience '%s'", c.Issuer, c.Subject, c.Audience))
		}
		return nil, &entraError{400, "invalid_request", 70021, fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation (fake Entra: the federated credentials of app %s are: %s)",
			iss, sub, strings.Join(aud, ","), clientID, strings.Join(want, "; "))}
	}
	if _, err := e.trust.verify(r.Context(), fic.Issuer, []string{fic.Audience}, assertion); err != nil {
		switch {
		case oidc.ReasonOf(err) == oidc.ReasonDiscovery:
			return nil, &entraError{401, "invalid_client", 50166, fmt.Sprintf("Request to External OIDC endpoint failed. (fake Entra: %s)", verifyDetail(err))}
		case isTimeReason(err):
			nbf, _ := mc.GetNotBefore()
			exp, _ := mc.GetExpirationTime()
			from, until := "(none)", "(none)"
			if nbf != nil {
				from = entraTime(nbf.Time)
			}
			if exp != nil {
				until = entraTime(exp.Time)
			}
			return nil, &entraError{401, "invalid_client", 700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials . (fake Entra: %s)",
				entraTime(e.cfg.Now()), from, until, verifyDetail(err))}
		default:
			reason := "Key was found, but use of the key to verify the signature failed."
			if oidc.ReasonOf(err) == oidc.ReasonUnknownKey {
				reason = "The key was not found."
			}
			return nil, &entraError{401, "invalid_client", 700027, fmt.Sprintf("Client assertion contains an invalid signature. [Reason - %s] (fake Entra: %s)", reason, verifyDetail(err))}
		}
	}

	now := e.cfg.Now()
	exp := now.Add(e.cfg.TokenTTL)
	tok, err := e.cfg.TokenIssuer.Mint(map[string]any{
		"aud": resource, "tid": app.tenant, "oid": app.objectID, "sub": app.objectID,
		"appid": app.clientID, "azp": app.clientID, "appidacr": "2", "idtyp": "app", "ver": "1.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
	})
	if err != nil {
		return nil, &entraError{500, "server_error", 50000, "There was an error issuing a token: " + err.Error()}
	}
	secs := int(e.cfg.TokenTTL / time.Second)
	return map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok}, nil
}
