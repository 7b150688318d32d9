package idp

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyferry/keyferry/localtest/oidc"
)

// Token types and grant of the Google STS token exchange.
const (
	TokenExchangeGrant   = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAWS4Request = "urn:ietf:params:aws:token-type:aws4_request"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// Google STS / IAM Credentials operations, as counted.
const (
	OpGoogleSTSToken       = "token"
	OpGenerateAccessToken  = "generateAccessToken"
	googleIAMPrincipalHost = "iam.googleapis.com"
)

// WIFAssertion is what a workload identity provider's attribute condition sees: the verified token.
type WIFAssertion struct {
	// Subject is google.subject: the sub claim (OIDC) or the caller ARN (AWS).
	Subject string
	// Claims are the verified JWT claims (OIDC providers).
	Claims map[string]any
	// ARN, Account and UserID come from GetCallerIdentity (AWS providers).
	ARN, Account, UserID string
	// Attributes are the mapped attribute.NAME values (NAME without the "attribute." prefix).
	Attributes map[string]string
}

// WorkloadIdentityProvider is a provider in a workload identity pool: OIDC (Issuer set) or AWS
// (AWSAccountID set).
type WorkloadIdentityProvider struct {
	// Audience is the provider's full resource name, the STS audience parameter:
	// //iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>
	Audience string

	// Issuer is the OIDC issuer URL (exactly the tokens' iss).
	Issuer string
	// AllowedAudiences are the JWT aud values accepted. Default: "https:" + Audience, as Google's default.
	AllowedAudiences []string

	// AWSAccountID is the AWS account whose callers are accepted.
	AWSAccountID string
	// AWSVerifyURL is where the signed GetCallerIdentity request in the subject token is replayed (the
	// AWSSTS fake's URL), as Google replays it to AWS. The fake STS verifies the SigV4 signature.
	AWSVerifyURL string
	// AWSCallerARN, used when AWSVerifyURL is empty, maps the access key id to the caller ARN WITHOUT
	// any signature check (only the request's shape is validated).
	AWSCallerARN func(accessKeyID string) (arn string, ok bool)

	// Subject, if set, is a condition on google.subject: exact, or StringLike when it holds * or ?.
	Subject string
	// AttributeCondition, if set, stands in for the CEL attribute condition: false rejects.
	AttributeCondition func(WIFAssertion) bool
	// Attributes, if set, adds attribute mappings (NAME → value). AWS providers always get aws_role
	// (arn:aws:sts::<acct>:assumed-role/<role>), as gcloud's default mapping.
	Attributes func(WIFAssertion) map[string]string

	pool, project string
}

// GoogleServiceAccount is a service account and the principals allowed to impersonate it
// (roles/iam.workloadIdentityUser or roles/iam.serviceAccountTokenCreator members).
type GoogleServiceAccount struct {
	Email    string
	UniqueID string // numeric; default random
	// Members: principal://iam.googleapis.com/<pool>/subject/<subject>,
	// principalSet://iam.googleapis.com/<pool>/*, or principalSet://iam.googleapis.com/<pool>/attribute.<name>/<value>.
	Members []string
}

// GoogleSTSConfig configures the Google STS + IAM Credentials fake.
type GoogleSTSConfig struct {
	Providers       []WorkloadIdentityProvider
	ServiceAccounts []GoogleServiceAccount
	// HTTPClient fetches OIDC discovery/JWKS and replays AWS requests. Default: a plain client.
	HTTPClient *http.Client
	// TLS, if set, makes StartGoogleSTS serve HTTPS with a certificate from this CA.
	TLS *oidc.CA
	// TokenTTL is the federated token lifetime (expires_in). Default one hour.
	TokenTTL time.Duration
	Now      func() time.Time
}

// GoogleToken describes an access token the fake issued.
type GoogleToken struct {
	// Principal is the federated principal (principal://…) for STS tokens; for impersonated tokens the
	// principal that impersonated.
	Principal string
	// ServiceAccount is set for tokens from generateAccessToken.
	ServiceAccount string
	Attributes     map[string]string
	Scopes         []string
	Expires        time.Time
}

// GoogleSTS fakes sts.googleapis.com (POST /v1/token) and iamcredentials.googleapis.com
// (POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken) on one handler.
type GoogleSTS struct {
	server
	counters
	cfg       GoogleSTSConfig
	trust     *trust
	client    *http.Client
	providers map[string]*WorkloadIdentityProvider
	sas       []GoogleServiceAccount
	mu        sync.Mutex
	tokens    map[string]*GoogleToken
}

var providerRE = regexp.MustCompile(`^//iam\.googleapis\.com/(projects/(\d+)/locations/global/workloadIdentityPools/([a-z0-9-]+))/providers/([a-z0-9-]+)$`)

// NewGoogleSTS builds the fake as a handler.
func NewGoogleSTS(cfg GoogleSTSConfig) (*GoogleSTS, error) {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.HTTPClient
	if client == nil {
		client = plainClient()
	}
	g := &GoogleSTS{cfg: cfg, trust: newTrust(client, cfg.Now), client: client,
		providers: map[string]*WorkloadIdentityProvider{}, tokens: map[string]*GoogleToken{}}
	for _, p := range cfg.Providers {
		m := providerRE.FindStringSubmatch(p.Audience)
		if m == nil {
			return nil, fmt.Errorf("idp: provider audience %q is not //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X", p.Audience)
		}
		if (p.Issuer == "") == (p.AWSAccountID == "") {
			return nil, fmt.Errorf("idp: provider %s needs exactly one of Issuer (OIDC) and AWSAccountID (AWS)", p.Audience)
		}
		if p.Issuer != "" && len(p.AllowedAudiences) == 0 {
			p.AllowedAudiences = []string{"https:" + p.Audience}
		}
		p.pool, p.project = m[1], m[2]
		g.providers[p.Audience] = &p
	}
	for _, sa := range cfg.ServiceAccounts {
		if sa.UniqueID == "" {
			sa.UniqueID = numericID()
		}
		g.sas = append(g.sas, sa)
	}
	return g, nil
}

// StartGoogleSTS serves the fake on 127.0.0.1.
func StartGoogleSTS(cfg GoogleSTSConfig) (*GoogleSTS, error) {
	g, err := NewGoogleSTS(cfg)
	if err != nil {
		return nil, err
	}
	if err := g.serve(g, cfg.TLS); err != nil {
		return nil, err
	}
	return g, nil
}

// TokenURL is the STS token endpoint (externalaccount's TokenURL / token_url).
func (g *GoogleSTS) TokenURL() string { return g.URL + "/v1/token" }

// ImpersonationURL is the generateAccessToken URL for email (ServiceAccountImpersonationURL).
func (g *GoogleSTS) ImpersonationURL(email string) string {
	return g.URL + "/v1/projects/-/serviceAccounts/" + email + ":generateAccessToken"
}

// LookupAccessToken describes a token this fake issued (for fakes of the APIs that accept them).
func (g *GoogleSTS) LookupAccessToken(token string) (GoogleToken, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.tokens[token]
	if t == nil || !g.cfg.Now().Before(t.Expires) {
		return GoogleToken{}, false
	}
	return *t, true
}

// ServeHTTP routes the two APIs.
func (g *GoogleSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/token" && r.Method == http.MethodPost:
		g.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/v1/projects/") && strings.HasSuffix(r.URL.Path, ":generateAccessToken") && r.Method == http.MethodPost:
		g.serveGenerateAccessToken(w, r)
	default:
		writeJSON(w, http.StatusNotFound, googleError(http.StatusNotFound, "NOT_FOUND",
			fmt.Sprintf("%s %s is not served by this fake (POST /v1/token, POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken)", r.Method, r.URL.Path)))
	}
}

