package idp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	authexacc "cloud.google.com/go/auth/credentials/externalaccount"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/keyferry/keyferry/localtest/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google/externalaccount"
)

const (
	gcpProject     = "123456789012"
	gcpPool        = "projects/" + gcpProject + "/locations/global/workloadIdentityPools/keyferry"
	azureProvider  = "//iam.googleapis.com/" + gcpPool + "/providers/azure"
	awsProvider    = "//iam.googleapis.com/" + gcpPool + "/providers/aws"
	awsOtherAcct   = "//iam.googleapis.com/" + gcpPool + "/providers/aws-other"
	replicatorSA   = "replicator@keyferry-test.iam.gserviceaccount.com"
	otherSA        = "other@keyferry-test.iam.gserviceaccount.com"
	cloudPlatform  = "https://www.googleapis.com/auth/cloud-platform"
	gcpFedAudience = "api://gcp-federation"
)

func startGoogleSTS(t *testing.T, cfg GoogleSTSConfig) *GoogleSTS {
	t.Helper()
	g, err := StartGoogleSTS(cfg)
	if err != nil {
		t.Fatalf("StartGoogleSTS: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

type supplier func(context.Context) (string, error)

func (s supplier) SubjectToken(ctx context.Context, _ externalaccount.SupplierOptions) (string, error) {
	return s(ctx)
}

// authSupplier is the same for cloud.google.com/go/auth.
type authSupplier supplier

func (a authSupplier) SubjectToken(ctx context.Context, _ *authexacc.RequestOptions) (string, error) {
	return a(ctx)
}

// oidcGoogleSetup: is.good plays the Entra issuer of managed-identity tokens (HTTPS, local CA).
func oidcGoogleSetup(t *testing.T, mod func(*WorkloadIdentityProvider)) (issuers, *GoogleSTS, string) {
	t.Helper()
	is := newIssuers(t, oidc.Options{TLS: true})
	sub := is.good.PrincipalID()
	p := WorkloadIdentityProvider{Audience: azureProvider, Issuer: is.good.Issuer(), AllowedAudiences: []string{gcpFedAudience}, Subject: sub}
	if mod != nil {
		mod(&p)
	}
	g := startGoogleSTS(t, GoogleSTSConfig{HTTPClient: is.good.HTTPClient(), Providers: []WorkloadIdentityProvider{p},
		ServiceAccounts: []GoogleServiceAccount{
			{Email: replicatorSA, Members: []string{"principal://iam.googleapis.com/" + gcpPool + "/subject/" + sub}},
			{Email: otherSA, Members: []string{"principal://iam.googleapis.com/" + gcpPool + "/subject/someone-else"}},
		}})
	return is, g, sub
}

func TestGoogleSTSOIDCWithExternalAccount(t *testing.T) {
	is, g, sub := oidcGoogleSetup(t, nil)
	subject := supplier(func(context.Context) (string, error) {
		return is.good.Mint(is.good.ManagedIdentityClaims(gcpFedAudience))
	})
	ctx := context.WithValue(tctx(t), oauth2.HTTPClient, g.HTTPClient())

	// Federated token only.
	ts, err := externalaccount.NewTokenSource(ctx, externalaccount.Config{Audience: azureProvider, SubjectTokenType: TokenTypeJWT,
		TokenURL: g.TokenURL(), Scopes: []string{cloudPlatform}, SubjectTokenSupplier: subject})
	if err != nil {
		t.Fatal(err)
	}
	fed, err := ts.Token()
	if err != nil {
		t.Fatalf("federated Token: %v", err)
	}
	info, ok := g.LookupAccessToken(fed.AccessToken)
	if wantP := "principal://iam.googleapis.com/" + gcpPool + "/subject/" + sub; !ok || info.Principal != wantP || info.ServiceAccount != "" {
		t.Fatalf("federated token info %+v %v, want principal %s", info, ok, wantP)
	}
	if d := time.Until(fed.Expiry); d < 55*time.Minute {
		t.Errorf("federated token expires in %v", d)
	}

	// With service-account impersonation.
	ts, err = externalaccount.NewTokenSource(ctx, externalaccount.Config{Audience: azureProvider, SubjectTokenType: TokenTypeJWT,
		TokenURL: g.TokenURL(), ServiceAccountImpersonationURL: g.ImpersonationURL(replicatorSA),
		Scopes: []string{cloudPlatform}, SubjectTokenSupplier: subject})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("impersonated Token: %v", err)
	}
	info, ok = g.LookupAccessToken(tok.AccessToken)
	if !ok || info.ServiceAccount != replicatorSA || len(info.Scopes) != 1 || info.Scopes[0] != cloudPlatform {
		t.Fatalf("impersonated token info %+v %v", info, ok)
	}
	if a, r := g.Counts(OpGoogleSTSToken); a != 2 || r != 0 {
		t.Errorf("token counts %d/%d, want 2/0", a, r)
	}
	if a, r := g.Counts(OpGenerateAccessToken); a != 1 || r != 0 {
		t.Errorf("generateAccessToken counts %d/%d, want 1/0", a, r)
	}
	if a, _ := g.CountsFor(OpGoogleSTSToken, azureProvider); a != 2 {
		t.Errorf("token counts for %s: %d, want 2", azureProvider, a)
	}
	if a, _ := g.CountsFor(OpGenerateAccessToken, "principal://iam.googleapis.com/"+gcpPool+"/subject/"+sub); a != 1 {
		t.Errorf("generateAccessToken counts for the federated principal: %d, want 1", a)
	}

	// Impersonating an SA the principal is not bound to fails with IAM's 403.
	ts, err = externalaccount.NewTokenSource(ctx, externalaccount.Config{Audience: azureProvider, SubjectTokenType: TokenTypeJWT,
		TokenURL: g.TokenURL(), ServiceAccountImpersonationURL: g.ImpersonationURL(otherSA),
		Scopes: []string{cloudPlatform}, SubjectTokenSupplier: subject})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err == nil || !strings.Contains(err.Error(), "iam.serviceAccounts.getAccessToken") {
		t.Fatalf("impersonating %s: %v, want PERMISSION_DENIED", otherSA, err)
	}
}

func TestGoogleSTSOIDCWithCloudAuth(t *testing.T) {
	is, g, _ := oidcGoogleSetup(t, nil)
	creds, err := authexacc.NewCredentials(&authexacc.Options{Audience: azureProvider, SubjectTokenType: TokenTypeJWT,
		TokenURL: g.TokenURL(), ServiceAccountImpersonationURL: g.ImpersonationURL(replicatorSA), Scopes: []string{cloudPlatform},
		Client: g.HTTPClient(),
		SubjectTokenProvider: authSupplier(func(context.Context) (string, error) {
			return is.good.Mint(is.good.ManagedIdentityClaims(gcpFedAudience))
		})})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := creds.Token(tctx(t))
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if info, ok := g.LookupAccessToken(tok.Value); !ok || info.ServiceAccount != replicatorSA {
		t.Fatalf("token info %+v %v", info, ok)
	}
}

func stsForm(audience, tokenType, token string) url.Values {
	return url.Values{"grant_type": {TokenExchangeGrant}, "audience": {audience}, "scope": {cloudPlatform},
		"requested_token_type": {TokenTypeAccessToken}, "subject_token_type": {tokenType}, "subject_token": {token}}
}

func TestGoogleSTSRefusals(t *testing.T) {
	is, g, sub := oidcGoogleSetup(t, func(p *WorkloadIdentityProvider) {
		p.AttributeCondition = func(a WIFAssertion) bool { return a.Claims["idtyp"] != "user" }
	})
	base := map[string]any{"iss": is.good.Issuer(), "aud": gcpFedAudience, "sub": sub}
	bad := refusalTokens(t, is, base, "https://management.azure.com/", "not-the-principal")
	good := mint(t, is.good, base, nil)
	cases := []struct {
		name, audience, tokenType, token string
		errCode                          string
		mentions                         []string
	}{
		{"wrong audience", azureProvider, TokenTypeJWT, bad["wrong audience"], "invalid_grant",
			[]string{"The audience in ID Token [https://management.azure.com/]", gcpFedAudience}},
		{"wrong subject", azureProvider, TokenTypeJWT, bad["wrong subject"], "unauthorized_client",
			[]string{"rejected by the attribute condition", "not-the-principal", sub}},
		{"wrong issuer", azureProvider, TokenTypeJWT, bad["wrong issuer"], "invalid_grant",
			[]string{"The issuer in ID Token " + is.stranger.Issuer(), is.good.Issuer()}},
		{"expired", azureProvider, TokenTypeJWT, bad["expired"], "invalid_grant", []string{"expired"}},
		{"bad signature", azureProvider, TokenTypeJWT, bad["bad signature"], "invalid_grant", []string{"Invalid ID Token signature", "does not verify"}},
		{"attribute condition", azureProvider, TokenTypeJWT, mint(t, is.good, base, map[string]any{"idtyp": "user"}), "unauthorized_client",
			[]string{"AttributeCondition"}},
		{"unknown provider", "//iam.googleapis.com/" + gcpPool + "/providers/nope", TokenTypeJWT, good, "invalid_target",
			[]string{"providers/nope"}},
		{"AWS token type for an OIDC provider", azureProvider, TokenTypeAWS4Request, good, "invalid_request",
			[]string{"subject_token_type"}},
		{"not a JWT", azureProvider, TokenTypeJWT, "garbage", "invalid_grant", []string{"Unable to parse"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectOneRefusal(t, g, func() {
				status, body := postForm(t, g.HTTPClient(), g.TokenURL(), stsForm(tc.audience, tc.tokenType, tc.token), nil)
				m := decodeJSON(t, body)
				if status != 400 || m["error"] != tc.errCode {
					t.Errorf("HTTP %d error %v, want 400 %s: %s", status, m["error"], tc.errCode, body)
				}
				desc, _ := m["error_description"].(string)
				wantContains(t, "error_description", desc, tc.mentions...)
				if strings.Contains(string(body), tc.token) {
					t.Error("the response contains the subject token")
				}
			})
		})
	}
	if g.Accepted() != 0 {
		t.Errorf("accepted %d", g.Accepted())
	}
}

func TestGenerateAccessTokenRefusals(t *testing.T) {
	is, g, _ := oidcGoogleSetup(t, nil)
	status, body := postForm(t, g.HTTPClient(), g.TokenURL(), stsForm(azureProvider, TokenTypeJWT,
		mint(t, is.good, is.good.ManagedIdentityClaims(gcpFedAudience), nil)), nil)
	if status != 200 {
		t.Fatalf("exchange: HTTP %d %s", status, body)
	}
	fed, _ := decodeJSON(t, body)["access_token"].(string)
	saTok := func() string {
		code, b := postJSON(t, g, g.ImpersonationURL(replicatorSA), fed, `{"scope":["`+cloudPlatform+`"]}`)
		if code != 200 {
			t.Fatalf("generateAccessToken: HTTP %d %s", code, b)
		}
		s, _ := decodeJSON(t, b)["accessToken"].(string)
		return s
	}()
	for _, tc := range []struct {
		name, email, bearer, body string
		status                    int
		gstatus, mention          string
	}{
		{"no bearer", replicatorSA, "", `{"scope":["x"]}`, 401, "UNAUTHENTICATED", "no bearer token"},
		{"unknown token", replicatorSA, "ya29.made-up", `{"scope":["x"]}`, 401, "UNAUTHENTICATED", "not a federated token"},
		{"SA token as bearer", replicatorSA, saTok, `{"scope":["x"]}`, 401, "UNAUTHENTICATED", "not a federated token"},
		{"not bound to the SA", otherSA, fed, `{"scope":["x"]}`, 403, "PERMISSION_DENIED", "is not among the members"},
		{"unknown SA", "ghost@keyferry-test.iam.gserviceaccount.com", fed, `{"scope":["x"]}`, 403, "PERMISSION_DENIED", "no service account"},
		{"no scope", replicatorSA, fed, `{}`, 400, "INVALID_ARGUMENT", "Scope required"},
		{"lifetime too long", replicatorSA, fed, `{"scope":["x"],"lifetime":"7200s"}`, 400, "INVALID_ARGUMENT", "lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectOneRefusal(t, g, func() {
				code, b := postJSON(t, g, g.ImpersonationURL(tc.email), tc.bearer, tc.body)
				var e struct {
					Error struct {
						Code    int    `json:"code"`
						Message string `json:"message"`
						Status  string `json:"status"`
					} `json:"error"`
				}
				if err := json.Unmarshal(b, &e); err != nil {
					t.Fatalf("not JSON: %s", b)
				}
				if code != tc.status || e.Error.Code != tc.status || e.Error.Status != tc.gstatus {
					t.Errorf("HTTP %d %+v, want %d %s", code, e.Error, tc.status, tc.gstatus)
				}
				wantContains(t, "message", e.Error.Message, tc.mention)
			})
		})
	}
}

