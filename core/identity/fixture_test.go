package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/keyferry/keyferry/localtest/idp"
	"github.com/keyferry/keyferry/localtest/oidc"
)

// The cast of the federation tests.
const (
	testAccount   = "111122223333"
	testRegion    = "us-east-1"
	lambdaRole    = "arn:aws:iam::" + testAccount + ":role/keyferry-lambda"
	lambdaSession = "keyferry-replicate" // the function name: the session name Lambda uses
	lambdaCaller  = "arn:aws:sts::" + testAccount + ":assumed-role/keyferry-lambda/" + lambdaSession
	fromAzureRole = "arn:aws:iam::" + testAccount + ":role/keyferry-from-azure"
	fromGCPRole   = "arn:aws:iam::" + testAccount + ":role/keyferry-from-gcp"
	awsAppIDURI   = "api://aws-federation" // the App ID URI an Azure MI requests for AWS
	gcpTokenAud   = "api://gcp-federation" // the App ID URI an Azure MI requests for GCP
	gcpPool       = "projects/123456789012/locations/global/workloadIdentityPools/keyferry"
	gcpAzureProv  = "//iam.googleapis.com/" + gcpPool + "/providers/azure"
	gcpAWSProv    = "//iam.googleapis.com/" + gcpPool + "/providers/aws"
	replicatorSA  = "replicator@keyferry-test.iam.gserviceaccount.com"
	entraClientID = "6f1c1d3e-0000-4000-8000-00000000c11e"
)

func tctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startIssuer(t *testing.T, opts oidc.Options) *oidc.Issuer {
	t.Helper()
	iss, err := oidc.Start(opts)
	if err != nil {
		t.Fatalf("oidc.Start: %v", err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	return iss
}

func shifted(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }

// world is the set of issuers every test shares: the Azure Function's tenant (with its managed-identity
// endpoint, in the environment), the Google issuer behind the metadata server, the AWS account's
// outbound-federation issuer, the target Entra tenant's token issuer, an issuer nobody trusts, and the
// issuer the test uses to obtain the Lambda's role session. All serve HTTPS from one CA.
type world struct {
	t        *testing.T
	ca       *oidc.CA
	mi       *oidc.Issuer // Azure home: https://sts.windows.net/<tenant>/ stand-in
	google   *oidc.Issuer // accounts.google.com stand-in
	outbound *oidc.Issuer // https://<uuid>.tokens.sts.global.api.aws stand-in
	aad      *oidc.Issuer // target tenant's access-token issuer
	stranger *oidc.Issuer
	boot     *oidc.Issuer // mints the Lambda role's bootstrap token (how Lambda got its credentials)
	saID     string       // the GCP runtime service account's unique id (sub of its ID tokens)
	tenant   string       // target Entra tenant
}

func newWorld(t *testing.T) *world {
	t.Helper()
	isolateEnv(t)
	ca, err := oidc.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, ca: ca, saID: "1" + strings.Repeat("0", 19) + "7", tenant: oidc.NewUUID()}
	miTenant := oidc.NewUUID()
	w.mi = startIssuer(t, oidc.Options{TLS: true, CA: ca, TenantID: miTenant, IssuerPath: "/" + miTenant + "/"})
	w.google = startIssuer(t, oidc.Options{TLS: true, CA: ca})
	w.outbound = startIssuer(t, oidc.Options{TLS: true, CA: ca})
	w.aad = startIssuer(t, oidc.Options{TLS: true, CA: ca, TenantID: w.tenant, IssuerPath: "/" + w.tenant + "/"})
	w.stranger = startIssuer(t, oidc.Options{TLS: true, CA: ca})
	w.boot = startIssuer(t, oidc.Options{TLS: true, CA: ca})
	// Tests select the managed identity by its (per-world) client ID: MSAL caches managed-identity
	// tokens process-wide, and a token of an earlier world's issuer must not be served from that cache.
	for k, v := range w.mi.ManagedIdentityEnv() {
		t.Setenv(k, v)
	}
	return w
}

// isolateEnv keeps the developer's cloud configuration out of the tests.
func isolateEnv(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_DEFAULT_REGION",
		"GCE_METADATA_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "VAULT_TOKEN", "VAULT_ADDR", "VAULT_NAMESPACE",
		"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET"} {
		t.Setenv(k, "")
		_ = os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("HOME", dir)
}

// endpoints points every service at the fakes (nil fakes keep the defaults).
func (w *world) endpoints(a *awsSide, entra *idp.Entra, g *idp.GoogleSTS, md *idp.Metadata) Endpoints {
	e := Endpoints{HTTPClient: w.ca.Client(), AWSMaxAttempts: 1}
	if a != nil {
		e.AWSSTS = a.URL
	}
	if entra != nil {
		e.EntraAuthorityHost = entra.URL
	}
	if g != nil {
		e.GoogleSTSTokenURL, e.IAMCredentialsURL = g.TokenURL(), g.URL
	}
	if md != nil {
		e.GCEMetadataHost = md.Host()
	}
	return e
}

// metadata starts the GCP home's metadata server (ID tokens signed by w.google) with a clock.
func (w *world) metadata(now func() time.Time) *idp.Metadata {
	w.t.Helper()
	md, err := idp.StartMetadata(idp.MetadataConfig{Issuer: w.google, ServiceAccountUniqueID: w.saID,
		ServiceAccountEmail: "keyferry-fn@keyferry-test.iam.gserviceaccount.com", Now: now})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = md.Close() })
	return md
}