type oauthError struct{ code, desc string }

func (g *GoogleSTS) serveToken(w http.ResponseWriter, r *http.Request) {
	resp, e := g.exchange(r)
	provider := strings.TrimPrefix(r.PostForm.Get("audience"), "https:")
	if e != nil {
		g.refuseFor(OpGoogleSTSToken, provider, e.code)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": e.code, "error_description": e.desc})
		return
	}
	g.acceptFor(OpGoogleSTSToken, provider)
	writeJSON(w, http.StatusOK, resp)
}

// IssuedSecrets are the access tokens this fake issued (federated and impersonated).
func (g *GoogleSTS) IssuedSecrets() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.tokens))
	for t := range g.tokens {
		out = append(out, t)
	}
	return out
}

func invalid(code, format string, args ...any) *oauthError {
	return &oauthError{code: code, desc: fmt.Sprintf(format, args...)}
}

func (g *GoogleSTS) exchange(r *http.Request) (map[string]any, *oauthError) {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return nil, invalid("invalid_request", "The request body must be a URL-encoded form: %v", err)
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt != TokenExchangeGrant {
		return nil, invalid("unsupported_grant_type", "Invalid value for \"grant_type\": %q. (fake: expected %s)", gt, TokenExchangeGrant)
	}
	audience := strings.TrimPrefix(f.Get("audience"), "https:")
	if !providerRE.MatchString(audience) {
		return nil, invalid("invalid_request", "Invalid value for \"audience\". This value should be the full resource name of the Identity Provider. (fake: got %q)", f.Get("audience"))
	}
	p := g.providers[audience]
	if p == nil {
		return nil, invalid("invalid_target", "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist. (fake: no provider %s)", audience)
	}
	if rt := f.Get("requested_token_type"); rt != TokenTypeAccessToken {
		return nil, invalid("invalid_request", "Invalid value for \"requested_token_type\": %q. (fake: expected %s)", rt, TokenTypeAccessToken)
	}
	subjectToken, stt := f.Get("subject_token"), f.Get("subject_token_type")
	if subjectToken == "" {
		return nil, invalid("invalid_request", "Missing required parameter: \"subject_token\".")
	}
	var a *WIFAssertion
	var e *oauthError
	switch {
	case p.Issuer != "" && (stt == TokenTypeJWT || stt == TokenTypeIDToken):
		a, e = g.oidcAssertion(r.Context(), p, subjectToken)
	case p.AWSAccountID != "" && stt == TokenTypeAWS4Request:
		a, e = g.awsAssertion(r.Context(), p, audience, subjectToken)
	default:
		want := TokenTypeJWT + " or " + TokenTypeIDToken
		if p.AWSAccountID != "" {
			want = TokenTypeAWS4Request
		}
		return nil, invalid("invalid_request", "Invalid value for \"subject_token_type\": %q. (fake: provider %s expects %s)", stt, audience, want)
	}
	if e != nil {
		return nil, e
	}
	if a.Attributes == nil {
		a.Attributes = map[string]string{}
	}
	if p.Attributes != nil {
		for k, v := range p.Attributes(*a) {
			a.Attributes[k] = v
		}
	}
	if p.Subject != "" && !matchSubject(p.Subject, a.Subject) {
		return nil, invalid("unauthorized_client", "The given credential is rejected by the attribute condition. (fake: google.subject %q does not match %s %q)", a.Subject, subjectOp(p.Subject), p.Subject)
	}
	if p.AttributeCondition != nil && !p.AttributeCondition(*a) {
		return nil, invalid("unauthorized_client", "The given credential is rejected by the attribute condition. (fake: AttributeCondition returned false for google.subject %q)", a.Subject)
	}

	token := "ya29.d.fed-" + randString(urlChars, 120)
	g.mu.Lock()
	g.tokens[token] = &GoogleToken{
		Principal:  "principal://" + googleIAMPrincipalHost + "/" + p.pool + "/subject/" + a.Subject,
		Attributes: a.Attributes, Scopes: strings.Fields(f.Get("scope")), Expires: g.cfg.Now().Add(g.cfg.TokenTTL),
	}
	g.mu.Unlock()
	return map[string]any{"access_token": token, "issued_token_type": TokenTypeAccessToken, "token_type": "Bearer",
		"expires_in": int(g.cfg.TokenTTL / time.Second)}, nil
}