func postJSON(t *testing.T, g *GoogleSTS, u, bearerToken, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(tctx(t), http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	resp, err := g.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// awsChain: an OIDC issuer → the STS fake (role credentials) → the Google STS fake's AWS provider,
// which replays the signed GetCallerIdentity to the STS fake.
func awsChain(t *testing.T) (*AWSSTS, *GoogleSTS, aws.Credentials) {
	t.Helper()
	iss := startIssuer(t, oidc.Options{})
	const role = "arn:aws:iam::" + testAccount + ":role/keyferry-lambda"
	awsFake := startSTS(t, AWSSTSConfig{Roles: []AWSRole{{RoleArn: role, Provider: iss.Issuer(), Audience: "sts.amazonaws.com", Subject: "lambda"}}})
	prov := stscreds.NewWebIdentityRoleProvider(sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(awsFake.URL)}), role,
		tokenFunc(func() ([]byte, error) {
			tok, err := iss.Mint(map[string]any{"aud": "sts.amazonaws.com", "sub": "lambda"})
			return []byte(tok), err
		}), func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = "replicate-fn" })
	creds, err := aws.NewCredentialsCache(prov).Retrieve(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	g := startGoogleSTS(t, GoogleSTSConfig{
		Providers: []WorkloadIdentityProvider{
			{Audience: awsProvider, AWSAccountID: testAccount, AWSVerifyURL: awsFake.URL},
			{Audience: awsOtherAcct, AWSAccountID: "999999999999", AWSVerifyURL: awsFake.URL},
		},
		ServiceAccounts: []GoogleServiceAccount{{Email: replicatorSA, Members: []string{
			"principalSet://iam.googleapis.com/" + gcpPool + "/attribute.aws_role/arn:aws:sts::" + testAccount + ":assumed-role/keyferry-lambda"}}},
	})
	return awsFake, g, creds
}