func (w *world) entra(fics []idp.FederatedCredential, now func() time.Time, ttl time.Duration) *idp.Entra {
	w.t.Helper()
	for i := range fics {
		fics[i].TenantID, fics[i].ClientID = w.tenant, entraClientID
	}
	e, err := idp.StartEntra(idp.EntraConfig{Credentials: fics, TokenIssuer: w.aad, TLS: w.ca, HTTPClient: w.ca.Client(), Now: now, TokenTTL: ttl})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = e.Close() })
	return e
}

func (w *world) googleSTS(cfg idp.GoogleSTSConfig) *idp.GoogleSTS {
	w.t.Helper()
	cfg.HTTPClient = w.ca.Client()
	g, err := idp.StartGoogleSTS(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = g.Close() })
	return g
}

// awsSide is the idp AWS STS fake plus a test-local GetWebIdentityToken (IAM outbound identity
// federation), which the idp fake does not implement: SigV4 is verified against the sessions the
// fake issued, and the JWT is minted by the account's outbound issuer with the documented claims.
type awsSide struct {
	*idp.AWSSTS
	URL      string
	w        *world
	now      func() time.Time
	disabled atomic.Bool
	gwitOK   atomic.Int64
	gwitNo   atomic.Int64
}

// aws starts the STS fake with roles (the Lambda's own role is always there) and a clock.
func (w *world) aws(roles []idp.AWSRole, now func() time.Time) *awsSide {
	w.t.Helper()
	if now == nil {
		now = time.Now
	}
	roles = append(roles, idp.AWSRole{RoleArn: lambdaRole, Provider: w.boot.Issuer(), Audience: "sts.amazonaws.com", Subject: "lambda"})
	fake, err := idp.NewAWSSTS(idp.AWSSTSConfig{Roles: roles, HTTPClient: w.ca.Client(), Now: now})
	if err != nil {
		w.t.Fatal(err)
	}
	a := &awsSide{AWSSTS: fake, w: w, now: now}
	srv := httptest.NewServer(a)
	w.t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// lambdaEnv gives the test process the Lambda's environment: the execution role's session credentials
// (issued by the fake, so GetCallerIdentity and GetWebIdentityToken can verify their signatures).
func (a *awsSide) lambdaEnv(t *testing.T) aws.Credentials {
	t.Helper()
	tok, err := a.w.boot.Mint(map[string]any{"aud": "sts.amazonaws.com", "sub": "lambda"})
	if err != nil {
		t.Fatal(err)
	}
	client := sts.New(sts.Options{Region: testRegion, BaseEndpoint: aws.String(a.URL), RetryMaxAttempts: 1})
	out, err := client.AssumeRoleWithWebIdentity(tctx(t), &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(lambdaRole),
		RoleSessionName: aws.String(lambdaSession), WebIdentityToken: aws.String(tok)})
	if err != nil {
		t.Fatalf("bootstrap the Lambda role session: %v", err)
	}
	c := out.Credentials
	creds := aws.Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey), SessionToken: aws.ToString(c.SessionToken)}
	t.Setenv("AWS_ACCESS_KEY_ID", creds.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", creds.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", creds.SessionToken)
	t.Setenv("AWS_REGION", testRegion)
	return creds
}

func (a *awsSide) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	form, _ := url.ParseQuery(string(body))
	if form.Get("Action") != "GetWebIdentityToken" {
		r.Body = io.NopCloser(bytes.NewReader(body))
		a.AWSSTS.ServeHTTP(w, r)
		return
	}
	tok, exp, status, code, msg := a.getWebIdentityToken(r, body, form)
	if code != "" {
		a.gwitNo.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
			code, xmlEscape(msg), oidc.NewUUID())
		return
	}
	a.gwitOK.Add(1)
	w.Header().Set("Content-Type", "text/xml")
	_, _ = fmt.Fprintf(w, `<GetWebIdentityTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetWebIdentityTokenResult><WebIdentityToken>%s</WebIdentityToken><Expiration>%s</Expiration></GetWebIdentityTokenResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></GetWebIdentityTokenResponse>`,
		tok, exp.UTC().Format(time.RFC3339), oidc.NewUUID())
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

var authzRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$`)

func (a *awsSide) getWebIdentityToken(r *http.Request, body []byte, form url.Values) (tok string, exp time.Time, status int, code, msg string) {
	m := authzRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return "", exp, 403, "MissingAuthenticationToken", "Request is missing Authentication Token"
	}
	ak, region, service, signed, sig := m[1], m[3], m[4], strings.Split(m[5], ";"), m[6]
	sess, ok := a.Session(ak)
	if !ok || r.Header.Get("X-Amz-Security-Token") != sess.SessionToken {
		return "", exp, 403, "InvalidClientTokenId", "The security token included in the request is invalid."
	}
	now := a.now()
	if !now.Before(sess.Expiration) {
		return "", exp, 400, "ExpiredToken", "The security token included in the request is expired"
	}
	// Verify SigV4: sign the same request with the session's secret and compare.
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || service != "sts" {
		return "", exp, 403, "SignatureDoesNotMatch", "bad X-Amz-Date or credential scope"
	}
	req, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	for _, h := range signed {
		if h != "host" && h != "content-length" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	req.Host = r.Host
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: ak, SecretAccessKey: sess.SecretAccessKey, SessionToken: sess.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		return "", exp, 500, "InternalFailure", err.Error()
	}
	if mm := authzRE.FindStringSubmatch(req.Header.Get("Authorization")); mm == nil || mm[6] != sig {
		return "", exp, 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
	}
	if a.disabled.Load() {
		return "", exp, 403, "OutboundWebIdentityFederationDisabledException", "Outbound web identity federation is not enabled for account " + sess.Account
	}
	var auds []string
	for i := 1; form.Has("Audience.member." + strconv.Itoa(i)); i++ {
		auds = append(auds, form.Get("Audience.member."+strconv.Itoa(i)))
	}
	if len(auds) == 0 || form.Get("SigningAlgorithm") != "RS256" {
		return "", exp, 400, "ValidationError", "Audience and SigningAlgorithm=RS256 are required"
	}
	dur := 300
	if d := form.Get("DurationSeconds"); d != "" {
		if dur, err = strconv.Atoi(d); err != nil || dur < 60 || dur > 3600 {
			return "", exp, 400, "ValidationError", "DurationSeconds must be between 60 and 3600"
		}
	}
	exp = now.Add(time.Duration(dur) * time.Second).Truncate(time.Second)
	var aud any = auds
	if len(auds) == 1 {
		aud = auds[0]
	}
	tok, err = a.w.outbound.Mint(map[string]any{"aud": aud, "sub": sess.RoleArn, "iat": now, "nbf": now, "exp": exp, "jti": oidc.NewUUID(),
		"https://sts.amazonaws.com/": map[string]any{"aws_account": sess.Account, "source_region": region,
			"lambda_source_function_arn": "arn:aws:lambda:" + region + ":" + sess.Account + ":function:" + lambdaSession}})
	if err != nil {
		return "", exp, 500, "InternalFailure", err.Error()
	}
	return tok, exp, 200, "", ""
}

// wantRefusal checks that err is an *Error for dir whose message names the presented identity and
// the other side's answer, and that no token leaks into it.
func wantRefusal(t *testing.T, err error, dir string, status int, code string, mentions ...string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want a refusal (%s %d %s), got success", dir, status, code)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not an *identity.Error: %v", err, err)
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	// (aws.CredentialsCache prefixes "failed to refresh cached credentials, ")
	if e.Direction != dir || !strings.HasPrefix(strings.TrimPrefix(msg, "failed to refresh cached credentials, "), dir+": ") {
		t.Errorf("direction %q, want %q: %s", e.Direction, dir, msg)
	}
	if e.Status != status || e.Code != code {
		t.Errorf("answer HTTP %d %q, want HTTP %d %q: %s", e.Status, e.Code, status, code, msg)
	}
	for _, s := range mentions {
		if !strings.Contains(msg, s) {
			t.Errorf("the error does not mention %q:\n%s", s, msg)
		}
	}
	noToken(t, msg)
	return e
}

func noToken(t *testing.T, msg string) {
	t.Helper()
	for _, bad := range []string{"eyJ", "ya29.", "IQoJb3JpZ2luX2VjE", "hvs."} {
		if strings.Contains(msg, bad) {
			t.Errorf("the error contains a token (%q):\n%s", bad, msg)
		}
	}
}

// presentedJWT is the "presented" part of an error for a token with these claims.
func presentedJWT(iss, sub, aud string) string {
	return fmt.Sprintf("presented JWT iss=%q sub=%q aud=%q", iss, sub, aud)
}

// stripHeader removes a request header (to make a fake refuse the request).
type stripHeader struct {
	next   http.RoundTripper
	header string
}

func (s stripHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Del(s.header)
	return s.next.RoundTrip(r)
}