func (g *GoogleSTS) oidcAssertion(ctx context.Context, p *WorkloadIdentityProvider, token string) (*WIFAssertion, *oauthError) {
	mc, err := peek(token)
	if err != nil {
		return nil, invalid("invalid_grant", "Unable to parse the ID Token. (fake: %v)", err)
	}
	if iss := claimString(mc, "iss"); iss != p.Issuer {
		return nil, invalid("invalid_grant", "The issuer in ID Token %s does not match the expected ones: %s.", iss, p.Issuer)
	}
	claims, err := g.trust.verify(ctx, p.Issuer, p.AllowedAudiences, token)
	if err != nil {
		switch oidc.ReasonOf(err) {
		case oidc.ReasonAudience:
			return nil, invalid("invalid_grant", "The audience in ID Token [%s] does not match the expected audience %s.",
				strings.Join(claimAudience(mc), ", "), strings.Join(p.AllowedAudiences, ", "))
		case oidc.ReasonExpired:
			return nil, invalid("invalid_grant", "The ID Token has expired. (fake: %s)", verifyDetail(err))
		case oidc.ReasonNotYetValid:
			return nil, invalid("invalid_grant", "The ID Token is not yet valid. (fake: %s)", verifyDetail(err))
		case oidc.ReasonDiscovery:
			return nil, invalid("invalid_grant", "Unable to retrieve the OIDC provider's signing keys. (fake: %s)", verifyDetail(err))
		default:
			return nil, invalid("invalid_grant", "Invalid ID Token signature. (fake: %s)", verifyDetail(err))
		}
	}
	if claims.Subject == "" {
		return nil, invalid("invalid_grant", "The ID Token has no sub claim, so google.subject cannot be mapped.")
	}
	return &WIFAssertion{Subject: claims.Subject, Claims: claims.Raw}, nil
}

