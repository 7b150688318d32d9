package idp

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyferry/keyferry/localtest/oidc"
)

// AWSRole is an IAM role whose trust policy allows sts:AssumeRoleWithWebIdentity for one IAM OIDC
// provider, with conditions on <provider>:aud and <provider>:sub.
type AWSRole struct {
	// RoleArn is arn:aws:iam::<account>:role/<name>.
	RoleArn string
	// Provider is the issuer URL of the IAM OIDC provider the trust policy names (Principal.Federated);
	// it must equal the tokens' iss exactly (a trailing slash matters).
	Provider string
	// Audience is the StringEquals condition on <provider>:aud. It is also registered in the IAM OIDC
	// provider's client-ID list (the union over all roles naming that provider).
	Audience string
	// Subject is the condition on <provider>:sub: StringEquals, or StringLike when it contains * or ?.
	// Empty means no sub condition (IAM warns about such policies).
	Subject string
	// MaxSessionDuration caps DurationSeconds (default one hour, as for a new role).
	MaxSessionDuration time.Duration
}

// AWSSTSConfig configures the STS fake.
type AWSSTSConfig struct {
	Roles []AWSRole
	// Sessions are credentials the fake accepts (GetCallerIdentity, GetWebIdentityToken, Authenticate)
	// without having issued them, such as the session of a Lambda function's execution role, which AWS
	// hands the function outside any call the fake sees. Each needs AccessKeyID, SecretAccessKey, RoleArn
	// and AssumedRoleArn; Account defaults to the role's; a zero Expiration never expires.
	Sessions []AWSSession
	// OutboundIssuer, if set, is the account's IAM outbound identity federation issuer
	// (iam:EnableOutboundWebIdentityFederation): GetWebIdentityToken signs its JWTs with it. Nil: the
	// feature is disabled and GetWebIdentityToken answers OutboundWebIdentityFederationDisabledException.
	OutboundIssuer *oidc.Issuer
	// HTTPClient fetches the providers' discovery documents and JWKS (use the oidc CA's client for an
	// HTTPS issuer). Default: a plain client.
	HTTPClient *http.Client
	// TLS, if set, makes StartAWSSTS serve HTTPS with a certificate from this CA.
	TLS *oidc.CA
	// Now replaces time.Now.
	Now func() time.Time
}

// AWSSession is a set of temporary credentials the fake issued.
type AWSSession struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
	RoleArn, AssumedRoleArn, AssumedRoleID     string
	Account                                    string
	Subject, Audience, Provider                string
	// LambdaFunctionARN is set on a Lambda execution role's session (AWSSTSConfig.Sessions): outbound
	// tokens then carry it as lambda_source_function_arn.
	LambdaFunctionARN string
}

// AWSSTS is a fake of AWS STS (query protocol) that validates web identity tokens.
type AWSSTS struct {
	server
	counters
	cfg       AWSSTSConfig
	trust     *trust
	mu        sync.Mutex
	providers map[string][]string // issuer URL → client IDs
	roles     map[string]*awsRole
	sessions  map[string]*AWSSession
}

type awsRole struct {
	AWSRole
	account, name, roleID string
}

// STS operation names, as counted.
const (
	OpAssumeRoleWithWebIdentity = "AssumeRoleWithWebIdentity"
	OpGetCallerIdentity         = "GetCallerIdentity"
	OpGetWebIdentityToken       = "GetWebIdentityToken"
)