type awsSupplier struct{ creds aws.Credentials }

func (s awsSupplier) AwsRegion(context.Context, externalaccount.SupplierOptions) (string, error) {
	return "us-east-1", nil
}

func (s awsSupplier) AwsSecurityCredentials(context.Context, externalaccount.SupplierOptions) (*externalaccount.AwsSecurityCredentials, error) {
	return &externalaccount.AwsSecurityCredentials{AccessKeyID: s.creds.AccessKeyID, SecretAccessKey: s.creds.SecretAccessKey, SessionToken: s.creds.SessionToken}, nil
}

func TestGoogleSTSAWSProviderWithExternalAccount(t *testing.T) {
	awsFake, g, creds := awsChain(t)
	ctx := context.WithValue(tctx(t), oauth2.HTTPClient, g.HTTPClient())
	ts, err := externalaccount.NewTokenSource(ctx, externalaccount.Config{Audience: awsProvider, SubjectTokenType: TokenTypeAWS4Request,
		TokenURL: g.TokenURL(), ServiceAccountImpersonationURL: g.ImpersonationURL(replicatorSA), Scopes: []string{cloudPlatform},
		AwsSecurityCredentialsSupplier: awsSupplier{creds}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	info, ok := g.LookupAccessToken(tok.AccessToken)
	wantP := "principal://iam.googleapis.com/" + gcpPool + "/subject/arn:aws:sts::" + testAccount + ":assumed-role/keyferry-lambda/replicate-fn"
	if !ok || info.ServiceAccount != replicatorSA || info.Principal != wantP {
		t.Fatalf("token info %+v %v, want SA %s principal %s", info, ok, replicatorSA, wantP)
	}
	if a, r := awsFake.Counts(OpGetCallerIdentity); a != 1 || r != 0 {
		t.Errorf("the STS fake verified %d/%d GetCallerIdentity replays, want 1/0", a, r)
	}
}

// signedCallerIdentity builds the subject token the way golang.org/x/oauth2's aws.go does, but signed
// with the AWS SDK's own SigV4 signer; tamper may alter the request after signing.
func signedCallerIdentity(t *testing.T, creds aws.Credentials, host, target string, signTarget bool, tamper func(*http.Request)) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+host+"?Action=GetCallerIdentity&Version=2011-06-15", nil)
	if err != nil {
		t.Fatal(err)
	}
	if signTarget {
		req.Header.Set("x-goog-cloud-target-resource", target)
	}
	empty := sha256.Sum256(nil)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(empty[:]), "sts", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if !signTarget {
		req.Header.Set("x-goog-cloud-target-resource", target)
	}
	if tamper != nil {
		tamper(req)
	}
	type kv struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	st := struct {
		URL     string `json:"url"`
		Method  string `json:"method"`
		Headers []kv   `json:"headers"`
	}{URL: req.URL.String(), Method: req.Method, Headers: []kv{{"host", req.URL.Host}}}
	for k, vs := range req.Header {
		for _, v := range vs {
			st.Headers = append(st.Headers, kv{k, v})
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return url.QueryEscape(string(b))
}

func TestGoogleSTSAWSProviderRefusals(t *testing.T) {
	awsFake, g, creds := awsChain(t)
	const host = "sts.us-east-1.amazonaws.com"
	// Sanity: a correctly signed token from the SDK signer is accepted.
	status, body := postForm(t, g.HTTPClient(), g.TokenURL(), stsForm(awsProvider, TokenTypeAWS4Request,
		signedCallerIdentity(t, creds, host, awsProvider, true, nil)), nil)
	if status != 200 {
		t.Fatalf("a well-signed request: HTTP %d %s", status, body)
	}
	wrongSecret := creds
	wrongSecret.SecretAccessKey = strings.Repeat("x", 40)
	stranger := aws.Credentials{AccessKeyID: "ASIAQQQQQQQQQQQQQQQQ", SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	cases := []struct {
		name, audience, token string
		mentions              []string
	}{
		{"target resource is another provider", awsProvider, signedCallerIdentity(t, creds, host, awsOtherAcct, true, nil),
			[]string{"x-goog-cloud-target-resource", "providers/aws-other"}},
		{"target resource not signed", awsProvider, signedCallerIdentity(t, creds, host, awsProvider, false, nil),
			[]string{"not among the signed headers"}},
		{"bad signature", awsProvider, signedCallerIdentity(t, wrongSecret, host, awsProvider, true, nil),
			[]string{"Received invalid AWS response of type SignatureDoesNotMatch"}},
		{"credentials not issued by STS", awsProvider, signedCallerIdentity(t, stranger, host, awsProvider, true, nil),
			[]string{"InvalidClientTokenId"}},
		{"tampered after signing", awsProvider, signedCallerIdentity(t, creds, host, awsProvider, true, func(r *http.Request) {
			r.Header.Set("X-Amz-Date", time.Now().Add(time.Minute).UTC().Format(amzDateFormat))
		}), []string{"SignatureDoesNotMatch"}},
		{"wrong AWS account", awsOtherAcct, signedCallerIdentity(t, creds, host, awsOtherAcct, true, nil),
			[]string{"AWS account " + testAccount, "999999999999"}},
		{"not an STS endpoint", awsProvider, signedCallerIdentity(t, creds, "sts.example.com", awsProvider, true, nil),
			[]string{"is not https://sts"}},
		{"not JSON", awsProvider, "%7Bnope", []string{"Invalid AWS subject token"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectOneRefusal(t, g, func() {
				status, body := postForm(t, g.HTTPClient(), g.TokenURL(), stsForm(tc.audience, TokenTypeAWS4Request, tc.token), nil)
				m := decodeJSON(t, body)
				if status != 400 || m["error"] != "invalid_grant" {
					t.Errorf("HTTP %d error %v, want 400 invalid_grant", status, m["error"])
				}
				desc, _ := m["error_description"].(string)
				wantContains(t, "error_description", desc, tc.mentions...)
			})
		})
	}
	if _, r := awsFake.Counts(OpGetCallerIdentity); r != 3 {
		t.Errorf("the STS fake refused %d replays, want 3 (bad signature, unknown key, tampered)", r)
	}
}

func TestGoogleSTSAWSShapeOnly(t *testing.T) {
	// Without a replay target the fake can only check the request's shape; AWSCallerARN names the caller.
	g := startGoogleSTS(t, GoogleSTSConfig{Providers: []WorkloadIdentityProvider{{Audience: awsProvider, AWSAccountID: testAccount,
		AWSCallerARN: func(ak string) (string, bool) {
			return "arn:aws:sts::" + testAccount + ":assumed-role/r/s", ak == "ASIAKNOWNKNOWNKNOWN1"
		}}}})
	creds := aws.Credentials{AccessKeyID: "ASIAKNOWNKNOWNKNOWN1", SecretAccessKey: "anything", SessionToken: "t"}
	status, body := postForm(t, g.HTTPClient(), g.TokenURL(), stsForm(awsProvider, TokenTypeAWS4Request,
		signedCallerIdentity(t, creds, "sts.us-east-1.amazonaws.com", awsProvider, true, nil)), nil)
	if status != 200 {
		t.Fatalf("HTTP %d %s", status, body)
	}
	tok, _ := decodeJSON(t, body)["access_token"].(string)
	if info, ok := g.LookupAccessToken(tok); !ok || info.Attributes["aws_role"] != "arn:aws:sts::"+testAccount+":assumed-role/r" {
		t.Fatalf("token info %+v %v", info, ok)
	}
}