// awsSubjectToken is the serialized, signed GetCallerIdentity request (golang.org/x/oauth2 aws.go).
type awsSubjectToken struct {
	URL     string `json:"url"`
	Method  string `json:"method"`
	Headers []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"headers"`
	Body string `json:"body"`
}

var (
	stsHostRE   = regexp.MustCompile(`^sts(\.[a-z0-9-]+)?\.amazonaws\.com$`)
	stsRoleARNE = regexp.MustCompile(`^arn:aws:sts::(\d{12}):assumed-role/([^/]+)/(.+)$`)
)

func (g *GoogleSTS) awsAssertion(ctx context.Context, p *WorkloadIdentityProvider, audience, token string) (*WIFAssertion, *oauthError) {
	bad := func(format string, args ...any) *oauthError {
		return invalid("invalid_grant", "Invalid AWS subject token: "+format, args...)
	}
	raw, err := url.QueryUnescape(token)
	if err != nil {
		return nil, bad("not URL-encoded: %v", err)
	}
	var st awsSubjectToken
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, bad("not the JSON of a signed request: %v", err)
	}
	u, err := url.Parse(st.URL)
	if err != nil || u.Scheme != "https" || !stsHostRE.MatchString(u.Host) {
		return nil, bad("url %q is not https://sts[.<region>].amazonaws.com", st.URL)
	}
	if q := u.Query(); q.Get("Action") != "GetCallerIdentity" || q.Get("Version") != "2011-06-15" {
		return nil, bad("url %q is not Action=GetCallerIdentity&Version=2011-06-15", st.URL)
	}
	if st.Method != http.MethodPost && st.Method != http.MethodGet {
		return nil, bad("method %q is not POST", st.Method)
	}
	h := http.Header{}
	for _, kv := range st.Headers {
		h.Add(kv.Key, kv.Value)
	}
	if hv := h.Get("Host"); hv != u.Host {
		return nil, bad("host header %q does not match the url host %q", hv, u.Host)
	}
	if h.Get("X-Amz-Date") == "" {
		return nil, bad("no x-amz-date header")
	}
	auth, err := parseSigV4(h.Get("Authorization"))
	if err != nil {
		return nil, bad("%v", err)
	}
	if auth.Service != "sts" {
		return nil, bad("the signature is scoped to service %q, not sts", auth.Service)
	}
	target := h.Get("X-Goog-Cloud-Target-Resource")
	if strings.TrimPrefix(target, "https:") != audience {
		return nil, bad("x-goog-cloud-target-resource %q does not equal the audience %q", target, audience)
	}
	for _, need := range []string{"host", "x-amz-date", "x-goog-cloud-target-resource"} {
		if !slices.Contains(auth.SignedHeaders, need) {
			return nil, bad("%s is not among the signed headers %q", need, strings.Join(auth.SignedHeaders, ";"))
		}
	}

	var arn, account, userID string
	switch {
	case p.AWSVerifyURL != "":
		arn, account, userID, err = g.replayGetCallerIdentity(ctx, p.AWSVerifyURL, &st, u, h)
		if err != nil {
			return nil, invalid("invalid_grant", "%v", err)
		}
	case p.AWSCallerARN != nil:
		t, err := time.Parse(amzDateFormat, h.Get("X-Amz-Date"))
		if err != nil || g.cfg.Now().Sub(t).Abs() > sigv4MaxSkew {
			return nil, bad("x-amz-date %q is not within 15 minutes of now", h.Get("X-Amz-Date"))
		}
		var ok bool
		if arn, ok = p.AWSCallerARN(auth.AccessKeyID); !ok {
			return nil, invalid("invalid_grant", "Received invalid AWS response of type InvalidClientTokenId with error message: The security token included in the request is invalid. (fake: AWSCallerARN does not know %s; the signature was NOT checked)", auth.AccessKeyID)
		}
		if m := stsRoleARNE.FindStringSubmatch(arn); m != nil {
			account = m[1]
		}
	default:
		return nil, invalid("invalid_grant", "The fake Google STS cannot verify an AWS signature offline: set AWSVerifyURL to the AWSSTS fake (replay) or AWSCallerARN (shape-only).")
	}
	if account != p.AWSAccountID {
		return nil, invalid("invalid_grant", "The AWS account %s of caller %s does not match the AWS account %s configured on provider %s.", account, arn, p.AWSAccountID, audience)
	}
	a := &WIFAssertion{Subject: arn, ARN: arn, Account: account, UserID: userID, Attributes: map[string]string{}}
	if m := stsRoleARNE.FindStringSubmatch(arn); m != nil {
		a.Attributes["aws_role"] = fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s", m[1], m[2])
	} else {
		a.Attributes["aws_role"] = arn
	}
	return a, nil
}

// replayGetCallerIdentity sends the signed request to verifyURL (keeping the signed Host), as Google
// replays it to AWS, and returns the caller identity.
func (g *GoogleSTS) replayGetCallerIdentity(ctx context.Context, verifyURL string, st *awsSubjectToken, u *url.URL, h http.Header) (arn, account, userID string, err error) {
	target := strings.TrimSuffix(verifyURL, "/") + "/"
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, st.Method, target, strings.NewReader(st.Body))
	if err != nil {
		return "", "", "", err
	}
	for k, vs := range h {
		if k != "Host" {
			req.Header[k] = vs
		}
	}
	req.Host = u.Host
	resp, err := g.client.Do(req)
	if err != nil {
		return "", "", "", fmt.Errorf("Unable to reach AWS to verify the subject token: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		code, msg, perr := ParseAWSError(body)
		if perr != nil {
			return "", "", "", fmt.Errorf("Received invalid AWS response with HTTP status %d", resp.StatusCode)
		}
		return "", "", "", fmt.Errorf("Received invalid AWS response of type %s with error message: %s", code, msg)
	}
	var ci callerIdentityResponse
	if err := xml.Unmarshal(body, &ci); err != nil || ci.Result.Arn == "" {
		return "", "", "", fmt.Errorf("Received an unreadable GetCallerIdentity response from AWS")
	}
	return ci.Result.Arn, ci.Result.Account, ci.Result.UserID, nil
}

func googleError(code int, status, message string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": message, "status": status}}
}

type googleAPIError struct {
	code           int
	status, reason string
	message        string
}

func (g *GoogleSTS) serveGenerateAccessToken(w http.ResponseWriter, r *http.Request) {
	resp, principal, e := g.generateAccessToken(r)
	if e != nil {
		g.refuseFor(OpGenerateAccessToken, principal, e.status)
		body := googleError(e.code, e.status, e.message)
		if e.reason != "" {
			body["error"].(map[string]any)["details"] = []map[string]any{{
				"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": e.reason, "domain": "iam.googleapis.com",
				"metadata": map[string]string{"permission": "iam.serviceAccounts.getAccessToken"}}}
		}
		writeJSON(w, e.code, body)
		return
	}
	g.acceptFor(OpGenerateAccessToken, principal)
	writeJSON(w, http.StatusOK, resp)
}

const permissionDenied = "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."

// generateAccessToken answers an impersonation request; principal is the federated principal that
// asked (for CountsFor), when its token is known.
func (g *GoogleSTS) generateAccessToken(r *http.Request) (_ map[string]any, principal string, _ *googleAPIError) {
	resp, e := g.impersonate(r, &principal)
	return resp, principal, e
}

func (g *GoogleSTS) impersonate(r *http.Request, principal *string) (map[string]any, *googleAPIError) {
	rest := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/projects/"), ":generateAccessToken")
	_, email, ok := strings.Cut(rest, "/serviceAccounts/")
	if !ok || email == "" {
		return nil, &googleAPIError{code: 400, status: "INVALID_ARGUMENT", message: fmt.Sprintf("Invalid form of account ID %s. Should be [Gaia ID |Email |Unique ID |] of the account", rest)}
	}
	tok := bearer(r)
	g.mu.Lock()
	fed := g.tokens[tok]
	g.mu.Unlock()
	if fed != nil {
		*principal = fed.Principal
	}
	const unauth = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	switch {
	case tok == "":
		return nil, &googleAPIError{code: 401, status: "UNAUTHENTICATED", message: unauth + " (fake: no bearer token)"}
	case fed == nil || fed.ServiceAccount != "":
		return nil, &googleAPIError{code: 401, status: "UNAUTHENTICATED", message: unauth + " (fake: the bearer token is not a federated token issued by this STS)"}
	case !g.cfg.Now().Before(fed.Expires):
		return nil, &googleAPIError{code: 401, status: "UNAUTHENTICATED", message: unauth + " (fake: the federated token expired at " + fed.Expires.UTC().Format(time.RFC3339) + ")"}
	}
	var sa *GoogleServiceAccount
	for i := range g.sas {
		if strings.EqualFold(g.sas[i].Email, email) || g.sas[i].UniqueID == email {
			sa = &g.sas[i]
		}
	}
	if sa == nil {
		return nil, &googleAPIError{code: 403, status: "PERMISSION_DENIED", reason: "IAM_PERMISSION_DENIED",
			message: permissionDenied + fmt.Sprintf(" (fake: there is no service account %s)", email)}
	}
	if !memberOf(sa.Members, fed) {
		return nil, &googleAPIError{code: 403, status: "PERMISSION_DENIED", reason: "IAM_PERMISSION_DENIED",
			message: permissionDenied + fmt.Sprintf(" (fake: %s with attributes %v is not among the members %q allowed to impersonate %s)", fed.Principal, fed.Attributes, sa.Members, sa.Email)}
	}
	var body struct {
		Scope     []string `json:"scope"`
		Lifetime  string   `json:"lifetime"`
		Delegates []string `json:"delegates"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		return nil, &googleAPIError{code: 400, status: "INVALID_ARGUMENT", message: "Invalid JSON payload received. " + err.Error()}
	}
	if len(body.Scope) == 0 {
		return nil, &googleAPIError{code: 400, status: "INVALID_ARGUMENT", message: "Scope required."}
	}
	if len(body.Delegates) > 0 {
		return nil, &googleAPIError{code: 400, status: "INVALID_ARGUMENT", message: "Delegation chains are not supported by this fake."}
	}
	lifetime := time.Hour
	if body.Lifetime != "" {
		d, err := time.ParseDuration(body.Lifetime)
		if err != nil || !strings.HasSuffix(body.Lifetime, "s") || d <= 0 || d > time.Hour {
			return nil, &googleAPIError{code: 400, status: "INVALID_ARGUMENT", message: fmt.Sprintf("The lifetime %q is not a duration in seconds between 1s and 3600s.", body.Lifetime)}
		}
		lifetime = d
	}
	token := "ya29.c.sa-" + randString(urlChars, 120)
	exp := g.cfg.Now().Add(lifetime).UTC().Truncate(time.Second)
	g.mu.Lock()
	g.tokens[token] = &GoogleToken{Principal: fed.Principal, ServiceAccount: sa.Email, Scopes: body.Scope, Expires: exp}
	g.mu.Unlock()
	return map[string]any{"accessToken": token, "expireTime": exp.Format(time.RFC3339)}, nil
}

// memberOf reports whether the federated token's principal is one of members.
func memberOf(members []string, t *GoogleToken) bool {
	pool, _, _ := strings.Cut(strings.TrimPrefix(t.Principal, "principal://"+googleIAMPrincipalHost+"/"), "/subject/")
	setPrefix := "principalSet://" + googleIAMPrincipalHost + "/" + pool + "/"
	for _, m := range members {
		switch {
		case m == t.Principal, m == setPrefix+"*":
			return true
		case strings.HasPrefix(m, setPrefix+"attribute."):
			name, value, _ := strings.Cut(strings.TrimPrefix(m, setPrefix+"attribute."), "/")
			if v, ok := t.Attributes[name]; ok && v == value {
				return true
			}
		}
	}
	return false
}