var (
	roleArnRE     = regexp.MustCompile(`^arn:aws:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$`)
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// NewAWSSTS builds the fake as a handler (serve it yourself, or use StartAWSSTS).
func NewAWSSTS(cfg AWSSTSConfig) (*AWSSTS, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &AWSSTS{cfg: cfg, trust: newTrust(cfg.HTTPClient, cfg.Now), providers: map[string][]string{},
		roles: map[string]*awsRole{}, sessions: map[string]*AWSSession{}}
	for _, r := range cfg.Roles {
		if err := s.AddRole(r); err != nil {
			return nil, err
		}
	}
	for _, x := range cfg.Sessions {
		m := roleArnRE.FindStringSubmatch(x.RoleArn)
		if x.AccessKeyID == "" || x.SecretAccessKey == "" || m == nil || x.AssumedRoleArn == "" {
			return nil, fmt.Errorf("idp: session %q needs AccessKeyID, SecretAccessKey, a role ARN and AssumedRoleArn", x.AccessKeyID)
		}
		if x.Account == "" {
			x.Account = m[1]
		}
		if x.AssumedRoleID == "" {
			x.AssumedRoleID = "AROA" + randString(upperAlnum, 17) + ":" + x.AssumedRoleArn[strings.LastIndex(x.AssumedRoleArn, "/")+1:]
		}
		s.sessions[x.AccessKeyID] = &x
	}
	return s, nil
}

// AddRole creates a role (as `aws iam create-role` with a web-identity trust policy would), or replaces
// the role of the same ARN.
func (s *AWSSTS) AddRole(r AWSRole) error {
	m := roleArnRE.FindStringSubmatch(r.RoleArn)
	if m == nil {
		return fmt.Errorf("idp: role ARN %q is not arn:aws:iam::<12 digits>:role/<name>", r.RoleArn)
	}
	if r.Provider == "" {
		return fmt.Errorf("idp: role %s names no provider", r.RoleArn)
	}
	if r.MaxSessionDuration == 0 {
		r.MaxSessionDuration = time.Hour
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[r.RoleArn] = &awsRole{AWSRole: r, account: m[1], name: m[2], roleID: "AROA" + randString(upperAlnum, 17)}
	ids := s.providers[r.Provider]
	if r.Audience != "" && !slices.Contains(ids, r.Audience) {
		ids = append(ids, r.Audience)
	}
	s.providers[r.Provider] = ids
	return nil
}

// StartAWSSTS serves the fake on 127.0.0.1 (HTTPS when cfg.TLS is set).
func StartAWSSTS(cfg AWSSTSConfig) (*AWSSTS, error) {
	s, err := NewAWSSTS(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.serve(s, cfg.TLS); err != nil {
		return nil, err
	}
	return s, nil
}

// Session returns the session issued with this access key id.
func (s *AWSSTS) Session(accessKeyID string) (AWSSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := s.sessions[accessKeyID]; x != nil {
		return *x, true
	}
	return AWSSession{}, false
}

// IssuedSecrets are the secret keys and session tokens of the sessions this fake issued or was given.
func (s *AWSSTS) IssuedSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, x := range s.sessions {
		out = append(out, x.SecretAccessKey)
		if x.SessionToken != "" {
			out = append(out, x.SessionToken)
		}
	}
	return out
}

// providerKey is how IAM names a provider in condition keys and ARNs: the URL without the scheme.
func providerKey(issuer string) string {
	return strings.TrimPrefix(strings.TrimPrefix(issuer, "https://"), "http://")
}

type awsError struct {
	status        int
	code, message string
}

func (e *awsError) Error() string { return e.code + ": " + e.message }

func awsErr(status int, code, format string, args ...any) *awsError {
	return &awsError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

type awsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", oidc.NewUUID())
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(v)
}

func (s *AWSSTS) fail(w http.ResponseWriter, op string, e *awsError) { s.failFor(w, op, "", e) }

func (s *AWSSTS) failFor(w http.ResponseWriter, op, key string, e *awsError) {
	s.refuseFor(op, key, e.code)
	var resp awsErrorResponse
	resp.Xmlns = stsNS
	resp.Error.Type = "Sender"
	resp.Error.Code = e.code
	resp.Error.Message = e.message
	resp.RequestID = oidc.NewUUID()
	writeXML(w, e.status, resp)
}

// ServeHTTP answers the STS query protocol (form POST, or GET with a query string).
func (s *AWSSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.fail(w, "request", awsErr(400, "MalformedInput", "could not read the request body: %v", err))
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost && len(body) > 0 {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			s.fail(w, "request", awsErr(400, "MalformedQueryString", "the body is not a URL-encoded form: %v", err))
			return
		}
		for k, v := range form {
			params[k] = append(params[k], v...)
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodPost {
		s.fail(w, "request", awsErr(405, "InvalidAction", "method %s is not supported; use POST", r.Method))
		return
	}
	action := params.Get("Action")
	if v := params.Get("Version"); v != "2011-06-15" && action != "" {
		s.fail(w, action, awsErr(400, "InvalidAction", "Could not find operation %s for version %s", action, v))
		return
	}
	switch action {
	case OpAssumeRoleWithWebIdentity:
		s.assumeRoleWithWebIdentity(w, r, params)
	case OpGetCallerIdentity:
		s.getCallerIdentity(w, r, body)
	case OpGetWebIdentityToken:
		s.getWebIdentityToken(w, r, body, params)
	case "":
		s.fail(w, "request", awsErr(400, "MissingAction", "Missing Action"))
	default:
		s.fail(w, action, awsErr(400, "InvalidAction", "Could not find operation %s for version 2011-06-15 (this fake implements %s, %s and %s)",
			action, OpAssumeRoleWithWebIdentity, OpGetCallerIdentity, OpGetWebIdentityToken))
	}
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleWithWebIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		} `xml:"Credentials"`
		SubjectFromWebIdentityToken string `xml:"SubjectFromWebIdentityToken"`
		AssumedRoleUser             struct {
			Arn           string `xml:"Arn"`
			AssumedRoleID string `xml:"AssumedRoleId"`
		} `xml:"AssumedRoleUser"`
		Audience string `xml:"Audience"`
		Provider string `xml:"Provider"`
	} `xml:"AssumeRoleWithWebIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

const (
	notAuthorized = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
	notValidated  = "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request."
)

func (s *AWSSTS) assumeRoleWithWebIdentity(w http.ResponseWriter, r *http.Request, p url.Values) {
	sess, e := s.assume(r, p)
	if e != nil {
		s.failFor(w, OpAssumeRoleWithWebIdentity, p.Get("RoleArn"), e)
		return
	}
	var resp assumeRoleResponse
	resp.Xmlns = stsNS
	c := &resp.Result.Credentials
	c.AccessKeyID, c.SecretAccessKey, c.SessionToken = sess.AccessKeyID, sess.SecretAccessKey, sess.SessionToken
	c.Expiration = sess.Expiration.UTC().Format(time.RFC3339)
	resp.Result.SubjectFromWebIdentityToken = sess.Subject
	resp.Result.AssumedRoleUser.Arn = sess.AssumedRoleArn
	resp.Result.AssumedRoleUser.AssumedRoleID = sess.AssumedRoleID
	resp.Result.Audience = sess.Audience
	resp.Result.Provider = sess.Provider
	resp.RequestID = oidc.NewUUID()
	s.acceptFor(OpAssumeRoleWithWebIdentity, sess.RoleArn)
	writeXML(w, http.StatusOK, resp)
}

func (s *AWSSTS) assume(r *http.Request, p url.Values) (*AWSSession, *awsError) {
	roleArn, sessionName, token := p.Get("RoleArn"), p.Get("RoleSessionName"), p.Get("WebIdentityToken")
	var problems []string
	if roleArn == "" {
		problems = append(problems, "Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	}
	if !sessionNameRE.MatchString(sessionName) {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64", sessionName))
	}
	if n := len(token); n < 4 || n > 20000 {
		problems = append(problems, fmt.Sprintf("Value at 'webIdentityToken' (length %d) failed to satisfy constraint: Member must have length between 4 and 20000", n))
	}
	duration := time.Hour
	if d := p.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			problems = append(problems, fmt.Sprintf("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", d))
		}
		duration = time.Duration(n) * time.Second
	}
	if len(problems) > 0 {
		return nil, awsErr(400, "ValidationError", "%d validation error(s) detected: %s", len(problems), strings.Join(problems, "; "))
	}

	// The IAM OIDC provider: found by the token's iss, then signature, aud (client-ID list) and lifetime.
	mc, err := peek(token)
	if err != nil {
		return nil, awsErr(400, "InvalidIdentityToken", "%s (fake STS: %v)", notValidated, err)
	}
	iss, sub := claimString(mc, "iss"), claimString(mc, "sub")
	s.mu.Lock()
	clientIDs, ok := s.providers[iss]
	role := s.roles[roleArn]
	s.mu.Unlock()
	if !ok {
		return nil, awsErr(400, "InvalidIdentityToken", "No OpenIDConnect provider found in your account for %s (fake STS: trusted providers are %s)",
			iss, strings.Join(s.providerList(), ", "))
	}
	claims, err := s.trust.verify(r.Context(), iss, clientIDs, token)
	if err != nil {
		switch reason := oidc.ReasonOf(err); {
		case reason == oidc.ReasonDiscovery:
			return nil, awsErr(400, "IDPCommunicationError", "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements (fake STS: %s)", verifyDetail(err))
		case reason == oidc.ReasonExpired:
			exp, _ := mc.GetExpirationTime()
			expUnix := int64(0)
			if exp != nil {
				expUnix = exp.Unix()
			}
			return nil, awsErr(400, "ExpiredTokenException", "Token expired: current date/time %d must be before the expiration date/time %d (fake STS: %s)",
				s.cfg.Now().Unix(), expUnix, verifyDetail(err))
		case reason == oidc.ReasonAudience:
			return nil, awsErr(400, "InvalidIdentityToken", "Incorrect token audience (fake STS: the token's aud %q is not in the client-ID list %q of the OIDC provider for %s)",
				strings.Join(claimAudience(mc), ","), clientIDs, iss)
		default:
			return nil, awsErr(400, "InvalidIdentityToken", "%s (fake STS: %s)", notValidated, verifyDetail(err))
		}
	}

	// The role's trust policy.
	if role == nil {
		return nil, awsErr(403, "AccessDenied", "%s (fake STS: there is no role %s)", notAuthorized, roleArn)
	}
	key := providerKey(role.Provider)
	if role.Provider != iss {
		return nil, awsErr(403, "AccessDenied", "%s (fake STS: the trust policy of %s allows Principal.Federated %s, the token was issued by %s)",
			notAuthorized, roleArn, key, iss)
	}
	if role.Audience != "" && !slices.Contains(claims.Audience, role.Audience) {
		return nil, awsErr(403, "AccessDenied", "%s (fake STS: condition StringEquals %s:aud %q does not match the token's aud %q)",
			notAuthorized, key, role.Audience, strings.Join(claims.Audience, ","))
	}
	if role.Subject != "" && !matchSubject(role.Subject, sub) {
		return nil, awsErr(403, "AccessDenied", "%s (fake STS: condition %s %s:sub %q does not match the token's sub %q)",
			notAuthorized, subjectOp(role.Subject), key, role.Subject, sub)
	}
	if duration > role.MaxSessionDuration {
		return nil, awsErr(400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role. (fake STS: %s > %s)",
			duration, role.MaxSessionDuration)
	}

	aud := role.Audience
	if aud == "" {
		for _, a := range claims.Audience {
			if slices.Contains(clientIDs, a) {
				aud = a
				break
			}
		}
	}
	sess := &AWSSession{
		AccessKeyID:     "ASIA" + randString(upperAlnum, 16),
		SecretAccessKey: randString(b64chars, 40),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + randString(b64chars, 300),
		Expiration:      s.cfg.Now().Add(duration).Truncate(time.Second),
		RoleArn:         roleArn,
		AssumedRoleArn:  fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", role.account, role.name, sessionName),
		AssumedRoleID:   role.roleID + ":" + sessionName,
		Account:         role.account,
		Subject:         sub,
		Audience:        aud,
		Provider:        fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", role.account, key),
	}
	s.mu.Lock()
	s.sessions[sess.AccessKeyID] = sess
	s.mu.Unlock()
	return sess, nil
}

func (s *AWSSTS) providerList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := make([]string, 0, len(s.providers))
	for p := range s.providers {
		l = append(l, p)
	}
	slices.Sort(l)
	return l
}

type callerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// getCallerIdentity answers for sessions this fake issued or was given, after verifying the SigV4
// signature with the session's secret key.
func (s *AWSSTS) getCallerIdentity(w http.ResponseWriter, r *http.Request, body []byte) {
	sess, e := s.authenticate(r, body, "sts")
	if e != nil {
		s.fail(w, OpGetCallerIdentity, e)
		return
	}
	var resp callerIdentityResponse
	resp.Xmlns = stsNS
	resp.Result.Arn, resp.Result.UserID, resp.Result.Account = sess.AssumedRoleArn, sess.AssumedRoleID, sess.Account
	resp.RequestID = oidc.NewUUID()
	s.acceptFor(OpGetCallerIdentity, sess.AssumedRoleArn)
	writeXML(w, http.StatusOK, resp)
}

// AWSAuthError is why Authenticate refused a request: what AWS answers (HTTP status, error code,
// message). The message never holds a secret.
type AWSAuthError struct {
	Status        int
	Code, Message string
}

func (e *AWSAuthError) Error() string { return e.Code + ": " + e.Message }

// Authenticate checks a SigV4-signed request to any AWS service (body is its already-read body) the
// way AWS does: the access key must belong to a session this fake issued or was given
// (AWSSTSConfig.Sessions), X-Amz-Security-Token must be that session's token, the session must not
// have expired, and the signature must verify with the session's secret key. Fronts of other AWS
// emulators (which accept any key) use it to accept only federated or execution-role credentials.
func (s *AWSSTS) Authenticate(r *http.Request, body []byte) (AWSSession, error) {
	sess, e := s.authenticate(r, body, "")
	if e != nil {
		return AWSSession{}, &AWSAuthError{Status: e.status, Code: e.code, Message: e.message}
	}
	return *sess, nil
}

// authenticate verifies a signed request; service, if set, is the credential scope's required service.
func (s *AWSSTS) authenticate(r *http.Request, body []byte, service string) (*AWSSession, *awsError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, awsErr(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	a, err := parseSigV4(h)
	if err != nil {
		return nil, awsErr(400, "IncompleteSignature", "%v", err)
	}
	s.mu.Lock()
	sess := s.sessions[a.AccessKeyID]
	s.mu.Unlock()
	if sess == nil {
		return nil, awsErr(403, "InvalidClientTokenId", "The security token included in the request is invalid. (fake STS: access key %s was not issued by this STS)", maskKey(a.AccessKeyID))
	}
	if r.Header.Get("X-Amz-Security-Token") != sess.SessionToken {
		return nil, awsErr(403, "InvalidClientTokenId", "The security token included in the request is invalid. (fake STS: X-Amz-Security-Token is not the session token of %s)", maskKey(a.AccessKeyID))
	}
	if !sess.Expiration.IsZero() && !s.cfg.Now().Before(sess.Expiration) {
		return nil, awsErr(400, "ExpiredToken", "The security token included in the request is expired (fake STS: expired at %s)", sess.Expiration.UTC().Format(time.RFC3339))
	}
	if service != "" && a.Service != service {
		return nil, awsErr(403, "SignatureDoesNotMatch", "Credential should be scoped to correct service: '%s'. (fake STS: scoped to %q)", service, a.Service)
	}
	if err := sigv4Verify(r, body, a, sess.SecretAccessKey, s.cfg.Now()); err != nil {
		return nil, awsErr(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details. (fake STS: %v)", err)
	}
	return sess, nil
}

// maskKey shows an access key id's first and last four characters only.
func maskKey(k string) string {
	if len(k) <= 8 {
		return "****"
	}
	return k[:4] + "…" + k[len(k)-4:]
}

type webIdentityTokenResponse struct {
	XMLName xml.Name `xml:"GetWebIdentityTokenResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		WebIdentityToken string `xml:"WebIdentityToken"`
		Expiration       string `xml:"Expiration"`
	} `xml:"GetWebIdentityTokenResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// getWebIdentityToken is IAM outbound identity federation: a SigV4-signed caller gets a JWT signed by
// the account's issuer, with sub = the caller's role ARN and the documented AWS claims.
func (s *AWSSTS) getWebIdentityToken(w http.ResponseWriter, r *http.Request, body []byte, p url.Values) {
	var auds []string
	for i := 1; p.Has("Audience.member." + strconv.Itoa(i)); i++ {
		auds = append(auds, p.Get("Audience.member."+strconv.Itoa(i)))
	}
	key := strings.Join(auds, ",")
	tok, exp, e := s.webIdentityToken(r, body, p, auds)
	if e != nil {
		s.failFor(w, OpGetWebIdentityToken, key, e)
		return
	}
	var resp webIdentityTokenResponse
	resp.Xmlns = stsNS
	resp.Result.WebIdentityToken, resp.Result.Expiration = tok, exp.UTC().Format(time.RFC3339)
	resp.RequestID = oidc.NewUUID()
	s.acceptFor(OpGetWebIdentityToken, key)
	writeXML(w, http.StatusOK, resp)
}

func (s *AWSSTS) webIdentityToken(r *http.Request, body []byte, p url.Values, auds []string) (string, time.Time, *awsError) {
	sess, e := s.authenticate(r, body, "sts")
	if e != nil {
		return "", time.Time{}, e
	}
	var problems []string
	if len(auds) < 1 || len(auds) > 10 {
		problems = append(problems, fmt.Sprintf("Value at 'audience' (%d items) failed to satisfy constraint: Member must have length between 1 and 10", len(auds)))
	}
	for _, a := range auds {
		if n := len(a); n < 1 || n > 1000 {
			problems = append(problems, fmt.Sprintf("Value at 'audience' (an item of length %d) failed to satisfy constraint: Member must have length between 1 and 1000", n))
		}
	}
	switch alg := p.Get("SigningAlgorithm"); alg {
	case "RS256":
	case "ES384":
		problems = append(problems, "SigningAlgorithm ES384 is not supported by this fake STS (it signs RS256 only)")
	default:
		problems = append(problems, fmt.Sprintf("Value '%s' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [RS256, ES384]", alg))
	}
	duration := 300 * time.Second
	if d := p.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 60 || n > 3600 {
			problems = append(problems, fmt.Sprintf("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 60 and 3600", d))
		}
		duration = time.Duration(n) * time.Second
	}
	if len(problems) > 0 {
		return "", time.Time{}, awsErr(400, "ValidationError", "%d validation error(s) detected: %s", len(problems), strings.Join(problems, "; "))
	}
	if s.cfg.OutboundIssuer == nil {
		return "", time.Time{}, awsErr(403, "OutboundWebIdentityFederationDisabledException", "Outbound web identity federation is not enabled for account %s", sess.Account)
	}
	now := s.cfg.Now()
	exp := now.Add(duration).Truncate(time.Second)
	if !sess.Expiration.IsZero() && exp.After(sess.Expiration) {
		return "", time.Time{}, awsErr(400, "SessionDurationEscalationException", "The requested token duration would extend the session beyond its expiration (fake STS: %s > %s)",
			exp.UTC().Format(time.RFC3339), sess.Expiration.UTC().Format(time.RFC3339))
	}
	tags := map[string]string{}
	for i := 1; p.Has("Tags.member." + strconv.Itoa(i) + ".Key"); i++ {
		tags[p.Get("Tags.member."+strconv.Itoa(i)+".Key")] = p.Get("Tags.member." + strconv.Itoa(i) + ".Value")
	}
	a, _ := parseSigV4(r.Header.Get("Authorization"))
	aws := map[string]any{"aws_account": sess.Account, "source_region": a.Region}
	if sess.LambdaFunctionARN != "" {
		aws["lambda_source_function_arn"] = sess.LambdaFunctionARN
	}
	if len(tags) > 0 {
		aws["request_tags"] = tags
	}
	var aud any = auds
	if len(auds) == 1 {
		aud = auds[0]
	}
	tok, err := s.cfg.OutboundIssuer.Mint(map[string]any{"aud": aud, "sub": sess.RoleArn, "iat": now, "nbf": now, "exp": exp,
		"jti": oidc.NewUUID(), "https://sts.amazonaws.com/": aws})
	if err != nil {
		return "", time.Time{}, awsErr(500, "InternalFailure", "could not sign the token")
	}
	return tok, exp, nil
}

// ParseAWSError extracts code and message from an STS ErrorResponse body (for tests and other fakes).
func ParseAWSError(body []byte) (code, message string, err error) {
	var e awsErrorResponse
	if err := xml.Unmarshal(body, &e); err != nil {
		return "", "", err
	}
	if e.Error.Code == "" {
		return "", "", errors.New("not an STS ErrorResponse")
	}
	return e.Error.Code, e.Error.Message, nil
}
